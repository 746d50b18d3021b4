#!/bin/bash
# daemon_geometry.sh — whole-frame inspection at camera geometry through the
# daemon (issue 9): a class's geometry is fixed by its first reference and
# shown by GET /v1/classes/{name}; a 1920x1080 class (4 references) detects a
# defect within 20 px of the left edge and one at the right edge, both hot in
# the raw heatmap at the defect, the clean frame ok; an image of another
# aspect ratio is 422 geometry_mismatch naming both geometries, accepted by
# fit=pad / fit=crop classes (crop reports left_out_fraction); a ROI class
# reports inspected_fraction < 1 and its raw heatmap has alpha 0 outside; a
# ROI outside the frame and a working size over the limits are 422 with
# nothing stored; a class whose stored features are stale and whose geometry
# is missing (as made before this release) is re-extracted at the whole frame
# at start-up and its geometry recorded.
. "$(dirname "$0")/daemon_lib.sh"
PK3=/usr/share/games/openarena/baseoa/pak4-textures.pk3
[ -f "$PK3" ] || { echo "openarena-081-textures missing: skip"; exit 77; }
I="$T/img"
mkdir -p "$I"
# frames cut from the seamless steel diamond-plate texture (as tests/test_geometry_cli.py)
$PY - "$I" "$PK3" <<'PYEOF' || exit 1
import io, random, sys, zipfile
from PIL import Image, ImageDraw, ImageFilter
out, pk3 = sys.argv[1], sys.argv[2]
tex = Image.open(io.BytesIO(zipfile.ZipFile(pk3).read("textures/base_floor/clang_floor.jpg"))).convert("RGB")
rng = random.Random(7)
def frames(t, w, h):
    nx, ny = w // t.size[0] + 2, h // t.size[1] + 2
    big = Image.new("RGB", (t.size[0] * nx, t.size[1] * ny))
    for i in range(nx):
        for j in range(ny):
            big.paste(t, (i * t.size[0], j * t.size[1]))
    def one():
        x, y = rng.randrange(t.size[0]), rng.randrange(t.size[1])
        f = rng.uniform(0.94, 1.06)
        return big.crop((x, y, x + w, y + h)).point(lambda v: max(0, min(255, int(v * f))))
    return one
def defect(im, x0, flip):
    # a scratch and a stain centred 20 px from the left edge (mirrored for the right)
    if flip: im = im.transpose(Image.FLIP_LEFT_RIGHT)
    d = ImageDraw.Draw(im)
    d.line([(x0 - 10 + k * 0.6, 450 + k * 4) for k in range(45)], fill=(240, 240, 228), width=10)
    st = Image.new("L", im.size, 0)
    ImageDraw.Draw(st).ellipse((x0 - 45, 555, x0 + 45, 645), fill=180)
    im = Image.composite(Image.new("RGB", im.size, (20, 15, 10)), im, st.filter(ImageFilter.GaussianBlur(10)))
    return im.transpose(Image.FLIP_LEFT_RIGHT) if flip else im
hd = frames(tex.resize((512, 512), Image.BICUBIC), 1920, 1080)
for i in range(4): hd().save(f"{out}/hd_ref{i}.jpg", quality=92)
hd().save(f"{out}/hd_good.jpg", quality=92)
defect(hd(), 20, False).save(f"{out}/hd_left.jpg", quality=92)
defect(hd(), 20, True).save(f"{out}/hd_right.jpg", quality=92)
hd().crop((0, 0, 1440, 1080)).save(f"{out}/hd_43.jpg", quality=92)
sm = frames(tex, 512, 288)
for i in range(4): sm().save(f"{out}/ref{i}.png")
sm().save(f"{out}/good.png")
sm().crop((0, 0, 384, 288)).save(f"{out}/good_43.png")
PYEOF
start_resadd
JSONH=(-H 'Content-Type: application/json')
refs() { # refs CLASS FILE... → multipart registration
    local c=$1; shift
    local a=() k=0
    for f in "$@"; do a+=(-F "r$k=@$f"); k=$((k + 1)); done
    req POST "/v1/classes/$c/references" "${a[@]}"
}
inspect() { req POST "/v1/classes/$1/inspections" -H "Content-Type: image/${2##*.}" --data-binary "@$2"; }
inspect_jpg() { req POST "/v1/classes/$1/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$2"; }
# hot spot of the raw heatmap of the last inspection: "x y alpha-at-(x0,y0)"
hot() {
    curl -s -o "$T/raw.png" "$URL/v1/inspections/$(jget 'j["id"]')/heatmap.png?kind=raw"
    $PY -c "
from PIL import Image
im = Image.open('$T/raw.png').convert('LA'); px = im.load(); W, H = im.size
v, x, y = max((px[x, y][0], x, y) for y in range(0, H, 2) for x in range(0, W, 2))
print(W, H, x, y, px[${1:-0}, ${2:-0}][1])"
}

# ---- a 1920x1080 class ----
req POST /v1/classes "${JSONH[@]}" -d '{"name":"hd"}'
expect "create hd" 201
check "geometry not fixed before the first reference" [ "$(jget 'j["geometry"]["fixed"]')" = False ]
refs hd "$I"/hd_ref{0,1,2,3}.jpg
expect "4 references of 1920x1080" 201
req GET /v1/classes/hd
check "hd geometry: frame, aspect, working grid, fit, roi" [ "$(jget '[(g["fixed"], g["frame"], round(g["aspect"], 3), g["working"], g["fit"], g["roi"], g["alpha"]) for g in [j["geometry"]]][0]')" = "(True, {'width': 1920, 'height': 1080}, 1.778, {'width': 400, 'height': 224}, 'none', [0, 0, 1920, 1080], 'composite')" ]
inspect_jpg hd "$I/hd_good.jpg"
expect "inspect clean 1920x1080" 200
check "clean frame ok, whole frame, displayed size" [ "$(jget 'j["anomalous"], j["inspected_fraction"], j["left_out_fraction"], j["fitted"], j["width"], j["height"], j["geometry"]["working"]')" = "(False, 1.0, 0.0, False, 1920, 1080, {'width': 400, 'height': 224})" ]
GOOD=$(jget 'j["score"]')
inspect_jpg hd "$I/hd_left.jpg"
expect "inspect left-edge defect" 200
check "left-edge defect anomalous (score $(jget 'j["score"]') vs clean $GOOD)" [ "$(jget 'j["anomalous"]')" = True ]
read -r W H X Y A <<<"$(hot)"
check "left: raw heatmap 1920x1080, hot spot ($X,$Y) on the defect" [ "$W.$H" = 1920.1080 ] && [ "$X" -le 105 ] && [ "$Y" -ge 410 ] && [ "$Y" -le 685 ]
inspect_jpg hd "$I/hd_right.jpg"
expect "inspect right-edge defect" 200
check "right-edge defect anomalous (score $(jget 'j["score"]'))" [ "$(jget 'j["anomalous"]')" = True ]
read -r W H X Y A <<<"$(hot)"
check "right: hot spot ($X,$Y) on the defect" [ "$X" -ge 1814 ] && [ "$Y" -ge 410 ] && [ "$Y" -le 685 ]
inspect_jpg hd "$I/hd_43.jpg"
expect "4:3 image into a 16:9 class" 422 geometry_mismatch
check "the error names both geometries" grep -q '1440x1080.*1920x1080' "$T/body"
refs hd "$I/hd_43.jpg"
expect "4:3 reference into a 16:9 class" 422 geometry_mismatch
req GET /v1/classes/hd
check "still 4 references" [ "$(jget 'j["references"]')" = 4 ]
req PATCH /v1/classes/hd "${JSONH[@]}" -d '{"geometry":{"fit":"pad"}}'
expect "geometry fixed once the class has references" 409 conflict

# ---- fit policies (512x288 frames) ----
for fit in pad crop; do
    req POST /v1/classes "${JSONH[@]}" -d "{\"name\":\"sm-$fit\",\"geometry\":{\"fit\":\"$fit\"}}"
    expect "create fit=$fit" 201
    refs "sm-$fit" "$I"/ref{0,1,2,3}.png
    expect "fit=$fit references" 201
    inspect "sm-$fit" "$I/good_43.png"
    expect "fit=$fit takes a 4:3 image" 200
done
check "fit=crop reports what was left out" [ "$(jget 'j["fitted"], j["left_out_fraction"] > 0.2, j["inspected_fraction"] < 0.8, j["width"]')" = "(True, True, True, 384)" ]

# ---- ROI ----
req POST /v1/classes "${JSONH[@]}" -d '{"name":"roi","geometry":{"roi":[256,0,256,288]}}'
expect "create a ROI class" 201
refs roi "$I"/ref{0,1,2,3}.png
expect "ROI references" 201
inspect roi "$I/good.png"
expect "inspect with a ROI" 200
check "ROI: inspected_fraction 0.5" [ "$(jget 'round(j["inspected_fraction"], 3)')" = 0.5 ]
read -r W H X Y A <<<"$(hot 40 100)"
check "ROI: raw heatmap alpha 0 outside the ROI" [ "$A" = 0 ]
req POST /v1/classes "${JSONH[@]}" -d '{"name":"roi-out","geometry":{"roi":[400,0,200,288]}}'
expect "create a class whose ROI will not fit" 201
refs roi-out "$I"/ref{0,1}.png
expect "ROI outside the frame" 422 bad_geometry
check "the error names the frame" grep -q '512x288' "$T/body"
req GET /v1/classes/roi-out
check "nothing stored" [ "$(jget 'j["references"], j["geometry"]["fixed"]')" = "(0, False)" ]
req POST /v1/classes "${JSONH[@]}" -d '{"name":"big","geometry":{"size":5000}}'
expect "working size over the limits at creation" 422 bad_geometry
req GET /v1/classes/big
expect "refused class not created" 404
req POST /v1/classes "${JSONH[@]}" -d '{"name":"big","geometry":{"size":3000}}'
expect "create a class with a large working size" 201
refs big "$I"/ref{0,1}.png
expect "grid over the limits at the first reference" 422 bad_geometry
req GET /v1/classes/big
check "nothing stored for big" [ "$(jget 'j["references"]')" = 0 ]
req POST /v1/classes "${JSONH[@]}" -d '{"name":"bad","geometry":{"fit":"squash"}}'
expect "unknown fit" 400 bad_request
req POST /v1/classes "${JSONH[@]}" -d '{"name":"bad","geometry":{"tile":7}}'
expect "tile off the grid stride" 422 bad_geometry
req GET /v1/classes/bad
expect "refused geometry: no class stored" 404 not_found

# ---- a class from before geometry: stale features, no geometry recorded ----
stop_resadd
$PY -c "
import sqlite3; db = sqlite3.connect('$T/data/resadd.db')
cid = db.execute(\"SELECT id FROM classes WHERE name = 'sm-pad'\").fetchone()[0]
db.execute('UPDATE classes SET geometry = NULL, geo_opts = NULL WHERE id = ?', (cid,))
db.execute(\"UPDATE refs SET feats = x'00' WHERE class_id = ?\", (cid,))
db.commit()" || fail "editing the database"
start_resadd
req GET /v1/classes/sm-pad
check "re-extracted at start: ready, geometry recorded" [ "$(jget 'j["ready"], j["geometry"]["fixed"], j["geometry"]["working"], j["geometry"]["fit"]')" = "(True, True, {'width': 400, 'height': 224}, 'none')" ]
check "the log says so" grep -q "class sm-pad: no geometry recorded" "$T/resadd.log"
inspect sm-pad "$I/good.png"
expect "inspect the upgraded class" 200
stop_resadd
done_test
