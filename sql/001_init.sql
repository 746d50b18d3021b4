-- 001_init.sql — the initial resadd schema (applied once; PRAGMA user_version = 1).
-- Times are ISO 8601 UTC text ('2026-01-02T03:04:05.678Z'), which sorts correctly.
CREATE TABLE classes (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    threshold    REAL,                 -- NULL = automatic (from calibration)
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Reference images: bytes + identity, and their features keyed by the model id
-- (a different model id at start means: recompute from the bytes).
CREATE TABLE refs (
    id           INTEGER PRIMARY KEY,
    class_id     INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    image        BLOB NOT NULL,
    model_id     TEXT NOT NULL,
    feats        BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (class_id, sha256)
);
CREATE INDEX refs_class ON refs(class_id);

-- Inspections keep the class name as text: history survives a class's deletion.
CREATE TABLE inspections (
    id           INTEGER PRIMARY KEY,
    class        TEXT NOT NULL,
    external_id  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'done', 'failed')),
    score        REAL,
    threshold    REAL,
    anomalous    INTEGER,
    scorer       TEXT,
    shots        INTEGER,
    width        INTEGER,
    height       INTEGER,
    timings      TEXT,                 -- JSON object of per-stage milliseconds
    total_ms     REAL,
    error        TEXT,
    error_code   TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX inspections_class ON inspections(class, id);
CREATE INDEX inspections_created ON inspections(created_at);

-- The three renderings of an inspection's map, stored at inspection time.
CREATE TABLE heatmaps (
    inspection_id INTEGER NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('overlay', 'raw', 'mask')),
    png           BLOB NOT NULL,
    PRIMARY KEY (inspection_id, kind)
);

-- API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    scope        TEXT NOT NULL CHECK (scope IN ('admin', 'inspect', 'read')),
    hash         TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
