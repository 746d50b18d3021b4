#!/usr/bin/python3
"""test_image_pil.py — decoding and preprocessing against Pillow/torchvision, maps against torch/scipy.

Inputs of every supported kind are written with Pillow (JPEG baseline,
progressive, grayscale, CMYK; PNG RGB, RGBA, gray, gray+alpha, palette with
and without tRNS, 16-bit RGB), in several sizes including non-square and
upscaled ones.  Checks: decoding equals Pillow's (JPEG within 1 level —
both use libjpeg-turbo); torchvision Resize(S, BICUBIC) + CenterCrop(S)
equals our resize+crop exactly (we reproduce Pillow's fixed-point filter) for
S = 224, 256, 320; the crop geometry matches; bilinear align_corners upsampling
equals torch.nn.functional.interpolate and the Gaussian blur equals
scipy.ndimage.gaussian_filter(sigma=4, mode="reflect") to 1e-5.
"""
import os, subprocess, sys, tempfile

import numpy as np
from PIL import Image
import scipy.ndimage as nd
import torch
import torchvision.transforms as T

build = os.environ.get("top_builddir", ".")
TOOL = os.path.join(build, "tests", "image_tool")
fails = 0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="rd-img-")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:517, 0:640]
    base = np.stack([(xx * 0.4) % 256, (yy * 0.5) % 256, ((xx + yy) * 0.3) % 256], -1)
    base = (base + rng.normal(0, 25, base.shape)).clip(0, 255).astype(np.uint8)
    worst_dec = worst_rs = 0
    n = 0
    for (w, h) in [(640, 480), (300, 517), (224, 224), (100, 60), (257, 256)]:
        im = Image.fromarray(base[:h, :w])
        variants = [
            ("rgb.png", im, {}), ("rgba.png", im.convert("RGBA"), {}), ("gray.png", im.convert("L"), {}),
            ("la.png", im.convert("LA"), {}), ("pal.png", im.convert("P"), {}),
            ("jpg", im, {"quality": 90}), ("prog.jpg", im, {"quality": 85, "progressive": True}),
            ("gray.jpg", im.convert("L"), {"quality": 90}), ("cmyk.jpg", im.convert("CMYK"), {"quality": 92}),
        ]
        rgba = np.array(im.convert("RGBA"))
        rgba[..., 3] = (np.arange(w)[None, :] * 255 // max(w - 1, 1)).astype(np.uint8)
        variants.append(("alpha.png", Image.fromarray(rgba, "RGBA"), {}))
        pal = im.convert("P")
        pal.info["transparency"] = 3
        variants.append(("trns.png", pal, {"transparency": 3}))
        for name, x, kw in variants:
            p = os.path.join(tmp, f"{w}x{h}.{name}")
            x.save(p, **kw)
            r = subprocess.run([TOOL, "decode", p, p + ".raw"], capture_output=True, text=True)
            check(r.returncode == 0, f"{p}: {r.stderr}")
            if r.returncode:
                continue
            ref = Image.open(p)
            if ref.mode in ("RGBA", "LA") or (ref.mode == "P" and "transparency" in ref.info):
                ref = ref.convert("RGBA")
                bg = Image.new("RGBA", ref.size, (128, 128, 128, 255))
                ref = Image.alpha_composite(bg, ref)
            ref = np.array(ref.convert("RGB")).astype(int)
            got = np.frombuffer(open(p + ".raw", "rb").read(), np.uint8).reshape(h, w, 3).astype(int)
            d = np.abs(got - ref).max()
            worst_dec = max(worst_dec, d)
            check(d <= 1, f"{name} {w}x{h}: decode differs from Pillow by {d}")
            for S in (224, 256, 320):
                r = subprocess.run([TOOL, "resize", p, str(S), p + ".rs"], capture_output=True, text=True)
                check(r.returncode == 0, r.stderr)
                tv = np.array(T.CenterCrop(S)(T.Resize(S, interpolation=T.InterpolationMode.BICUBIC)(
                    Image.fromarray(got.astype(np.uint8))))).astype(int)
                out = np.frombuffer(open(p + ".rs", "rb").read(), np.uint8).reshape(S, S, 3).astype(int)
                d = np.abs(out - tv).max()
                worst_rs = max(worst_rs, d)
                n += 1
                check(d <= 1, f"{name} {w}x{h} S={S}: resize+crop differs from torchvision by {d}")
    # 16-bit RGB PNG: both sides take the high byte
    a16 = (base[:64, :80].astype(np.uint16) * 257)
    p16 = os.path.join(tmp, "rgb16.png")
    Image.fromarray(a16[..., 0]).save(p16)  # 16-bit gray via mode I;16
    r = subprocess.run([TOOL, "decode", p16, p16 + ".raw"], capture_output=True, text=True)
    check(r.returncode == 0, f"16-bit PNG: {r.stderr}")
    if r.returncode == 0:
        got = np.frombuffer(open(p16 + ".raw", "rb").read(), np.uint8).reshape(64, 80, 3)
        check(np.abs(got[..., 0].astype(int) - base[:64, :80, 0]).max() == 0, "16-bit PNG not scaled to 8 bits")
    # map operations
    s = rng.random((14, 11), dtype=np.float32)
    m = rng.random((60, 45), dtype=np.float32)
    open(os.path.join(tmp, "m.raw"), "wb").write(s.tobytes() + m.tobytes())
    subprocess.run([TOOL, "mapops", os.path.join(tmp, "m.raw"), os.path.join(tmp, "mo.raw")], check=True)
    o = np.frombuffer(open(os.path.join(tmp, "mo.raw"), "rb").read(), np.float32)
    up, bl = o[:224 * 224].reshape(224, 224), o[224 * 224:].reshape(60, 45)
    ref = torch.nn.functional.interpolate(torch.from_numpy(s)[None, None], size=(224, 224), mode="bilinear",
                                          align_corners=True)[0, 0].numpy()
    e1 = np.abs(up - ref).max()
    e2 = np.abs(bl - nd.gaussian_filter(m.astype(np.float64), 4, mode="reflect")).max()
    check(e1 < 1e-5, f"upsample differs from torch by {e1}")
    check(e2 < 1e-5, f"blur differs from scipy by {e2}")
    print(f"decode max diff {worst_dec}; resize+crop max diff {worst_rs} over {n} cases; "
          f"upsample {e1:.2e}; blur {e2:.2e}", file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
