-- 005_integrator.sql — what integrators need on an inspection row.
-- Verdict fields (computed from the map when the inspection finishes):
-- confidence (logistic of score vs threshold, core/regions.h), anomalous_area
-- (fraction of inspected pixels >= threshold), regions (JSON array, largest
-- first, capped) and regions_total; threshold_source says where the applied
-- threshold came from ('class' | 'request' | 'sensitivity'), sensitivity the
-- requested one.  seq: the completion sequence, assigned in commit order when
-- a row finishes or fails; after_id polling pages on it so a row that
-- finishes later than a newer one is never skipped.
ALTER TABLE inspections ADD COLUMN confidence REAL;
ALTER TABLE inspections ADD COLUMN anomalous_area REAL;
ALTER TABLE inspections ADD COLUMN regions TEXT;
ALTER TABLE inspections ADD COLUMN regions_total INTEGER;
ALTER TABLE inspections ADD COLUMN threshold_source TEXT;
ALTER TABLE inspections ADD COLUMN sensitivity REAL;
ALTER TABLE inspections ADD COLUMN seq INTEGER;
UPDATE inspections SET seq = id WHERE status != 'queued';
CREATE UNIQUE INDEX inspections_seq ON inspections(seq);
CREATE INDEX inspections_extid ON inspections(class, external_id);
-- Webhooks: each event (inspection | class) that matches a hook's events and
-- class filter becomes a delivery row, sent by the engine's delivery thread
-- (engine/webhooks.c), retried with exponential backoff until delivered or
-- out of attempts; next_at is unix seconds, so a restart resumes them.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,          -- comma-separated event types, or '*'
    class       TEXT,                   -- NULL = every class
    secret      TEXT NOT NULL,          -- HMAC-SHA256 key of X-Resadd-Signature
    created_at  TEXT NOT NULL
);
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    last_status  INTEGER,               -- HTTP status of the last attempt (NULL: no answer)
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX deliveries_due ON deliveries(status, next_at);
CREATE INDEX deliveries_hook ON deliveries(webhook_id, status);
