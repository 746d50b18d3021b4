-- 009_labels.sql — a line that learns from its operators (engine/labels.c).
-- An inspection carries at most one current label (good | defect) with the score it
-- was recorded with and, if it joined the class's reference pool, the reference it
-- became.  Labels are not cascaded from inspections: retention may prune an
-- inspection row, its label (and score) still calibrates the class's threshold.
-- Every change (label, unlabel, join, leave, policy) is one row of label_events
-- with who made it (the token's name, or "local" without auth) and when.
CREATE TABLE labels (
    inspection_id INTEGER PRIMARY KEY,
    class         TEXT NOT NULL,
    label         TEXT NOT NULL CHECK (label IN ('good', 'defect')),
    score         REAL,
    actor         TEXT NOT NULL,
    labelled_at   TEXT NOT NULL,
    reference_id  INTEGER              -- the reference it became; NULL = not in the pool
);
CREATE INDEX labels_class ON labels(class);
CREATE TABLE label_events (
    id            INTEGER PRIMARY KEY,
    class         TEXT NOT NULL,
    inspection_id INTEGER,             -- NULL for a policy change
    action        TEXT NOT NULL CHECK (action IN ('label', 'unlabel', 'join', 'leave', 'policy')),
    value         TEXT,                -- the label, the policy, or NULL
    reference_id  INTEGER,
    actor         TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX label_events_class ON label_events(class, id);
ALTER TABLE classes ADD COLUMN threshold_policy TEXT NOT NULL DEFAULT 'loo';
ALTER TABLE classes ADD COLUMN learn_from_labels INTEGER NOT NULL DEFAULT 0;
-- the threshold the policy gives while it applies (NULL: loo, the calibration's);
-- a manual threshold (classes.threshold) still wins over it
ALTER TABLE classes ADD COLUMN policy_threshold REAL;
