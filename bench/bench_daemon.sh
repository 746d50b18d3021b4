#!/usr/bin/env bash
# bench/bench_daemon.sh — latency and throughput of resadd's synchronous
# inspections over loopback (not a test): starts resadd from a build tree on a
# free 127.0.0.1 port with a temp data dir, registers a class from 4 real
# photographs, then runs 1, 8 and 64 concurrent clients, each on one
# keep-alive connection posting max(2, N / clients) images (503 busy counted
# apart), and prints p50/p99 latency, the daemon's CPU time per inspection and
# inspections/s against the same run's reference: PyTorch's bare MobileNetV2 feature
# pass (torchvision, random weights, 1x3x224x224, batch 1, 2 threads, no_grad;
# the fastest of its OpenBLAS core types x OpenMP wait policies, each printed)
# — issue 13's targets: 8 clients >= 3x its rate, 1-client p50 <= 0.4x its time.
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
# the reference at its fastest: each OpenBLAS core type it can use (its convs
# mostly run its own kernels) x OpenMP wait policy (active spinning is fastest
# on an idle machine, passive when the cores are shared); the minimum p50 is used
torch_pass() {
  OPENBLAS_CORETYPE=$1 OMP_WAIT_POLICY=$2 timeout 90 $PY - <<'PY' 2>/dev/null || echo 0
import time, torch, torchvision
torch.set_num_threads(2)
m = torchvision.models.mobilenet_v2(weights=None).features.eval()
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    for _ in range(5): m(x)
    ts = []
    for _ in range(30):
        t = time.perf_counter(); m(x); ts.append((time.perf_counter() - t) * 1e3)
ts.sort(); print(f"{ts[len(ts) // 2]:.2f}")
PY
}
TORCH_MS=0
for ct in default Haswell SkylakeX; do
  for wp in ACTIVE PASSIVE; do
    ms=$(torch_pass "$([ $ct = default ] || echo $ct)" $wp)
    echo "  PyTorch reference, OPENBLAS_CORETYPE=$ct OMP_WAIT_POLICY=$wp: ${ms} ms p50 (0 = failed or over 90 s)"
    if [ "$(echo "$ms > 0 && ($TORCH_MS == 0 || $ms < $TORCH_MS)" | bc)" = 1 ]; then TORCH_MS=$ms; fi
  done
done
echo "reference: PyTorch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null) bare MobileNetV2 features, batch 1, 2 threads, fastest of the above: ${TORCH_MS} ms p50; load $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - "$URL" "$T/img/good.jpg" "$N" "$TORCH_MS" "$PID" <<'PY'
# each client keeps one HTTP/1.1 connection open (as an MES does), reopened after an error
import http.client, json, os, sys, threading, time, urllib.parse
url, path, n, torch_ms, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
host = urllib.parse.urlsplit(url)
body = open(path, "rb").read()
local = threading.local()
def cpu_ms():  # the daemon's user + system CPU time
    f = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1e3 / os.sysconf("SC_CLK_TCK")
def post():
    t = time.perf_counter()
    try:
        if getattr(local, "c", None) is None:
            local.c = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        local.c.request("POST", "/v1/classes/bench/inspections", body, {"Content-Type": "image/jpeg"})
        r = local.c.getresponse()
        data = r.read()
        if r.getheader("Connection", "").lower() == "close":
            local.c.close(); local.c = None
        if r.status == 503:
            return None, None
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        j = json.loads(data)
    except (ConnectionError, http.client.HTTPException, OSError):  # refused/reset at the connection limit: busy
        if getattr(local, "c", None) is not None: local.c.close()
        local.c = None
        return None, None
    return (time.perf_counter() - t) * 1e3, j["timings_ms"]["inference"]
for _ in range(5): post()  # warm-up
print("clients  requests  busy_503/reset  p50_ms  p99_ms  server_inference_p50_ms  daemon_cpu_ms_per_req  throughput_per_s  vs_torch_rate  p50_vs_torch")
for c in (1, 8, 64):
    lat, inf, busy, lock = [], [], [0], threading.Lock()
    per = max(2, n // c)
    def client():
        for _ in range(per):
            l, i = post()
            with lock:
                if l is None: busy[0] += 1
                else: lat.append(l); inf.append(i)
    ts = [threading.Thread(target=client) for _ in range(c)]
    c0 = cpu_ms(); t0 = time.perf_counter(); [t.start() for t in ts]; [t.join() for t in ts]; dt = time.perf_counter() - t0
    cpu = (cpu_ms() - c0) / max(1, len(lat))
    lat.sort(); inf.sort()
    q = lambda a, p: a[min(len(a) - 1, int(p * (len(a) - 1) + 0.5))]
    rate = len(lat) / dt
    vr = rate * torch_ms / 1e3 if torch_ms > 0 else float("nan")
    vp = q(lat, .5) / torch_ms if torch_ms > 0 else float("nan")
    print(f"{c:7d}  {len(lat):8d}  {busy[0]:8d}  {q(lat, .5):6.1f}  {q(lat, .99):6.1f}  {q(inf, .5):23.1f}  {cpu:21.1f}  {rate:16.1f}"
          f"  {vr:13.2f}  {vp:12.2f}")
PY
kill -TERM $PID; wait $PID || true   # the daemon's exit status on TERM is not the bench's
