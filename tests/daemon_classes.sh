#!/usr/bin/env bash
# tests/daemon_classes.sh — many classes on one machine (issue 13): classes
# are cold at start and load on first use from their stored fp16 features and
# stored calibration; an LRU bounded by max_loaded_classes evicts idle ones.
#  * 5 classes (different reference subsets) scored once while all are in
#    memory; after a restart with max_loaded_classes = 2, inspecting them
#    round robin (twice) gives exactly the same scores and thresholds,
#    evictions happen (/metrics), at most 2 stay loaded, every load came from
#    the stored calibration (none rebuilt), GET shows loaded true/false;
#  * references are stored as fp16 (blob version 3, about half of fp32);
#  * a database from before sql/008 (fp32 feature blobs, no calibration
#    stored) still serves the same scores: the class is rebuilt once, its
#    blobs re-encoded as fp16 and its calibration stored.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
J=(-H 'Content-Type: application/json')
DB=$T/data/resadd.db
printf 'workers = 1\n' > "$T/a.conf"
start_resadd --config "$T/a.conf"
refs=(ref1 ref2 ref3 ref4 ref5)
for k in 0 1 2 3 4; do
    req POST /v1/classes "${J[@]}" -d "{\"name\":\"c$k\"}"
    a=${refs[$k]} b=${refs[$(((k + 1) % 5))]} c=${refs[$(((k + 2) % 5))]}
    req POST "/v1/classes/c$k/references" -F "a=@$I/$a.jpg" -F "b=@$I/$b.jpg" -F "c=@$I/$c.jpg"
    expect "register c$k" 201
done
score_all() { # score_all FILE: "class score threshold" per class, round robin twice
    : > "$1"
    for round in 1 2; do for k in 0 1 2 3 4; do
        req POST "/v1/classes/c$k/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
        [ "$CODE" = 200 ] || fail "inspect c$k: HTTP $CODE $BODY"
        echo "c$k $(jget 'repr(j["score"]), repr(j["threshold"])')" >> "$1"
    done; done
}
score_all "$T/hot"
metric() { curl -s "$URL/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
check "no eviction without a budget" [ "$(metric resadd_class_evictions_total)" = 0 ]
check "all 5 loaded" [ "$(metric resadd_classes_loaded)" = 5 ]
stop_resadd

$PY - "$DB" > "$T/blobs" <<'PY'
import sqlite3, sys, struct
db = sqlite3.connect(sys.argv[1])
vers = sorted({struct.unpack("<I", f[4:8])[0] for (f,) in db.execute("select feats from refs")})
n = db.execute("select count(*) from calibrations").fetchone()[0]
avg = db.execute("select avg(length(feats)) from refs").fetchone()[0]
print(vers, n, int(avg))
PY
read -r vers ncal avg < <(tr -d '[],' < "$T/blobs")
echo "stored: blob version(s) $vers, $ncal calibrations, $avg bytes of features per reference"
check "features stored as fp16 (version 3), a calibration per class" [ "$vers $ncal" = "3 5" ]

printf 'workers = 1\nmax_loaded_classes = 2\nlog_level = debug\n' > "$T/b.conf"
start_resadd --config "$T/b.conf"
req GET /v1/classes/c3
check "cold at start: ready, not loaded, threshold known" [ "$(jget 'j["ready"], j["loaded"], j["threshold_auto"] is not None')" = "(True, False, True)" ]
score_all "$T/lru"
check "same scores and thresholds with 2 loaded classes as with all 5" cmp -s "$T/hot" "$T/lru"
[ -s "$T/lru" ] && ! cmp -s "$T/hot" "$T/lru" && diff "$T/hot" "$T/lru" | head
ev=$(metric resadd_class_evictions_total)
check "evictions happened ($ev)" [ "${ev:-0}" -ge 8 ]
check "at most 2 loaded" [ "$(metric resadd_classes_loaded)" -le 2 ]
check "every load from the stored calibration, none rebuilt" \
    [ "$(metric 'resadd_class_loads_total{from="built"}') $(metric 'resadd_class_loads_total{from="stored"}')" = "0 10" ]
check "the log names the evictions" grep -q "reference set evicted" "$T/resadd.log"
req GET /v1/classes/c4
check "the last inspected class is loaded" [ "$(jget 'j["loaded"]')" = True ]
req GET /v1/classes/c0
check "an evicted class is not" [ "$(jget 'j["loaded"], j["ready"]')" = "(False, True)" ]
stop_resadd

# ---- a database from before sql/008: fp32 blobs (version 2), no calibration ----
$PY - "$DB" <<'PY'
import sqlite3, sys, struct
db = sqlite3.connect(sys.argv[1])
HDR = 8 + 256 + 8
for rid, f in db.execute("select id, feats from refs where class_id = (select id from classes where name = 'c2')").fetchall():
    nl = struct.unpack("<I", f[HDR:HDR + 4])[0]
    off = HDR + 4 + 12 * nl
    n = (len(f) - off) // 2
    vals = struct.unpack("<%de" % n, f[off:])
    v2 = f[:4] + struct.pack("<I", 2) + f[8:off] + struct.pack("<%df" % n, *vals)
    db.execute("update refs set feats = ? where id = ?", (v2, rid))
db.execute("delete from calibrations where class_id = (select id from classes where name = 'c2')")
db.commit()
PY
start_resadd --config "$T/b.conf"
req POST /v1/classes/c2/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
expect "inspect the old-format class" 200
check "same score and threshold as before" [ "c2 $(jget 'repr(j["score"]), repr(j["threshold"])')" = "$(grep '^c2 ' "$T/hot" | head -1)" ]
check "rebuilt once (no calibration stored)" [ "$(metric 'resadd_class_loads_total{from="built"}')" = 1 ]
check "the log says the blobs were re-encoded" grep -q "class c2: 3 reference feature blob(s) re-encoded as fp16" "$T/resadd.log"
stop_resadd
check "re-encoded as fp16 and calibration stored" [ "$($PY -c "
import sqlite3, struct; db = sqlite3.connect('$DB')
c = db.execute(\"select id from classes where name = 'c2'\").fetchone()[0]
v = {struct.unpack('<I', f[4:8])[0] for (f,) in db.execute('select feats from refs where class_id = ?', (c,))}
print(sorted(v), db.execute('select count(*) from calibrations where class_id = ?', (c,)).fetchone()[0])")" = "[3] 1" ]
done_test
