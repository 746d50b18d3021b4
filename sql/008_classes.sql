-- 008_classes.sql — thousands of classes: each class's calibration (the leave-one-out
-- statistics its threshold comes from) is stored, so a class loaded on its first
-- inspection does not recompute it.  key: sha256 over what it was computed from
-- (calibration version, model id, learned model sha256, geometry and the reference
-- feature blobs' sha256); a stored calibration with another key is ignored and replaced.
-- Reference features themselves move to fp16 blobs (rd_feats_serialize_f16)
-- lazily: an older fp32 blob is re-encoded when its class is next loaded.
CREATE TABLE calibrations (
    class_id   INTEGER PRIMARY KEY REFERENCES classes(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    threshold  REAL NOT NULL,          -- the automatic threshold it gives
    calib      BLOB NOT NULL           -- rd_calib_serialize (core/refblob.h)
);
