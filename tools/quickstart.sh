#!/usr/bin/env bash
# tools/quickstart.sh — the README's first command: installs the build and run
# dependencies only (tools/deps.sh build run: no test oracles, no npm), builds
# resadd (the default backbone is committed in models/: no network), starts
# the daemon on 127.0.0.1:${PORT:-8080}, registers a product class from four
# real photographs, inspects a good and a defective part, and shows where the
# heatmaps are.  The daemon keeps running at the end (its PID is printed) so
# you can try the curl lines yourself; `kill <PID>` stops it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
PORT=${PORT:-8080}
bash tools/deps.sh build run
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure >/dev/null
make -j2 >/dev/null
cd "$top"

demo=$(mktemp -d /tmp/resadd-demo.XXXXXX)
/usr/bin/python3 tools/demo-images.py "$demo/img" >/dev/null
echo "== real photographs (steel diamond-plate crops, Debian openarena-081-textures): $demo/img"

./build/resadd --listen 127.0.0.1:$PORT --data-dir "$demo/data" 2>"$demo/resadd.log" &
pid=$!
# /healthz answers at once; /readyz once the model and every class are loaded.
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$demo/resadd.log"; exit 1; }
echo "== resadd running (pid $pid), log: $demo/resadd.log"
set -x
curl -s -X POST "http://127.0.0.1:$PORT/v1/classes" -H 'Content-Type: application/json' \
     -d '{"name": "steel-plate", "description": "diamond-plate steel floor panel, camera 3"}'
echo
curl -s -X POST "http://127.0.0.1:$PORT/v1/classes/steel-plate/references" \
     -F "img=@$demo/img/ref1.jpg" -F "img=@$demo/img/ref2.jpg" \
     -F "img=@$demo/img/ref3.jpg" -F "img=@$demo/img/ref4.jpg"
echo
curl -s -X POST "http://127.0.0.1:$PORT/v1/classes/steel-plate/inspections" \
     -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-0001' --data-binary "@$demo/img/good.jpg"
echo
curl -s -X POST "http://127.0.0.1:$PORT/v1/classes/steel-plate/inspections" \
     -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-0002' --data-binary "@$demo/img/defect.jpg"
echo
set +x
id=$(curl -s "http://127.0.0.1:$PORT/v1/inspections?limit=1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["inspections"][0]["id"])')
curl -s -o "$demo/defect-heatmap.png" "http://127.0.0.1:$PORT/v1/inspections/$id/heatmap.png"
echo "== heatmap of the defective part: http://127.0.0.1:$PORT/v1/inspections/$id/heatmap.png (saved to $demo/defect-heatmap.png)"
echo "== resadd keeps running: pid $pid (stop it with: kill $pid)"
