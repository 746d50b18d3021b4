#!/usr/bin/python3
"""demo-images.py — real test photographs for the quick start and the CLI test.

Takes one texture photograph from Debian's openarena-081-textures package and
writes: ref1..refN.jpg (random crops: normal parts), good.jpg (another normal
crop) and defect.jpg (a normal crop with a drawn scratch and a stain), plus
defect.json with the defect's bounding box in defect.jpg's pixel coordinates.

usage: /usr/bin/python3 tools/demo-images.py OUTDIR [--texture PATH_IN_PK3]
       [--refs N] [--seed S] [--size PX]
"""
import argparse, io, json, os, random, sys, zipfile

from PIL import Image, ImageDraw, ImageFilter

PK3 = "/usr/share/games/openarena/baseoa/pak4-textures.pk3"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--texture", default="textures/base_floor/clang_floor.jpg")  # steel diamond plate
    ap.add_argument("--refs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    if not os.path.exists(PK3):
        sys.exit(f"demo-images: {PK3} missing: apt-get install openarena-081-textures")
    with zipfile.ZipFile(PK3) as z:
        src = Image.open(io.BytesIO(z.read(a.texture))).convert("RGB")
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    W, H = src.size
    s = min(a.size, W, H)

    def crop():
        x, y = rng.randrange(0, W - s + 1), rng.randrange(0, H - s + 1)
        im = src.crop((x, y, x + s, y + s))
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        # lighting jitter a camera would see
        f = rng.uniform(0.92, 1.08)
        return im.point(lambda v: max(0, min(255, int(v * f))))

    for i in range(a.refs):
        crop().save(os.path.join(a.out, f"ref{i + 1}.jpg"), quality=92)
    crop().save(os.path.join(a.out, "good.jpg"), quality=92)

    im = crop()
    d = ImageDraw.Draw(im)
    # a curved scratch
    cx, cy = rng.randrange(s // 4, s // 2), rng.randrange(s // 4, s // 2)
    pts = [(cx + t * 2.2, cy + 18 * ((t / 40.0) ** 2)) for t in range(0, 50, 2)]
    d.line(pts, fill=(235, 235, 225), width=3)
    # a dark stain
    sx, sy, r = cx + 40, cy + 30, 16
    stain = Image.new("L", im.size, 0)
    ImageDraw.Draw(stain).ellipse((sx - r, sy - r, sx + r, sy + r), fill=170)
    stain = stain.filter(ImageFilter.GaussianBlur(4))
    im = Image.composite(Image.new("RGB", im.size, (20, 15, 10)), im, stain)
    im.save(os.path.join(a.out, "defect.jpg"), quality=92)
    xs = [p[0] for p in pts] + [sx - r, sx + r]
    ys = [p[1] for p in pts] + [sy - r, sy + r]
    box = [int(min(xs)) - 2, int(min(ys)) - 2, int(max(xs)) + 2, int(max(ys)) + 2]
    with open(os.path.join(a.out, "defect.json"), "w") as f:
        json.dump({"texture": a.texture, "size": s, "defect_box": box}, f)
    print(a.out)


if __name__ == "__main__":
    main()
