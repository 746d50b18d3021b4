#!/bin/bash
# daemon_roi.sh — a class's ROI mask image through the daemon (issue 9, item
# 2): PUT /v1/classes/{name}/roi-mask stores a 16:9 mask whose right third is
# black and GET returns it byte for byte; the class view shows its size; with
# 16:9 references, a strong defect drawn only in the masked-out third is not
# anomalous and scores about as the clean frame, inspected_fraction is ~2/3,
# the overlay is grey and the raw heatmap's alpha 0 there, and the same defect
# inside the mask scores higher; after a restart (the set restored from the
# stored calibration) the scores are the same.  Refused, with a JSON error and
# nothing stored: a mask once the class has references (409), a 4:3 mask at
# the first 16:9 references (422 geometry_mismatch naming both), an all-black
# mask (422 bad_geometry), a mask white only outside the ROI rectangle (422
# bad_geometry at the first references), a truncated PNG (422 invalid_image),
# another content type (415).  DELETE removes a mask while the class has no references.
. "$(dirname "$0")/daemon_lib.sh"
PK3=/usr/share/games/openarena/baseoa/pak4-textures.pk3
[ -f "$PK3" ] || { echo "openarena-081-textures missing: skip"; exit 77; }
I="$T/img"
mkdir -p "$I"
# 512x288 frames cut from the seamless steel diamond-plate texture (as daemon_geometry.sh)
$PY - "$I" "$PK3" <<'PYEOF' || exit 1
import io, random, sys, zipfile
from PIL import Image, ImageDraw, ImageFilter
out, pk3 = sys.argv[1], sys.argv[2]
tex = Image.open(io.BytesIO(zipfile.ZipFile(pk3).read("textures/base_floor/clang_floor.jpg"))).convert("RGB")
rng = random.Random(11)
W, H = 512, 288
nx, ny = W // tex.size[0] + 2, H // tex.size[1] + 2
big = Image.new("RGB", (tex.size[0] * nx, tex.size[1] * ny))
for i in range(nx):
    for j in range(ny):
        big.paste(tex, (i * tex.size[0], j * tex.size[1]))
def frame():
    x, y = rng.randrange(tex.size[0]), rng.randrange(tex.size[1])
    f = rng.uniform(0.94, 1.06)
    return big.crop((x, y, x + W, y + H)).point(lambda v: max(0, min(255, int(v * f))))
def defect(im, cx):
    # a bright scratch and a dark stain around x = cx
    d = ImageDraw.Draw(im)
    d.line([(cx - 12 + k * 0.5, 90 + k * 3) for k in range(36)], fill=(240, 240, 228), width=7)
    st = Image.new("L", im.size, 0)
    ImageDraw.Draw(st).ellipse((cx - 28, 200, cx + 28, 256), fill=200)
    return Image.composite(Image.new("RGB", im.size, (20, 15, 10)), im, st.filter(ImageFilter.GaussianBlur(6)))
for i in range(4): frame().save(f"{out}/ref{i}.png")
frame().save(f"{out}/good.png")
base = frame()
base.save(f"{out}/base.png")
defect(base.copy(), 455).save(f"{out}/out.png")   # inside the masked-out right third (x >= 342)
defect(base.copy(), 130).save(f"{out}/in.png")    # inside the mask
m = Image.new("L", (320, 180), 255)
ImageDraw.Draw(m).rectangle((214, 0, 319, 179), fill=0)
m.save(f"{out}/mask.png")
m.convert("RGB").save(f"{out}/mask.jpg", quality=95)
Image.eval(m, lambda v: 255 - v).save(f"{out}/right.png")
Image.new("L", (240, 180), 255).save(f"{out}/mask43.png")
Image.new("L", (320, 180), 0).save(f"{out}/black.png")
raw = open(f"{out}/mask.png", "rb").read()
open(f"{out}/trunc.png", "wb").write(raw[: len(raw) // 2])
PYEOF
start_resadd
JSONH=(-H 'Content-Type: application/json')
refs() { # refs CLASS FILE... → multipart registration
    local c=$1; shift
    local a=() k=0
    for f in "$@"; do a+=(-F "r$k=@$f"); k=$((k + 1)); done
    req POST "/v1/classes/$c/references" "${a[@]}"
}
put_mask() { req PUT "/v1/classes/$1/roi-mask" -H "Content-Type: ${3:-image/png}" --data-binary "@$2"; }
inspect() { req POST "/v1/classes/$1/inspections" -H 'Content-Type: image/png' --data-binary "@$2"; }
# of the last inspection's heatmaps, over the masked-out third (x >= 360):
# "overlay-pixels-not-grey raw-max-alpha", and over the inspected part: "raw-max-alpha"
masked() {
    local id
    id=$(jget 'j["id"]')
    curl -s -o "$T/ov.png" "$URL/v1/inspections/$id/heatmap.png?kind=overlay"
    curl -s -o "$T/raw.png" "$URL/v1/inspections/$id/heatmap.png?kind=raw"
    $PY -c "
import numpy as np; from PIL import Image
ov = np.asarray(Image.open('$T/ov.png').convert('RGB')).astype(int)
raw = np.asarray(Image.open('$T/raw.png').convert('RGBA'))
o = ov[:, 360:]
print(int(((o.max(axis=2) - o.min(axis=2)) > 0).sum()), int(raw[:, 360:, 3].max()), int(raw[:, :320, 3].max()))"
}

# ---- a 16:9 class whose right third is masked out ----
req POST /v1/classes "${JSONH[@]}" -d '{"name":"m"}'
expect "create m" 201
req GET /v1/classes/m/roi-mask
expect "no mask yet" 404 not_found
put_mask m "$I/mask.png"
expect "PUT a 320x180 mask" 200
check "the class view shows its size" [ "$(jget 'j["geometry"]["roi_mask"]')" = "{'width': 320, 'height': 180}" ]
req GET /v1/classes/m/roi-mask
expect "GET the mask" 200
check "the mask comes back byte for byte" cmp -s "$T/body" "$I/mask.png"
CT=$(curl -s -o /dev/null -w '%{content_type}' "$URL/v1/classes/m/roi-mask")
check "as image/png ($CT)" [ "$CT" = image/png ]
refs m "$I"/ref{0,1,2,3}.png
expect "4 references of 512x288" 201
req GET /v1/classes/m
check "geometry fixed, mask kept" [ "$(jget 'j["references"], j["geometry"]["fixed"], j["geometry"]["roi_mask"]')" = "(4, True, {'width': 320, 'height': 180})" ]
inspect m "$I/base.png"
expect "inspect the clean frame" 200
CLEAN=$(jget 'j["score"]')
check "clean: ok, inspected_fraction ~2/3 ($(jget 'j["inspected_fraction"]'))" [ "$(jget 'j["anomalous"], 0.6 < j["inspected_fraction"] < 0.72')" = "(False, True)" ]
inspect m "$I/out.png"
expect "inspect a defect in the masked-out third" 200
OUT=$(jget 'j["score"]')
check "masked-out defect not anomalous (score $OUT, clean $CLEAN, threshold $(jget 'j["threshold"]'))" [ "$(jget 'j["anomalous"], abs(j["score"] - '"$CLEAN"') <= 0.1 * '"$CLEAN"' + 0.05')" = "(False, True)" ]
read -r NG AOUT AIN <<<"$(masked)"
check "overlay grey over the masked-out third ($NG coloured pixels)" [ "$NG" = 0 ]
check "raw heatmap alpha 0 there ($AOUT), not where inspected ($AIN)" [ "$AOUT" = 0 ] && [ "$AIN" -gt 0 ]
inspect m "$I/in.png"
expect "inspect the same defect inside the mask" 200
IN=$(jget 'j["score"]')
check "inside the mask it scores higher ($IN vs $OUT) and is anomalous" [ "$(jget 'j["anomalous"], j["score"] > '"$OUT"'')" = "(True, True)" ]

# ---- fixed once the class has references ----
put_mask m "$I/mask43.png"
expect "PUT a mask after the references" 409 conflict
req DELETE /v1/classes/m/roi-mask
expect "DELETE the mask after the references" 409 conflict
req GET /v1/classes/m/roi-mask
check "the mask is unchanged" cmp -s "$T/body" "$I/mask.png"

# ---- refused masks: nothing stored ----
req POST /v1/classes "${JSONH[@]}" -d '{"name":"m43"}'
expect "create m43" 201
put_mask m43 "$I/mask43.png"
expect "PUT a 4:3 mask (the frame is not known yet)" 200
refs m43 "$I"/ref{0,1}.png
expect "16:9 references under a 4:3 mask" 422 geometry_mismatch
check "the error names both geometries" grep -q '240x180.*512x288' "$T/body"
req GET /v1/classes/m43
check "m43 still has no references nor geometry" [ "$(jget 'j["references"], j["geometry"]["fixed"]')" = "(0, False)" ]
req DELETE /v1/classes/m43/roi-mask
expect "DELETE the mask while there are no references" 200
check "the view says no mask" [ "$(jget 'j["geometry"]["roi_mask"]')" = None ]
req GET /v1/classes/m43/roi-mask
expect "GET after DELETE" 404 not_found
req DELETE /v1/classes/m43/roi-mask
expect "DELETE a missing mask" 404 not_found
refs m43 "$I"/ref{0,1}.png
expect "without the mask the references register" 201
put_mask m43 "$I/mask.png"
expect "m43: a mask after its references" 409 conflict
req POST /v1/classes "${JSONH[@]}" -d '{"name":"left","geometry":{"roi":[0,0,256,288]}}'
expect "create a class whose ROI rectangle is the left half" 201
put_mask left "$I/right.png"
expect "PUT a mask white only in the right third" 200
refs left "$I"/ref{0,1}.png
expect "the mask inspects nothing inside the ROI rectangle" 422 bad_geometry
req GET /v1/classes/left
check "left has no references" [ "$(jget 'j["references"], j["geometry"]["fixed"]')" = "(0, False)" ]
req POST /v1/classes "${JSONH[@]}" -d '{"name":"bad"}'
expect "create bad" 201
put_mask bad "$I/black.png"
expect "an all-black mask" 422 bad_geometry
put_mask bad "$I/trunc.png"
expect "a truncated PNG mask" 422 invalid_image
req PUT /v1/classes/bad/roi-mask -H 'Content-Type: text/plain' --data-binary "@$I/mask.png"
expect "a mask of another content type" 415 unsupported_media_type
req PUT /v1/classes/nope/roi-mask -H 'Content-Type: image/png' --data-binary "@$I/mask.png"
expect "a mask for no class" 404 not_found
req GET /v1/classes/bad
check "bad has no mask" [ "$(jget 'j["geometry"]["roi_mask"]')" = None ]
put_mask bad "$I/mask.jpg" image/jpeg
expect "a JPEG mask" 200

# ---- after a restart: the set restored with its mask ----
stop_resadd
start_resadd
inspect m "$I/out.png"
expect "inspect the masked-out defect after a restart" 200
check "same score after a restart ($(jget 'j["score"]') vs $OUT)" [ "$(jget 'abs(j["score"] - '"$OUT"') < 1e-4, 0.6 < j["inspected_fraction"] < 0.72')" = "(True, True)" ]
stop_resadd
done_test
