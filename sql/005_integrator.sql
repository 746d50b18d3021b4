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
