#!/usr/bin/env bash
# tests/daemon_integrator.sh — what an MES integrator relies on, over real HTTP:
#  - verdict fields: confidence exactly 0.5 when ?threshold= equals the score,
#    higher for a lower threshold; anomalous_area in [0, 1]; the largest region's
#    box matches the drawn defect's box; ?sensitivity= recorded; bad values 400;
#  - idempotency: a repeated X-Request-Id returns the original (200, same id,
#    Idempotent-Replay: true) and runs nothing; header and query differing is a
#    400; GET /v1/inspections?class=C&external_id=X finds it; the id is echoed;
#  - lossless polling: a reader following after_id/next while async inspections
#    are posted concurrently sees every finished row exactly once, ascending;
#  - Server-Sent Events: a client on /v1/events?class= receives every inspection
#    (and class changes), heartbeats, outlives the request deadline (3 s here),
#    and resumes with Last-Event-ID without loss or repeats;
#  - webhooks: a loopback receiver (tests/webhook_receiver.py) answers 500 to the
#    first delivery; the daemon is restarted while the retry is pending and the
#    same delivery arrives after the restart, signed, with the inspection;
#  - /metrics: stage latency and per-class score histograms, build/model info,
#    webhook counters; promtool check metrics when Debian's prometheus is there.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
# the webhook receiver is on loopback: allowed only with webhook_allow_private
printf 'request_deadline_s = 3\nauth = off\nwebhook_backoff_ms = 4000\nwebhook_allow_private = on\n' > "$T/resadd.conf"
start_resadd --workers 2 --config "$T/resadd.conf"

req POST /v1/classes -H 'Content-Type: application/json' -d '{"name":"plate"}'
expect "create class" 201
req POST /v1/classes/plate/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "references" 201

# ---- verdict fields ----
req POST /v1/classes/plate/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
expect "inspect defect" 200
SCORE=$(jget 'repr(j["score"])')
check "defect: fields present and bounded" [ "$(jget '0.5 < j["confidence"] < 1, 0 < j["anomalous_area"] <= 1, j["regions_total"] >= 1, len(j["regions"]) == min(j["regions_total"], 32), j["threshold_source"], j["seq"] >= 1')" = "(True, True, True, True, 'class', True)" ]
check "largest region matches the drawn defect's box" $PY -c "
import json
j = json.load(open('$T/body')); box = json.load(open('$I/defect.json'))['defect_box']
r = j['regions'][0]; x, y, w, h = r['bbox']
areas = [g['area'] for g in j['regions']]
assert areas == sorted(areas, reverse=True), areas
x0, y0, x1, y1 = box
ix = max(0, min(x + w, x1) - max(x, x0)); iy = max(0, min(y + h, y1) - max(y, y0))
inter = ix * iy; union = w * h + (x1 - x0) * (y1 - y0) - inter
px, py = r['peak_at']
print('region', r['bbox'], 'defect', box, 'IoU %.2f' % (inter / union))
assert inter / union >= 0.3, 'IoU too small'
assert x <= px < x + w and y <= py < y + h and r['peak'] >= j['threshold'] and r['area'] <= w * h
"
req POST "/v1/classes/plate/inspections?threshold=$SCORE" -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
expect "inspect with ?threshold= = the score" 200
check "confidence exactly 0.5 at the threshold, recorded" [ "$(jget 'j["confidence"], j["threshold"] == j["score"], j["threshold_source"], j["anomalous"]')" = "(0.5, True, 'request', True)" ]
TID=$(jget 'j["id"]')
req GET "/v1/inspections/$TID"
check "the override is stored with the inspection" [ "$(jget 'j["confidence"], j["threshold_source"]')" = "(0.5, 'request')" ]
req POST "/v1/classes/plate/inspections?sensitivity=1" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "inspect with ?sensitivity=1" 200
S1=$(jget 'j["threshold"]')
req POST "/v1/classes/plate/inspections?sensitivity=0.5" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
check "sensitivity 0.5 = the class threshold, 1 = half of it, recorded" [ "$(jget "abs(j['threshold'] / $S1 - 2) < 1e-4, j['threshold_source'], j['sensitivity']")" = "(True, 'sensitivity', 0.5)" ]
req POST "/v1/classes/plate/inspections?sensitivity=2" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "sensitivity out of range" 400 bad_request
req POST "/v1/classes/plate/inspections?threshold=abc" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "threshold not a number" 400 bad_request
req POST "/v1/classes/plate/inspections?threshold=1&sensitivity=0.5" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "threshold and sensitivity together" 400 bad_request

# ---- idempotency ----
req POST /v1/classes/plate/inspections -H 'Content-Type: image/jpeg' -H 'X-Request-Id: mes-42' --data-binary "@$I/good.jpg" -D "$T/h1"
expect "first request" 200
ID1=$(jget 'j["id"]')
check "request id echoed" grep -qi '^X-Request-Id: mes-42' "$T/h1"
check "no replay header the first time" sh -c "! grep -qi '^Idempotent-Replay' '$T/h1'"
req POST /v1/classes/plate/inspections -H 'Content-Type: image/jpeg' -H 'X-Request-Id: mes-42' --data-binary "@$I/defect.jpg" -D "$T/h2"
expect "replayed request" 200
check "replay returns the original" [ "$(jget 'j["id"], j["external_id"], j["anomalous"]')" = "($ID1, 'mes-42', False)" ]
check "Idempotent-Replay: true" grep -qi '^Idempotent-Replay: true' "$T/h2"
req POST "/v1/classes/plate/inspections?async=1&external_id=mes-42" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "replay via ?external_id= (async too)" 200
check "same id" [ "$(jget 'j["id"]')" = "$ID1" ]
req POST "/v1/classes/plate/inspections?external_id=other" -H 'Content-Type: image/jpeg' -H 'X-Request-Id: mes-42' --data-binary "@$I/good.jpg"
expect "header and query differ" 400 bad_request
req GET "/v1/inspections?class=plate&external_id=mes-42"
check "look-up by external id" [ "$(jget '[i["id"] for i in j["inspections"]]')" = "[$ID1]" ]
req GET "/v1/inspections?external_id=mes-42"
expect "external_id without class" 400 bad_request

# ---- lossless polling ----
req GET "/v1/inspections?after_id=1&before_id=5"
expect "after_id with before_id" 400 bad_request
N=24
[ "$SANITIZED" = 1 ] && N=12
check "concurrent catch-up sees every row exactly once" $PY - "$URL" "$I/good.jpg" "$N" <<'PY'
import json, sys, threading, time, urllib.request
url, img, n = sys.argv[1], open(sys.argv[2], 'rb').read(), int(sys.argv[3])
def get(p):
    with urllib.request.urlopen(url + p, timeout=30) as r: return json.load(r)
# the cursor starts where the reader is now
cur = get('/v1/inspections?after_id=0&limit=1000')['next']
posted, seen = [], []
def post():
    for _ in range(n):
        rq = urllib.request.Request(url + '/v1/classes/plate/inspections?async=1', data=img,
                                    headers={'Content-Type': 'image/jpeg'})
        with urllib.request.urlopen(rq, timeout=30) as r: posted.append(json.load(r)['id'])
ts = [threading.Thread(target=post) for _ in range(2)]
for t in ts: t.start()
deadline = time.time() + 120
while time.time() < deadline:
    p = get('/v1/inspections?class=plate&after_id=%d&limit=3' % cur)
    seqs = [i['seq'] for i in p['inspections']]
    assert seqs == sorted(seqs) and all(s > cur for s in seqs), (cur, seqs)
    assert all(i['status'] != 'queued' for i in p['inspections'])
    seen += [i['id'] for i in p['inspections']]
    cur = p['next']
    if not p['has_more']:
        if not any(t.is_alive() for t in ts) and set(posted) <= set(seen): break
        time.sleep(0.02)
dup = len(seen) - len(set(seen))
print('posted %d, seen %d, duplicates %d' % (len(posted), len(seen), dup))
assert dup == 0 and set(seen) == set(posted) and len(posted) == 2 * n
PY

# ---- Server-Sent Events ----
check "SSE: every inspection, heartbeats past the deadline, Last-Event-ID resume" $PY - "$URL" "$I/good.jpg" "$T/last_event" <<'PY'
import http.client, json, sys, time, urllib.parse, urllib.request
url, img = sys.argv[1], open(sys.argv[2], 'rb').read()
host = urllib.parse.urlparse(url)
def post(path, data, ctype):
    rq = urllib.request.Request(url + path, data=data, headers={'Content-Type': ctype})
    with urllib.request.urlopen(rq, timeout=30) as r: return json.load(r)
class Stream:
    def __init__(self, last=None):
        self.c = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        h = {'Last-Event-ID': str(last)} if last is not None else {}
        self.c.request('GET', '/v1/events?class=plate&heartbeat_s=1', headers=h)
        self.r = self.c.getresponse()
        assert self.r.status == 200 and self.r.getheader('Content-Type') == 'text/event-stream'
        self.hb = 0
    def next(self):  # the next event as (id, type, data)
        ev = {}
        while True:
            line = self.r.fp.readline().decode()
            assert line, 'stream ended'
            line = line.rstrip('\n')
            if line == '':
                if 'data' in ev: return int(ev['id']), ev['event'], json.loads(ev['data'])
                continue
            if line.startswith(':'):
                self.hb += 'heartbeat' in line
                continue
            k, _, v = line.partition(': ')
            ev[k] = v
s = Stream()
time.sleep(0.3)
ids = [post('/v1/classes/plate/inspections', img, 'image/jpeg')['id'] for _ in range(3)]
post('/v1/classes', json.dumps({'name': 'other'}).encode(), 'application/json')   # another class: filtered out
got = [s.next() for _ in range(3)]
assert [g[2]['id'] for g in got] == ids and all(g[1] == 'inspection' and g[2]['status'] == 'done' for g in got), got
assert all('confidence' in g[2] for g in got)
t0 = time.time()
req = urllib.request.Request(url + '/v1/classes/plate', data=json.dumps({'description': 'x'}).encode(),
                             headers={'Content-Type': 'application/json'}, method='PATCH')
time.sleep(4)  # past the 3 s request deadline: heartbeats keep the stream
urllib.request.urlopen(req, timeout=30).read()
cid, ctype, cdata = s.next()
assert ctype == 'class' and cdata == {'class': 'plate', 'action': 'updated'}, (ctype, cdata)
assert s.hb >= 2, 'heartbeats: %d' % s.hb
last = cid
s.c.close()
ids2 = [post('/v1/classes/plate/inspections', img, 'image/jpeg')['id'] for _ in range(2)]
s2 = Stream(last)
got2 = [s2.next() for _ in range(2)]
assert [g[2]['id'] for g in got2] == ids2 and all(g[0] > last for g in got2), (got2, last)
open(sys.argv[3], 'w').write(str(got2[-1][0]))
print('events %s, class event %d, heartbeats %d, resumed after %d: %s' % ([g[0] for g in got], cid, s.hb, last,
      [g[0] for g in got2]))
PY

# ---- webhooks ----
$PY "$top_srcdir/tests/webhook_receiver.py" "$T/recv.port" "$T/recv.log" 's3cret-key!' &
RECV=$!
for _ in $(seq 100); do [ -f "$T/recv.port" ] && break; sleep 0.05; done
HOOK_URL="http://127.0.0.1:$(cat "$T/recv.port")/hook"
req POST /v1/webhooks -H 'Content-Type: application/json' -d '{"url":"ftp://x","secret":"s3cret-key!"}'
expect "webhook with a non-http url" 400 bad_request
req POST /v1/webhooks -H 'Content-Type: application/json' -d "{\"url\":\"$HOOK_URL\",\"secret\":\"short\"}"
expect "webhook with a short secret" 400 bad_request
req POST /v1/webhooks -H 'Content-Type: application/json' -d "{\"url\":\"$HOOK_URL\",\"secret\":\"s3cret-key!\",\"events\":[\"inspection\"],\"class\":\"plate\"}"
expect "create webhook" 201
HID=$(jget 'j["id"]')
check "webhook view" [ "$(jget 'j["events"], j["class"], j["deliveries"]["pending"], "secret" in j')" = "(['inspection'], 'plate', 0, False)" ]
req POST /v1/classes/plate/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
WID=$(jget 'j["id"]')
for _ in $(seq 200); do [ -s "$T/recv.log" ] && break; sleep 0.05; done
check "first delivery answered 500" [ "$(wc -l < "$T/recv.log")" = 1 ]
req GET "/v1/webhooks/$HID"
check "pending after the 500, status visible" [ "$(jget 'j["deliveries"]["pending"], j["deliveries"]["last_status"], j["deliveries"]["last_error"]')" = "(1, 500, 'HTTP 500')" ]
stop_resadd
check "the retry was still pending when the daemon stopped" [ "$(wc -l < "$T/recv.log")" = 1 ]
start_resadd --workers 2 --config "$T/resadd.conf"
for _ in $(seq 300); do [ "$(wc -l < "$T/recv.log")" -ge 2 ] && break; sleep 0.05; done
check "the retry arrived after the restart, signed, same delivery" $PY - "$T/recv.log" "$WID" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 2, recs
a, b = recs
assert a['code'] == 500 and b['code'] == 200 and a['sig_ok'] and b['sig_ok'], recs
assert a['delivery'] == b['delivery'] and a['event'] == 'inspection' and a['body'] == b['body']
assert b['body']['event'] == 'inspection' and b['body']['data']['id'] == int(sys.argv[2]), b['body']
assert b['body']['data']['status'] == 'done' and 'confidence' in b['body']['data']
print('delivery %s: 500 then 200 after the restart' % a['delivery'])
PY
curl -sN -m 2.5 -H "Last-Event-ID: $(cat "$T/last_event")" "$URL/v1/events?heartbeat_s=1" > "$T/sse_after_restart"
check "a Last-Event-ID from before the restart is told once that events were lost" [ "$(grep -c '^event: lost' "$T/sse_after_restart")" = 1 ]
req GET "/v1/webhooks"
check "delivered, nothing pending" [ "$(jget '[(w["id"], w["deliveries"]["delivered"], w["deliveries"]["pending"], w["deliveries"]["last_status"]) for w in j["webhooks"]]')" = "[($HID, 1, 0, 200)]" ]
req DELETE "/v1/webhooks/$HID"
expect "delete webhook" 200
req GET "/v1/webhooks/$HID"
expect "deleted webhook" 404 not_found
kill "$RECV" 2>/dev/null; wait "$RECV" 2>/dev/null

# ---- metrics ----
req POST /v1/classes/plate/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
curl -s "$URL/metrics" > "$T/metrics"
check "metrics: stage and score histograms, build/model info, webhook counters" $PY - "$T/metrics" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
for want in ['resadd_inference_stage_seconds_bucket{stage="backbone",le="+Inf"} 1',
             'resadd_inspection_score_count{class="plate"} 1', 'resadd_build_info{version=',
             'resadd_model_info{arch=', 'resadd_webhook_deliveries_total{result="delivered"} 1',
             'resadd_webhook_deliveries_total{result="failed"} 0']:
    assert want in t, want
b = [int(v) for v in re.findall(r'resadd_inference_stage_seconds_bucket\{stage="total",le="[^"]+"\} (\d+)', t)]
assert b == sorted(b) and b[-1] == 1, b
PY
if command -v promtool >/dev/null; then
    check "promtool check metrics" sh -c "promtool check metrics < '$T/metrics'"
else
    echo "skip: promtool not installed (Debian package prometheus): /metrics not checked with it"
fi

# an open event stream does not hold up shutdown
curl -sN "$URL/v1/events" >/dev/null 2>&1 &
CURLPID=$!
sleep 0.3
T0=$(date +%s.%N)
stop_resadd
check "shutdown with an open event stream is prompt" $PY -c "assert $(date +%s.%N) - $T0 < 5"
kill "$CURLPID" 2>/dev/null; wait "$CURLPID" 2>/dev/null
done_test
