#!/usr/bin/env bash
# bench/bench_classes.sh — memory and load time per registered class (issue 13),
# not a test: registers one 4-shot class through the API, copies it in the
# database to N classes (same stored features), restarts resadd and reports
# RSS per class (the RSS slope between 1 and N+1 classes) and the load time
# per class at start (stored features -> pool + leave-one-out calibration),
# against the same run's reference: one inspection's latency.
# usage: bench/bench_classes.sh [BUILD_DIR] [N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
N=${2:-200}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/resadd-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
$PY "$top/tools/demo-images.py" "$T/img" >/dev/null
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
start() {
    local t0; t0=$(date +%s.%N)
    "$build/resadd" --listen 127.0.0.1:$PORT --data-dir "$T/data" 2>>"$T/log" &
    PID=$!
    for _ in $(seq 6000); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.02; done
    READY_S=$(echo "$(date +%s.%N) - $t0" | bc)
    RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
}
stop() { kill -TERM $PID; wait $PID || true; PID=; }
start
curl -fs -X POST "$URL/v1/classes" -H 'Content-Type: application/json' -d '{"name":"c"}' >/dev/null
curl -fs -X POST "$URL/v1/classes/c/references" -F "a=@$T/img/ref1.jpg" -F "b=@$T/img/ref2.jpg" \
     -F "c=@$T/img/ref3.jpg" -F "d=@$T/img/ref4.jpg" >/dev/null
for _ in 1 2 3; do curl -fs -o /dev/null -X POST "$URL/v1/classes/c/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$T/img/good.jpg"; done
INSP_MS=$(curl -fs -X POST "$URL/v1/classes/c/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$T/img/good.jpg" |
          $PY -c 'import json,sys; print(json.load(sys.stdin)["timings_ms"]["inference"])')
stop
start; RSS1=$RSS_KB; READY1=$READY_S; stop
$PY - "$T/data/resadd.db" "$N" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
src = db.execute("select * from classes where name = 'c'").fetchone()
cols = [r[1] for r in db.execute("pragma table_info(classes)")]
rcols = [r[1] for r in db.execute("pragma table_info(refs)") if r[1] not in ("id", "class_id")]
cid = src[0]
for k in range(n):
    row = dict(zip(cols, src)); row.pop("id"); row["name"] = "c%05d" % k
    cur = db.execute(f"insert into classes({','.join(row)}) values ({','.join('?' * len(row))})", tuple(row.values()))
    db.execute(f"insert into refs(class_id, {','.join(rcols)}) select ?, {','.join(rcols)} from refs where class_id = ?",
               (cur.lastrowid, cid))
db.commit()
PY
start; RSSN=$RSS_KB; READYN=$READY_S
DBB=$(stat -c %s "$T/data/resadd.db")
stop
$PY - "$RSS1" "$RSSN" "$READY1" "$READYN" "$N" "$INSP_MS" "$DBB" <<'PY'
import sys
r1, rn, t1, tn, n, insp, dbb = (float(v) for v in sys.argv[1:])
per_kib = (rn - r1) / n
load_ms = (tn - t1) * 1e3 / n
print(f"classes: 1 -> {n + 1:.0f} (4-shot, 256² references, default model)")
print(f"RSS: {r1 / 1024:.1f} MiB -> {rn / 1024:.1f} MiB: {per_kib / 1024:.2f} MiB per class")
print(f"database: {dbb / 2**20:.1f} MiB, {dbb / (n + 1) / 2**20:.2f} MiB per class")
print(f"load at start: {load_ms:.1f} ms per class (stored features -> pool + calibration); "
      f"one inspection (inference) {insp:.1f} ms: ratio {load_ms / insp:.2f}")
PY
