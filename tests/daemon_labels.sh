#!/usr/bin/env bash
# tests/daemon_labels.sh — a line that learns from its operators (issue 10 item 5):
#  * PUT/POST/GET/DELETE /v1/inspections/{id}/label: bad label, bad JSON, unknown
#    field, unknown inspection -> 4xx with a JSON error and nothing recorded;
#    the same label twice is one change; relabel and unlabel are recorded with
#    actor and time (history), and survive a restart;
#  * a confirmed good joins the pool (join_pool, PUT .../reference, or the
#    class's learn_from_labels), a defect never does, max_references holds; the
#    reference leaves again on relabel/unlabel/DELETE .../reference and the
#    class's calibration (threshold_auto) is back to what it was; scores already
#    given stay as they were;
#  * threshold_policy fpr:0.01 and f1 fall back to loo with a reason while there
#    are too few labels, then apply: GET class shows the policy's threshold
#    (threshold_source policy) with expected recall / false-reject rate and the
#    labels used, and the next inspection is judged by it.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
$PY "$top_srcdir/tools/demo-images.py" "$T/img2" --refs 3 --seed 2 >/dev/null || exit 1
J=(-H 'Content-Type: application/json')
printf 'workers = 1\nmax_references = 6\n' > "$T/l.conf"
start_resadd --config "$T/l.conf"
req POST /v1/classes "${J[@]}" -d '{"name":"part"}'
req POST /v1/classes/part/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "register 4 references" 201
req GET /v1/classes/part
T0=$(jget 'j["threshold_auto"]')
check "a new class's policy is loo" [ "$(jget 'j["threshold_policy"]["policy"] + "," + j["threshold_policy"]["applied"]')" = "loo,loo" ]
# inspections 1..7: good, defect, ref5, ref6, img2/good, img2/defect, img2/ref1
n=0
for f in "$I/good.jpg" "$I/defect.jpg" "$I/ref5.jpg" "$I/ref6.jpg" "$T/img2/good.jpg" "$T/img2/defect.jpg" \
    "$T/img2/ref1.jpg"; do
    req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$f"
    n=$((n + 1))
    expect "inspect $n" 200
    eval "S$n=\$(jget 'j[\"score\"]')"
done

# bad requests: 4xx, JSON error, nothing recorded
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"maybe"}'
expect "label maybe" 400 bad_label
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":'
expect "truncated JSON" 400 bad_json
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"good","by":"x"}'
expect "unknown field" 400 bad_request
req PUT /v1/inspections/2/label "${J[@]}" -d '{"label":"defect","join_pool":true}'
expect "a defect with join_pool" 400 bad_request
req PUT /v1/inspections/999/label "${J[@]}" -d '{"label":"good"}'
expect "unknown inspection" 404 not_found
req DELETE /v1/inspections/1/label
expect "unlabel an unlabelled inspection" 404 not_found
req GET /v1/inspections/1/label
expect "no label yet" 404 not_found
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"threshold_policy":"fpr:2"}'
expect "policy fpr:2" 400 bad_request
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"threshold_policy":"median"}'
expect "policy median" 400 bad_request
req PUT /v1/classes/nope/threshold-policy "${J[@]}" -d '{"threshold_policy":"f1"}'
expect "policy of an unknown class" 404 not_found
req GET /v1/classes/part/labels
check "nothing recorded by the bad requests" [ "$(jget 'len(j["events"])')" = 0 ]

# label, the same label again, relabel: each change once, with actor and time
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"good"}'
expect "label 1 good" 200
check "changed, not in the pool, recorded score" [ "$(jget 'str(j["changed"]) + str(j["in_pool"]) + str(j["score"] == '"$S1"')')" = "TrueFalseTrue" ]
req POST /v1/inspections/1/label "${J[@]}" -d '{"label":"good"}'
expect "label 1 good again (POST)" 200
check "the same label again is no change" [ "$(jget 'j["changed"]')" = False ]
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"defect"}'
expect "relabel 1 defect" 200
req GET /v1/inspections/1/label
check "history: label good, label defect, by local" [ "$(jget '",".join(e["action"] + ":" + e["value"] + ":" + e["actor"] for e in j["history"])')" = "label:good:local,label:defect:local" ]
check "history entries carry their time" [ "$(jget 'all(e["at"].endswith("Z") for e in j["history"])')" = True ]

# a confirmed good joins the pool; every way out restores the calibration
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"good","join_pool":true}'
expect "relabel 1 good, join the pool" 200
check "joined the pool" [ "$(jget 'str(j["joined_pool"]) + str(j["in_pool"])')" = TrueTrue ]
REF1=$(jget 'j["reference_id"]')
req GET /v1/classes/part
check "5 references" [ "$(jget 'j["references"]')" = 5 ]
T1=$(jget 'j["threshold_auto"]')
check "the calibration changed with the pool" [ "$T1" != "$T0" ]
req GET /v1/inspections/1
check "inspection 1 keeps the score it was given" [ "$(jget 'j["score"] == '"$S1"'')" = True ]
req GET "/v1/classes/part/references/$REF1"
expect "the joined reference is served" 200
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"defect"}'
expect "relabel the joined good as defect" 200
check "it left the pool" [ "$(jget 'str(j["left_pool"]) + str(j["in_pool"])')" = TrueFalse ]
req GET /v1/classes/part
check "4 references, calibration as before" [ "$(jget 'str(j["references"]) + " " + str(j["threshold_auto"])')" = "4 $T0" ]
req PUT /v1/inspections/1/reference
expect "a defect never joins" 409 conflict
req PUT /v1/inspections/5/reference
expect "an unlabelled inspection does not join" 409 conflict
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"good"}'
req PUT /v1/inspections/1/reference
expect "explicit join" 200
req DELETE /v1/inspections/1/reference
expect "explicit leave" 200
req DELETE /v1/inspections/1/reference
expect "leave again" 404 not_found
req GET /v1/classes/part
check "after join + leave: calibration as before" [ "$(jget 'str(j["references"]) + " " + str(j["threshold_auto"])')" = "4 $T0" ]
req PUT /v1/inspections/1/label "${J[@]}" -d '{"label":"good","join_pool":true}'
req DELETE /v1/inspections/1/label
expect "unlabel a joined good" 200
check "unlabel took it out of the pool" [ "$(jget 'j["left_pool"]')" = True ]
req GET /v1/classes/part
check "after unlabel: calibration as before" [ "$(jget 'str(j["references"]) + " " + str(j["threshold_auto"])')" = "4 $T0" ]
req GET /v1/classes/part/labels
check "every change recorded" [ "$(jget '",".join(e["action"] for e in j["events"])')" = "label,label,label,join,leave,label,label,join,leave,join,leave,unlabel" ]

# threshold policies
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"threshold_policy":"fpr:0.01"}'
expect "policy fpr:0.01" 200
check "fpr falls back to loo without labels, with a reason" [ "$(jget 'j["threshold_policy"]["applied"] + ":" + str("good label" in j["threshold_policy"]["reason"])')" = "loo:True" ]
for id in 1 3 4 5 7; do
    req PUT /v1/inspections/$id/label "${J[@]}" -d '{"label":"good"}'
    expect "label $id good" 200
done
req GET /v1/classes/part
check "fpr applies with 5 good labels" [ "$(jget 'j["threshold_policy"]["applied"] + " " + j["threshold_source"] + " " + str(j["threshold_policy"]["labels_used"]["good"])')" = "fpr policy 5" ]
check "fpr's goods: the 5 labels outside the pool and the 4 references' leave-one-out scores" [ "$(jget 'j["threshold_policy"]["labels_used"]["pool_scores"]')" = 4 ]
check "the class threshold is the policy's, above every labelled good" [ "$(jget 'j["threshold"] == j["threshold_policy"]["threshold"] and j["threshold"] >= max('"$S1,$S3,$S4,$S5,$S7"')')" = True ]
check "expected false-reject rate is the policy's" [ "$(jget 'j["threshold_policy"]["expected_false_reject_rate"]')" = 0.01 ]
TP=$(jget 'j["threshold"]')
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$T/img2/ref2.jpg"
expect "inspect 8" 200
check "the next inspection is judged by the policy's threshold" [ "$(jget 'abs(j["threshold"] - '"$TP"') < 1e-6 * abs('"$TP"')')" = True ]
# a reference added by hand changes the pool's scores: the stored policy threshold follows
req POST /v1/classes/part/references -F "a=@$T/img2/ref3.jpg"
expect "a fifth reference" 201
RID=$(jget 'j["added"][0]["id"]')
req GET /v1/classes/part
check "fpr now counts the 5 references' leave-one-out scores" [ "$(jget 'j["threshold_policy"]["labels_used"]["pool_scores"]')" = 5 ]
TP5=$(jget 'j["threshold"]')
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
check "an inspection after the reference change is judged by the recomputed policy threshold" [ "$(jget 'abs(j["threshold"] - '"$TP5"') < 1e-6 * abs('"$TP5"') and abs(j["threshold"] - '"$TP"') > 0')" = True ]
req DELETE "/v1/classes/part/references/$RID"
expect "delete the fifth reference" 200
req GET /v1/classes/part
check "after deleting it: the policy threshold as before" [ "$(jget 'abs(j["threshold"] - '"$TP"') < 1e-6 * abs('"$TP"') and j["threshold_policy"]["labels_used"]["pool_scores"] == 4')" = True ]
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"threshold_policy":"f1"}'
check "f1 falls back without defect labels" [ "$(jget 'j["threshold_policy"]["applied"] + ":" + str("defect label" in j["threshold_policy"]["reason"])')" = "loo:True" ]
for id in 2 6; do
    req PUT /v1/inspections/$id/label "${J[@]}" -d '{"label":"defect"}'
    expect "label $id defect" 200
done
req GET /v1/classes/part
check "f1 applies with 2 defects and 5 goods (and the 4 references' leave-one-out scores)" [ "$(jget 'j["threshold_policy"]["applied"] + " " + str(j["threshold_policy"]["labels_used"])')" = "f1 {'good': 5, 'defect': 2, 'pool_scores': 4}" ]
check "f1 reports expected recall and false rejects in [0, 1]" [ "$(jget '0 <= j["threshold_policy"]["expected_recall"] <= 1 and 0 <= j["threshold_policy"]["expected_false_reject_rate"] <= 1')" = True ]
req PATCH /v1/classes/part "${J[@]}" -d '{"threshold": 123.5}'
req GET /v1/classes/part
check "a manual threshold overrides the policy" [ "$(jget 'str(j["threshold"]) + " " + j["threshold_source"] + " " + str(j["threshold_policy"]["overridden_by_manual_threshold"])')" = "123.5 manual True" ]
req PATCH /v1/classes/part "${J[@]}" -d '{"threshold": null}'

# learn_from_labels and max_references (6)
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"learn_from_labels":true}'
expect "learn_from_labels on" 200
req PUT /v1/inspections/8/label "${J[@]}" -d '{"label":"good"}'
check "with learn_from_labels a confirmed good joins" [ "$(jget 'j["joined_pool"]')" = True ]
req PUT /v1/inspections/3/reference
expect "join 3 (6 references)" 200
req PUT /v1/inspections/4/reference
expect "a 7th reference" 422 too_many_references
req PUT /v1/inspections/4/label "${J[@]}" -d '{"label":"defect"}'
req PUT /v1/inspections/4/label "${J[@]}" -d '{"label":"good"}'
check "a full pool: the label is recorded, the join is not, and says why" [ "$(jget 'str(j["changed"]) + str(j["joined_pool"]) + str("at most 6" in j["note"])')" = TrueFalseTrue ]

# the responses match the served OpenAPI schemas (required fields, no undocumented ones, types)
req GET /v1/inspections/8/label; cp "$T/body" "$T/r.label"
req GET /v1/classes/part/labels; cp "$T/body" "$T/r.classlabels"
req GET /v1/classes/part; cp "$T/body" "$T/r.class"
req PUT /v1/classes/part/threshold-policy "${J[@]}" -d '{"learn_from_labels":true}'; cp "$T/body" "$T/r.policy"
curl -s "$URL/v1/openapi.json" > "$T/openapi.json"
$PY - "$T" <<'PY' || fail "a label response does not match its OpenAPI schema"
import json, sys
t = sys.argv[1]
doc = json.load(open(f"{t}/openapi.json"))
S = doc["components"]["schemas"]
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
def check(v, s, where):
    if "$ref" in s:
        s = S[s["$ref"].split("/")[-1]]
    if v is None:
        assert s.get("nullable"), f"{where}: null"
        return
    if "type" in s:
        assert isinstance(v, TYPES[s["type"]]) and not (s["type"] in ("integer", "number") and isinstance(v, bool)), f"{where}: {v!r} is not {s['type']}"
    if "enum" in s:
        assert v in s["enum"], f"{where}: {v!r} not in {s['enum']}"
    if isinstance(v, dict) and "properties" in s:
        for k in s.get("required", []):
            assert k in v, f"{where}: {k} missing"
        for k, x in v.items():
            assert k in s["properties"], f"{where}: {k} undocumented"
            check(x, s["properties"][k], f"{where}.{k}")
    if isinstance(v, list) and "items" in s:
        for i, x in enumerate(v):
            check(x, s["items"], f"{where}[{i}]")
for f, name in (("r.label", "Label"), ("r.classlabels", "ClassLabels"), ("r.policy", "ClassPolicy")):
    check(json.load(open(f"{t}/{f}")), {"$ref": "#/" + name}, name)
c = json.load(open(f"{t}/r.class"))  # the class view's label fields (the rest is other tests')
check(c["threshold_policy"], S["Class"]["properties"]["threshold_policy"], "Class.threshold_policy")
check(c["threshold_source"], S["Class"]["properties"]["threshold_source"], "Class.threshold_source")
print("ok: label responses match the OpenAPI schemas")
PY

# restart: labels, history and the policy persist
stop_resadd
start_resadd --config "$T/l.conf"
req GET /v1/inspections/8/label
check "a label survives a restart" [ "$(jget 'j["label"] + " " + str(j["in_pool"])')" = "good True" ]
req GET /v1/classes/part
check "the policy survives a restart" [ "$(jget 'j["threshold_policy"]["policy"] + " " + j["threshold_policy"]["applied"] + " " + str(j["references"]) + " " + str(j["threshold_policy"]["learn_from_labels"])')" = "f1 f1 6 True" ]
stop_resadd
done_test
