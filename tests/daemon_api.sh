#!/usr/bin/env bash
# tests/daemon_api.sh — resadd end to end with real photographs: the engineer
# flow (create class, register references, duplicates), the MES flow (sync and
# async inspections with external ids; good vs defective part), the dashboard
# flow (paging with after_id, stats, heatmaps, metrics, OpenAPI), PATCH and
# DELETE, then restart persistence.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
start_resadd

req POST /v1/classes -H 'Content-Type: application/json' -d '{"name":"rust-panel","description":"steel plate"}'
expect "create class" 201
check "class not ready without references" [ "$(jget 'j["ready"]')" = False ]
req POST /v1/classes -H 'Content-Type: application/json' -d '{"name":"rust-panel"}'
expect "duplicate class" 409 conflict

req POST /v1/classes/rust-panel/references -H 'Content-Type: image/jpeg' --data-binary "@$I/ref1.jpg"
expect "one raw reference" 201
check "1 reference, not ready" [ "$(jget 'j["references"], j["ready"]')" = "(1, False)" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "inspect a class with 1 reference" 409 class_not_ready
req POST /v1/classes/rust-panel/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "multipart references" 201
check "3 added, 1 duplicate, 4 refs, ready" [ "$(jget 'len(j["added"]), len(j["duplicates"]), j["references"], j["ready"]')" = "(3, 1, 4, True)" ]
REF1=$(jget 'j["duplicates"][0]["id"]')
check "sha256 is the image's" [ "$(jget 'j["duplicates"][0]["sha256"]')" = "$(sha256sum "$I/ref1.jpg" | cut -d' ' -f1)" ]

req GET /v1/classes/rust-panel
expect "get class" 200
check "class fields" [ "$(jget 'j["name"], j["references"], j["ready"], j["threshold_source"], j["threshold"] > 0, "created_at" in j, "updated_at" in j')" = "('rust-panel', 4, True, 'auto', True, True, True)" ]
req GET /v1/classes/rust-panel/references
check "list references" [ "$(jget 'len(j["references"])')" = 4 ]
curl -s -o "$T/ref1.out" "$URL/v1/classes/rust-panel/references/$REF1"
check "reference bytes round-trip" cmp -s "$T/ref1.out" "$I/ref1.jpg"

req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-0001' --data-binary "@$I/good.jpg"
expect "inspect good part" 200
GOOD=$(jget 'j["score"]'); GID=$(jget 'j["id"]'); GSEQ=$(jget 'j["seq"]')
check "good part: fields" [ "$(jget 'j["class"], j["anomalous"], j["external_id"], j["status"], j["scorer"], sorted(j["timings_ms"])[:3], j["heatmap_url"]')" = "('rust-panel', False, 'part-0001', 'done', 'resad', ['backbone', 'decode', 'heatmap'], '/v1/inspections/$GID/heatmap.png')" ]
MODEL_SHA=$(jget 'j.get("model_sha256")')
req GET /v1/model
check "/v1/model: the shipped learned model produced the score" [ "$(jget 'j["scorer"], j["model"]["file"], j["model"]["sha256"], j["model"]["provenance"]["train_classes"] != ""')" = "('resad', 'resad_mobilenet_v2.safetensors', '$MODEL_SHA', True)" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-0002' --data-binary "@$I/defect.jpg"
expect "inspect defective part" 200
BAD=$(jget 'j["score"]'); BID=$(jget 'j["id"]')
check "defective part anomalous" [ "$(jget 'j["anomalous"]')" = True ]
echo "scores: good $GOOD defect $BAD threshold $(jget 'j["threshold"]')"
check "defect scores higher" $PY -c "import sys; sys.exit(0 if $BAD > 1.5 * $GOOD else 1)"

for k in overlay raw mask; do
    curl -s -o "$T/h.png" -w '%{content_type}' "$URL/v1/inspections/$BID/heatmap.png?kind=$k" > "$T/ct"
    check "heatmap $k is a PNG of the image's size" $PY -c "
from PIL import Image; im = Image.open('$T/h.png'); ref = Image.open('$I/defect.jpg')
assert open('$T/ct').read() == 'image/png' and im.size == ref.size, (im.size, ref.size)"
done
# the overlay's hottest pixel lies inside the drawn defect (mask covers it)
check "mask marks the drawn defect" $PY -c "
import json; from PIL import Image
box = json.load(open('$I/defect.json'))['defect_box']
m = Image.open('$T/h.png').convert('L'); x0, y0, x1, y1 = box
inside = sum(m.getpixel((x, y)) > 0 for x in range(max(x0,0), x1) for y in range(max(y0,0), y1))
assert inside > 0, 'mask empty on the defect'"

# async
req POST "/v1/classes/rust-panel/inspections?async=1" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg" -D "$T/hdr"
expect "async inspection" 202
AID=$(jget 'j["id"]')
check "Location header" grep -qi "^Location: /v1/inspections/$AID" "$T/hdr"
for _ in $(seq 600); do req GET "/v1/inspections/$AID"; [ "$(jget 'j["status"]')" = done ] && break; sleep 0.05; done
check "async inspection done" [ "$(jget 'j["status"], j["anomalous"]')" = "('done', False)" ]

# dashboard: paging
req GET "/v1/inspections?limit=2"
check "newest first" [ "$(jget '[i["id"] for i in j["inspections"]]')" = "[$AID, $BID]" ]
req GET "/v1/inspections?after_id=$GSEQ"
check "after_id returns those finished later, oldest first" [ "$(jget '[i["id"] for i in j["inspections"]], j["last_id"], j["has_more"]')" = "([$BID, $AID], $AID, False)" ]
req GET "/v1/inspections?after_id=$(jget 'j["next"]')"
check "after_id at the end is empty" [ "$(jget 'len(j["inspections"])')" = 0 ]
req GET "/v1/inspections?anomalous=true&class=rust-panel"
check "filter anomalous" [ "$(jget '[i["id"] for i in j["inspections"]]')" = "[$BID]" ]
req GET "/v1/inspections?limit=1&before_id=$AID"
check "before_id pages back" [ "$(jget '[i["id"] for i in j["inspections"]]')" = "[$BID]" ]
req GET "/v1/stats?class=rust-panel"
expect "stats" 200
check "stats counts" [ "$(jget 'j["inspections"], j["done"], j["anomalous"], j["latency_ms"]["p50"] > 0')" = "(3, 3, 1, True)" ]

# metrics and openapi
curl -s "$URL/metrics" > "$T/metrics"
check "metrics format" $PY -c "
import re
lines = open('$T/metrics').read().splitlines()
pat = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\",?)*\})? [-+0-9.eE]+(Inf)?$')
bad = [l for l in lines if not l.startswith('#') and not pat.match(l)]
assert not bad, bad
t = '\n'.join(lines)
assert 'resadd_inspections_total{class=\"rust-panel\",verdict=\"anomalous\"} 1' in t
assert 'resadd_http_requests_total{route=\"POST /v1/classes/{name}/inspections\",status=\"200\"} 2' in t
assert 'resadd_queue_depth 0' in t and 'resadd_http_request_duration_seconds_bucket' in t"
req GET /v1/openapi.json
check "openapi is valid JSON with every path" $PY -c "
import json; d = json.load(open('$T/body')); p = d['paths']
assert d['openapi'].startswith('3.')
for k in ['/v1/classes', '/v1/classes/{name}', '/v1/classes/{name}/references', '/v1/classes/{name}/references/{id}',
          '/v1/classes/{name}/inspections', '/v1/inspections', '/v1/inspections/{id}', '/v1/inspections/{id}/heatmap.png',
          '/v1/stats', '/healthz', '/readyz', '/metrics']: assert k in p, k"

# PATCH threshold, then back to auto
req PATCH /v1/classes/rust-panel -H 'Content-Type: application/json' -d '{"threshold": 1000, "description": "x"}'
check "manual threshold" [ "$(jget 'j["threshold"], j["threshold_source"], j["description"]')" = "(1000.0, 'manual', 'x')" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
check "manual threshold applied" [ "$(jget 'j["threshold"], j["anomalous"]')" = "(1000.0, False)" ]
req PATCH /v1/classes/rust-panel -H 'Content-Type: application/json' -d '{"threshold": null}'
check "threshold back to auto" [ "$(jget 'j["threshold_source"]')" = auto ]

# delete a reference: pool rebuilt, still ready with 3
req DELETE "/v1/classes/rust-panel/references/$REF1"
expect "delete reference" 200
req GET /v1/classes/rust-panel
check "3 references left, ready" [ "$(jget 'j["references"], j["ready"]')" = "(3, True)" ]
req DELETE "/v1/classes/rust-panel/references/$REF1"
expect "delete it again" 404 not_found
req POST /v1/classes/rust-panel/references -H 'Content-Type: image/jpeg' --data-binary "@$I/ref1.jpg"
check "re-added after deletion" [ "$(jget 'len(j["added"]), j["references"]')" = "(1, 4)" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
SCORE_BEFORE=$(jget 'j["score"]')

# restart persistence
NINSP=$(curl -s "$URL/v1/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["inspections"])')
stop_resadd
start_resadd
req GET /v1/classes/rust-panel
check "after restart: class, refs, ready" [ "$(jget 'j["references"], j["ready"], j["description"]')" = "(4, True, 'x')" ]
req GET /v1/stats
check "after restart: inspections kept" [ "$(jget 'j["inspections"]')" = "$NINSP" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
check "after restart: defect still anomalous" [ "$(jget 'j["anomalous"]')" = True ]
check "after restart: same score ($SCORE_BEFORE)" $PY -c "import sys; sys.exit(abs($(jget 'j["score"]') - $SCORE_BEFORE) > 1e-4)"
req GET "/v1/inspections/$BID/heatmap.png"
check "after restart: heatmap kept" [ "$CODE" = 200 ]
# retention: at most 2 inspections kept (applied at start and every 30 s)
stop_resadd
printf 'retention_max_inspections = 2\n' > "$T/ret.conf"
start_resadd --config "$T/ret.conf"
req GET /v1/inspections
check "retention keeps the 2 newest" [ "$(jget '[i["id"] for i in j["inspections"]] == sorted([i["id"] for i in j["inspections"]], reverse=True) and len(j["inspections"])')" = 2 ]
# learned_model = none: the residual-norm scorer, said so in /v1/model and every inspection
stop_resadd
printf 'learned_model = none\n' > "$T/none.conf"
start_resadd --config "$T/none.conf"
req GET /v1/model
check "learned_model = none: /v1/model says residual-norm" [ "$(jget 'j["scorer"], "model" in j')" = "('residual-norm', False)" ]
req POST /v1/classes/rust-panel/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
check "learned_model = none: inspection scored by residual-norm" [ "$(jget 'j["scorer"], "model_sha256" in j, j["anomalous"]')" = "('residual-norm', False, True)" ]
req GET /v1/inspections
check "older inspections keep their model" [ "$(jget 'sorted(set((i["scorer"], i.get("model_sha256")) for i in j["inspections"]))')" = "[('resad', '$MODEL_SHA'), ('residual-norm', None)]" ]
# a model that does not exist: a clear error, no daemon
printf 'learned_model = %s\n' "$T/missing.safetensors" > "$T/bad.conf"
"$RESADD" --listen 127.0.0.1:0 --data-dir "$T/data2" --config "$T/bad.conf" 2>"$T/bad.log"
check "missing learned model: exit status 1" [ $? -ne 0 ]
check "missing learned model: the message names the file" grep -q "missing.safetensors" "$T/bad.log"
# SIGHUP reopens the log; the daemon keeps serving
kill -HUP "$PID"; sleep 0.2
req GET /healthz
check "alive after SIGHUP" [ "$CODE" = 200 ]
req DELETE /v1/classes/rust-panel
expect "delete class" 200
req GET /v1/classes/rust-panel
expect "deleted class is gone" 404 not_found
stop_resadd
done_test
