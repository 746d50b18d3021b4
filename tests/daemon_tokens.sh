#!/usr/bin/env bash
# tests/daemon_tokens.sh — the token API over HTTP (admin: POST/GET/DELETE
# /v1/tokens; a token with an expiry stops working after it; a revoked one at
# once; read tokens cannot make tokens), the CLI on the same table, and the
# audit log: one line per change (class, threshold, references, tokens) naming
# the token that made it, in a log_file whose lines start with a UTC timestamp.
. "$(dirname "$0")/daemon_lib.sh"
BODY=
make_images
I=$T/img
start_resadd
stop_resadd
ADMIN=$("$RESADD" token create --scope admin --name ops --data-dir "$T/data" 2>/dev/null)
AID=$("$RESADD" token list --data-dir "$T/data" | $PY -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["scope"]=="admin"][0])')
printf 'auth = on\nlog_file = %s\n' "$T/audit.log" > "$T/auth.conf"
start_resadd --config "$T/auth.conf"
A="Authorization: Bearer $ADMIN"
J='Content-Type: application/json'

# 8 s: long enough for the next two requests on a loaded machine (ASan, 2 shared
# cores), short enough to wait out below.
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":"read","name":"wall-screen","expires_in_s":8}'
expect "create a read token that expires in 8 s" 201
short_t0=$SECONDS
SHORT=$(jget 'j["token"]'); SID=$(jget 'j["id"]')
check "its fields" [ "$(jget 'j["scope"], j["name"], j["revoked_at"], j["expires_at"] is not None, len(j["token"])')" = "('read', 'wall-screen', None, True, 67)" ]
req GET /v1/classes -H "Authorization: Bearer $SHORT"
expect "the new token reads" 200
req POST /v1/tokens -H "Authorization: Bearer $SHORT" -H "$J" -d '{"scope":"admin"}'
expect "a read token cannot make tokens" 403 forbidden
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":"inspect"}'
expect "create an inspect token (no expiry)" 201
INSP=$(jget 'j["token"]'); IID=$(jget 'j["id"]')
check "no expiry is null" [ "$(jget 'j["expires_at"]')" = None ]
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":"root"}'
expect "bad scope" 400 bad_request
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":"read","expires_in_s":0}'
expect "bad expiry" 400 bad_request
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":"read","owner":"x"}'
expect "unknown field" 400 bad_request
req POST /v1/tokens -H "$A" -H "$J" -d '{"scope":'
expect "broken JSON" 400 bad_json
req GET /v1/tokens -H "$A"
expect "list tokens" 200
check "list: 3 tokens, the secret never listed" [ "$(jget 'len(j["tokens"]), any("token" in t for t in j["tokens"])')" = "(3, False)" ]
check "the CLI sees the API's tokens" [ "$("$RESADD" token list --data-dir "$T/data" | $PY -c 'import json,sys; print(sorted(t["name"] for t in json.load(sys.stdin)))')" = "['', 'ops', 'wall-screen']" ]
req DELETE "/v1/tokens/$IID" -H "$A"
expect "revoke the inspect token" 200
req POST /v1/classes/x/inspections -H "Authorization: Bearer $INSP" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "the revoked token is refused" 401 unauthorized
req DELETE "/v1/tokens/$IID" -H "$A"
expect "revoke it again" 404
short_wait=$((short_t0 + 9 - SECONDS))
[ "$short_wait" -le 0 ] || sleep "$short_wait"
req GET /v1/classes -H "Authorization: Bearer $SHORT"
expect "the 8-second token has expired" 401 unauthorized

# changes of every kind, for the audit log
req POST /v1/classes -H "$A" -H "$J" -d '{"name":"audited"}'
expect "create class" 201
req POST /v1/classes/audited/references -H "$A" -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg"
expect "add references" 201
req PATCH /v1/classes/audited -H "$A" -H "$J" -d '{"threshold": 3.5}'
expect "set threshold" 200
req DELETE /v1/classes/audited/references/1 -H "$A"
expect "delete a reference" 200
req DELETE /v1/classes/audited -H "$A"
expect "delete class" 200
stop_resadd
L=$T/audit.log
for want in "POST /v1/tokens -> 201 by token $AID (admin)" "DELETE /v1/tokens/$IID -> 200 by token $AID (admin)" \
    "POST /v1/classes -> 201 by token $AID" "POST /v1/classes/audited/references -> 201 by token $AID" \
    "PATCH /v1/classes/audited -> 200 by token $AID" "DELETE /v1/classes/audited/references/1 -> 200 by token $AID" \
    "DELETE /v1/classes/audited -> 200 by token $AID"; do
    check "audit: $want" grep -qF "audit: $want" "$L"
done
check "audit: refused changes are not logged as changes" [ "$(grep -c 'audit: ' "$L")" -eq 8 ]
check "log_file lines start with a UTC timestamp" $PY -c "
import re, sys
lines = open('$L').read().splitlines()
assert lines and all(re.match(r'^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warning|info|debug): ', l) for l in lines), lines[:3]"
[ "$FAILS" -eq 0 ] || { tail -20 "$L"; exit 1; }
echo "PASS"
