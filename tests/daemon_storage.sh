#!/usr/bin/env bash
# tests/daemon_storage.sh — lazy heatmaps and storage bounds (issue 13):
#  * an inspection stores its map compactly (≤ 16 KB of database per
#    inspection at 256², the retained image copy counted apart) and no PNG;
#  * overlay, raw and mask render on GET; raw and mask match `resad score
#    --heatmap` (the rendering resadd stored before lazy heatmaps) within one
#    grey level / a few border pixels, and every kind renders the same bytes
#    after a restart;
#  * keep_images = last 2: the oldest inspection's image copy goes; its raw and
#    mask are unchanged and its overlay is drawn over neutral grey (the colour
#    then depends on the raw value only);
#  * a database from before sql/006_storage.sql (old heatmaps table with
#    stored PNG rows) migrates and its PNG rows are served byte for byte;
#  * retention_max_bytes prunes the oldest inspections until the pages in use fit.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
J=(-H 'Content-Type: application/json')
DB=$T/data/resadd.db
printf 'workers = 1\nkeep_images = last 2\n' > "$T/s.conf"
start_resadd --config "$T/s.conf"
req POST /v1/classes "${J[@]}" -d '{"name":"part"}'
req POST /v1/classes/part/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "register 4 references" 201
for f in defect good defect; do
    req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/$f.jpg"
    expect "inspect $f" 200
done
get_all() { # get_all TAG: every kind of inspections 1..3 into $T/TAG.ID.KIND.png
    for id in 1 2 3; do for k in overlay raw mask; do
        CODE=$(curl -s -o "$T/$1.$id.$k.png" -w '%{http_code}' "$URL/v1/inspections/$id/heatmap.png?kind=$k")
        [ "$CODE" = 200 ] || fail "$1: inspection $id $k: HTTP $CODE"
    done; done
}
get_all a
get_all a2 # from the cache
check "cached renderings are the same bytes" cmp -s "$T/a.1.overlay.png" "$T/a2.1.overlay.png"
$PY - "$DB" > "$T/bytes" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
kinds = dict(db.execute("select kind, count(*) from heatmaps group by kind").fetchall())
row = db.execute("select avg(length(png)) from heatmaps where kind = 'map'").fetchone()[0]
img = db.execute("select avg(length(png)) from heatmaps where kind = 'image'").fetchone()[0]
cols = db.execute("select avg(length(timings) + length(class) + 200) from inspections").fetchone()[0]
print(kinds.get("overlay", 0) + kinds.get("raw", 0) + kinds.get("mask", 0), kinds.get("map", 0), kinds.get("image", 0), int(row + cols), int(img))
PY
read -r npng nmap nimg per imgb < "$T/bytes"
echo "stored per inspection at 256²: ${per} bytes (map + row); retained image copy ${imgb} bytes"
check "no PNG stored, one map per inspection, image copies kept" [ "$npng" = 0 -a "$nmap" = 3 -a "$nimg" = 3 ]
check "≤ 16 KB stored per 256² inspection (map + row)" [ "$per" -le 16384 ]

# raw and mask vs the CLI's rendering (what resadd stored before)
"$top_builddir/resad" score --ref "$I/ref1.jpg" "$I/ref2.jpg" "$I/ref3.jpg" "$I/ref4.jpg" --image "$I/defect.jpg" \
    --heatmap "$T/cli" > "$T/cli.json" 2>>"$T/resadd.log" || fail "resad score"
$PY - "$T" <<'PY' || fail "lazy raw/mask differ from resad score's"
import sys
from PIL import Image
import numpy as np
t = sys.argv[1]
for k, tol, frac in (("raw", 1, 0.0), ("mask", 0, 0.003)):
    a = np.asarray(Image.open(f"{t}/cli/defect.{k}.png").convert("LA" if k == "raw" else "L"), dtype=int)
    b = np.asarray(Image.open(f"{t}/a.1.{k}.png").convert("LA" if k == "raw" else "L"), dtype=int)
    assert a.shape == b.shape, (k, a.shape, b.shape)
    off = (np.abs(a - b) > tol).mean()
    print(f"{k}: {off * 100:.4f}% of values differ from resad score's by more than {tol} (max {np.abs(a - b).max()})")
    assert off <= frac, k
PY
stop_resadd
start_resadd --config "$T/s.conf" # retention at start: keep the last 2 image copies
get_all b
for id in 1 2 3; do for k in raw mask; do
    cmp -s "$T/a.$id.$k.png" "$T/b.$id.$k.png" || fail "inspection $id $k changed after the restart"
done; done
for id in 2 3; do
    cmp -s "$T/a.$id.overlay.png" "$T/b.$id.overlay.png" || fail "inspection $id overlay changed after the restart"
done
NIMG=$($PY -c "import sqlite3; print(sqlite3.connect('$DB').execute(\"select group_concat(inspection_id) from heatmaps where kind = 'image'\").fetchone()[0])")
check "keep_images = last 2 keeps the copies of inspections 2 and 3 ($NIMG)" [ "$NIMG" = "2,3" ]
if $PY - "$T" <<'PY'; then ok "expired overlay: same size, drawn over neutral grey"; else fail "expired overlay"; fi
import sys
from PIL import Image
import numpy as np
t = sys.argv[1]
raw = np.asarray(Image.open(f"{t}/b.1.raw.png").convert("LA"))[..., 0]
def spread(p):  # colour spread among pixels of one raw level: 0 when the colour depends on the map only
    o = np.asarray(Image.open(p).convert("RGB"), dtype=float)
    return max(o[raw == v].std(axis=0).max() for v in np.unique(raw) if (raw == v).sum() > 20)
before, after = spread(f"{t}/a.1.overlay.png"), spread(f"{t}/b.1.overlay.png")
print(f"overlay colour spread per raw level: {before:.1f} over the image, {after:.1f} after it expired")
assert Image.open(f"{t}/b.1.overlay.png").size == Image.open(f"{t}/a.1.overlay.png").size
assert after < 5.0 and before > 4 * after
PY
stop_resadd

# ---- a database from before 006_storage: PNG rows are served as they were ----
# built from the migrations before 006 (the schema an older resadd left), one
# done inspection with its three stored PNGs
$PY - "$top_srcdir/sql" "$T/old" "$T/a.2.overlay.png" <<'PY'
import glob, os, sqlite3, sys
src, out, png = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
os.makedirs(out, exist_ok=True)
pre = [f for f in sorted(glob.glob(src + "/[0-9][0-9][0-9]_*.sql")) if os.path.basename(f) < "006"]
db = sqlite3.connect(out + "/resadd.db")
for f in pre: db.executescript(open(f).read())
db.execute("pragma user_version = %d" % len(pre))
db.execute("insert into inspections(id, class, status, score, threshold, anomalous, width, height, created_at) "
           "values (1, 'part', 'done', 3.0, 2.0, 1, 256, 256, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")  # young: retention keeps it
for k in ("overlay", "raw", "mask"):
    db.execute("insert into heatmaps values (1, ?, ?)", (k, png + k.encode()))
db.commit()
PY
start_resadd --config "$T/s.conf" --data-dir "$T/old"
for k in overlay raw mask; do
    curl -s -o "$T/old.$k" "$URL/v1/inspections/1/heatmap.png?kind=$k"
    { cat "$T/a.2.overlay.png"; printf '%s' "$k"; } | cmp -s - "$T/old.$k" || fail "old $k row not served byte for byte"
done
ok "migrated database: old PNG rows served as stored"
req GET "/v1/inspections/2/heatmap.png?kind=overlay"
expect "migrated database: an inspection without rows -> 404" 404
stop_resadd

# ---- retention_max_bytes ----
start_resadd --config "$T/s.conf"
N=12; [ "$SANITIZED" = 1 ] && N=6
for k in $(seq "$N"); do
    curl -s -o /dev/null -X POST "$URL/v1/classes/part/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
done
stop_resadd
read -r used0 n0 < <($PY -c "
import sqlite3; db=sqlite3.connect('$DB')
print(db.execute('select (page_count - freelist_count) * page_size from pragma_page_count, pragma_freelist_count, pragma_page_size').fetchone()[0], db.execute('select count(*) from inspections').fetchone()[0])")
MAXB=$((used0 - 40000))
printf 'workers = 1\nkeep_images = last 2\nretention_max_bytes = %d\n' "$MAXB" > "$T/b.conf"
start_resadd --config "$T/b.conf"
stop_resadd
read -r used1 n1 < <($PY -c "
import sqlite3; db=sqlite3.connect('$DB')
print(db.execute('select (page_count - freelist_count) * page_size from pragma_page_count, pragma_freelist_count, pragma_page_size').fetchone()[0], db.execute('select count(*) from inspections').fetchone()[0])")
echo "retention_max_bytes = $MAXB: $n0 inspections in $used0 bytes -> $n1 in $used1 bytes"
check "retention_max_bytes: pages in use fit, some inspections removed, newest kept" [ "$used1" -le "$MAXB" -a "$n1" -lt "$n0" -a "$n1" -gt 0 ]
done_test
