#!/usr/bin/env bash
# bench/bench_daemon.sh — latency and throughput of resadd's synchronous
# inspections over loopback (not a test): starts resadd from a build tree on a
# free 127.0.0.1 port with a temp data dir, registers a class from 4 real
# photographs, then runs 1, 2 and 8 concurrent clients, each posting
# N (default 40) images, and prints p50/p99 latency and inspections/s.
# usage: bench/bench_daemon.sh [BUILD_DIR] [N]   (extra resadd args via RESADD_ARGS)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
N=${2:-40}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/resadd-bench.XXXXXX)
trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
$PY "$top/tools/demo-images.py" "$T/img" >/dev/null
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2086
"$build/resadd" --listen 127.0.0.1:$PORT --data-dir "$T/data" ${RESADD_ARGS:-} 2>"$T/log" &
PID=$!
for _ in $(seq 600); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done  # ready: model loaded
grep -E "OpenBLAS|worker" "$T/log" | sed 's/^<[0-9]>[a-z]*: /resadd: /'
curl -fs -X POST "$URL/v1/classes" -H 'Content-Type: application/json' -d '{"name":"bench"}' >/dev/null
curl -fs -X POST "$URL/v1/classes/bench/references" -F "a=@$T/img/ref1.jpg" -F "b=@$T/img/ref2.jpg" \
     -F "c=@$T/img/ref3.jpg" -F "d=@$T/img/ref4.jpg" >/dev/null
echo "image: $(identify -format '%wx%h' "$T/img/good.jpg" 2>/dev/null || echo 256x256) JPEG, 4 references, $(nproc) cores"
$PY - "$URL" "$T/img/good.jpg" "$N" <<'PY'
import json, sys, threading, time, urllib.request
url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = open(path, "rb").read()
def post():
    r = urllib.request.Request(url + "/v1/classes/bench/inspections", data=body, method="POST")
    r.add_header("Content-Type", "image/jpeg")
    t = time.perf_counter()
    with urllib.request.urlopen(r, timeout=120) as f:
        j = json.loads(f.read())
    return (time.perf_counter() - t) * 1e3, j["timings_ms"]["inference"]
for _ in range(5): post()  # warm-up
print("clients  requests  p50_ms  p99_ms  server_inference_p50_ms  throughput_per_s")
for c in (1, 2, 8):
    lat, inf, lock = [], [], threading.Lock()
    def client():
        for _ in range(n):
            l, i = post()
            with lock: lat.append(l); inf.append(i)
    ts = [threading.Thread(target=client) for _ in range(c)]
    t0 = time.perf_counter(); [t.start() for t in ts]; [t.join() for t in ts]; dt = time.perf_counter() - t0
    lat.sort(); inf.sort()
    q = lambda a, p: a[min(len(a) - 1, int(p * (len(a) - 1) + 0.5))]
    print(f"{c:7d}  {len(lat):8d}  {q(lat, .5):6.1f}  {q(lat, .99):6.1f}  {q(inf, .5):23.1f}  {len(lat) / dt:16.1f}")
PY
kill -TERM $PID; wait $PID
