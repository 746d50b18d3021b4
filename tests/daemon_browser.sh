#!/usr/bin/env bash
# tests/daemon_browser.sh — what a browser needs, over real HTTP with auth on:
# CORS for the configured origins only (preflight 204 with the route's
# methods; other origins get no CORS headers), short-lived signed URLs that
# open GET image routes without a token (and nothing else; tampered, expired
# or other-path signatures refused), ETag + Cache-Control on images with 304
# on If-None-Match, and GET /v1/inspections/{id}/image (the retained copy;
# 404 image_not_retained with keep_images = off).
. "$(dirname "$0")/daemon_lib.sh"
BODY=
make_images
I=$T/img
start_resadd
stop_resadd
ADMIN=$("$RESADD" token create --scope admin --data-dir "$T/data" 2>/dev/null)
A="Authorization: Bearer $ADMIN"
printf 'auth = on\ncors_origins = http://mes.example https://wall.example:8443\n' > "$T/auth.conf"
start_resadd --config "$T/auth.conf"
req POST /v1/classes -H "$A" -H 'Content-Type: application/json' -d '{"name":"web"}'
expect "create class" 201
req POST /v1/classes/web/references -H "$A" -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg"
expect "references" 201
req POST /v1/classes/web/inspections -H "$A" -H 'Content-Type: image/jpeg' --data-binary "@$I/defect.jpg"
expect "inspect" 200
ID=$(jget 'j["id"]')

# ---- CORS ----
hdr() { curl -s -D - -o /dev/null "$@" | tr -d '\r'; }
H=$(hdr -X OPTIONS "$URL/v1/classes/web/inspections" -H 'Origin: http://mes.example' -H 'Access-Control-Request-Method: POST')
check "preflight: 204" grep -q '^HTTP/1.1 204' <<<"$H"
check "preflight: the origin allowed" grep -qi '^Access-Control-Allow-Origin: http://mes.example$' <<<"$H"
check "preflight: the route's methods" grep -qi '^Access-Control-Allow-Methods: POST$' <<<"$H"
check "preflight: Authorization may be sent" grep -qi '^Access-Control-Allow-Headers: .*Authorization' <<<"$H"
H=$(hdr "$URL/v1/classes" -H "$A" -H 'Origin: https://wall.example:8443')
check "GET from the second origin: allowed, Vary: Origin" bash -c "grep -qi '^Access-Control-Allow-Origin: https://wall.example:8443$' <<<'$H' && grep -qi '^Vary: Origin' <<<'$H'"
H=$(hdr "$URL/v1/classes" -H "$A" -H 'Origin: http://evil.example')
check "another origin gets no CORS header" bash -c "! grep -qi '^Access-Control-Allow-Origin' <<<'$H'"
H=$(hdr "$URL/v1/classes" -H "$A" -H 'Origin: http://mes.exampl')
check "a prefix of an origin is not that origin" bash -c "! grep -qi '^Access-Control-Allow-Origin' <<<'$H'"
req OPTIONS /v1/classes -H 'Origin: http://evil.example'
expect "OPTIONS from another origin is not a preflight" 405 method_not_allowed

# ---- signed URLs ----
req GET "/v1/signed-url?path=/v1/inspections/$ID/heatmap.png&kind=mask&ttl=60"
expect "a signed URL needs a token itself" 401 unauthorized
req GET "/v1/signed-url?path=/v1/inspections/$ID/heatmap.png&kind=mask&ttl=60" -H "$A"
expect "sign the mask heatmap" 200
SU=$(jget 'j["url"]')
check "signed URL shape" grep -Eq "^/v1/inspections/$ID/heatmap.png\?kind=mask&exp=[0-9]+&sig=[0-9a-f]{64}$" <<<"$SU"
req GET "$SU"
expect "the signed URL opens without a token" 200
curl -s -o "$T/mask-signed.png" "$URL$SU"
curl -s -o "$T/mask-token.png" -H "$A" "$URL/v1/inspections/$ID/heatmap.png?kind=mask"
check "same bytes as with the token" cmp -s "$T/mask-signed.png" "$T/mask-token.png"
req GET "${SU/kind=mask/kind=raw}"
expect "another kind with the same signature" 401 unauthorized
req GET "${SU%?}0"
[ "${SU: -1}" = 0 ] && req GET "${SU%?}1"
expect "a tampered signature" 401 unauthorized
OTHER=$((ID + 1))
req GET "${SU/inspections\/$ID/inspections\/$OTHER}"
expect "the signature on another inspection's path" 401 unauthorized
req GET "/v1/inspections/$ID?exp=${SU##*exp=}"
expect "signatures do not open JSON routes" 401 unauthorized
req GET "/v1/signed-url?path=/v1/classes" -H "$A"
expect "only image routes can be signed" 400 bad_request
req GET "/v1/signed-url?path=/v1/inspections/$ID/heatmap.png&ttl=1" -H "$A"
SHORT=$(jget 'j["url"]')
sleep 2.1
req GET "$SHORT"
expect "an expired signed URL" 401 unauthorized
req GET "/v1/signed-url?path=/v1/classes/web/references/1" -H "$A"
SR=$(jget 'j["url"]')
req GET "$SR"
expect "a signed reference image" 200

# ---- ETag / Cache-Control ----
H=$(hdr -H "$A" "$URL/v1/classes/web/references/1")
ETAG=$(sed -n 's/^ETag: //Ip' <<<"$H")
check "reference image: ETag" [ -n "$ETAG" ]
check "reference image: immutable" grep -qi '^Cache-Control: private, max-age=31536000, immutable' <<<"$H"
rm -f "$T/body"
req GET /v1/classes/web/references/1 -H "$A" -H "If-None-Match: $ETAG"
expect "If-None-Match: 304" 304
check "304 has no body" [ ! -s "$T/body" ]
H=$(hdr -H "$A" "$URL/v1/inspections/$ID/heatmap.png")
check "heatmap: ETag and revalidation (no-cache)" bash -c "grep -qi '^ETag: \"' <<<'$H' && grep -qi '^Cache-Control: private, no-cache' <<<'$H'"
H=$(hdr -H "$A" "$URL/v1/classes")
check "JSON stays no-store" grep -qi '^Cache-Control: no-store' <<<"$H"

# ---- the original image ----
curl -s -o "$T/orig.jpg" -w '%{http_code} %{content_type}' -H "$A" "$URL/v1/inspections/$ID/image" > "$T/code"
check "GET .../image: 200 image/jpeg (the retained copy)" [ "$(cat "$T/code")" = "200 image/jpeg" ]
check "... of the inspected image's size" $PY -c "
from PIL import Image; a = Image.open('$T/orig.jpg'); b = Image.open('$I/defect.jpg'); assert a.size == b.size, (a.size, b.size)"
curl -s -o "$T/thumb.jpg" -w '%{http_code} %{content_type}' -H "$A" "$URL/v1/inspections/$ID/image?kind=thumbnail" > "$T/code"
check "?kind=thumbnail: 200 image/jpeg" [ "$(cat "$T/code")" = "200 image/jpeg" ]
check "... long side 256 at most, the image's aspect, close to its downscaled pixels" $PY -c "
from PIL import Image, ImageChops, ImageStat
t = Image.open('$T/thumb.jpg').convert('RGB'); o = Image.open('$I/defect.jpg').convert('RGB')
assert max(t.size) == min(256, max(o.size)) and abs(t.size[0] / t.size[1] - o.size[0] / o.size[1]) < 0.02, (t.size, o.size)
ref = o.resize(t.size, Image.BICUBIC)
d = ImageStat.Stat(ImageChops.difference(t, ref)).mean
assert max(d) < 8, d"
req GET "/v1/inspections/$ID/image?kind=huge" -H "$A"
expect "unknown kind" 400 bad_request
req GET /v1/inspections/999999/image -H "$A"
expect "image of a missing inspection" 404 not_found
stop_resadd
printf 'auth = on\nkeep_images = off\n' > "$T/off.conf"
start_resadd --config "$T/off.conf"
req POST /v1/classes/web/inspections -H "$A" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg"
expect "inspect with keep_images = off" 200
NID=$(jget 'j["id"]')
req GET "/v1/inspections/$NID/image" -H "$A"
expect "no retained copy" 404 image_not_retained
stop_resadd
[ "$FAILS" -eq 0 ] || exit 1
echo "PASS"
