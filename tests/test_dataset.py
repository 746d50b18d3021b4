#!/usr/bin/python3
"""test_dataset.py — tools/dataset/build.py --small: layout, masks, manifest, determinism.

Builds the 2-class dataset twice with seed 0 and once with seed 1 into a temp
dir.  Checks: MVTec AD layout (train/good, test/good, test/DEFECT with a mask
for every defective image), masks are 0/255 and non-empty, image sizes, every
manifest entry exists and carries its parameters, split.json lists the classes
by their classes.json split, the same seed gives byte-identical files and
another seed does not.  Also checks classes.json itself: ≥ 24 texture and ≥ 6
object classes, and no texture family shared between known and unseen.
Skips (77) when openarena-081-textures is not installed.
"""
import hashlib, json, os, subprocess, sys, tempfile

import numpy as np
from PIL import Image

src = os.environ.get("top_srcdir", ".")
BUILD = os.path.join(src, "tools", "dataset", "build.py")
TABLE = json.load(open(os.path.join(src, "tools", "dataset", "classes.json")))
fails = 0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def digest(d):
    h = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            h[os.path.relpath(p, d)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return h


def main():
    cl = TABLE["classes"]
    tex = [c for c in cl if c["kind"] == "texture"]
    check(len(tex) >= 24, f"only {len(tex)} texture classes")
    check(sum(c["kind"] == "object" for c in cl) >= 6, "fewer than 6 object classes")
    fam = {}
    for c in cl:
        fam.setdefault(c["family"], set()).add(c["split"])
    check(all(len(v) == 1 for v in fam.values()), "a family is shared between known and unseen")
    srcs = [s for c in tex for s in c["sources"]]
    check(len(srcs) == len(set(srcs)), "a source file is used by two classes")
    if not os.path.exists(TABLE["source_archive"]):
        print("skip: openarena-081-textures not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="rd-ds-")
    outs = []
    for k, seed in enumerate([0, 0, 1]):
        d = os.path.join(tmp, str(k))
        p = subprocess.run([sys.executable, BUILD, "--out", d, "--small", "--seed", str(seed), "--jobs", str(1 + k % 2)],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"build failed: {p.stderr}")
        outs.append(d)
    d = outs[0]
    man = json.load(open(os.path.join(d, "manifest.json")))
    split = json.load(open(os.path.join(d, "split.json")))
    names = [c["name"] for c in man["classes"]]
    check(len(names) == 2, f"--small built {names}")
    by = {c["name"]: c for c in cl}
    for n in names:
        check(n in split[by[n]["split"]], f"{n} not in split.json's {by[n]['split']} list")
    ndef = 0
    for c in man["classes"]:
        cdir = os.path.join(d, c["name"])
        check(os.listdir(os.path.join(cdir, "train", "good")), f"{c['name']}: empty train/good")
        kinds = set(os.listdir(os.path.join(cdir, "test")))
        check("good" in kinds and len(kinds) >= 5, f"{c['name']}: test kinds {kinds}")
        check(set(os.listdir(os.path.join(cdir, "ground_truth"))) == kinds - {"good"},
              f"{c['name']}: ground_truth folders differ from defect kinds")
        for e in c["images"]:
            im = Image.open(os.path.join(d, e["file"]))
            check(im.size == (256, 256) and im.mode == "RGB", f"{e['file']}: {im.size} {im.mode}")
            if e["defect"] is None:
                check("mask" not in e and "/good/" in e["file"], f"{e['file']}: good image with a mask")
                continue
            ndef += 1
            m = np.asarray(Image.open(os.path.join(d, e["mask"])))
            check(m.shape == (256, 256) and set(np.unique(m)) <= {0, 255}, f"{e['mask']}: not a 0/255 mask")
            check((m > 0).sum() >= 8 and (m > 0).sum() == e["mask_pixels"], f"{e['mask']}: {(m > 0).sum()} pixels")
            check(e["mask"] == e["file"].replace("/test/", "/ground_truth/").replace(".jpg", "_mask.png"),
                  f"{e['mask']}: not MVTec naming")
            check(len(e["params"]) > 3, f"{e['file']}: no defect parameters")
    check(ndef >= 10, f"only {ndef} defective images")
    h0, h1, h2 = digest(outs[0]), digest(outs[1]), digest(outs[2])
    check(h0 == h1, "same seed (and different --jobs) gave different files")
    same = sum(h0[k] == h2.get(k) for k in h0 if k.endswith(".jpg"))
    check(same == 0, f"seed 1 reproduced {same} images of seed 0")
    print(f"{len(h0)} files, {ndef} defective images; deterministic; seeds differ")
    print("ok" if not fails else f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
