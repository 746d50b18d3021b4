#!/usr/bin/env bash
# tests/daemon_bigframe.sh — big camera frames cost decode, not inference
# (issue 9 item 6, issue 13 item 2), through the daemon:
#  * a 4000x3000 JPEG inspected by a 4:3 class (references 800x600) is decoded
#    reduced (DCT 1/4: 1000x750, >= 2 decoded pixels per working pixel) and the result still says 4000x3000, with a
#    decode time in timings_ms;
#  * the decoded-pixel budget counts the reduced size: with
#    max_inflight_megapixels = 2 the 12 MP frame is inspected (a full-size
#    decode could never fit);
#  * heatmaps (raw, mask, overlay) render at the original 4000x3000 geometry;
#    the retained image copy is the uploaded JPEG itself (byte for byte), so
#    the overlay is drawn over the frame as sent;
#  * the drawn defect still scores above the clean frame and its region lies
#    on the defect, in original pixels;
#  * a 1600x1200 PNG (rows box-averaged 1/2 as read) reports 1600x1200 and
#    its overlay is resized up to 1600x1200 from the reduced copy.
. "$(dirname "$0")/daemon_lib.sh"
[ -f /usr/share/games/openarena/baseoa/pak4-textures.pk3 ] || { echo "openarena-081-textures missing: skip"; exit 77; }
I=$T/img
mkdir -p "$I"
# a 4:3 scene tiled from real photographs; references and the parts differ
# by sensor noise; the defect is a dark scratch at x 1800..2600, y 1400..1440
$PY - "$I" <<'PY' || exit 1
import io, sys, zipfile
import numpy as np
from PIL import Image, ImageDraw
d = sys.argv[1]
z = zipfile.ZipFile("/usr/share/games/openarena/baseoa/pak4-textures.pk3")
tex = Image.open(io.BytesIO(z.read("textures/base_floor/clang_floor.jpg"))).convert("RGB")
scene = Image.new("RGB", (4000, 3000))
for y in range(0, 3000, tex.size[1]):
    for x in range(0, 4000, tex.size[0]):
        scene.paste(tex, (x, y))
rng = np.random.default_rng(0)
def noisy(im):
    a = np.asarray(im).astype(np.int16) + rng.integers(-4, 5, (im.size[1], im.size[0], 3), dtype=np.int16)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))
small = scene.resize((800, 600), Image.BICUBIC)
for i in range(4):
    noisy(small).save(f"{d}/ref{i}.jpg", quality=92)
good = noisy(scene)
good.save(f"{d}/good.jpg", quality=90)
bad = good.copy()
ImageDraw.Draw(bad).rectangle([1800, 1400, 2600, 1440], fill=(20, 20, 20))
bad.save(f"{d}/defect.jpg", quality=90)
noisy(scene.resize((1600, 1200), Image.BICUBIC)).save(f"{d}/part.png")
PY
png_size() { $PY -c 'import struct,sys; b=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", b[16:24]) if b[:8] == b"\x89PNG\r\n\x1a\n" else "not-a-png")' "$1"; }
printf 'workers = 1\nmax_inflight_megapixels = 2\nkeep_images = last 100\n' > "$T/b.conf"
start_resadd --config "$T/b.conf"
req POST /v1/classes -H 'Content-Type: application/json' -d '{"name":"plate43"}'
req POST /v1/classes/plate43/references -F "a=@$I/ref0.jpg" -F "b=@$I/ref1.jpg" -F "c=@$I/ref2.jpg" -F "d=@$I/ref3.jpg"
expect "register four 800x600 references" 201
for f in good defect; do
    req POST /v1/classes/plate43/inspections -H 'Content-Type: image/jpeg' --data-binary "@$I/$f.jpg"
    expect "inspect the 4000x3000 $f JPEG within a 2 MP decoding budget" 200
    cp "$T/body" "$T/$f.json"
done
BODY=$(cat "$T/defect.json"); cp "$T/defect.json" "$T/body"
check "the result has the displayed 4000x3000 and a decode time" \
    [ "$(jget 'j["width"], j["height"], j["timings_ms"]["decode"] > 0')" = "(4000, 3000, True)" ]
DID=$(jget 'j["id"]')
GOOD=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["score"])' "$T/good.json")
echo "scores: clean $GOOD, defect $(jget 'j["score"]'); decode $(jget 'j["timings_ms"]["decode"]') ms of $(jget 'j["timings_ms"]["total"]') ms"
check "the defect scores above the clean frame" [ "$(jget "j['score'] > $GOOD")" = True ]
check "the largest region lies on the scratch (original pixels)" \
    [ "$(jget '(r := j["regions"][0]["bbox"]) and r[0] < 2600 and r[0] + r[2] > 1800 and r[1] < 1440 and r[1] + r[3] > 1400')" = True ]
for k in raw mask overlay; do
    CODE=$(curl -s -o "$T/h.$k.png" -w '%{http_code}' "$URL/v1/inspections/$DID/heatmap.png?kind=$k")
    check "heatmap $k is 200 at the original 4000x3000" [ "$CODE $(png_size "$T/h.$k.png")" = "200 4000x3000" ]
done
CODE=$(curl -s -o "$T/copy.jpg" -w '%{http_code}' "$URL/v1/inspections/$DID/image")
same=$(cmp -s "$T/copy.jpg" "$I/defect.jpg" && echo same)
check "the retained copy is the uploaded JPEG" [ "$CODE $same" = "200 same" ]
req POST /v1/classes/plate43/inspections -H 'Content-Type: image/png' --data-binary "@$I/part.png"
expect "inspect a 1600x1200 PNG" 200
PID2=$(jget 'j["id"]')
check "the PNG result says 1600x1200" [ "$(jget 'j["width"], j["height"]')" = "(1600, 1200)" ]
CODE=$(curl -s -o "$T/p.overlay.png" -w '%{http_code}' "$URL/v1/inspections/$PID2/heatmap.png?kind=overlay")
check "the PNG's overlay is at 1600x1200" [ "$CODE $(png_size "$T/p.overlay.png")" = "200 1600x1200" ]
stop_resadd
done_test
