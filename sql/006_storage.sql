-- 006_storage.sql — lazy heatmaps (issue 13).  An inspection now stores its
-- anomaly map compactly (kind 'map', core/heatblob.h: a few KB at working
-- resolution) and, while the image retention allows, a JPEG copy of the image
-- (kind 'image') for the overlay; the PNGs are rendered on GET.  Rows of the
-- old kinds ('overlay', 'raw', 'mask' PNGs) stay and are served as they are.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE heatmaps_006 (
    inspection_id INTEGER NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('overlay', 'raw', 'mask', 'map', 'image')),
    png           BLOB NOT NULL,   -- a PNG, a heatblob ('map') or a JPEG ('image')
    PRIMARY KEY (inspection_id, kind)
);
INSERT INTO heatmaps_006(inspection_id, kind, png) SELECT inspection_id, kind, png FROM heatmaps;
DROP TABLE heatmaps;
ALTER TABLE heatmaps_006 RENAME TO heatmaps;
CREATE INDEX heatmaps_kind ON heatmaps(kind, inspection_id);
