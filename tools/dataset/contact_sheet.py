#!/usr/bin/python3
"""contact_sheet.py — a PNG grid of normal, defective and mask images from a built dataset.

    /usr/bin/python3 tools/dataset/contact_sheet.py --data DIR [--out docs/dataset-contact-sheet.png]
        [--classes a,b,...] [--tile 128]

One row per class: a normal test image, then pairs (defective image with the
mask outline drawn in red, mask) for up to three defect kinds.  The output is a
palette PNG kept small enough to commit (< 1.5 MB).
"""
import argparse, json, os, sys

import numpy as np
from PIL import Image, ImageDraw
import scipy.ndimage as nd

DEFAULT = ["concrete_slab", "rust_pitted", "floor_grate", "stone_blocks", "marble", "wood_planks",
           "street_bricks", "gear", "label", "pcb", "screw_head"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="docs/dataset-contact-sheet.png")
    ap.add_argument("--classes", default=",".join(DEFAULT))
    ap.add_argument("--tile", type=int, default=128)
    a = ap.parse_args()
    man = json.load(open(os.path.join(a.data, "manifest.json")))
    by = {c["name"]: c for c in man["classes"]}
    names = [n for n in a.classes.split(",") if n in by]
    t, lab = a.tile, 14
    cols = 7
    sheet = Image.new("RGB", (cols * t, len(names) * (t + lab)), (255, 255, 255))
    dr = ImageDraw.Draw(sheet)
    for r, n in enumerate(names):
        imgs = by[n]["images"]
        good = next(e for e in imgs if e["file"].split("/")[1] == "test" and e["defect"] is None)
        kinds = []
        for e in imgs:
            if e["defect"] and e["defect"] not in [k["defect"] for k in kinds]:
                kinds.append(e)
        step = max(1, len(kinds) // 3)
        picks = kinds[::step][:3]
        y = r * (t + lab)
        cells = [(good["file"], None, "good")]
        for e in picks:
            cells.append((e["file"], e["mask"], e["defect"]))
            cells.append((e["mask"], None, "mask"))
        for c, (f, m, label) in enumerate(cells):
            im = Image.open(os.path.join(a.data, f)).convert("RGB")
            arr = np.asarray(im).copy()
            if m is not None:
                mk = np.asarray(Image.open(os.path.join(a.data, m))) > 127
                edge = mk & ~nd.binary_erosion(mk, iterations=2)
                # outline only on the right half, so the defect itself stays visible on the left
                edge[:, : arr.shape[1] // 2] = False
                arr[edge] = [255, 0, 0]
            sheet.paste(Image.fromarray(arr).resize((t, t), Image.LANCZOS), (c * t, y + lab))
            dr.text((c * t + 2, y + 1), (n + ": " if c == 0 else "") + label, fill=(0, 0, 0))
    out = sheet.quantize(colors=256, method=Image.MEDIANCUT, dither=Image.NONE)
    out.save(a.out, optimize=True)
    print(f"{a.out}: {os.path.getsize(a.out) / 1e6:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
