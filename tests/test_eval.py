#!/usr/bin/python3
"""test_eval.py — `resad eval` end to end on a tiny MVTec-layout dataset.

Two texture classes cropped from Debian's openarena textures (6 train/good,
4 test/good, 4 test/scratch with masks each), the default backbone, 2 and 4
shots, 2 seeds, every scorer (the shipped learned model "resad", residual-norm,
knn).  Checks the JSON has every metric for every class and overall, all in
[0, 1], the std keys, and that every scorer finds the obvious drawn scratches
(image AUROC well above chance); that the default scorer is the shipped
model's and --model none / --scorer pick the others; bad arguments (numbers
with trailing garbage, empty, out of range or NaN, each named) and a missing
class give clear errors.  (The real benchmark is `make eval`.)

Whole frame: a camera-shaped class (320×180 frames, 16:9) whose scratches lie
within 24 px of the left or right border — outside any centred square —
evaluated with --dump: every map is at the mask's geometry (320×180), every
frame pixel is inspected, the pixel and image metrics in the JSON equal
sklearn's roc_auc_score / average_precision_score recomputed from the dumped
whole-frame maps and scores, and the border scratches are found; with
--pixel-max 160 the maps and masks are 160×90 and still agree with sklearn.
"""
import io, json, os, random, subprocess, sys, tempfile, zipfile

from PIL import Image, ImageDraw

build = os.environ.get("top_builddir", ".")
RESAD = os.path.join(build, "resad")
PK3 = "/usr/share/games/openarena/baseoa/pak4-textures.pk3"
KEYS = ["image_auroc", "pixel_auroc", "pro", "image_f1_max", "pixel_f1_max", "pixel_ap"]
fails = 0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def make_dataset(root):
    z = zipfile.ZipFile(PK3)
    for cls, tex in [("rust", "textures/acc_dm5/rust.jpg"), ("wood", "textures/acc_dm5/wood01.jpg")]:
        src = Image.open(io.BytesIO(z.read(tex))).convert("RGB")
        rng = random.Random(1)
        W, H = src.size
        s = min(200, W, H)

        def crop():
            x, y = rng.randrange(0, W - s + 1), rng.randrange(0, H - s + 1)
            return src.crop((x, y, x + s, y + s))

        for d in ["train/good", "test/good", "test/scratch", "ground_truth/scratch"]:
            os.makedirs(f"{root}/{cls}/{d}", exist_ok=True)
        for i in range(6):
            crop().save(f"{root}/{cls}/train/good/{i:03d}.png")
        for i in range(4):
            crop().save(f"{root}/{cls}/test/good/{i:03d}.png")
        for i in range(4):
            im, m = crop(), Image.new("L", (s, s), 0)
            x, y = rng.randrange(20, 140), rng.randrange(20, 140)
            ImageDraw.Draw(im).line([(x, y), (x + 40, y + 25)], fill=(240, 240, 230), width=4)
            ImageDraw.Draw(m).line([(x, y), (x + 40, y + 25)], fill=255, width=4)
            im.save(f"{root}/{cls}/test/scratch/{i:03d}.png")
            m.save(f"{root}/{cls}/ground_truth/scratch/{i:03d}_mask.png")


def make_camera_dataset(root):
    """One 16:9 class; each defect is a scratch hugging the left or right border."""
    z = zipfile.ZipFile(PK3)
    src = Image.open(io.BytesIO(z.read("textures/acc_dm5/rust.jpg"))).convert("RGB")
    src = src.resize((src.width * 3, src.height * 3), Image.BICUBIC)
    rng = random.Random(2)
    W, H, w, h = src.width, src.height, 320, 180

    def crop():
        x, y = rng.randrange(0, W - w + 1), rng.randrange(0, H - h + 1)
        return src.crop((x, y, x + w, y + h))

    for d in ["train/good", "test/good", "test/scratch", "ground_truth/scratch"]:
        os.makedirs(f"{root}/edge/{d}", exist_ok=True)
    for i in range(4):
        crop().save(f"{root}/edge/train/good/{i:03d}.png")
    for i in range(4):
        crop().save(f"{root}/edge/test/good/{i:03d}.png")
    for i in range(6):
        im, m = crop(), Image.new("L", (w, h), 0)
        x = rng.randrange(4, 16) if i % 2 else rng.randrange(w - 20, w - 8)
        y = rng.randrange(20, 100)
        ImageDraw.Draw(im).line([(x, y), (x + 3, y + 60)], fill=(245, 245, 235), width=5)
        ImageDraw.Draw(m).line([(x, y), (x + 3, y + 60)], fill=255, width=5)
        im.save(f"{root}/edge/test/scratch/{i:03d}.png")
        m.save(f"{root}/edge/ground_truth/scratch/{i:03d}_mask.png")


def check_border(root, dump, run, cls, seeds):
    """resad eval's border-vs-central report for one run and class against a
    recomputation: each defect's mask centroid distance to the nearest frame
    edge (numpy), the groups (<= 24 px: border), and each group's image AUROC
    against the class's goods (sklearn on the dumped scores, mean over seeds).
    Returns the group counts."""
    import numpy as np
    from sklearn.metrics import roc_auc_score
    items = []  # test images in resad's order (kinds sorted, files sorted)
    for kind in sorted(os.listdir(f"{root}/{cls}/test")):
        for f in sorted(os.listdir(f"{root}/{cls}/test/{kind}")):
            items.append((kind, os.path.splitext(f)[0]))
    dist = []
    for kind, stem in items:
        if kind == "good":
            dist.append(-1.0)
            continue
        m = np.array(Image.open(f"{root}/{cls}/ground_truth/{kind}/{stem}_mask.png").convert("L")) > 127
        ys, xs = np.nonzero(m)
        cx, cy = (xs + 0.5).mean(), (ys + 0.5).mean()
        dist.append(min(cx, m.shape[1] - cx, cy, m.shape[0] - cy))
    dist = np.array(dist)
    grp = np.where(dist < 0, 0, np.where(dist <= 24, 1, 2))
    bc = run["border_vs_central"]["classes"][cls]
    check(bc["n_good"] == int((grp == 0).sum()) and bc["n_border"] == int((grp == 1).sum())
          and bc["n_central"] == int((grp == 2).sum()),
          f"{run['scorer']} {cls}: border/central counts {bc['n_good']}/{bc['n_border']}/{bc['n_central']}, "
          f"want {(grp == 0).sum()}/{(grp == 1).sum()}/{(grp == 2).sum()}")
    auc = {1: [], 2: []}
    for s in range(seeds):
        d = json.load(open(f"{dump}/{cls}.{run['scorer']}.k{run['shots']}.s{s}.json"))
        check(np.allclose(d["defect_border_px"], dist, atol=1e-6), f"{cls}: dumped defect_border_px differ")
        sc = np.array(d["scores"])
        for g in (1, 2):
            sel = (grp == 0) | (grp == g)
            if (grp == g).any():
                auc[g].append(roc_auc_score(grp[sel] == g, sc[sel]))
    for g, name in ((1, "border"), (2, "central")):
        got = bc[f"{name}_image_auroc"]
        if not auc[g]:
            check(got is None, f"{cls}: {name} AUROC without {name} defects is {got}, want null")
        else:
            want = float(np.mean(auc[g]))
            check(got is not None and abs(got - want) < 1e-6, f"{run['scorer']} {cls}: {name} AUROC {got}, "
                  f"sklearn {want:.6f}")
    return int((grp == 1).sum()), int((grp == 2).sum())


def check_whole_frame(tmp):
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score
    make_camera_dataset(tmp + "/cam")
    dump = tmp + "/dump"
    os.makedirs(dump)
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/cam", "--shots", "4", "--scorer", "all", "--dump", dump,
                        "--json", tmp + "/cam.json"], capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"camera eval failed: {p.stderr[-2000:]}")
    if p.returncode:
        return
    print(p.stdout, file=sys.stderr)
    r = json.load(open(tmp + "/cam.json"))
    for run in r["runs"]:
        check(run["overall"]["inspected_frac"] > 0.999, f"{run['scorer']}: only {run['overall']['inspected_frac']:.3f}"
              " of the frame inspected")
        base = f"{dump}/edge.{run['scorer']}.k4.s0"
        d = json.load(open(base + ".json"))
        n = len(d["scores"])
        check(d["w"] == [320] * n and d["h"] == [180] * n, f"{run['scorer']}: maps not at the masks' geometry")
        maps = np.fromfile(base + ".maps.f32", "<f4")
        gt = np.fromfile(base + ".gt.u8", np.uint8)
        check(maps.size == gt.size == n * 320 * 180, f"{run['scorer']}: dump sizes")
        want = {"image_auroc": roc_auc_score(d["labels"], d["scores"]), "pixel_auroc": roc_auc_score(gt, maps),
                "pixel_ap": average_precision_score(gt, maps)}
        for k, v in want.items():
            check(abs(run["overall"][k] - v) < 1e-6 and abs(d["metrics"][k] - v) < 1e-6,
                  f"{run['scorer']} {k}: eval {run['overall'][k]:.6f}, sklearn {v:.6f}")
        print(f"whole frame, {run['scorer']}: image AUROC {want['image_auroc']:.3f}, pixel AUROC "
              f"{want['pixel_auroc']:.3f} (sklearn, equal to eval's)", file=sys.stderr)
        if run["scorer"] != "knn":
            check(want["image_auroc"] >= 0.75, f"{run['scorer']}: border scratches missed "
                  f"(image AUROC {want['image_auroc']:.3f})")
        # every scratch hugs a side border: all 6 in the border group, none central
        check(check_border(tmp + "/cam", dump, run, "edge", 1) == (6, 0), f"{run['scorer']}: border group")
        pooled = run["border_vs_central"]["pooled"]
        check(pooled["central_image_auroc"] is None and pooled["n_border"] == 6
              and abs(pooled["border_image_auroc"] - want["image_auroc"]) < 1e-6,
              f"{run['scorer']}: pooled border report {pooled}")
    # --pixel-max: the masks' geometry reduced by an integer factor (320x180 -> 160x90)
    dump2 = tmp + "/dump2"
    os.makedirs(dump2)
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/cam", "--shots", "4", "--model", "none", "--pixel-max", "160",
                        "--dump", dump2], capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"--pixel-max eval failed: {p.stderr[-1000:]}")
    if p.returncode == 0:
        base = f"{dump2}/edge.residual-norm.k4.s0"
        d = json.load(open(base + ".json"))
        n = len(d["scores"])
        maps, gt = np.fromfile(base + ".maps.f32", "<f4"), np.fromfile(base + ".gt.u8", np.uint8)
        check(d["w"] == [160] * n and d["h"] == [90] * n and maps.size == gt.size == n * 160 * 90,
              f"--pixel-max 160: maps {d['w'][:1]}x{d['h'][:1]}")
        check(abs(d["metrics"]["pixel_auroc"] - roc_auc_score(gt, maps)) < 1e-6, "--pixel-max: pixel AUROC vs sklearn")


def main():
    if not os.path.exists(PK3):
        return 77
    tmp = tempfile.mkdtemp(prefix="rd-eval-")
    make_dataset(tmp + "/ds")
    out = tmp + "/r.json"
    os.makedirs(tmp + "/dmain")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--shots", "2,4", "--seeds", "2", "--scorer", "all",
                        "--json", out, "--dump", tmp + "/dmain"], capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"eval failed: {p.stderr[-2000:]}")
    if p.returncode:
        return 1
    print(p.stdout, file=sys.stderr)
    r = json.load(open(out))
    check(len(r["runs"]) == 6, "expected 3 scorers × 2 shot counts")
    check([x["scorer"] for x in r["runs"][::2]] == ["resad", "residual-norm", "knn"], "scorers of --scorer all")
    check(len(r.get("model_sha256", "")) == 64, "the JSON names the learned model")
    for run in r["runs"]:
        for scope in list(run["classes"].values()) + [run["overall"]]:
            for k in KEYS:
                check(k in scope and 0.0 <= scope[k] <= 1.0, f"{run['scorer']} {k} missing or out of range")
                check(k + "_std" in scope, f"{k}_std missing")
        check(run["overall"]["image_auroc"] >= 0.75, f"{run['scorer']} {run['shots']}-shot misses obvious scratches")
    check(set(r["runs"][0]["classes"]) == {"rust", "wood"}, "classes")
    # border vs central report (scratches at 20..180 px: mostly central, some near an edge)
    for run in r["runs"]:
        nb = nc = 0
        for cls in ("rust", "wood"):
            b, c = check_border(tmp + "/ds", tmp + "/dmain", run, cls, 2)
            nb, nc = nb + b, nc + c
        check(nc > 0 and run["border_vs_central"]["pooled"]["n_central"] == nc
              and run["border_vs_central"]["pooled"]["n_border"] == nb, f"{run['scorer']}: pooled counts")
    # default scorer = the shipped model's; --model none / --scorer choose others
    for extra, want in [([], ["resad"]), (["--model", "none"], ["residual-norm"]),
                        (["--model", "none", "--scorer", "all"], ["residual-norm", "knn"]),
                        (["--scorer", "knn"], ["knn"])]:
        p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--classes", "rust", "--shots", "2", "--max-test", "4",
                            "--json", out] + extra, capture_output=True, text=True, timeout=600)
        got = [x["scorer"] for x in json.load(open(out))["runs"]] if p.returncode == 0 else p.stderr[-300:]
        check(got == want, f"eval {extra}: scorers {got}, want {want}")
    # --calib-variants: more learned-scorer runs on the same features and draws; "global" reproduces the base run
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--classes", "rust", "--shots", "2", "--seeds", "2",
                        "--json", out, "--calib-variants", "global,neighbour:0.5,position:0.5"],
                       capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"--calib-variants: {p.stderr[-500:]}")
    if p.returncode == 0:
        runs = json.load(open(out))["runs"]
        check([x["scorer"] for x in runs] == ["resad", "resad+global:1.00", "resad+neighbour:0.50",
                                               "resad+position:0.50"], f"variant scorers {[x['scorer'] for x in runs]}")
        check(all(runs[0]["overall"][k] == runs[1]["overall"][k] for k in KEYS), "global variant != the base run")
        for x in runs[2:]:
            check(all(0.0 <= x["overall"][k] <= 1.0 for k in KEYS), f"{x['scorer']}: metrics out of range")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--calib-variants", "position:2"], capture_output=True,
                       text=True)
    check(p.returncode == 2 and "calib-variants" in p.stderr, f"bad --calib-variants: {p.stderr[-300:]}")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--model", "none", "--scorer", "resad"],
                       capture_output=True, text=True)
    check(p.returncode == 2 and "learned model" in p.stderr, f"--scorer resad without a model: {p.stderr[-300:]}")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--classes", "nope"], capture_output=True, text=True)
    check(p.returncode == 3 and "nope" in p.stderr, f"unknown class: {p.returncode} {p.stderr}")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/nowhere"], capture_output=True, text=True)
    check(p.returncode == 3 and "not a directory" in p.stderr, "missing dir")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--shots", "0"], capture_output=True, text=True)
    check(p.returncode == 2, "bad --shots accepted")
    # numbers are checked whole (cli/args.c): trailing garbage, empty, out of range, NaN are refused by name
    for extra in (["--seeds", "3x"], ["--seeds", ""], ["--size", "abc"], ["--threads", "0"], ["--max-test", "-1"],
                  ["--topk", "1.5"], ["--sigma", "nan"], ["--input-pad", "8 "], ["--simulate-line", "0,4", "--fpr", "0.5"],
                  ["--simulate-line", "0,4", "--threads", "2z"], ["--simulate-line", "0,4", "--refs", "1"]):
        p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds"] + extra, capture_output=True, text=True)
        check(p.returncode == 2 and extra[-2] in p.stderr, f"eval {extra}: rc {p.returncode}, {p.stderr[-200:]!r}")
    p = subprocess.run([RESAD, "eval", "--data", tmp + "/ds", "--shots", "9"], capture_output=True, text=True)
    check(p.returncode == 1 and "train/good" in p.stderr, f"too many shots: {p.stderr[-300:]}")
    check_whole_frame(tmp)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
