#!/usr/bin/python3
"""test_geometry_cli.py — whole-frame inspection at camera geometry, end to end.

16:9 camera-shaped frames (512×288, the seamless steel diamond-plate texture of
Debian's openarena-081-textures tiled, random offsets and lighting) with the
shipped learned model:
  - a defect drawn within 20 px of the left edge, and one at the right edge,
    lie wholly outside the old centre crop (frame columns 112..400); both are
    detected (anomalous) and hot in the raw heatmap, the clean frame is not;
  - the JSON gives the geometry (working grid 400x224) and inspected_fraction 1;
  - an image of another aspect ratio is refused naming both geometries, and
    accepted with --fit pad / crop (crop reports what was left out);
  - a reference of another aspect ratio is refused;
  - --roi: inspected_fraction < 1, the raw map's alpha is 0 outside the ROI,
    the overlay there is greyed, the mask 0;
  - --roi-mask: a mask image black on the left half gives the same (the
    left-edge defect is not inspected, not anomalous); a 4:3 mask is refused;
  - --heatmap keeps a/000.jpg and b/000.jpg apart;
  - a 1920×1080 frame with a defect centred 20 px from the left edge: detected,
    and the raw heatmap's hottest pixel lies on it.
"""
import io, json, os, random, subprocess, sys, tempfile, zipfile

from PIL import Image, ImageDraw, ImageFilter

top = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
build = os.environ.get("top_builddir", top)
RESAD = os.path.join(build, "resad")
PK3 = "/usr/share/games/openarena/baseoa/pak4-textures.pk3"
failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg, file=sys.stderr)


def run(args, expect_rc=None):
    p = subprocess.run([RESAD] + args, capture_output=True, text=True, timeout=300)
    if expect_rc is not None:
        check(p.returncode == expect_rc, f"resad {' '.join(args[:4])}...: rc {p.returncode}, expected {expect_rc}\n{p.stderr}")
    return p


def lines(p):
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def frames(tex, rng, w, h):
    nx, ny = w // tex.size[0] + 2, h // tex.size[1] + 2  # room for any offset below one tile
    big = Image.new("RGB", (tex.size[0] * nx, tex.size[1] * ny))
    for i in range(nx):
        for j in range(ny):
            big.paste(tex, (i * tex.size[0], j * tex.size[1]))

    def one():
        x, y = rng.randrange(tex.size[0]), rng.randrange(tex.size[1])
        im = big.crop((x, y, x + w, y + h))
        f = rng.uniform(0.94, 1.06)
        return im.point(lambda v: max(0, min(255, int(v * f))))
    return one


def draw_defect(im, cx, cy):
    """A bright scratch and a dark stain around (cx, cy); returns the box."""
    d = ImageDraw.Draw(im)
    pts = [(cx - 12 + t * 0.5, cy - 22 + t) for t in range(0, 44, 2)]
    d.line(pts, fill=(240, 240, 228), width=3)
    r = 11
    stain = Image.new("L", im.size, 0)
    ImageDraw.Draw(stain).ellipse((cx - r, cy - r, cx + r, cy + r), fill=180)
    stain = stain.filter(ImageFilter.GaussianBlur(3))
    out = Image.composite(Image.new("RGB", im.size, (20, 15, 10)), im, stain)
    return out, [cx - 14, cy - 24, cx + 14, cy + 24]


def hot_spot(path):
    raw = Image.open(path)
    check(raw.mode == "LA", f"raw heatmap mode {raw.mode}, expected LA (gray + alpha)")
    px = raw.convert("LA").load()
    W, H = raw.size
    return max((px[x, y][0], x, y) for y in range(H) for x in range(W)), raw


def main():
    if not os.path.exists(PK3):
        print("openarena-081-textures not installed", file=sys.stderr)
        return 77
    tex = Image.open(io.BytesIO(zipfile.ZipFile(PK3).read("textures/base_floor/clang_floor.jpg"))).convert("RGB")
    rng = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="rd-geo-")
    one = frames(tex, rng, 512, 288)
    refs = []
    for i in range(4):
        refs.append(os.path.join(tmp, f"ref{i}.jpg"))
        one().save(refs[-1], quality=92)
    good = os.path.join(tmp, "good.jpg")
    one().save(good, quality=92)
    left, lbox = draw_defect(one(), 16, 150)   # centre 16 px from the left edge
    right, rbox = draw_defect(one(), 497, 120)  # 15 px from the right edge
    os.makedirs(os.path.join(tmp, "a"))
    os.makedirs(os.path.join(tmp, "b"))
    lpath, rpath = os.path.join(tmp, "a", "000.jpg"), os.path.join(tmp, "b", "000.jpg")
    left.save(lpath, quality=92)
    right.save(rpath, quality=92)
    heat = os.path.join(tmp, "heat")

    p = run(["score", "--ref", *refs, "--image", good, lpath, rpath, "--heatmap", heat], 0)
    out = lines(p)
    check(len(out) == 3, f"3 JSON lines expected: {p.stdout!r}")
    if len(out) != 3:
        return 1
    g, l, r = out
    print(f"good {g['score']:.2f}  left {l['score']:.2f}  right {r['score']:.2f}  threshold {g['threshold']:.2f}",
          file=sys.stderr)
    check(g["geometry"]["work"] == [400, 224] and g["geometry"]["frame"] == [512, 288], f"geometry {g['geometry']}")
    check(g["inspected_fraction"] == 1.0 and (g["width"], g["height"]) == (512, 288), f"{g}")
    check(g["anomalous"] is False, "clean 16:9 frame flagged")
    for d, box, name in ((l, lbox, "left"), (r, rbox, "right")):
        check(d["anomalous"] is True, f"{name}-edge defect not detected (score {d['score']:.2f})")
        check(d["score"] > 1.5 * g["score"], f"{name}-edge defect not clearly above the clean frame")
        (v, bx, by), raw = hot_spot(d["heatmaps"]["raw"])
        check(raw.size == (512, 288), f"raw heatmap size {raw.size}")
        m = 12
        check(box[0] - m <= bx <= box[2] + m and box[1] - m <= by <= box[3] + m,
              f"{name}: hot spot ({bx},{by}) not on the defect {box}")
        print(f"{name}: hot spot ({bx},{by}) value {v}, defect {box}", file=sys.stderr)
    # relative paths kept apart
    check(l["heatmaps"]["raw"] != r["heatmaps"]["raw"], "a/000.jpg and b/000.jpg share a heatmap file")
    check(os.path.exists(os.path.join(heat, "a", "000.raw.png")) and os.path.exists(os.path.join(heat, "b", "000.raw.png")),
          f"heatmaps not at heat/a/000.* and heat/b/000.*: {l['heatmaps']} {r['heatmaps']}")

    # another aspect ratio: refused, or fitted
    four3 = os.path.join(tmp, "four3.jpg")
    frames(tex, rng, 384, 288)().save(four3, quality=92)
    p = run(["score", "--ref", *refs, "--image", four3], 1)
    e = lines(p)[0].get("error", "")
    check("384x288" in e and "512x288" in e and "400x224" in e, f"mismatch error does not name both geometries: {e}")
    p = run(["score", "--ref", *refs, "--image", four3, "--fit", "pad"], 0)
    d = lines(p)[0]
    check(d.get("fitted") == "pad" and d["inspected_fraction"] == 1.0 and d["anomalous"] is False, f"fit pad: {d}")
    tall = os.path.join(tmp, "tall.jpg")  # 4:3 at the frame's width: crop takes 288 of its 384 rows
    frames(tex, rng, 512, 384)().save(tall, quality=92)
    p = run(["score", "--ref", *refs, "--image", tall, "--fit", "crop"], 0)
    d = lines(p)[0]
    check(d.get("fitted") == "crop" and abs(d["inspected_fraction"] - 0.75) < 0.01 and d["anomalous"] is False and
          abs(d.get("left_out_fraction", 0) - 0.25) < 0.01, f"fit crop: {d}")
    p = run(["score", "--ref", four3, *refs, "--image", good, "--fit", "pad"], 3)
    check("another aspect ratio" in p.stderr, f"reference of another aspect not refused: {p.stderr}")

    # ROI: the right half only; the left-edge defect is then not inspected (not "clean")
    p = run(["score", "--ref", *refs, "--image", lpath, "--roi", "256,0,256,288", "--heatmap", heat], 0)
    d = lines(p)[0]
    check(abs(d["inspected_fraction"] - 0.5) < 0.01 and d["geometry"]["roi"] == [256, 0, 256, 288], f"roi: {d}")
    raw = Image.open(d["heatmaps"]["raw"]).convert("LA").load()
    check(raw[10, 150][1] == 0 and raw[400, 150][1] == 255, "raw alpha does not mark the not-inspected half")
    ov = Image.open(d["heatmaps"]["overlay"]).convert("RGB").load()
    grey = all(ov[x, 100][0] == ov[x, 100][1] == ov[x, 100][2] for x in range(0, 250, 7))
    check(grey, "overlay not greyed outside the ROI")
    mk = Image.open(d["heatmaps"]["mask"]).convert("L").load()
    check(all(mk[x, y] == 0 for x in range(0, 250, 5) for y in range(0, 288, 5)), "mask set outside the ROI")
    # ROI mask: the same right half as a mask image (at another size); a 4:3 mask is refused naming both
    mpath, m43 = os.path.join(tmp, "mask.png"), os.path.join(tmp, "mask43.png")
    mk = Image.new("L", (320, 180), 255)
    ImageDraw.Draw(mk).rectangle((0, 0, 159, 179), fill=0)
    mk.save(mpath)
    Image.new("L", (240, 180), 255).save(m43)
    p = run(["score", "--ref", *refs, "--image", lpath, "--roi-mask", mpath, "--heatmap", heat + "-mask"], 0)
    d = lines(p)[0]
    check(abs(d["inspected_fraction"] - 0.5) < 0.02 and d["anomalous"] is False, f"roi mask: {d}")
    raw = Image.open(d["heatmaps"]["raw"]).convert("LA").load()
    check(raw[10, 150][1] == 0 and raw[400, 150][1] == 255, "raw alpha does not mark the masked-out half")
    p = run(["score", "--ref", *refs, "--image", good, "--roi-mask", m43], 3)
    check("--roi-mask" in p.stderr and "240x180" in p.stderr and "512x288" in p.stderr,
          f"4:3 mask not refused naming both: {p.stderr}")
    p = run(["score", "--ref", *refs, "--image", good, "--roi", "400,0,200,288"], 3)
    check("ROI" in p.stderr and "512x288" in p.stderr, f"ROI outside the frame: {p.stderr}")
    p = run(["score", "--ref", *refs, "--image", good, "--size", "4000"], 3)
    check("exceeds the limits" in p.stderr, f"too large working size: {p.stderr}")
    # a full-HD camera frame: a scratch + stain centred 20 px from the left edge
    hd = tex.resize((512, 512), Image.BICUBIC)  # the plate at a camera's magnification
    one_hd = frames(hd, rng, 1920, 1080)
    hrefs = []
    for i in range(4):
        hrefs.append(os.path.join(tmp, f"hd_ref{i}.jpg"))
        one_hd().save(hrefs[-1], quality=92)
    hgood, hleft = os.path.join(tmp, "hd_good.jpg"), os.path.join(tmp, "hd_left.jpg")
    one_hd().save(hgood, quality=92)
    im = one_hd()
    dr = ImageDraw.Draw(im)
    dr.line([(10 + k * 0.6, 450 + k * 4) for k in range(45)], fill=(240, 240, 228), width=10)
    st = Image.new("L", im.size, 0)
    ImageDraw.Draw(st).ellipse((-25, 555, 65, 645), fill=180)
    im = Image.composite(Image.new("RGB", im.size, (20, 15, 10)), im, st.filter(ImageFilter.GaussianBlur(10)))
    im.save(hleft, quality=92)
    p = run(["score", "--ref", *hrefs, "--image", hgood, hleft, "--heatmap", os.path.join(tmp, "hdheat")], 0)
    hg, hl = lines(p)
    print(f"1920x1080: good {hg['score']:.2f}  left-edge {hl['score']:.2f}  threshold {hg['threshold']:.2f}", file=sys.stderr)
    check(hg["anomalous"] is False and hl["anomalous"] is True, "1920x1080 left-edge defect: verdicts")
    check(hl["geometry"]["work"] == [400, 224], f"1920x1080 grid {hl['geometry']['work']}")
    (v, bx, by), raw = hot_spot(hl["heatmaps"]["raw"])
    check(raw.size == (1920, 1080) and bx <= 65 + 40 and 450 - 40 <= by <= 645 + 40,
          f"1920x1080: hot spot ({bx},{by}) not on the defect at the left edge")
    print(f"1920x1080: hot spot ({bx},{by}) value {v}", file=sys.stderr)

    # a larger working size keeps the defect
    p = run(["score", "--ref", *refs, "--image", good, lpath, "--size", "320"], 0)
    g2, l2 = lines(p)
    check(g2["geometry"]["work"] == [576, 320], f"size 320: {g2['geometry']}")
    check(l2["anomalous"] is True and g2["anomalous"] is False, f"size 320: good {g2['score']}, left {l2['score']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
