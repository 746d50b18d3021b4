-- 003_jobs.sql — async inspections survive a crash: the image bytes of a
-- queued job are stored with its row (before the 202) and deleted when it
-- finishes; at start every job still here is run again.  probe: the one row
-- /readyz writes to learn whether the disk takes writes again after a full one.
CREATE TABLE jobs (
    inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id) ON DELETE CASCADE,
    content_type  TEXT NOT NULL,
    image         BLOB NOT NULL
);
CREATE TABLE probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
