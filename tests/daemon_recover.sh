#!/usr/bin/env bash
# tests/daemon_recover.sh — start fast, recover fully:
#  * async inspections accepted with 202 survive kill -9: their bytes are stored
#    before the 202, and after the restart every one of them completes (none
#    failed, none left queued); one re-run after the restart keeps the
#    request's own ?threshold= or ?sensitivity= (value, threshold_source);
#  * 200 registered classes: /healthz answers within 1 s of the start (3 s in a
#    sanitizer build), /readyz turns ready once every class is loaded, and the
#    classes' stored features are loaded, not recomputed.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
J=(-H 'Content-Type: application/json')
printf 'workers = 1\nthreads_per_worker = 1\nqueue_size = 64\n' > "$T/r.conf"
start_resadd --config "$T/r.conf"
req POST /v1/classes "${J[@]}" -d '{"name":"part"}'
req POST /v1/classes/part/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg"
expect "register" 201
N=24; [ "$SANITIZED" = 1 ] && N=8
# a burst of async inspections (one worker: most are still queued when resadd is killed);
# counted from the last: every third asks ?threshold=0.001 (anomalous), the next
# ?sensitivity=0.5 (the class's threshold, source "sensitivity"), the next nothing
$PY - "$URL" "$I/good.jpg" "$N" > "$T/ids" <<'PY'
import json, sys, urllib.request
url, img, n = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3])
kinds = ["&threshold=0.001", "&sensitivity=0.5", ""]
for k in range(n):
    kind = (n - 1 - k) % 3
    r = urllib.request.Request(url + "/v1/classes/part/inspections?async=1" + kinds[kind], data=img, method="POST",
                               headers={"Content-Type": "image/jpeg", "X-Request-Id": "job-%d" % k})
    with urllib.request.urlopen(r, timeout=30) as f:
        if f.status == 202: print(json.loads(f.read())["id"], kind)
PY
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
NACC=$(wc -l < "$T/ids")
$PY - "$T/data/resadd.db" > "$T/pre" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
queued = [r[0] for r in db.execute("select id from inspections where status = 'queued'")]
print(len(queued))
open(sys.argv[1] + ".queued", "w").write("".join("%d\n" % i for i in queued))
PY
echo "accepted $NACC async inspections (202); $(cat "$T/pre") still queued at kill -9"
check "some were still queued at kill -9" [ "$(cat "$T/pre")" -gt 0 ]
start_resadd --config "$T/r.conf"
for _ in $(seq 600); do
    req GET "/v1/inspections?limit=1000"
    [ "$(jget 'sum(i["status"] == "queued" for i in j["inspections"])')" = 0 ] && break
    sleep 0.1
done
bad=0 rerun_thr=0 rerun_sens=0
want=("('done', True, True, 'request', 0.001, None)" "('done', False, True, 'sensitivity', None, 0.5)"
      "('done', False, True, 'class', None, None)")
while read -r id kind; do
    req GET "/v1/inspections/$id"
    got=$(jget 'j["status"], j["anomalous"], j["external_id"].startswith("job-"), j.get("threshold_source"),
                round(j["threshold"], 6) if j.get("threshold_source") == "request" else None, j.get("sensitivity")')
    [ "$got" = "${want[$kind]}" ] || { bad=$((bad + 1)); echo "inspection $id (kind $kind): $got: $BODY"; }
    if grep -qx "$id" "$T/data/resadd.db.queued"; then
        [ "$kind" = 0 ] && rerun_thr=$((rerun_thr + 1))
        [ "$kind" = 1 ] && rerun_sens=$((rerun_sens + 1))
    fi
done < "$T/ids"
echo "re-run after the restart: $rerun_thr with ?threshold=, $rerun_sens with ?sensitivity="
check "all $NACC accepted async inspections done after the restart, each with its own threshold" [ "$bad" -eq 0 -a "$NACC" -eq "$N" ]
check "a ?threshold= inspection was among those re-run" [ "$rerun_thr" -gt 0 ]
stop_resadd

# ---- 200 classes: liveness at once, readiness when loaded ----
$PY - "$T/data/resadd.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cid = db.execute("select id from classes where name = 'part'").fetchone()[0]
refs = db.execute("select sha256, content_type, size, width, height, image, model_id, feats, created_at from refs where class_id = ? order by id limit 2", (cid,)).fetchall()
for k in range(199):
    cur = db.execute("insert into classes(name, description, created_at, updated_at) values (?, '', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')", ("c%03d" % k,))
    for r in refs: db.execute("insert into refs(class_id, sha256, content_type, size, width, height, image, model_id, feats, created_at) values (?,?,?,?,?,?,?,?,?,?)", (cur.lastrowid,) + tuple(r))
db.commit()
PY
LIVE_MAX=1; [ "$SANITIZED" = 1 ] && LIVE_MAX=3
PORT=$(free_port); URL="http://127.0.0.1:$PORT"
t0=$(date +%s.%N)
"$RESADD" --listen "127.0.0.1:$PORT" --data-dir "$T/data" 2>>"$T/resadd.log" & PID=$!
until curl -fs "$URL/healthz" >/dev/null 2>&1; do sleep 0.01; done
t_live=$(echo "$(date +%s.%N) - $t0" | bc)
req GET /readyz
early="$CODE, classes_loading $(jget 'j["classes_loading"]')"
check "200 classes: /healthz within $LIVE_MAX s of the start ($t_live s)" $PY -c "import sys; sys.exit(0 if $t_live < $LIVE_MAX else 1)"
req GET /v1/classes
check "/v1/classes answers while loading (200 classes listed)" [ "$(jget 'len(j["classes"])')" = 200 ]
if [ "$SANITIZED" = 1 ]; then   # loading 200 reference sets under ASan takes minutes: stop early
    echo "200 classes: /healthz after $t_live s (readyz then: $early); sanitizer build: not waiting for all to load"
else
    until curl -fs "$URL/readyz" >/dev/null 2>&1; do sleep 0.05; done
    t_ready=$(echo "$(date +%s.%N) - $t0" | bc)
    echo "200 classes: /healthz after $t_live s (readyz then: $early), /readyz ready after $t_ready s"
    req GET /v1/classes
    check "all 200 classes ready" [ "$(jget 'sum(c["ready"] for c in j["classes"]), len(j["classes"])')" = "(200, 200)" ]
    req POST /v1/classes/c123/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
    expect "a copied class inspects" 200
fi
check "stored features loaded, not recomputed" bash -c "! grep -q recomputing '$T/resadd.log'"
t0=$(date +%s.%N)
stop_resadd
echo "stopped in $(echo "$(date +%s.%N) - $t0" | bc) s"
done_test
