#!/usr/bin/env bash
# tests/daemon_stress.sh — concurrency and crash safety of resadd:
#  * 16 clients × 50 requests (inspections, reads, a registration of another
#    class at the same time): no error, and the DB agrees with every reply;
#  * a full queue answers 503 with Retry-After and writes nothing.
# (kill -9 crash safety: tests/daemon_crash.sh)
. "$(dirname "$0")/daemon_lib.sh"
[ -f /usr/share/games/openarena/baseoa/pak4-textures.pk3 ] || exit 77
$PY "$top_srcdir/tools/demo-images.py" "$T/img" --refs 16 >/dev/null || exit 1
I=$T/img
start_resadd
J=(-H 'Content-Type: application/json')
for c in alpha beta; do
    req POST /v1/classes "${J[@]}" -d "{\"name\":\"$c\"}"
done
req POST /v1/classes/alpha/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "register alpha" 201

NREQ=50; [ "$SANITIZED" = 1 ] && NREQ=10   # ASan+UBSan build: fewer requests per client
$PY - "$URL" "$I" "$NREQ" > "$T/conc.out" <<'PY'
import json, sys, threading, urllib.request, urllib.error
url, img, nreq = sys.argv[1], sys.argv[2], int(sys.argv[3])
good, bad = open(img + "/good.jpg", "rb").read(), open(img + "/defect.jpg", "rb").read()
errors, ids, lock = [], [], threading.Lock()
def call(method, path, body=None, ctype=None):
    r = urllib.request.Request(url + path, data=body, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(r, timeout=60) as f: return f.status, f.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
def client(k):
    for i in range(nreq):
        if i % 10 == k % 10:
            st, b = call("POST", "/v1/classes/alpha/inspections", bad if i % 16 == 0 else good, "image/jpeg")
            if st == 200:
                with lock: ids.append((json.loads(b)["id"], json.loads(b)["anomalous"]))
        elif i % 3 == 0: st, b = call("GET", "/v1/inspections?limit=5")
        elif i % 3 == 1: st, b = call("GET", "/v1/classes/alpha")
        else: st, b = call("GET", "/metrics")
        if st != 200:
            with lock: errors.append((st, b[:200]))
def register():
    parts = []
    for n in (5, 6, 7):
        parts.append(b"--XyZ\r\nContent-Disposition: form-data; name=\"f%d\"; filename=\"r%d.jpg\"\r\n"
                     b"Content-Type: image/jpeg\r\n\r\n" % (n, n) + open(img + "/ref%d.jpg" % n, "rb").read() + b"\r\n")
    st, b = call("POST", "/v1/classes/beta/references", b"".join(parts) + b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ")
    if st != 201:
        with lock: errors.append((st, b[:200]))
ts = [threading.Thread(target=client, args=(k,)) for k in range(16)] + [threading.Thread(target=register)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"errors": [[e[0], e[1].decode("utf-8", "replace")] for e in errors], "ids": ids}))
PY
check "16 clients x $NREQ requests without error" $PY -c "import json; d=json.load(open('$T/conc.out')); assert not d['errors'], d['errors'][:3]"
NOK=$($PY -c "import json; print(len(json.load(open('$T/conc.out'))['ids']))")
req GET /v1/stats?class=alpha
check "DB has exactly the $NOK acknowledged inspections, all done" [ "$(jget 'j["inspections"], j["done"]')" = "($NOK, $NOK)" ]
$PY -c "import json; [print(i, a) for i, a in json.load(open('$T/conc.out'))['ids']]" > "$T/ids"
bad=0
while read -r id an; do
    req GET "/v1/inspections/$id"
    [ "$(jget 'j["status"], j["anomalous"]')" = "('done', $an)" ] || bad=$((bad + 1))
done < "$T/ids"
check "every reply matches its stored row" [ "$bad" -eq 0 ]
req GET /v1/classes/beta
check "concurrent registration of another class" [ "$(jget 'j["references"], j["ready"]')" = "(3, True)" ]
stop_resadd

# ---- queue full → 503 + Retry-After, nothing written for rejected requests ----
printf 'workers = 1\nqueue_size = 1\n' > "$T/q.conf"
start_resadd --config "$T/q.conf"
$PY - "$URL" "$I" > "$T/q.out" <<'PY'
import json, sys, threading, urllib.request, urllib.error
url, img = sys.argv[1], sys.argv[2]
body = open(img + "/good.jpg", "rb").read()
res, lock = [], threading.Lock()
def one():
    r = urllib.request.Request(url + "/v1/classes/alpha/inspections?async=1", data=body, method="POST")
    r.add_header("Content-Type", "image/jpeg")
    try:
        with urllib.request.urlopen(r, timeout=60) as f: out = (f.status, json.loads(f.read()), None)
    except urllib.error.HTTPError as e: out = (e.code, json.loads(e.read()), e.headers.get("Retry-After"))
    with lock: res.append(out)
ts = [threading.Thread(target=one) for _ in range(24)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
PY
check "some accepted (202), some refused (503 busy + Retry-After), nothing else" $PY -c "
import json; r = json.load(open('$T/q.out'))
acc = [x for x in r if x[0] == 202]; busy = [x for x in r if x[0] == 503]
assert acc and busy and len(acc) + len(busy) == len(r), [x[0] for x in r]
assert all(x[1]['error']['code'] == 'busy' and x[2] for x in busy)"
NACC=$($PY -c "import json; print(sum(x[0] == 202 for x in json.load(open('$T/q.out'))))")
for _ in $(seq 600); do req GET /v1/stats; [ "$(jget 'j["done"]')" = "$((NOK + NACC))" ] && break; sleep 0.1; done
check "every accepted async inspection done, no rows for refused ones" [ "$(jget 'j["inspections"], j["done"]')" = "($((NOK + NACC)), $((NOK + NACC)))" ]
stop_resadd

done_test
