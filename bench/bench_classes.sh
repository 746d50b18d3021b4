#!/usr/bin/env bash
# bench/bench_classes.sh — thousands of product classes on one machine (issue 13),
# not a test.  Registers one 4-shot class "c" through the API (and a few more,
# to time API registration), then copies it in the database to N classes
# (same stored fp16 features and calibration: a copy is what N registrations
# would store, without N × the backbone), restarts resadd and reports, in the
# same run:
#   RSS per registered class: the RSS slope between 1 and N+1 registered
#     classes after a start (none is loaded at start);
#   database bytes per class (file size slope);
#   hot-class inspection p50 before and after registering the N classes (ratio);
#   a cold class's first inspection: p50 over COLD distinct classes, against
#     the hot p50 of the same run; RSS per loaded class (after those loads).
# Latencies are the client's (curl time_total, loopback), p50 of R requests;
# the cold load's own time is resadd's debug log line "loaded in X ms".
# usage: bench/bench_classes.sh [BUILD_DIR] [N] [COLD] [R]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
N=${2:-10000}
COLD=${3:-20}
R=${4:-21}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/resadd-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
$PY "$top/tools/demo-images.py" "$T/img" --refs 6 >/dev/null
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
printf 'workers = 1\nlog_level = debug\n' > "$T/conf"
start() {
    "$build/resadd" --listen 127.0.0.1:$PORT --data-dir "$T/data" --config "$T/conf" 2>>"$T/log" &
    PID=$!
    for _ in $(seq 6000); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.02; done
}
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
stop() { kill -TERM $PID; wait $PID || true; PID=; }
inspect() { # inspect CLASS -> seconds (client side)
    curl -fs -o /dev/null -w '%{time_total}\n' -X POST "$URL/v1/classes/$1/inspections" -H 'Content-Type: image/jpeg' \
         --data-binary "@$T/img/good.jpg"
}
p50() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
hot_p50() { inspect c >/dev/null; inspect c >/dev/null; for _ in $(seq "$R"); do inspect c; done | p50; }
register() { # register NAME IMG... -> seconds
    curl -fs -o /dev/null -X POST "$URL/v1/classes" -H 'Content-Type: application/json' -d "{\"name\":\"$1\"}"
    local n=$1 args=() i=0; shift
    for f in "$@"; do args+=(-F "i$i=@$T/img/$f.jpg"); i=$((i + 1)); done
    curl -fs -o /dev/null -w '%{time_total}\n' -X POST "$URL/v1/classes/$n/references" "${args[@]}"
}

start
register c ref1 ref2 ref3 ref4 >/dev/null
REG=$(for k in 1 2 3; do register "api$k" ref2 ref3 ref4 ref5; done | p50)
HOT0=$(hot_p50)
stop
DB0=$(stat -c %s "$T/data/resadd.db")
start; RSS0=$(rss); stop
t0=$(date +%s.%N)
$PY - "$T/data/resadd.db" "$N" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
db.execute("pragma journal_mode = delete")  # one big insert: no WAL copy of every page (resadd turns WAL back on)
db.execute("pragma synchronous = off")
cols = [r[1] for r in db.execute("pragma table_info(classes)") if r[1] not in ("id", "name")]
rcols = [r[1] for r in db.execute("pragma table_info(refs)") if r[1] not in ("id", "class_id")]
kcols = [r[1] for r in db.execute("pragma table_info(calibrations)") if r[1] != "class_id"]
cid = db.execute("select id from classes where name = 'c'").fetchone()[0]
for k in range(n):
    cur = db.execute(f"insert into classes(name, {','.join(cols)}) select ?, {','.join(cols)} from classes where id = ?",
                     ("c%05d" % k, cid))
    db.execute(f"insert into refs(class_id, {','.join(rcols)}) select ?, {','.join(rcols)} from refs where class_id = ?",
               (cur.lastrowid, cid))
    db.execute(f"insert into calibrations(class_id, {','.join(kcols)}) select ?, {','.join(kcols)} from calibrations "
               "where class_id = ?", (cur.lastrowid, cid))
db.commit()
PY
COPY_S=$(echo "$(date +%s.%N) - $t0" | bc)
DBN=$(stat -c %s "$T/data/resadd.db")
t0=$(date +%s.%N)
start
READY_S=$(echo "$(date +%s.%N) - $t0" | bc)
RSSN=$(rss)
HOT1=$(hot_p50)
RSSH=$(rss)
COLDS=$(for k in $(seq 1 "$COLD"); do inspect "$(printf 'c%05d' $((k * (N / COLD) - 1)))"; done | p50)
RSSC=$(rss)
HOT2=$(hot_p50)
LOADS=$(curl -fs "$URL/metrics" | awk '$1 ~ /^resadd_class_loads_total/ {printf "%s=%s ", $1, $2}')
MEM=$(curl -fs "$URL/metrics" | awk '$1 == "resadd_class_memory_bytes" {print $2}')
NL=$(curl -fs "$URL/metrics" | awk '$1 == "resadd_classes_loaded" {print $2}')
stop
LOADMS=$(grep -o 'loaded in [0-9.]* ms (stored calibration)' "$T/log" | awk '{print $3}' | tail -n "$COLD" | p50)
$PY - "$N" "$COLD" "$R" "$RSS0" "$RSSN" "$RSSH" "$RSSC" "$DB0" "$DBN" "$HOT0" "$HOT1" "$HOT2" "$COLDS" "$REG" \
      "$READY_S" "$COPY_S" "$MEM" "$NL" "$LOADS" "$LOADMS" <<'PY'
import sys
a = sys.argv[1:]
n, cold, r = int(a[0]), int(a[1]), int(a[2])
rss0, rssn, rssh, rssc, db0, dbn = (float(v) for v in a[3:9])
hot0, hot1, hot2, colds, reg, ready, copy = (float(v) for v in a[9:16])
mem, nl, loads, loadms = float(a[16] or 0), a[17], a[18], float(a[19] or "nan")
print(f"classes: 1 -> {n + 1} registered (4-shot, 256² references, default model, workers = 1)")
print(f"RSS at start: {rss0 / 1024:.1f} MiB -> {rssn / 1024:.1f} MiB: {(rssn - rss0) / n:.1f} KiB per registered class "
      f"(none loaded at start; ready {ready:.2f} s after launch)")
print(f"database: {db0 / 2**20:.1f} MiB -> {dbn / 2**20:.0f} MiB: {(dbn - db0) / n / 2**20:.3f} MiB per class "
      f"(copied in {copy:.0f} s)")
print(f"hot class inspection p50 of {r}: {hot0 * 1e3:.1f} ms with 1 class, {hot1 * 1e3:.1f} ms with {n + 1} "
      f"(ratio {hot1 / hot0:.3f}), {hot2 * 1e3:.1f} ms after the cold loads (ratio {hot2 / hot0:.3f})")
print(f"cold class first inspection p50 of {cold}: {colds * 1e3:.1f} ms = hot p50 + {(colds - hot1) * 1e3:.1f} ms "
      f"(ratio {colds / hot1:.2f} to the hot p50); the load itself (server log, p50): {loadms:.1f} ms")
print(f"after {cold} cold loads: {nl} loaded, {mem / 2**20:.1f} MiB of reference sets "
      f"({mem / max(int(nl), 1) / 2**20:.2f} MiB each), RSS +{(rssc - rssh) / cold / 1024:.2f} MiB per loaded class; {loads}")
print(f"API registration of one 4-shot class (p50 of 3): {reg * 1e3:.0f} ms -> {n} classes through the API "
      f"would take {reg * n / 60:.0f} min on this machine (why the bench copies rows)")
PY
