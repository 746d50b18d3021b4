#!/usr/bin/env bash
# bench/bench_storage.sh — database bytes per stored inspection (issue 13),
# not a test: for 256² JPEGs and 1920×1080 JPEGs (the demo photographs scaled),
# runs resadd from a build tree, registers 4 references, inspects N images and
# prints the bytes one inspection adds to the database — the inspection row +
# its compact map (what grows with the line's rate), and apart the retained
# JPEG image copy (bounded by keep_images) — against the same-run reference of
# what resadd stored before lazy heatmaps: the three PNGs `resad score
# --heatmap` writes for the same image.
# usage: bench/bench_storage.sh [BUILD_DIR] [N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
N=${2:-10}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/resadd-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
$PY "$top/tools/demo-images.py" "$T/img" >/dev/null
$PY - "$T/img" <<'PY'
import sys, os
from PIL import Image
d = sys.argv[1]; os.makedirs(d + "/hd", exist_ok=True)
for f in ("ref1", "ref2", "ref3", "ref4", "defect"):
    Image.open(f"{d}/{f}.jpg").convert("RGB").resize((1920, 1080), Image.BICUBIC).save(f"{d}/hd/{f}.jpg", quality=90)
PY
echo "frame      map+row_B  image_copy_B  before_3png_B  ratio_now/before"
for set in sq hd; do
    dir=$T/img; [ "$set" = hd ] && dir=$T/img/hd
    PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    URL=http://127.0.0.1:$PORT
    rm -rf "$T/data"
    "$build/resadd" --listen 127.0.0.1:$PORT --data-dir "$T/data" 2>"$T/log" &
    PID=$!
    for _ in $(seq 600); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    curl -fs -X POST "$URL/v1/classes" -H 'Content-Type: application/json' -d '{"name":"b"}' >/dev/null
    curl -fs -X POST "$URL/v1/classes/b/references" -F "a=@$dir/ref1.jpg" -F "b=@$dir/ref2.jpg" \
         -F "c=@$dir/ref3.jpg" -F "d=@$dir/ref4.jpg" >/dev/null
    curl -fs -o /dev/null -X POST "$URL/v1/classes/b/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$dir/defect.jpg"
    u0=$($PY -c "import sqlite3; print(sqlite3.connect('$T/data/resadd.db').execute('select (page_count - freelist_count) * page_size from pragma_page_count, pragma_freelist_count, pragma_page_size').fetchone()[0])")
    for _ in $(seq "$N"); do
        curl -fs -o /dev/null -X POST "$URL/v1/classes/b/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$dir/defect.jpg"
    done
    kill -TERM $PID; wait $PID || true; PID=
    "$build/resad" score --ref "$dir/ref1.jpg" "$dir/ref2.jpg" "$dir/ref3.jpg" "$dir/ref4.jpg" --image "$dir/defect.jpg" \
        --heatmap "$T/cli.$set" >/dev/null 2>&1
    before=$(cat "$T/cli.$set"/defect.*.png | wc -c)
    $PY - "$T/data/resadd.db" "$set" "$before" "$N" "$u0" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); name = {"sq": "256x256", "hd": "1920x1080"}[sys.argv[2]]
before, n, u0 = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
used = db.execute("select (page_count - freelist_count) * page_size from pragma_page_count, pragma_freelist_count, pragma_page_size").fetchone()[0]
img = db.execute("select avg(length(png)) from heatmaps where kind = 'image'").fetchone()[0]
mapb = db.execute("select avg(length(png)) from heatmaps where kind = 'map'").fetchone()[0]
row = db.execute("select avg(length(timings) + length(class) + length(coalesce(geometry, '')) + 120) from inspections").fetchone()[0]
per_pages = (used - u0) / n - img  # pages grown per inspection, minus the image copy
print(f"{name:10s} {mapb + row:9.0f}  {img:12.0f}  {before:13d}  {(mapb + row) / before:.3f}"
      f"   (database pages grown per inspection, image copy excluded: {per_pages:.0f} B)")
PY
done
