#!/usr/bin/env bash
# tests/daemon_dashboard.sh — the built-in dashboard (GET /) in a real browser:
# Debian's chromium, headless, against a running daemon with auth on.  Creates
# a class with references, inspects a good and a defective part, loads the
# page with a read token (passed once as #token=..., which the page moves to
# sessionStorage) and checks in the DOM after the scripts ran that the class
# card (threshold, geometry, ROI mask and reference thumbnails), the stats row and both fresh
# inspections (verdicts, heatmap thumbnails) are there, and that without a
# token the page asks for one.  Saves a screenshot to $top_builddir/dashboard.png
# (docs/dashboard.png is a copy).  Skips (77), saying so, without chromium.
. "$(dirname "$0")/daemon_lib.sh"
BODY=
CHROME=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROME" ] || { echo "SKIP: chromium is not installed (apt-get install chromium): dashboard not tested in a browser"; exit 77; }
make_images
I=$T/img
start_resadd
req GET /
expect "GET / is the dashboard" 200
check "dashboard is HTML with its script" grep -q '<script src="/dashboard/app.js">' "$T/body"
req GET /dashboard/app.js
expect "the script" 200
stop_resadd
ADMIN=$("$RESADD" token create --scope admin --data-dir "$T/data" 2>/dev/null)
READ=$("$RESADD" token create --scope read --data-dir "$T/data" 2>/dev/null)
printf 'auth = on\n' > "$T/auth.conf"
start_resadd --config "$T/auth.conf"
A="Authorization: Bearer $ADMIN"
req POST /v1/classes -H "$A" -H 'Content-Type: application/json' -d '{"name":"dash-panel","description":"steel plate"}'
expect "create class" 201
# a ROI mask: everything but an 8-pixel strip at the right edge (the defect stays inspected)
$PY -c "
from PIL import Image, ImageDraw
w, h = Image.open('$I/ref1.jpg').size
m = Image.new('L', (w, h), 255); ImageDraw.Draw(m).rectangle([w - 8, 0, w - 1, h - 1], fill=0); m.save('$T/mask.png')"
req PUT /v1/classes/dash-panel/roi-mask -H "$A" -H 'Content-Type: image/png' --data-binary "@$T/mask.png"
expect "ROI mask" 200
req POST /v1/classes/dash-panel/references -H "$A" -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "references" 201
req POST /v1/classes/dash-panel/inspections -H "$A" -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-good-1' --data-binary "@$I/good.jpg"
expect "inspect good part" 200
GID=$(jget 'j["id"]')
req POST /v1/classes/dash-panel/inspections -H "$A" -H 'Content-Type: image/jpeg' -H 'X-Request-Id: part-bad-2' --data-binary "@$I/defect.jpg"
expect "inspect defective part" 200
BID=$(jget 'j["id"]')
NREG=$(jget 'len(j.get("regions") or [])')
BOX=$(jget '" ".join(str(v) for v in j["regions"][0]["bbox"]) if j.get("regions") else ""')

# --virtual-time-budget runs the page's timers and fetches before the dump
chrome() { timeout 90 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions \
    --user-data-dir="$T/chrome" --disable-dev-shm-usage --virtual-time-budget=6000 --window-size=1280,900 "$@" 2>>"$T/chrome.log"; }
chrome --dump-dom "$URL/#token=$READ" > "$T/dom.html"
check "page ran (data-loaded set)" grep -q 'data-loaded="1"' "$T/dom.html"
check "class card shows the class" grep -q 'class="card" data-class="dash-panel"' "$T/dom.html"
check "class card shows the geometry and the mask" grep -q 'class="geo muted">frame [0-9]*×[0-9]* → grid [0-9]*×[0-9]* · ROI mask [0-9]*×[0-9]*<' "$T/dom.html"
check "class card shows the ROI mask image" grep -q 'class="mask" title="ROI mask: white is inspected" alt="ROI mask" src="blob:' "$T/dom.html"
check "class card has 4 reference thumbnails" [ "$(grep -o 'alt="reference [0-9]*" src="blob:' "$T/dom.html" | wc -l)" -eq 4 ]
check "stats row for the class" grep -q '<tr data-class="dash-panel"><td>dash-panel</td><td>2</td><td>1</td><td>50.0 %</td>' "$T/dom.html"
check "feed row of the good part, verdict good" grep -q "id=\"insp-$GID\".*part-good-1.*class=\"ok\">good<" "$T/dom.html"
check "feed row of the defect, verdict anomalous" grep -q "id=\"insp-$BID\".*part-bad-2.*class=\"bad\">ANOMALOUS<" "$T/dom.html"
check "heatmap thumbnails loaded with the token" [ "$(grep -o 'alt="heatmap [0-9]*" src="blob:' "$T/dom.html" | wc -l)" -eq 2 ]
check "token not left in the URL or the DOM" bash -c "! grep -q '${READ:4}' '$T/dom.html'"
# the detail view of the defect (#inspection=ID opens it): overlay and its regions drawn
rm -rf "$T/chrome"
chrome --dump-dom "$URL/#token=$READ&inspection=$BID" > "$T/dom-detail.html"
check "detail view of the defect: overlay, $NREG region(s) drawn, first at [$BOX]" $PY - "$T/dom-detail.html" "$BID" "$NREG" "$BOX" <<'PYEOF'
import re, sys
dom, bid, nreg, box = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
assert '<div id="detail">' in dom, "detail not open"
assert re.search(r'<h2 id="detail-title">#%s ' % bid, dom), "detail title"
stage = dom.split('id="stage-overlay"', 1)[1].split('</figure>', 1)[0]
assert re.search(r'<img[^>]*alt="overlay"[^>]*src="blob:', stage), "overlay image"
rects = re.findall(r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', stage)
assert nreg >= 1 and len(rects) == nreg, (len(rects), nreg)
assert list(rects[0]) == box, (rects[0], box)
PYEOF
# a fresh profile without the token: the page asks for one and shows no class
rm -rf "$T/chrome"
chrome --dump-dom "$URL/" > "$T/dom-anon.html"
check "without a token the page asks for one" grep -q '<form id="login">' "$T/dom-anon.html"
check "without a token no class is shown" bash -c "! grep -q 'data-class=\"dash-panel\"' '$T/dom-anon.html'"
rm -rf "$T/chrome"
chrome --screenshot="$T/dashboard.png" "$URL/#token=$READ" >/dev/null
check "screenshot saved" $PY -c "
from PIL import Image; im = Image.open('$T/dashboard.png'); assert im.size == (1280, 900), im.size
assert len(set(im.convert('RGB').resize((64, 64)).getdata())) > 20, 'blank page'"
cp "$T/dashboard.png" "$top_builddir/dashboard.png" 2>/dev/null
stop_resadd
[ "$FAILS" -eq 0 ] || { tail -20 "$T/chrome.log"; exit 1; }
echo "PASS (screenshot: $top_builddir/dashboard.png)"
