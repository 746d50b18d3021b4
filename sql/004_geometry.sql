-- 004_geometry.sql — whole-frame inspection at camera geometry (issue 9).
-- classes.geo_opts: what the user asked for at creation (working short side,
-- fit policy, ROI, search tile, alpha policy) as one line of text
-- ("s=320 fit=pad roi=0,0,0,0 alpha=composite search=0"), NULL = defaults.
-- classes.geometry: the geometry fixed by the first reference
-- (rd_geometry_format: "frame=1920x1080 roi=... work=400x224 ..."); NULL
-- until then, and for classes made before this migration until the start-up
-- loader re-extracts their references at the whole frame and records it.
ALTER TABLE classes ADD COLUMN geo_opts TEXT;
ALTER TABLE classes ADD COLUMN geometry TEXT;
-- What an inspection covered: the geometry applied, the fraction of the
-- frame's pixels inspected, the fraction left out by fit=crop, and whether a
-- fit policy was applied (the image had another aspect ratio).
ALTER TABLE inspections ADD COLUMN geometry TEXT;
ALTER TABLE inspections ADD COLUMN inspected_fraction REAL;
ALTER TABLE inspections ADD COLUMN left_out_fraction REAL;
ALTER TABLE inspections ADD COLUMN fitted INTEGER;
