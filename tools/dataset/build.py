#!/usr/bin/python3
"""build.py — builds resadd's anomaly-detection benchmark (MVTec AD folder layout).

    /usr/bin/python3 tools/dataset/build.py --out DIR [--seed 0] [--size 256] [--small] [--jobs 2]
                                            [--geometry square|camera|WxH] [--border-defects]
                                            [--more-known]

Texture classes are cut from the photographs in Debian's openarena-081-textures
(the class table with source files and the known/unseen split is
tools/dataset/classes.json); object classes are drawn procedurally.  Normal
images vary like a camera on a line would see (crop position, flips, small
rotation, lighting/contrast, slight blur, sensor noise); defective images carry
one or more synthetic defects with a pixel mask.  Everything is derived from
--seed: every image has its own generator seeded by (seed, class, split, index),
so the output is byte-identical for the same seed and Pillow/numpy versions,
whatever --jobs is.

Output: DIR/CLASS/train/good/NNN.jpg, DIR/CLASS/test/good/NNN.jpg,
DIR/CLASS/test/DEFECT/NNN.jpg, DIR/CLASS/ground_truth/DEFECT/NNN_mask.png (0/255),
DIR/manifest.json (sources, seed, every defect's parameters) and DIR/split.json.
Images are JPEG quality 95 (PNG would be ~4x larger for noisy photographs);
masks are PNG.  --small: 2 classes (one texture, one object), a few images, for
`make check` (with --more-known, also the first extra class).

--geometry camera: camera-shaped frames instead of squares, for whole-frame
inspection — each class is 16:9 (512×288) or 4:3 (384×288), alternating along
the class table, and its defects are placed anywhere in the frame up to and
across the borders (textures), objects anywhere left to right so they and
their defects touch the side borders.  --geometry WxH: every class W×H with
border-reaching defects.  The default (square, --size × --size, defects kept
away from the edges) is byte-identical to the dataset before camera frames
existed: the same random draws in the same order.  The same classes, sources
and known/unseen split are used either way; manifest.json records each class's
geometry for the camera variants.

--border-defects: square frames whose defects are placed anywhere, up to and
across the borders, as in the camera variants (in the default square dataset
they are kept away from the edges, so border defects are scarce: 1.2 % of the
defect pixels lie within 16 px of the border).

--more-known: adds the known (training-only) texture classes of
tools/dataset/classes-more.json, cut from real photographs in other Debian
packages (each class names its package; see README "Data").  They never
become evaluation classes and use none of the unseen classes' materials, so
source families stay apart between training and evaluation.  The original
classes' images do not change (their generators and defect sources are the
same): only the new classes are added to the training split.
"""
import argparse, io, json, math, os, sys, time, zipfile
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
import scipy.ndimage as nd

HERE = os.path.dirname(os.path.abspath(__file__))
TEXTURE_DEFECTS = ["scratch", "crack", "hole", "stain", "contamination", "missing", "foreign", "warp", "subtle"]
OBJECT_DEFECTS = ["missing_part", "bent", "misprint", "wrong_color", "contamination"]
COUNTS = {"full": dict(train=24, test_good=16, per_defect_tex=2, per_defect_obj=4),
          "small": dict(train=4, test_good=3, per_defect_tex=1, per_defect_obj=1)}


CAMERA = [(512, 288), (384, 288)]  # (W, H): 16:9 and 4:3, alternating over the class table


class Geo:
    """Frame geometry: h×w pixels; edge = defects and objects may reach the borders
    (the camera variants).  Square frames without edge draw exactly what the
    original square builder drew."""

    def __init__(self, h, w, edge):
        self.h, self.w, self.edge = h, w, edge
        self.xy = np.array([w, h], np.float64)  # (x, y) scale for points

    def span(self, lo, hi):
        """Range of a centre as a fraction of the side: the square builder's, or
        the whole side (up to the border) for camera frames."""
        return (0.0, 1.0) if self.edge else (lo, hi)


def rng_for(seed, ci, part, i):
    return np.random.default_rng([seed, ci, part, i])


# ---------------------------------------------------------------- sources
_cache = {}


def read_gimp_pattern(path):
    """A GIMP pattern (.pat, gimp-data): big-endian header size, version 1, width,
    height, bytes per pixel (1-4), magic GPAT, name; then the pixels, row-major."""
    b = open(path, "rb").read()
    hsize, ver, w, h, bpp = (int.from_bytes(b[i:i + 4], "big") for i in range(0, 20, 4))
    if b[20:24] != b"GPAT" or ver != 1 or not 1 <= bpp <= 4 or len(b) < hsize + w * h * bpp:
        raise ValueError(f"{path}: not a GIMP pattern")
    a = np.frombuffer(b, np.uint8, w * h * bpp, hsize).reshape(h, w, bpp)
    return Image.fromarray(a[..., 0] if bpp == 1 else a, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bpp])


def load_sources(archive, files):
    """The source photographs: members of the zip archive, or plain files when archive is None."""
    key = (archive,) + tuple(files)
    if key in _cache:
        return _cache[key]
    z = zipfile.ZipFile(archive) if archive else None
    out = []
    for f in files:
        if z:
            im = Image.open(io.BytesIO(z.read(f)))
        else:
            im = read_gimp_pattern(f) if f.endswith(".pat") else Image.open(f)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (128, 128, 128, 255))
            im = Image.alpha_composite(bg, im)  # flatten alpha onto mid grey
        im = im.convert("RGB")
        if min(im.size) < 512:  # upscale small textures so 256 crops are not tiny
            k = 512 / min(im.size)
            im = im.resize((round(im.width * k), round(im.height * k)), Image.BICUBIC)
        a = np.asarray(im)
        out.append(np.tile(a, (2, 2, 1)))  # textures tile: crops may wrap
    _cache[key] = out
    return out


def texture_crop(rng, srcs, G, params):
    si = int(rng.integers(len(srcs)))
    src = srcs[si]
    h, w = src.shape[0] // 2, src.shape[1] // 2
    short = min(G.h, G.w)
    scale = float(rng.uniform(0.5, 0.7)) * min(h, w) / short  # source pixels per output pixel
    ang = float(rng.uniform(-6, 6))
    cy, cx = int(math.ceil(G.h * scale * 1.15)), int(math.ceil(G.w * scale * 1.15))
    y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
    patch = src[y0:y0 + cy, x0:x0 + cx]
    if patch.shape[0] < cy or patch.shape[1] < cx:
        patch = np.tile(src, (2, 2, 1))[y0:y0 + cy, x0:x0 + cx]
    im = Image.fromarray(patch).rotate(ang, Image.BICUBIC)
    my, mx = (cy - G.h * scale) / 2, (cx - G.w * scale) / 2
    im = im.resize((G.w, G.h), Image.BICUBIC, box=(mx, my, cx - mx, cy - my))
    fh, fv = bool(rng.integers(2)), bool(rng.integers(2))
    if fh:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    if fv:
        im = im.transpose(Image.FLIP_TOP_BOTTOM)
    params.update(source=si, crop=[y0, x0, cy] if cy == cx else [y0, x0, cy, cx], scale=round(scale, 4),
                  angle=round(ang, 3), flip=[fh, fv])
    return np.asarray(im).astype(np.float32)


def camera(rng, img, params, blur=None, noise=None, gains=None):
    """Lighting/contrast jitter, slight blur and sensor noise (all recorded)."""
    b = float(rng.uniform(0.85, 1.15))
    ct = float(rng.uniform(0.85, 1.15))
    g = rng.uniform(0.97, 1.03, 3) if gains is None else gains
    s = float(rng.uniform(0, 0.8)) if blur is None else blur
    n = float(rng.uniform(1, 4)) if noise is None else noise
    mean = img.mean()
    out = ((img - mean) * ct + mean) * b * g
    # a soft lighting gradient across the field
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]] / img.shape[0]
    gd = float(rng.uniform(-0.08, 0.08)) * (xx - 0.5) + float(rng.uniform(-0.08, 0.08)) * (yy - 0.5)
    out = out * (1 + gd[..., None])
    if s > 0.05:
        out = nd.gaussian_filter(out, (s, s, 0))
    out = out + rng.normal(0, n, out.shape)
    params.update(brightness=round(b, 4), contrast=round(ct, 4), blur=round(s, 3), noise=round(n, 3))
    return np.clip(out, 0, 255)


# ---------------------------------------------------------------- shapes
def curve_points(rng, G, length, smooth=0.25):
    p = rng.uniform(*G.span(0.15, 0.85), 2) * G.xy
    a = rng.uniform(0, 2 * math.pi)
    pts = [tuple(p)]
    step = 3.0
    for _ in range(int(length / step)):
        a += rng.normal(0, smooth)
        p = p + step * np.array([math.cos(a), math.sin(a)])
        pts.append(tuple(p))
    return pts


def blob_mask(rng, G, r, cy=None, cx=None, rough=0.35):
    cy = rng.uniform(*G.span(0.2, 0.8)) * G.h if cy is None else cy
    cx = rng.uniform(*G.span(0.2, 0.8)) * G.w if cx is None else cx
    n = 24
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (1 + rough * nd.gaussian_filter1d(rng.normal(0, 1, n), 2, mode="wrap"))
    pts = [(cx + rr * math.cos(t), cy + rr * math.sin(t)) for rr, t in zip(rad, ang)]
    m = Image.new("L", (G.w, G.h), 0)
    ImageDraw.Draw(m).polygon(pts, fill=255)
    return np.asarray(m) > 127, (cy, cx)


def soft(mask, s):
    return np.clip(nd.gaussian_filter(mask.astype(np.float32), s), 0, 1) if s > 0 else mask.astype(np.float32)


# ---------------------------------------------------------------- texture defects
def d_scratch(rng, img, G, p, low=False):
    n = int(rng.integers(1, 4))
    alpha = Image.new("L", (G.w * 2, G.h * 2), 0)
    d = ImageDraw.Draw(alpha)
    widths = []
    for _ in range(n):
        pts = curve_points(rng, G, rng.uniform(40, 180), smooth=0.08)
        wd = int(rng.integers(1, 4))
        widths.append(wd)
        d.line([(x * 2, y * 2) for x, y in pts], fill=255, width=wd * 2, joint="curve")
    a = np.asarray(alpha.resize((G.w, G.h), Image.BILINEAR)).astype(np.float32) / 255
    delta = float(rng.uniform(12, 22) if low else rng.uniform(35, 90)) * (1 if rng.random() < 0.6 else -1)
    out = img + delta * a[..., None]
    p.update(strokes=n, widths=widths, delta=round(delta, 2))
    return out, a > 0.25


def d_crack(rng, img, G, p, low=False):
    alpha = Image.new("L", (G.w * 2, G.h * 2), 0)
    d = ImageDraw.Draw(alpha)
    stack = [(curve_points(rng, G, rng.uniform(60, 160), smooth=0.2), 2)]
    branches = 0
    while stack:
        pts, wd = stack.pop()
        d.line([(x * 2, y * 2) for x, y in pts], fill=255, width=wd, joint="curve")
        if wd > 1 and branches < 5:
            for _ in range(int(rng.integers(1, 3))):
                k = int(rng.integers(len(pts)))
                a0 = rng.uniform(0, 2 * math.pi)
                q = [pts[k]]
                for _ in range(int(rng.integers(5, 20))):
                    a0 += rng.normal(0, 0.25)
                    q.append((q[-1][0] + 3 * math.cos(a0), q[-1][1] + 3 * math.sin(a0)))
                stack.append((q, wd - 1))
                branches += 1
    a = np.asarray(alpha.resize((G.w, G.h), Image.BILINEAR)).astype(np.float32) / 255
    a = np.clip(a * 1.6, 0, 1)
    dark = float(rng.uniform(0.7, 0.8) if low else rng.uniform(0.25, 0.55))
    out = img * (1 - (1 - dark) * a[..., None])
    p.update(branches=branches, darkness=round(dark, 3))
    return out, a > 0.25


def d_hole(rng, img, G, p, low=False):
    n = int(rng.integers(1, 3))
    mask = np.zeros((G.h, G.w), bool)
    out = img.copy()
    yy, xx = np.mgrid[0:G.h, 0:G.w]
    holes = []
    for _ in range(n):
        r = float(rng.uniform(5, 22))
        if G.edge:  # anywhere, partly outside the frame
            cy, cx = rng.uniform(0, 1, 2) * [G.h, G.w]
        else:
            cy, cx = rng.uniform(r + 4, G.h - r - 4, 2)
        rr = np.hypot(yy - cy, xx - cx) / r
        inside = rr < 1
        dent = bool(rng.random() < 0.5)
        ang = rng.uniform(0, 2 * math.pi)
        shade = ((xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)) / r
        k = 0.25 if low else 0.6
        f = np.ones((G.h, G.w), np.float32)
        f[inside] = 1 + k * shade[inside]  # lit on one side, shadowed on the other
        if not dent:
            f[inside] *= np.clip(0.35 + 0.65 * rr[inside] ** 3, 0, 1) if not low else 0.8
        f = nd.gaussian_filter(f, 0.8)
        out = out * f[..., None]
        mask |= rr < 1.05
        holes.append(dict(r=round(r, 2), center=[round(cy, 1), round(cx, 1)], dent=dent))
    p.update(holes=holes)
    return out, mask


def d_stain(rng, img, G, p, low=False):
    r = float(rng.uniform(10, 45))
    m, c = blob_mask(rng, G, r, rough=0.45)
    a = soft(m, rng.uniform(1.5, 4)) * float(rng.uniform(0.15, 0.25) if low else rng.uniform(0.4, 0.8))
    color = rng.uniform(0, 255, 3) if rng.random() < 0.5 else img.mean((0, 1)) * rng.uniform(0.3, 0.7)
    out = img * (1 - a[..., None]) + color * a[..., None]
    p.update(radius=round(r, 2), center=[round(c[0], 1), round(c[1], 1)], color=[round(float(v), 1) for v in color],
             opacity=round(float(a.max()), 3))
    return out, a > 0.08 if not low else a > 0.05


def d_contamination(rng, img, G, p, low=False):
    n = int(rng.integers(3, 16))
    mask = np.zeros((G.h, G.w), bool)
    a = np.zeros((G.h, G.w), np.float32)
    yy, xx = np.mgrid[0:G.h, 0:G.w]
    if G.edge:
        cy0, cx0 = rng.uniform(0, 1, 2) * [G.h, G.w]
    else:
        cy0, cx0 = rng.uniform(0.2, 0.8, 2) * G.h
    spread = rng.uniform(10, 50)
    for _ in range(n):
        if G.edge:  # specks up to the border pixel
            cy, cx = np.clip(rng.normal([cy0, cx0], spread), 0, [G.h - 1, G.w - 1])
        else:
            cy, cx = np.clip(rng.normal([cy0, cx0], spread), 3, G.h - 4)
        r = rng.uniform(1, 3.5)
        d = np.hypot(yy - cy, xx - cx)
        a = np.maximum(a, np.clip(r + 0.5 - d, 0, 1))
    color = rng.choice([0, 1, 2])
    col = [np.array([20, 20, 20]), np.array([235, 235, 225]), rng.uniform(0, 255, 3)][color]
    k = 0.45 if low else 1.0
    out = img * (1 - k * a[..., None]) + col * k * a[..., None]
    mask = a > 0.3
    p.update(specks=n, spread=round(float(spread), 1), color=[round(float(v), 1) for v in col])
    return out, mask


def d_missing(rng, img, G, p, low=False):
    r = float(rng.uniform(10, 35))
    m, c = blob_mask(rng, G, r, rough=0.25)
    # a cut region: nearly flat backing material with a shaded rim
    fill = float(rng.uniform(10, 60) if rng.random() < 0.7 else rng.uniform(150, 220))
    rim = soft(m, 1.2) - soft(nd.binary_erosion(m, iterations=2), 1.2)
    out = img.copy()
    out[m] = fill + rng.normal(0, 3, (int(m.sum()), 3))
    out = out * (1 - 0.4 * np.clip(rim, 0, 1)[..., None])
    p.update(radius=round(r, 2), center=[round(c[0], 1), round(c[1], 1)], fill=round(fill, 1))
    return out, m


def d_foreign(rng, img, G, p, other, low=False):
    r = float(rng.uniform(12, 40))
    m, c = blob_mask(rng, G, r, rough=0.3)
    a = soft(m, 0.8)
    out = img * (1 - a[..., None]) + other * a[..., None]
    p.update(radius=round(r, 2), center=[round(c[0], 1), round(c[1], 1)])
    return out, m


def d_warp(rng, img, G, p, low=False):
    r = float(rng.uniform(15, 40))
    if G.edge:
        cy, cx = rng.uniform(0, 1, 2) * [G.h, G.w]
    else:
        cy, cx = rng.uniform(r, G.h - r, 2)
    yy, xx = np.mgrid[0:G.h, 0:G.w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    d = np.hypot(dy, dx) / r
    w = np.clip(1 - d, 0, 1) ** 2
    kind = "swirl" if rng.random() < 0.5 else "bulge"
    amt = float(rng.uniform(0.4, 0.8) if low else rng.uniform(1.0, 2.2))
    if kind == "swirl":
        th = amt * w
        sy = cy + dy * np.cos(th) - dx * np.sin(th)
        sx = cx + dy * np.sin(th) + dx * np.cos(th)
    else:
        f = 1 - 0.45 * amt / 2.2 * w
        sy, sx = cy + dy * f, cx + dx * f
    out = np.stack([nd.map_coordinates(img[..., k], [sy, sx], order=1, mode="reflect") for k in range(3)], -1)
    disp = np.hypot(sy - yy, sx - xx)
    p.update(kind=kind, radius=round(r, 2), center=[round(cy, 1), round(cx, 1)], amount=round(amt, 3))
    # the whole deformed disc is the defect (the centre of a swirl barely moves but is warped)
    p["max_displacement"] = round(float(disp.max()), 3)
    return out, d < 0.85


TEX_FUNCS = {"scratch": d_scratch, "crack": d_crack, "hole": d_hole, "stain": d_stain,
             "contamination": d_contamination, "missing": d_missing, "foreign": d_foreign, "warp": d_warp}


# ---------------------------------------------------------------- objects
def obj_background(rng, G):
    base = rng.uniform(40, 70)
    yy, xx = np.mgrid[0:G.h, 0:G.w] / G.h
    g = base + 10 * (xx - 0.5) + 6 * (yy - 0.5)
    return np.repeat(g[..., None], 3, -1).astype(np.float32)


def metal_fill(G, cy, cx, r, col, ang):
    yy, xx = np.mgrid[0:G.h, 0:G.w]
    sh = 1 + 0.25 * (((xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)) / max(r, 1))
    return np.asarray(col, np.float32)[None, None, :] * sh[..., None]


# half-extent of each object kind (pixels, with its pose jitter), for placing it
# anywhere left to right in camera frames
OBJ_EXTENT = {"washer": 86, "screw_head": 86, "gear": 88, "hex_nut": 78, "label": 94, "pcb": 120}


def draw_object(kind, rng, G, defect, p):
    """Renders one object; returns (image float32, object-region bool). `defect`
    is None or one of OBJECT_DEFECTS; the generator draws the same base parameters
    whatever the defect, so normal and defective renders share pose."""
    bg = obj_background(rng, G)
    cy, cx = G.h / 2 + rng.uniform(-6, 6, 2)
    if G.edge:  # anywhere from the left to the right border
        cx = float(rng.uniform(OBJ_EXTENT[kind], G.w - OBJ_EXTENT[kind]))
    rot = float(rng.uniform(0, 2 * math.pi))
    light = float(rng.uniform(0, 2 * math.pi))
    S = 4  # supersampling for anti-aliased edges
    L = Image.new("L", (G.w * S, G.h * S), 0)
    d = ImageDraw.Draw(L)
    col = np.array([175, 178, 182], np.float32) * rng.uniform(0.93, 1.07)
    extra = None  # second layer (print, tracks, slot) drawn darker/lighter
    E = Image.new("L", (G.w * S, G.h * S), 0)
    de = ImageDraw.Draw(E)
    dpar = {}

    def P(x, y):
        return (x * S, y * S)

    def rotp(px, py, a=rot):
        return (cx + px * math.cos(a) - py * math.sin(a), cy + px * math.sin(a) + py * math.cos(a))

    if kind in ("washer", "screw_head"):
        R = 80 + rng.uniform(-3, 3)
        ry = R * (rng.uniform(0.72, 0.85) if defect == "bent" else 1.0)
        pts = [P(*rotp(R * math.cos(t), ry * math.sin(t))) for t in np.linspace(0, 2 * math.pi, 180)]
        d.polygon(pts, fill=255)
        if kind == "washer":
            d.ellipse([P(cx - 34, cy - 34), P(cx + 34, cy + 34)], fill=0)
            if defect == "missing_part":
                a0 = float(rng.uniform(0, 2 * math.pi))
                w = float(rng.uniform(0.2, 0.5))
                d.pieslice([P(cx - R - 2, cy - R - 2), P(cx + R + 2, cy + R + 2)],
                           math.degrees(a0), math.degrees(a0 + w), fill=0)
                dpar = dict(cut_angle=round(a0, 3), cut_width=round(w, 3))
        else:
            col = np.array([150, 140, 120], np.float32) * rng.uniform(0.93, 1.07)
            sw, sl = 9, 55
            for a in (rot, rot + math.pi / 2):
                if defect == "missing_part" and a != rot:
                    continue
                q = [rotp(-sl, -sw, a), rotp(sl, -sw, a), rotp(sl, sw, a), rotp(-sl, sw, a)]
                de.polygon([P(*x) for x in q], fill=255)
            if defect == "misprint":  # slot off-centre (stamping error)
                off = rng.uniform(12, 22)
                de.rectangle([P(0, 0), P(G.w, G.h)], fill=0)
                c2 = (cx + off * math.cos(rot), cy + off * math.sin(rot))
                for a in (rot, rot + math.pi / 2):
                    q = [(c2[0] + px * math.cos(a) - py * math.sin(a), c2[1] + px * math.sin(a) + py * math.cos(a))
                         for px, py in [(-sl, -sw), (sl, -sw), (sl, sw), (-sl, sw)]]
                    de.polygon([P(*x) for x in q], fill=255)
                dpar = dict(offset=round(float(off), 2))
    elif kind == "gear":
        n = int(rng.integers(12, 17))
        R, T = 70.0, 14.0
        miss = int(rng.integers(n)) if defect == "missing_part" else -1
        bend = int(rng.integers(n)) if defect == "bent" else -1
        pts = []
        for i in range(n):
            for j, (f, rad) in enumerate([(0.0, R), (0.15, R + T), (0.45, R + T), (0.6, R)]):
                rr = R if i == miss and rad > R else rad
                t = rot + 2 * math.pi * (i + f) / n
                if i == bend and rad > R:
                    t += 0.2
                    rr = R + T * 0.8
                pts.append(P(cx + rr * math.cos(t), cy + rr * math.sin(t)))
        d.polygon(pts, fill=255)
        d.ellipse([P(cx - 20, cy - 20), P(cx + 20, cy + 20)], fill=0)
        col = np.array([190, 160, 95], np.float32) * rng.uniform(0.93, 1.07)
        dpar = dict(teeth=n, missing_tooth=miss, bent_tooth=bend)
    elif kind == "hex_nut":
        R = 72 + rng.uniform(-3, 3)
        pts = []
        chip = int(rng.integers(6)) if defect == "missing_part" else -1
        for i in range(6):
            t = rot + i * math.pi / 3
            rr = R * (rng.uniform(0.86, 0.92) if defect == "bent" and i % 3 == 0 else 1.0)
            if i == chip:
                for dt in (-0.16, 0.16):
                    pts.append(P(cx + R * 0.78 * math.cos(t + dt), cy + R * 0.78 * math.sin(t + dt)))
            else:
                pts.append(P(cx + rr * math.cos(t), cy + rr * math.sin(t)))
        d.polygon(pts, fill=255)
        d.ellipse([P(cx - 32, cy - 32), P(cx + 32, cy + 32)], fill=0)
        de.ellipse([P(cx - 38, cy - 38), P(cx + 38, cy + 38)], outline=255, width=3 * S)
        dpar = dict(chipped_corner=chip)
    elif kind == "label":
        w, h = 150, 100
        q = [rotp(-w / 2, -h / 2, rot * 0.05), rotp(w / 2, -h / 2, rot * 0.05), rotp(w / 2, h / 2, rot * 0.05),
             rotp(-w / 2, h / 2, rot * 0.05)]
        d.polygon([P(*x) for x in q], fill=255)
        if defect == "missing_part":  # torn corner
            k = int(rng.integers(4))
            a, b = q[k], q[(k + 1) % 4]
            cpt = q[(k + 3) % 4]
            f1, f2 = rng.uniform(0.2, 0.4), rng.uniform(0.25, 0.45)
            d.polygon([P(*a), P(a[0] + (b[0] - a[0]) * f1, a[1] + (b[1] - a[1]) * f1),
                       P(a[0] + (cpt[0] - a[0]) * f2, a[1] + (cpt[1] - a[1]) * f2)], fill=0)
            dpar = dict(corner=k)
        col = np.array([232, 230, 222], np.float32)
        # barcode + text lines (same bar pattern for every image of the class)
        bars = np.random.default_rng(7).integers(1, 4, 30)
        x = -w / 2 + 12
        skip = set(rng.choice(30, 4, replace=False).tolist()) if defect == "misprint" else set()
        for i, bw in enumerate(bars):
            if i % 2 == 0 and i not in skip:
                qq = [rotp(x, -10, rot * 0.05), rotp(x + bw, -10, rot * 0.05), rotp(x + bw, 38, rot * 0.05),
                      rotp(x, 38, rot * 0.05)]
                de.polygon([P(*z) for z in qq], fill=255)
            x += bw * 1.4
        shift = rng.uniform(6, 12) if defect == "misprint" and rng.random() < 0.5 else 0
        for j, ln in enumerate([80, 110, 60]):
            y = -40 + j * 9
            qq = [rotp(-w / 2 + 12 + shift, y, rot * 0.05), rotp(-w / 2 + 12 + ln + shift, y, rot * 0.05),
                  rotp(-w / 2 + 12 + ln + shift, y + 4, rot * 0.05), rotp(-w / 2 + 12 + shift, y + 4, rot * 0.05)]
            de.polygon([P(*z) for z in qq], fill=255)
        if defect == "misprint":
            dpar = dict(missing_bars=sorted(skip), text_shift=round(float(shift), 2))
    elif kind == "pcb":
        w = 200
        q = [rotp(-w / 2, -w / 2, rot * 0.03), rotp(w / 2, -w / 2, rot * 0.03), rotp(w / 2, w / 2, rot * 0.03),
             rotp(-w / 2, w / 2, rot * 0.03)]
        d.polygon([P(*x) for x in q], fill=255)
        col = np.array([30, 105, 50], np.float32) * rng.uniform(0.93, 1.07)
        lay = np.random.default_rng(11)  # fixed board layout
        tracks = []
        for _ in range(9):
            y = lay.uniform(-80, 80)
            x0, x1 = sorted(lay.uniform(-85, 85, 2))
            xm = lay.uniform(x0, x1)
            y2 = np.clip(y + lay.uniform(-40, 40), -85, 85)
            tracks.append([(x0, y), (xm, y), (xm + abs(y2 - y), y2), (max(x1, xm + abs(y2 - y)), y2)])
        brk = int(rng.integers(9)) if defect == "missing_part" else -1
        for i, tr in enumerate(tracks):
            pts = [P(*rotp(x, y, rot * 0.03)) for x, y in tr]
            de.line(pts, fill=255, width=4 * S, joint="curve")
            for e in (tr[0], tr[-1]):
                c = rotp(*e, rot * 0.03)
                de.ellipse([P(c[0] - 5, c[1] - 5), P(c[0] + 5, c[1] + 5)], fill=255)
            if i == brk:
                a, b = tr[1], tr[2]
                f = rng.uniform(0.3, 0.7)
                c = rotp(a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, rot * 0.03)
                de.ellipse([P(c[0] - 5, c[1] - 5), P(c[0] + 5, c[1] + 5)], fill=0)
        if defect == "misprint":  # solder bridge between tracks
            t1 = tracks[int(rng.integers(9))]
            c = rotp(*t1[1], rot * 0.03)
            ang = rng.uniform(0, 2 * math.pi)
            ln = rng.uniform(12, 25)
            de.line([P(*c), P(c[0] + ln * math.cos(ang), c[1] + ln * math.sin(ang))], fill=255, width=5 * S)
            dpar = dict(bridge_len=round(float(ln), 2))
        if defect == "missing_part":
            dpar = dict(broken_track=brk)
    if defect == "wrong_color":
        tint = rng.uniform(0.55, 1.0, 3)
        tint[int(rng.integers(3))] = 0.45
        col = col * tint
        dpar = dict(tint=[round(float(t), 3) for t in tint])
    Lm = np.asarray(L.resize((G.w, G.h), Image.BOX)).astype(np.float32) / 255
    Em = np.asarray(E.resize((G.w, G.h), Image.BOX)).astype(np.float32) / 255 * Lm
    body = metal_fill(G, cy, cx, 80, col, light)
    if kind == "label":
        ink = np.array([25, 25, 30], np.float32)
    elif kind == "pcb":
        ink = np.array([200, 150, 70], np.float32)
    else:
        ink = col * 0.45
    fg = body * (1 - Em[..., None]) + ink * Em[..., None]
    img = bg * (1 - Lm[..., None]) + fg * Lm[..., None]
    p.update(center=[round(cy, 2), round(cx, 2)], rotation=round(rot, 4), **dpar)
    return img, Lm > 0.5


def object_image(kind, ci, seed, part, idx, G, defect, p):
    """Normal (defect None) or defective object image; mask from the difference
    to the normal render of the same pose."""
    g = rng_for(seed, ci, part, idx)
    base_state = g.bit_generator.state
    img0, obj = draw_object(kind, g, G, None, {})
    if defect is None:
        img = img0
        mask = None
        draw_object_state = None  # noqa
    elif defect == "contamination" or (defect == "bent" and kind in ("label", "pcb")):
        img = img0
        mask = np.zeros((G.h, G.w), bool)
    else:
        g.bit_generator.state = base_state
        img, _ = draw_object(kind, g, G, defect, p)
        dif = np.abs(img - img0).max(-1)
        mask = nd.binary_opening(dif > 12, iterations=1)
        mask = nd.binary_closing(mask, iterations=1)
    cam = rng_for(seed, ci, part + 100, idx)
    if defect == "contamination":  # specks anywhere in view (on the part or in its hole)
        img, mask = d_contamination(cam, img, G, p)
    elif defect == "bent" and kind in ("label", "pcb"):  # a flat part bent: local warp on the part
        img, mask = d_warp(cam, img, G, p)
        mask &= nd.binary_dilation(obj, iterations=3)
    if defect is not None and mask.sum() < 8:  # no visible change (e.g. rare tie): fall back to specks
        img, mask = d_contamination(cam, img0, G, p)
    img = camera(cam, img, p, noise=float(cam.uniform(1, 3)))
    return img, mask


# ---------------------------------------------------------------- per class
def save_jpg(path, img):
    Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).save(path, quality=95)


def save_mask(path, m):
    Image.fromarray((m.astype(np.uint8) * 255)).save(path, optimize=True)


def texture_image(c, ci, seed, part, idx, G, archive, classes, defect, p):
    g = rng_for(seed, ci, part, idx)
    srcs = load_sources(None if "package" in c else archive, c["sources"])  # --more-known: plain files
    img = texture_crop(g, srcs, G, p)
    if defect is None:
        return camera(g, img, p), None
    low = defect == "subtle" or g.random() < 0.2  # a share of hard, low-contrast cases
    p["hard"] = bool(low)
    kind = defect
    if defect == "subtle":
        kind = str(g.choice(["scratch", "stain", "hole", "warp", "crack"]))
        p["subtle_kind"] = kind
    n = 1 if kind in ("foreign", "missing", "warp") or g.random() < 0.7 else int(g.integers(2, 4))
    mask = np.zeros((G.h, G.w), bool)
    subs = []
    for _ in range(n):
        q = {}
        if kind == "foreign":
            others = [o for o in classes if o["kind"] == "texture" and o["name"] != c["name"]]
            o = others[int(g.integers(len(others)))]
            other = texture_crop(g, load_sources(archive, o["sources"]), G, {})
            q["from_class"] = o["name"]
            img, m = d_foreign(g, img, G, q, other, low)
        else:
            img, m = TEX_FUNCS[kind](g, img, G, q, low)
        mask |= m
        subs.append(q)
    if mask.sum() < 8:  # nothing left to see (e.g. a defect clipped away): add specks
        q = {"fallback": True}
        img, m = d_contamination(g, img, G, q, low)
        mask |= m
        subs.append(q)
    p["defects"] = subs
    return camera(g, np.clip(img, 0, 255), p), mask


def build_class(args):
    c, ci, seed, geo, out, archive, classes, counts = args
    G = Geo(*geo)
    cdir = os.path.join(out, c["name"])
    man = {"name": c["name"], "kind": c["kind"], "split": c["split"], "sources": c["sources"], "images": []}
    if "package" in c:
        man["package"] = c["package"]
    if G.edge:
        man["geometry"] = {"width": G.w, "height": G.h, "defects_reach_borders": True}
    is_tex = c["kind"] == "texture"
    defects = TEXTURE_DEFECTS if is_tex else OBJECT_DEFECTS
    if not is_tex and c["name"] not in ("label", "pcb", "screw_head"):
        defects = [d for d in defects if d != "misprint"]
    per = counts["per_defect_tex"] if is_tex else counts["per_defect_obj"]
    jobs = [("train", "good", None, i) for i in range(counts["train"])]
    jobs += [("test", "good", None, i) for i in range(counts["test_good"])]
    for k, dname in enumerate(defects):
        jobs += [("test", dname, dname, i) for i in range(per)]
    for split, folder, defect, i in jobs:
        part = 0 if split == "train" else (1 if defect is None else 2 + defects.index(defect))
        p = {}
        if is_tex:
            img, mask = texture_image(c, ci, seed, part, i, G, archive, classes, defect, p)
        else:
            img, mask = object_image(c["name"], ci, seed, part, i, G, defect, p)
        d = os.path.join(cdir, split, folder)
        os.makedirs(d, exist_ok=True)
        rel = f"{c['name']}/{split}/{folder}/{i:03d}.jpg"
        save_jpg(os.path.join(out, rel), img)
        ent = {"file": rel, "defect": defect, "params": p}
        if mask is not None:
            md = os.path.join(cdir, "ground_truth", folder)
            os.makedirs(md, exist_ok=True)
            mrel = f"{c['name']}/ground_truth/{folder}/{i:03d}_mask.png"
            save_mask(os.path.join(out, mrel), mask)
            ent["mask"] = mrel
            ent["mask_pixels"] = int(mask.sum())
        man["images"].append(ent)
    return man


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--classes", default=os.path.join(HERE, "classes.json"))
    ap.add_argument("--archive", default=None)
    ap.add_argument("--geometry", default="square",
                    help="square (--size²), camera (16:9 512x288 / 4:3 384x288 by class) or WxH")
    ap.add_argument("--border-defects", action="store_true",
                    help="square frames with defects anywhere up to and across the borders")
    ap.add_argument("--more-known", action="store_true",
                    help="add the known classes of classes-more.json (photographs from other Debian packages)")
    ap.add_argument("--more-classes", default=os.path.join(HERE, "classes-more.json"))
    a = ap.parse_args(argv)
    if a.size < 128 or a.size > 1024:
        ap.error("--size must be within 128..1024")
    fixed = None
    if a.geometry not in ("square", "camera"):
        try:
            fw, fh = (int(v) for v in a.geometry.lower().split("x"))
        except ValueError:
            ap.error("--geometry is square, camera or WxH (e.g. 512x288)")
        if not (128 <= min(fw, fh) and max(fw, fh) <= 2048):
            ap.error("--geometry WxH: sides within 128..2048")
        fixed = (fw, fh)
    table = json.load(open(a.classes))
    archive = a.archive or table["source_archive"]
    if not os.path.exists(archive):
        print(f"build.py: {archive} not found; install the Debian package openarena-081-textures",
              file=sys.stderr)
        return 1
    classes = table["classes"]
    chosen = list(classes)
    more = []
    if a.more_known:
        mt = json.load(open(a.more_classes))
        more = mt["classes"]
        missing = sorted({c["package"] for c in more for f in c["sources"] if not os.path.exists(f)})
        if missing:
            print(f"build.py: sources missing; install the Debian package(s) {' '.join(missing)}", file=sys.stderr)
            return 1
        names = {c["name"] for c in classes}
        for c in more:
            if c["split"] != "known" or c["name"] in names or c["kind"] != "texture":
                print(f"build.py: {a.more_classes}: {c['name']} must be a new known texture class", file=sys.stderr)
                return 1
        chosen += more
    if a.small:
        chosen = [next(c for c in classes if c["kind"] == "texture" and c["split"] == "unseen"),
                  next(c for c in classes if c["kind"] == "object" and c["split"] == "unseen")] + more[:1]
    counts = COUNTS["small" if a.small else "full"]
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    def geo(ci):  # Geo(h, w, edge) arguments for class index ci of the table
        if a.geometry == "square":
            return (a.size, a.size, a.border_defects)
        fw, fh = fixed or CAMERA[ci % len(CAMERA)]
        return (fh, fw, True)

    # the table's own classes keep their index (and so their random streams);
    # --more-known classes come after them
    index = {c["name"]: i for i, c in enumerate(classes + more)}
    work = [(c, index[c["name"]], a.seed, geo(index[c["name"]]), a.out, archive, classes, counts) for c in chosen]
    if a.jobs > 1:
        with Pool(a.jobs) as pool:
            mans = pool.map(build_class, work, chunksize=1)
    else:
        mans = [build_class(w) for w in work]
    manifest = {"generator": "tools/dataset/build.py", "seed": a.seed, "size": a.size, "small": a.small,
                "source_package": table["source_package"], "source_archive": archive,
                "image_format": "JPEG quality 95; masks PNG 0/255", "classes": mans}
    if a.geometry != "square":
        manifest["geometry"] = a.geometry
        del manifest["size"]
    if a.border_defects:
        manifest["border_defects"] = True
    if more:
        manifest["more_known"] = {"table": os.path.basename(a.more_classes),
                                  "packages": sorted({c["package"] for c in more})}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    split = {"known": [c["name"] for c in chosen if c["split"] == "known"],
             "unseen": [c["name"] for c in chosen if c["split"] == "unseen"]}
    with open(os.path.join(a.out, "split.json"), "w") as f:
        json.dump(split, f, indent=1)
    n = sum(len(m["images"]) for m in mans)
    print(f"build.py: {len(mans)} classes, {n} images in {a.out} ({time.time() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
