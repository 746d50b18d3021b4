#!/usr/bin/python3
"""test_metrics.py — core/metrics against scikit-learn and a numpy/scipy PRO reference.

Fixtures (written as raw files for tests/metrics_tool): continuous random
scores with blob-shaped ground truth, heavily tied (quantized) scores, all
scores equal, regions that touch only diagonally (8-connectivity), and
degenerate runs (one class only → NaN).  Image/pixel AUROC, AP and F1-max must
match sklearn's roc_auc_score, average_precision_score and the F1 maximum over
precision_recall_curve to 1e-6; PRO must match the reference below (MVTec AD's
definition, written independently: threshold by threshold) to 1e-6.  Limits
and non-finite scores must be reported as errors (exit 2), not crashes.

Whole-frame projection (cli/eval_metrics.c rd_eval_map_to_frame, what `resad
eval` uses to score maps at the masks' geometry): identity = the map itself;
a frame twice the grid = scipy.ndimage.map_coordinates(order=1, mode="nearest")
at the pixel centres; a centre-crop grid on a 3:2 frame inspects 2/3 of the
frame and scores every uninspected pixel as the lowest inspected value; a
padded grid never blends its padding into the frame.
"""
import json, os, struct, subprocess, sys, tempfile, warnings

import numpy as np
import scipy.ndimage as nd
from sklearn.metrics import roc_auc_score, average_precision_score, precision_recall_curve

build = os.environ.get("top_builddir", ".")
TOOL = os.path.join(build, "tests", "metrics_tool")
fails = 0
worst = 0.0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def write_fixture(path, img_s, img_l, maps, masks):
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(img_s)))
        f.write(np.asarray(img_s, "<f4").tobytes())
        f.write(np.asarray(img_l, np.uint8).tobytes())
        h, w = (maps[0].shape if len(maps) else (1, 1))
        f.write(struct.pack("<III", len(maps), w, h))
        for m, k in zip(maps, masks):
            f.write(np.asarray(m, "<f4").tobytes())
            f.write(np.asarray(k, np.uint8).tobytes())


def run(path, *extra):
    p = subprocess.run([TOOL, path, *map(str, extra)], capture_output=True, text=True)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def f1_max(y, s):
    p, r, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(f.max())


def ref_curve(y, s):
    """sklearn metrics; NaN where sklearn has no value (one class only)."""
    y = np.asarray(y).astype(int)
    s = np.asarray(s, np.float32).astype(np.float64)
    out = {}
    if y.min() == y.max():
        out["auroc"] = float("nan")
    else:
        out["auroc"] = roc_auc_score(y, s)
    if y.sum() == 0:
        out["ap"] = out["f1"] = float("nan")
    else:
        out["ap"] = average_precision_score(y, s)
        out["f1"] = f1_max(y, s)
    return out


def ref_pro(maps, masks, limit=0.3):
    """MVTec AD PRO: 8-connected regions, mean overlap vs FPR, area to `limit` / limit."""
    s_all = np.concatenate([np.asarray(m, np.float32).ravel() for m in maps]).astype(np.float64)
    regions = []
    normal = []
    for m, k in zip(maps, masks):
        lab, n = nd.label(np.asarray(k) > 0, structure=np.ones((3, 3), int))
        m = np.asarray(m, np.float32).astype(np.float64)
        for r in range(1, n + 1):
            regions.append(np.sort(m[lab == r]))
        normal.append(m[lab == 0])
    normal = np.sort(np.concatenate(normal))
    if not regions or normal.size == 0:
        return float("nan"), len(regions)
    ts = np.unique(s_all)[::-1]
    fpr = (normal.size - np.searchsorted(normal, ts, "left")) / normal.size
    pro = np.zeros(ts.size)
    for r in regions:
        pro += (r.size - np.searchsorted(r, ts, "left")) / r.size
    pro /= len(regions)
    x = np.concatenate([[0.0], fpr])
    y = np.concatenate([[0.0], np.minimum(pro, 1.0)])
    area = 0.0
    for i in range(1, x.size):
        if x[i] <= limit:
            area += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1])
        else:
            if x[i - 1] < limit:
                yi = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
                area += 0.5 * (yi + y[i - 1]) * (limit - x[i - 1])
            break
    return area / limit, len(regions)


def close(a, b, tol=1e-6):
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= tol


def compare(name, tmp, img_s, img_l, maps, masks):
    global worst
    path = os.path.join(tmp, name + ".bin")
    write_fixture(path, img_s, img_l, maps, masks)
    rc, got, err = run(path)
    check(rc == 0, f"{name}: tool failed: {err}")
    if rc:
        return
    ri = ref_curve(img_l, img_s)
    ys = np.concatenate([np.asarray(k).ravel() > 0 for k in masks])
    ss = np.concatenate([np.asarray(m).ravel() for m in maps])
    rp = ref_curve(ys, ss)
    pro, nreg = ref_pro(maps, masks)
    pairs = [("image_auroc", ri["auroc"]), ("image_ap", ri["ap"]), ("image_f1_max", ri["f1"]),
             ("pixel_auroc", rp["auroc"]), ("pixel_ap", rp["ap"]), ("pixel_f1_max", rp["f1"]),
             ("pro", pro)]
    for k, v in pairs:
        check(close(got[k], v), f"{name}: {k} = {got[k]!r}, reference {v!r}")
        if not (np.isnan(v) or np.isnan(got[k])):
            worst = max(worst, abs(got[k] - v))
    check(got["n_regions"] == nreg, f"{name}: {got['n_regions']} regions, scipy finds {nreg}")
    print(f"{name}: " + ", ".join(f"{k}={got[k]:.6f}" for k, _ in pairs) + f", regions={nreg}")


def blobs(rng, h, w, n):
    k = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.uniform(1, h / 6), rng.uniform(1, w / 6)
        k |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return k


def project(tmp, m, src, dst, fw, fh):
    path = os.path.join(tmp, "frame.bin")
    with open(path, "wb") as f:
        f.write(struct.pack("<II", m.shape[1], m.shape[0]) + struct.pack("<8d", *src, *dst) +
                struct.pack("<II", fw, fh) + np.asarray(m, "<f4").tobytes())
    p = subprocess.run([TOOL, "--frame", path, path + ".out"], capture_output=True, text=True)
    check(p.returncode == 0, f"--frame: {p.stderr}")
    out = np.frombuffer(open(path + ".out", "rb").read(), "<f4").reshape(fh, fw)
    return out, float(p.stdout)


def frame_cases(tmp, rng):
    m = rng.normal(0, 1, (14, 22)).astype(np.float32)
    out, insp = project(tmp, m, (0, 0, 1, 1), (0, 0, 22, 14), 22, 14)
    check(insp == 1.0 and np.array_equal(out, m), "frame: identity projection")
    out, insp = project(tmp, m, (0, 0, 1, 1), (0, 0, 22, 14), 44, 28)
    yy, xx = np.mgrid[0:28, 0:44]
    ref = nd.map_coordinates(m.astype(np.float64), [(yy + 0.5) / 2 - 0.5, (xx + 0.5) / 2 - 0.5], order=1,
                             mode="nearest")
    d = np.abs(out - ref).max()
    check(insp == 1.0 and d < 1e-5, f"frame: 2x projection differs from scipy by {d}")
    # today's centre crop: a 300x200 frame, the S x S map covers columns 50..249
    sq = rng.normal(0, 1, (16, 16)).astype(np.float32)
    out, insp = project(tmp, sq, (50 / 300, 0, 200 / 300, 1), (0, 0, 16, 16), 300, 200)
    inside = out[:, 50:250]
    check(abs(insp - 2 / 3) < 1e-9, f"frame: crop inspected fraction {insp}, want 2/3")
    check(np.all(out[:, :50] == inside.min()) and np.all(out[:, 250:] == inside.min()),
          "frame: uninspected pixels are not the lowest inspected value")
    gy, gx = np.mgrid[0:200, 0:200]
    ref = nd.map_coordinates(sq.astype(np.float64), [(gy + 0.5) * 16 / 200 - 0.5, (gx + 0.5) * 16 / 200 - 0.5],
                             order=1, mode="nearest")
    check(np.abs(inside - ref).max() < 1e-5, "frame: crop projection differs from scipy")
    # a padded grid: rows 0..3 and 12..15 are padding holding huge values
    pad = sq.copy()
    pad[:4] = 1e6
    pad[12:] = 1e6
    out, insp = project(tmp, pad, (0, 0, 1, 1), (0, 4, 16, 8), 160, 80)
    check(insp == 1.0 and out.max() <= sq[4:12].max() + 1e-6, "frame: padding blended into the frame")
    # nothing inspected: the map's minimum everywhere
    out, insp = project(tmp, sq, (2, 2, 1, 1), (0, 0, 16, 16), 30, 20)
    check(insp == 0.0 and np.all(out == sq.min()), "frame: nothing inspected")
    print("frame projection: identity, 2x, crop (2/3 inspected), padding, nothing inspected: checked")


def main():
    warnings.simplefilter("ignore")
    tmp = tempfile.mkdtemp(prefix="rd-metrics-")
    rng = np.random.default_rng(4)
    h, w = 48, 40
    for case in range(4):
        n = 10
        masks = [blobs(rng, h, w, rng.integers(0, 4)) if i % 3 else np.zeros((h, w), bool)
                 for i in range(n)]
        maps = [rng.normal(0, 1, (h, w)) + 1.5 * nd.gaussian_filter(k.astype(float), 2) * rng.uniform(0, 2)
                for k in masks]
        img_l = [int(k.any()) for k in masks]
        img_s = [float(m.max()) for m in maps]
        compare(f"random{case}", tmp, img_s, img_l, maps, masks)
        # Heavy ties: the same maps quantized to a few levels.
        q = [np.round(m * 2) / 2 for m in maps]
        compare(f"ties{case}", tmp, np.round(np.array(img_s)), img_l, q, masks)
        q = [np.clip(np.round(m), -1, 1) for m in maps]
        compare(f"fewlevels{case}", tmp, np.sign(np.array(img_s) - 2.5), img_l, q, masks)
    # Image side with many ties and many images.
    il = rng.integers(0, 2, 500)
    isc = rng.integers(0, 7, 500) + il * rng.integers(0, 3, 500)
    m0 = [rng.normal(0, 1, (h, w))]
    k0 = [blobs(rng, h, w, 3)]
    compare("imageties", tmp, isc.astype(float), il, m0, k0)
    # All scores equal: AUROC 0.5, AP = prevalence, PRO = 0.3-limit trapezoid of a jump to (1,1).
    flat = [np.full((h, w), 0.25) for _ in range(3)]
    fk = [blobs(rng, h, w, 2) for _ in range(3)]
    compare("allsame", tmp, [1.0] * 6, [0, 1, 0, 1, 1, 0], flat, fk)
    # Diagonal-only contact: 8-connectivity joins, 4-connectivity would split.
    k = np.zeros((h, w), bool)
    for i in range(10):
        k[5 + i, 5 + i] = True
    k[30:33, 30:33] = True
    k[33, 33] = True
    k[20, 30] = True
    compare("diagonal", tmp, [0.1, 0.9], [0, 1], [rng.normal(0, 1, (h, w)) + 2 * k], [k])
    # Degenerate: only good images / no defect pixels → NaN; only defective pixels → PRO NaN.
    nm = [rng.normal(0, 1, (h, w)) for _ in range(2)]
    nk = [np.zeros((h, w), bool)] * 2
    compare("onlygood", tmp, [0.3, 0.4], [0, 0], nm, nk)
    compare("onlybad", tmp, [0.3, 0.4], [1, 1], nm, [np.ones((h, w), bool)] * 2)
    # Errors: pixel limit and non-finite scores.
    path = os.path.join(tmp, "limit.bin")
    write_fixture(path, [0.1], [0], nm, nk)
    rc, _, err = run(path, h * w + 5)
    check(rc == 2 and "limit" in err, f"pixel limit not enforced: rc={rc} {err}")
    bad = [m.copy() for m in nm]
    bad[1][3, 3] = np.nan
    write_fixture(path, [0.1], [0], bad, nk)
    rc, _, err = run(path)
    check(rc == 2 and "finite" in err, f"NaN score accepted: rc={rc} {err}")
    write_fixture(path, [np.inf], [0], nm, nk)
    rc, _, err = run(path)
    check(rc == 2, f"inf image score accepted: rc={rc} {err}")
    frame_cases(tmp, rng)
    print(f"worst |C - reference| = {worst:.3g}")
    print("ok" if not fails else f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
