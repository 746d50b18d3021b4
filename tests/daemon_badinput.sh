#!/usr/bin/env bash
# tests/daemon_badinput.sh — every rejection is a clear 4xx with the error
# envelope and nothing half-written: truncated JPEG, a 100000×100000 PNG
# header, wrong content types, bad/deep/huge JSON, unknown class, bodies over
# the limit (413), bad names and ids; then auth scopes (401 vs 403) and auth
# on by default for a non-loopback listen address.
. "$(dirname "$0")/daemon_lib.sh"
make_images
I=$T/img
B=$T/bad
mkdir -p "$B"
$PY - "$I" "$B" <<'PY'
import sys, struct, zlib
src, out = sys.argv[1], sys.argv[2]
j = open(src + "/ref1.jpg", "rb").read()
open(out + "/trunc.jpg", "wb").write(j[: len(j) // 3])
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
hdr = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
open(out + "/huge.png", "wb").write(hdr + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
open(out + "/garbage.bin", "wb").write(b"GIF89a" + b"\0" * 100)
open(out + "/deep.json", "w").write('{"name": "x", "d": ' + "[" * 5000 + "]" * 5000 + "}")
open(out + "/big.json", "w").write('{"name": "x", "description": "' + "a" * 200000 + '"}')
PY
head -c $((33 * 1024 * 1024)) /dev/zero > "$B/33m.bin"
start_resadd

J=(-H 'Content-Type: application/json')
req POST /v1/classes "${J[@]}" -d '{"name":"part","description":"ok"}'
expect "create class" 201
req POST /v1/classes/part/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg"
expect "register" 201

# images
req POST /v1/classes/part/references -H 'Content-Type: image/jpeg' --data-binary "@$B/trunc.jpg"
expect "truncated JPEG reference" 422 invalid_image
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$B/trunc.jpg"
expect "truncated JPEG inspection" 422 invalid_image
req POST /v1/classes/part/inspections -H 'Content-Type: image/png' --data-binary "@$B/huge.png"
expect "100000x100000 PNG header" 413 image_too_large
req POST /v1/classes/part/references -F "a=@$I/ref4.jpg" -F "b=@$B/huge.png"
expect "multipart with one bad image" 413 image_too_large
req POST /v1/classes/part/inspections -H 'Content-Type: image/png' --data-binary "@$B/garbage.bin"
expect "not an image" 422 invalid_image
req POST /v1/classes/part/inspections -H 'Content-Type: text/plain' --data-binary "@$I/good.jpg"
expect "wrong content type" 415 unsupported_media_type
req POST /v1/classes/part/inspections -F "a=@$I/good.jpg;type=text/html"
expect "multipart part with wrong type" 415 unsupported_media_type
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg'
expect "empty body" 400 no_image
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' --data-binary "@$B/33m.bin"
expect "33 MiB body" 413 body_too_large
req POST /v1/classes/part/inspections -H 'Content-Type: image/jpeg' -H 'Transfer-Encoding: chunked' --data-binary "@$B/33m.bin"
expect "33 MiB chunked body" 413 body_too_large
req POST /v1/classes/nope/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "unknown class" 404 not_found
req POST /v1/classes/nope/references -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "references of unknown class" 404 not_found

# JSON
req POST /v1/classes "${J[@]}" -d '{"name": "x",'
expect "bad JSON" 400 bad_json
req POST /v1/classes "${J[@]}" --data-binary "@$B/deep.json"
expect "deep JSON" 400 bad_json
req POST /v1/classes "${J[@]}" --data-binary "@$B/big.json"
expect "JSON over its size limit" 413 body_too_large
req POST /v1/classes "${J[@]}" -d '[1, 2]'
expect "JSON not an object" 400 bad_json
req POST /v1/classes -H 'Content-Type: text/plain' -d '{"name": "y"}'
expect "JSON with wrong content type" 415 unsupported_media_type
req PATCH /v1/classes/part "${J[@]}" -d '{"threshold": "high"}'
expect "threshold not a number" 400 bad_request
req PATCH /v1/classes/part "${J[@]}" -d '{"colour": 1}'
expect "unknown field" 400 bad_request

# names and ids
for n in 'Upper' '-dash' 'a b' "$($PY -c 'print("a"*65)')" '' 'é'; do
    req POST /v1/classes "${J[@]}" -d "{\"name\": \"$n\"}"
    expect "bad name '${n:0:10}'" 400 bad_name
done
req POST /v1/classes "${J[@]}" -d '{"name": 5}'
expect "name not a string" 400 bad_name
req GET /v1/classes/BAD
expect "bad name in path" 400 bad_name
for id in abc 0 -1 99999999999999999999 1.5; do
    req GET "/v1/inspections/$id"
    expect "bad inspection id '$id'" 400 bad_id
done
req GET /v1/inspections/424242
expect "unknown inspection" 404 not_found
req GET /v1/classes/part/references/xyz
expect "bad reference id" 400 bad_id
req GET /v1/classes/part/references/424242
expect "unknown reference" 404 not_found
req GET "/v1/inspections?limit=0"
expect "bad limit" 400 bad_request
req GET "/v1/inspections?after_id=x"
expect "bad after_id" 400 bad_id
req GET "/v1/inspections?since=yesterday"
expect "bad since" 400 bad_request
req GET "/v1/inspections/1/heatmap.png?kind=x"
expect "bad heatmap kind" 400 bad_request
req PUT /v1/classes
expect "wrong method" 405 method_not_allowed
req GET /v2/nothing
expect "unknown route" 404 not_found

# nothing half-written
req GET /v1/classes/part
check "class still has 3 references" [ "$(jget 'j["references"], j["ready"]')" = "(3, True)" ]
req GET /v1/classes
check "no stray class" [ "$(jget '[c["name"] for c in j["classes"]]')" = "['part']" ]
req GET /v1/stats
check "no inspection rows from rejected requests" [ "$(jget 'j["inspections"]')" = 0 ]
stop_resadd

# ---- auth ----
ADMIN=$("$RESADD" token create --scope admin --name ops --data-dir "$T/data" 2>/dev/null)
INSP=$("$RESADD" token create --scope inspect --data-dir "$T/data" 2>/dev/null)
READ=$("$RESADD" token create --scope read --data-dir "$T/data" 2>/dev/null)
check "tokens created" [ ${#ADMIN} -eq 67 -a ${#INSP} -eq 67 -a ${#READ} -eq 67 ]
check "token stored hashed" bash -c "! grep -qa '${ADMIN:3}' '$T/data/resadd.db'"
printf 'auth = on\n' > "$T/auth.conf"
start_resadd --config "$T/auth.conf"
a() { echo "Authorization: Bearer $1"; }
req GET /v1/classes
expect "no token" 401 unauthorized
req GET /v1/classes -H "$(a rd_0000)"
expect "unknown token" 401 unauthorized
req GET /healthz
expect "healthz open" 200
req GET /v1/classes -H "$(a "$READ")"
expect "read token reads" 200
req POST /v1/classes/part/inspections -H "$(a "$READ")" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "read token cannot inspect" 403 forbidden
req POST /v1/classes/part/inspections -H "$(a "$INSP")" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "inspect token inspects" 200
req POST /v1/classes "${J[@]}" -H "$(a "$INSP")" -d '{"name":"other"}'
expect "inspect token cannot create classes" 403 forbidden
req DELETE /v1/classes/part/references/1 -H "$(a "$READ")"
expect "read token cannot delete" 403 forbidden
req POST /v1/classes "${J[@]}" -H "$(a "$ADMIN")" -d '{"name":"other"}'
expect "admin token creates classes" 201
TID=$("$RESADD" token list --data-dir "$T/data" | $PY -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["scope"]=="read"][0])')
"$RESADD" token revoke "$TID" --data-dir "$T/data" 2>/dev/null
req GET /v1/classes -H "$(a "$READ")"
expect "revoked token" 401 unauthorized
stop_resadd

# auth = auto on a non-loopback address: required (0.0.0.0 also serves 127.0.0.1)
PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"$RESADD" --listen "0.0.0.0:$PORT" --data-dir "$T/data" 2>>"$T/resadd.log" & PID=$!
for _ in $(seq 200); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
req GET /v1/classes
expect "non-loopback listen requires auth by default" 401 unauthorized
stop_resadd

# config errors
"$RESADD" --config "$T/missing.conf" --data-dir "$T/data" 2>"$T/err"; rc=$?
check "missing --config file is an error (exit $rc)" [ "$rc" -ne 0 ]
check "it says so" grep -q "missing.conf" "$T/err"
printf 'workers = many\n' > "$T/bad.conf"
"$RESADD" --config "$T/bad.conf" 2>"$T/err"; rc=$?
check "bad config value is an error naming the line" grep -q "bad.conf:1" "$T/err"
done_test
