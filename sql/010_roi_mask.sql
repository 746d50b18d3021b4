-- 010_roi_mask.sql — a class's region of interest as a mask image (issue 9,
-- item 2).  classes.roi_mask: the PNG or JPEG bytes as uploaded (NULL = no
-- mask), with their content type and decoded size.  The mask is checked
-- against the frame when the class's first references fix its geometry and
-- sampled on the working grid (core/geometry.h rd_geometry_roi_grid) each
-- time its reference set is built or loaded; it changes only while the class
-- has no references.
ALTER TABLE classes ADD COLUMN roi_mask BLOB;
ALTER TABLE classes ADD COLUMN roi_mask_type TEXT;
ALTER TABLE classes ADD COLUMN roi_mask_w INTEGER;
ALTER TABLE classes ADD COLUMN roi_mask_h INTEGER;
