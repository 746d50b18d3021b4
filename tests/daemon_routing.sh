#!/usr/bin/env bash
# tests/daemon_routing.sh — the route table under load: 100 concurrent clients
# (keep-alive connections) send a mix of every kind of route — good, unknown
# (404), wrong method (405), bad name/id (400), reads, inspections — for
# RD_ROUTING_SECONDS (default 20; the issue's 3-minute run: RD_ROUTING_SECONDS=180).
# Every reply must be the one its request asks for: 0 misrouted, 0 connection
# errors.  (The old if-chain with strtok misrouted under such load.)
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
SECS=${RD_ROUTING_SECONDS:-20}
printf 'max_connections = 512\nmax_connections_per_client = 256\nqueue_size = 256\n' > "$T/rt.conf"
start_resadd --config "$T/rt.conf"
req POST /v1/classes -H 'Content-Type: application/json' -d '{"name":"alpha"}'
req POST /v1/classes/alpha/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg"
expect "register" 201
$PY - "$PORT" "$I/good.jpg" "$SECS" > "$T/rt.out" <<'PY'
import http.client, json, sys, threading, time
port, img, secs = int(sys.argv[1]), open(sys.argv[2], "rb").read(), float(sys.argv[3])
def has(k, v): return lambda j: j.get(k) == v
def err(code): return lambda j: j.get("error", {}).get("code") == code
mix = [  # method, path, body, content type, accepted statuses, check of the JSON
    ("GET", "/healthz", None, None, {200}, has("status", "ok")),
    ("GET", "/v1/classes/alpha", None, None, {200}, has("name", "alpha")),
    ("GET", "/v1/classes/alpha/references", None, None, {200}, has("class", "alpha")),
    ("GET", "/v1/classes/nope", None, None, {404}, err("not_found")),
    ("POST", "/v1/classes/abc", None, None, {405}, err("method_not_allowed")),
    ("POST", "/v1/model", None, None, {405}, err("method_not_allowed")),
    ("GET", "/v1/model", None, None, {200}, lambda j: "arch" in j),
    ("GET", "/v1/inspections/abc", None, None, {400}, err("bad_id")),
    ("GET", "/v1/classes/BAD", None, None, {400}, err("bad_name")),
    ("GET", "/v1/inspections?limit=1", None, None, {200}, lambda j: "inspections" in j),
    ("PUT", "/v1/classes", None, None, {405}, err("method_not_allowed")),
    ("GET", "/v2/x", None, None, {404}, err("not_found")),
    ("GET", "/v1/stats?class=alpha", None, None, {200}, has("class", "alpha")),
]
insp = ("POST", "/v1/classes/alpha/inspections", img, "image/jpeg", {200, 503, 504},
        lambda j: j.get("class") == "alpha" or j.get("error", {}).get("code") in ("busy", "timeout"))
lock = threading.Lock()
stats = {"requests": 0, "misrouted": 0, "conn_errors": 0, "inspections": 0, "examples": []}
stop = time.time() + secs
def client(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = bad = cerr = ni = 0
    i = k
    while time.time() < stop:
        i += 1
        m, p, body, ct, ok, chk = insp if i % 25 == 0 else mix[(i * 7 + k) % len(mix)]
        try:
            c.request(m, p, body=body, headers={"Content-Type": ct} if ct else {})
            r = c.getresponse(); data = r.read()
            j = json.loads(data) if data else {}
            good = r.status in ok and chk(j)
            if r.getheader("Connection", "").lower() == "close": c.close()
        except Exception as e:
            cerr += 1; c.close(); good = True; data = repr(e).encode()
        n += 1; ni += m == "POST" and p.endswith("inspections")
        if not good:
            bad += 1
            with lock:
                if len(stats["examples"]) < 5: stats["examples"].append([m, p, r.status, data[:150].decode("utf-8", "replace")])
    with lock:
        stats["requests"] += n; stats["misrouted"] += bad; stats["conn_errors"] += cerr; stats["inspections"] += ni
t0 = time.time()
ts = [threading.Thread(target=client, args=(k,)) for k in range(100)]
[t.start() for t in ts]; [t.join() for t in ts]
stats["seconds"] = round(time.time() - t0, 1); stats["clients"] = 100
stats["requests_per_s"] = round(stats["requests"] / stats["seconds"], 1)
print(json.dumps(stats))
PY
cat "$T/rt.out"
check "100 clients for $SECS s: 0 misrouted, 0 connection errors" $PY -c "
import json; d = json.load(open('$T/rt.out')); assert d['requests'] > 100 and d['misrouted'] == 0 and d['conn_errors'] == 0, d"
req GET /healthz
expect "still serving" 200
stop_resadd
done_test
