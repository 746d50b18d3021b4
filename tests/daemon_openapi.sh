#!/usr/bin/env bash
# tests/daemon_openapi.sh — live responses against the served OpenAPI
# document (tests/openapi_check.py): every status a route answers is
# documented for it, and every JSON body validates against its schema; once
# with auth off, then the auth errors (401, 403) with auth on.
. "$(dirname "$0")/daemon_lib.sh"
make_images
BODY=
start_resadd
check "live responses match the OpenAPI schemas" $PY "$top_srcdir/tests/openapi_check.py" "$URL" "$T/img"
stop_resadd
READ=$("$RESADD" token create --scope read --data-dir "$T/data" 2>/dev/null)
printf 'auth = on\n' > "$T/auth.conf"
start_resadd --config "$T/auth.conf"
check "401 and 403 are documented and match" $PY - "$URL" "$READ" <<'PYEOF'
import json, sys, urllib.request, urllib.error
base, tok = sys.argv[1], sys.argv[2]
doc = json.load(urllib.request.urlopen(base + "/v1/openapi.json"))
def status(method, path, token=None):
    h = {"Authorization": "Bearer " + token} if token else {}
    h["Content-Type"] = "application/json"
    try:
        return urllib.request.urlopen(urllib.request.Request(base + path, data=b"{}" if method != "GET" else None, method=method, headers=h)).status
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        assert set(body["error"]) >= {"code", "message"}, body
        return e.code
bad = 0
for m, p, t, want, doc_path in [("GET", "/v1/classes", None, 401, "/v1/classes"),
                                 ("GET", "/v1/classes", "rdt_" + "0" * 63, 401, "/v1/classes"),
                                 ("POST", "/v1/classes", tok, 403, "/v1/classes"),
                                 ("GET", "/v1/stats", None, 401, "/v1/stats")]:
    s = status(m, p, t)
    ok = s == want and str(s) in doc["paths"][doc_path][m.lower()]["responses"]
    print(("ok" if ok else "FAIL") + f": {m} {p} -> {s} (want {want}, documented)")
    bad += not ok
sys.exit(1 if bad else 0)
PYEOF
stop_resadd
[ "$FAILS" -eq 0 ] || exit 1
echo "PASS"
