-- 002_model.sql — which learned model produced each score: the sha256 of the
-- model file (NULL for the residual-norm scorer and for rows written before
-- this migration).
ALTER TABLE inspections ADD COLUMN model_sha256 TEXT;
