#!/usr/bin/python3
"""test_image_camera.py — what cameras send: EXIF orientation, reduced-scale JPEG decoding, alpha policy.

EXIF: JPEGs (little- and big-endian EXIF, baseline and progressive, odd sizes
that are not multiples of the MCU) and PNGs (eXIf chunk) carrying each of the
8 orientations decode to exactly what Pillow's ImageOps.exif_transpose shows
(JPEG within 1 level: both decoders are libjpeg-turbo), with w/h the
displayed size; malformed EXIF blocks decode as orientation 1.

Reduced-scale decoding (min_short): the scale chosen is the largest of
1/2, 1/4, 1/8 whose decoded short side stays >= min_short.  JPEG: the pixels equal
Pillow's Image.draft() at the same scale (libjpeg-turbo's scaled IDCT) within
1 level; and after the working-size resize the result is close to a full
decode + resize: mean |diff| <= 1.5 levels and PSNR >= 35 dB at S=224 on a
photograph-like frame (the numbers are printed).  Non-interlaced PNGs are
box-averaged as read: equal to Pillow's alpha composite + reduce() within 1
level; Adam7 PNGs are decoded at full size.  rd_image_probe (image_tool probe)
gives the format, displayed size, EXIF orientation and reducibility from the
header alone.

Alpha: RD_ALPHA_COMPOSITE composites on mid-grey (128) like
Image.alpha_composite; RD_ALPHA_IGNORE equals Pillow's convert("RGB").
Whole-frame resize (rd_resize_u8) equals Pillow's resize((W, H), BICUBIC).
"""
import io, os, struct, subprocess, sys, tempfile

import numpy as np
from PIL import Image, ImageOps

build = os.environ.get("top_builddir", ".")
TOOL = os.path.join(build, "tests", "image_tool")
fails = 0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def decode(p, min_short=0, alpha=0, no_orient=0):
    out = p + ".raw"
    r = subprocess.run([TOOL, "decodeopt", p, str(min_short), str(alpha), str(no_orient), out],
                       capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr
    w, h, fw, fh, o, d = map(int, r.stdout.split())
    a = np.frombuffer(open(out, "rb").read(), np.uint8).reshape(h, w, 3)
    return a, dict(w=w, h=h, full_w=fw, full_h=fh, orientation=o, denom=d)


def tiff(orientation, big_endian=False, extra=()):
    """An EXIF TIFF block with IFD0 entries (tag, type, count, value) sorted by tag."""
    e = ">" if big_endian else "<"
    ents = sorted([(0x0112, 3, 1, orientation)] + list(extra))
    b = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", len(ents))
    for tag, typ, cnt, val in ents:
        v = struct.pack(e + "HH", val, 0) if typ == 3 else struct.pack(e + "I", val)
        b += struct.pack(e + "HHI", tag, typ, cnt) + v
    return b + struct.pack(e + "I", 0)


def adam7_png(rgb):
    """An interlaced (Adam7) 8-bit RGB PNG of rgb (H x W x 3), filter 0 on every row."""
    import zlib
    h, w, _ = rgb.shape
    raw = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)]:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def frame(w, h, seed=0):
    """Photograph-like: smooth shading, edges, texture and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 60 * np.sin(xx / (w / 7)) * np.cos(yy / (h / 5)),
                    100 + 80 * (xx / w) + 20 * np.sin((xx + yy) / 9),
                    140 - 70 * (yy / h) + 25 * np.cos(xx / 13)], -1)
    for _ in range(12):  # a few hard-edged discs
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.08) * min(w, h)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(20, 235, 3)
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def main():
    tmp = tempfile.mkdtemp(prefix="rd-cam-")
    base = frame(53, 37, 1)  # odd, not a multiple of the MCU: exercises the edges
    n = 0
    # ---- EXIF orientation vs PIL
    for o in range(1, 9):
        for be in (False, True):
            for prog in (False, True):
                p = os.path.join(tmp, f"o{o}{'be' if be else 'le'}{'p' if prog else ''}.jpg")
                base.save(p, quality=92, progressive=prog, exif=b"Exif\0\0" + tiff(o, be, [(0x0110, 4, 1, 0)]))
                got, info = decode(p)
                check(got is not None, f"{p}: {info}")
                if got is None:
                    continue
                ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB")).astype(int)
                check(got.shape == ref.shape, f"orientation {o}: shape {got.shape} vs PIL {ref.shape}")
                if got.shape == ref.shape:
                    d = np.abs(got.astype(int) - ref).max()
                    check(d <= 1, f"orientation {o} ({'BE' if be else 'LE'}, prog {prog}): differs from PIL by {d}")
                check(info["orientation"] == o and (info["w"], info["h"]) == (ref.shape[1], ref.shape[0])
                      and (info["full_w"], info["full_h"]) == (info["w"], info["h"]) and info["denom"] == 1,
                      f"orientation {o}: info {info}")
                stored, _ = decode(p, no_orient=1)
                check(stored is not None and stored.shape == (37, 53, 3), f"orientation {o}: no_orient shape")
                n += 1
        # PNG eXIf chunk
        p = os.path.join(tmp, f"o{o}.png")
        base.save(p, exif=tiff(o))
        got, info = decode(p)
        check(got is not None, f"{p}: {info}")
        if got is not None:
            ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
            check(got.shape == ref.shape and np.array_equal(got, ref), f"PNG orientation {o}: differs from PIL")
            check(info["orientation"] == o, f"PNG orientation {o}: info {info}")
            n += 1
    # malformed EXIF: bad magic, IFD offset outside, truncated, out-of-range value -> decoded as stored
    good = tiff(6)
    bad = [b"XX" + good[2:], good[:4] + struct.pack("<I", 10 ** 6) + good[8:], good[:12], tiff(9),
           good[:10] + b"\xff\xff" + good[12:]]
    for i, blk in enumerate(bad):
        p = os.path.join(tmp, f"bad{i}.jpg")
        base.save(p, quality=92, exif=b"Exif\0\0" + blk)
        got, info = decode(p)
        check(got is not None and info["orientation"] == 1 and got.shape == (37, 53, 3),
              f"malformed EXIF {i}: {info}")

    # ---- reduced-scale decoding
    big = frame(2000, 1500, 2)
    pb = os.path.join(tmp, "big.jpg")
    big.save(pb, quality=90)
    full, fi = decode(pb)
    check(fi["denom"] == 1 and fi["w"] == 2000, f"full decode {fi}")
    for min_short, want in [(224, 4), (180, 8), (375, 4), (376, 2), (750, 2), (751, 1), (1500, 1), (2000, 1)]:
        got, info = decode(pb, min_short)
        check(info["denom"] == want, f"min_short {min_short}: scale 1/{info['denom']}, want 1/{want}")
        sh = min(info["w"], info["h"])
        check(sh >= min(min_short, 1500), f"min_short {min_short}: decoded short side {sh}")
        check((info["full_w"], info["full_h"]) == (2000, 1500), f"min_short {min_short}: full size {info}")
        if want > 1:
            ref = Image.open(pb)
            ref.draft("RGB", (2000 // want, 1500 // want))
            ref = np.asarray(ref.convert("RGB")).astype(int)
            check(ref.shape == got.shape, f"1/{want}: {got.shape} vs PIL draft {ref.shape}")
            if ref.shape == got.shape:
                d = np.abs(got.astype(int) - ref).max()
                check(d <= 1, f"1/{want}: differs from PIL draft by {d}")
    # scaled decode + resize vs full decode + resize, at the working size
    S = 224
    for min_short in (S,):
        got, info = decode(pb, min_short)
        ws = (round(S * 2000 / 1500), S)
        a = np.asarray(Image.fromarray(got).resize(ws, Image.BICUBIC)).astype(float)
        b = np.asarray(Image.fromarray(full).resize(ws, Image.BICUBIC)).astype(float)
        mad = np.abs(a - b).mean()
        psnr = 10 * np.log10(255 ** 2 / ((a - b) ** 2).mean())
        print(f"2000x1500 at 1/{info['denom']} ({info['w']}x{info['h']}) then resize to {ws[0]}x{ws[1]}: "
              f"mean |diff| {mad:.2f} levels, max {np.abs(a - b).max():.0f}, PSNR {psnr:.1f} dB vs full decode")
        check(mad <= 1.5 and psnr >= 35, f"scaled decode too far from full decode: {mad:.2f}, {psnr:.1f} dB")
    # orientation with scaling: displayed and full-size geometry both rotated
    pr = os.path.join(tmp, "big6.jpg")
    big.save(pr, quality=90, exif=b"Exif\0\0" + tiff(6))
    got, info = decode(pr, 224)
    check((info["w"], info["h"], info["full_w"], info["full_h"], info["denom"]) == (375, 500, 1500, 2000, 4),
          f"rotated scaled decode: {info}")
    # PNGs: non-interlaced rows box-averaged as read (Pillow's reduce() after
    # alpha compositing, within 1 level; the last block of a row or column
    # averages what it has); interlaced PNGs at full size
    rng = np.random.default_rng(5)
    for (W, H), min_short, want in [((800, 600), 224, 2), ((801, 601), 100, 4), ((1923, 1081), 60, 8),
                                    ((800, 600), 301, 1)]:
        a = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
        pp = os.path.join(tmp, f"red{W}.png")
        Image.fromarray(a, "RGBA").save(pp)
        got, info = decode(pp, min_short)
        check(info["denom"] == want and (info["full_w"], info["full_h"]) == (W, H), f"PNG {W}x{H} at {min_short}: {info}")
        comp = Image.alpha_composite(Image.new("RGBA", (W, H), (128, 128, 128, 255)), Image.open(pp)).convert("RGB")
        ref = np.asarray(comp.reduce(want) if want > 1 else comp).astype(int)
        check(ref.shape == got.shape and np.abs(got.astype(int) - ref).max() <= 1,
              f"PNG {W}x{H} reduced 1/{want}: {got.shape} vs PIL reduce {ref.shape}")
    pn = os.path.join(tmp, "plain.png")
    big.resize((800, 600)).save(pn)
    r = subprocess.run([TOOL, "probe", pn], capture_output=True, text=True)
    check(r.stdout.split() == ["2", "800", "600", "1", "1"], f"probe PNG: {r.stdout} {r.stderr}")
    pe = os.path.join(tmp, "big6.png")
    big.resize((800, 600)).save(pe, exif=b"Exif\0\0" + tiff(6))
    r = subprocess.run([TOOL, "probe", pe], capture_output=True, text=True)
    check(r.stdout.split() == ["2", "600", "800", "6", "1"], f"probe PNG eXIf 6: {r.stdout} {r.stderr}")
    got, info = decode(pe, 100)
    check((info["w"], info["h"], info["full_w"], info["full_h"], info["denom"]) == (150, 200, 600, 800, 4),
          f"rotated reduced PNG: {info}")
    # Adam7 (Pillow cannot write it): decoded at full size, equal to the pixels
    pi = os.path.join(tmp, "inter.png")
    px = np.asarray(big.resize((800, 600)))
    open(pi, "wb").write(adam7_png(px))
    r = subprocess.run([TOOL, "probe", pi], capture_output=True, text=True)
    check(r.stdout.split() == ["2", "800", "600", "1", "0"], f"probe interlaced PNG: {r.stdout} {r.stderr}")
    got, info = decode(pi, 100)
    check(info["denom"] == 1 and info["w"] == 800 and np.array_equal(got, px),
          f"interlaced PNG is decoded at full size: {info}")
    r = subprocess.run([TOOL, "probe", pr], capture_output=True, text=True)
    check(r.stdout.split() == ["1", "1500", "2000", "6", "1"], f"probe JPEG EXIF 6: {r.stdout} {r.stderr}")

    # ---- alpha policy
    rgba = np.asarray(base.convert("RGBA")).copy()
    rgba[..., 3] = (np.arange(53)[None, :] * 255 // 52).astype(np.uint8)
    pa = os.path.join(tmp, "alpha.png")
    Image.fromarray(rgba, "RGBA").save(pa)
    comp, _ = decode(pa, 0, 0)
    ign, _ = decode(pa, 0, 1)
    ref_c = np.asarray(Image.alpha_composite(Image.new("RGBA", (53, 37), (128, 128, 128, 255)),
                                             Image.open(pa)).convert("RGB")).astype(int)
    ref_i = np.asarray(Image.open(pa).convert("RGB"))
    check(np.abs(comp.astype(int) - ref_c).max() <= 1, "alpha composite differs from PIL")
    check(np.array_equal(ign, ref_i), "alpha ignore differs from PIL convert('RGB')")

    # ---- whole-frame resize (no crop)
    pw = os.path.join(tmp, "wh.png")
    frame(512, 288, 3).save(pw)
    for W, H in [(398, 224), (224, 126), (600, 300), (512, 288)]:
        r = subprocess.run([TOOL, "resizewh", pw, str(W), str(H), pw + ".rs"], capture_output=True, text=True)
        check(r.returncode == 0, r.stderr)
        got = np.frombuffer(open(pw + ".rs", "rb").read(), np.uint8).reshape(H, W, 3)
        ref = np.asarray(Image.open(pw).resize((W, H), Image.BICUBIC))
        check(np.array_equal(got, ref), f"resize to {W}x{H}: differs from PIL by "
                                        f"{np.abs(got.astype(int) - ref).max()}")
    print(f"EXIF: {n} oriented files match PIL exif_transpose; {len(bad)} malformed EXIF blocks ignored")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
