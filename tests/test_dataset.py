#!/usr/bin/python3
"""test_dataset.py — tools/dataset/build.py --small: layout, masks, manifest, determinism.

Builds the 2-class dataset twice with seed 0 and once with seed 1 into a temp
dir.  Checks: MVTec AD layout (train/good, test/good, test/DEFECT with a mask
for every defective image), masks are 0/255 and non-empty, image sizes, every
manifest entry exists and carries its parameters, split.json lists the classes
by their classes.json split, the same seed gives byte-identical files and
another seed does not.  Also checks classes.json itself: ≥ 24 texture and ≥ 6
object classes, and no texture family shared between known and unseen.

Camera variant (--geometry camera and --geometry 384x288): the same classes and
split.json as the square build; every image and mask at its class's camera
geometry (16:9 512×288 / 4:3 384×288 alternating along the class table, or the
one asked for), recorded in the manifest; defects reach the side borders (some
mask within 8 px of the left or right edge); deterministic.  The square build
is unchanged by the camera code: with the Pillow/numpy/scipy versions it was
recorded with, the --small seed-0 build hashes to SQUARE_SMALL_DIGEST (the
digest of the build before camera frames existed); with other versions that
check is skipped (the same-seed determinism check still runs).
Skips (77) when openarena-081-textures is not installed.
"""
import hashlib, json, os, subprocess, sys, tempfile

import numpy as np
from PIL import Image

src = os.environ.get("top_srcdir", ".")
BUILD = os.path.join(src, "tools", "dataset", "build.py")
TABLE = json.load(open(os.path.join(src, "tools", "dataset", "classes.json")))
fails = 0
# sha256 over the sorted (path, sha256) list of `build.py --small --seed 0`,
# recorded before --geometry existed, with these library versions
SQUARE_SMALL_DIGEST = "5a587ba3f0ee7e1152f63f04dcc9c4006b473bd92447dee7a0bfae58d06ce0ce"
SQUARE_SMALL_VERSIONS = ("9.4.0", "1.24.2", "1.10.1")  # Pillow, numpy, scipy (Debian 12)


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


def check_camera(tmp, square_split):
    index = {c["name"]: i for i, c in enumerate(TABLE["classes"])}
    outs = []
    for k, geo in enumerate(["camera", "camera", "384x288"]):
        d = os.path.join(tmp, f"cam{k}")
        p = subprocess.run([sys.executable, BUILD, "--out", d, "--small", "--seed", "0", "--geometry", geo,
                            "--jobs", str(1 + k % 2)], capture_output=True, text=True)
        check(p.returncode == 0, f"camera build failed: {p.stderr}")
        outs.append(d)
    check(digest(outs[0]) == digest(outs[1]), "camera build not deterministic")
    near_border = 0
    for d, geo in zip(outs[1:], ["camera", "384x288"]):
        man = json.load(open(os.path.join(d, "manifest.json")))
        check(json.load(open(os.path.join(d, "split.json"))) == square_split, f"{geo}: split differs from square")
        check(man.get("geometry") == geo and "size" not in man, f"{geo}: manifest geometry {man.get('geometry')}")
        for c in man["classes"]:
            want = (384, 288) if geo == "384x288" else [(512, 288), (384, 288)][index[c["name"]] % 2]
            g = c.get("geometry", {})
            check((g.get("width"), g.get("height")) == want and g.get("defects_reach_borders"),
                  f"{geo} {c['name']}: manifest geometry {g}")
            for e in c["images"]:
                im = Image.open(os.path.join(d, e["file"]))
                check(im.size == want and im.mode == "RGB", f"{geo} {e['file']}: {im.size}, want {want}")
                if "mask" not in e:
                    continue
                m = np.asarray(Image.open(os.path.join(d, e["mask"]))) > 0
                check(m.shape == want[::-1] and m.sum() >= 8, f"{geo} {e['mask']}: {m.shape}, {m.sum()} pixels")
                xs = np.nonzero(m.any(0))[0]
                near_border += bool(len(xs)) and (xs.min() < 8 or xs.max() >= want[0] - 8)
    check(near_border >= 1, "no camera-frame defect reaches within 8 px of a side border")
    print(f"camera variants: sizes, masks, manifest and split checked; {near_border} defects within 8 px of a "
          "side border")


def check_border_more(tmp, plain):
    """--border-defects: square frames, defects up to the borders, recorded in the
    manifest; --more-known: the extra known class is built from its package's
    files, listed as known, and the table's classes are byte-identical to the
    plain build (the new options do not move their random streams)."""
    d = os.path.join(tmp, "border")
    p = subprocess.run([sys.executable, BUILD, "--out", d, "--small", "--seed", "0", "--border-defects"],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"--border-defects build failed: {p.stderr}")
    man = json.load(open(os.path.join(d, "manifest.json")))
    check(man.get("border_defects") is True, "--border-defects not in the manifest")
    near = [0, 0]  # masks within 8 px of an edge: border build, plain build
    for k, root in enumerate([d, plain]):
        for c in json.load(open(os.path.join(root, "manifest.json")))["classes"]:
            for e in c["images"]:
                if "mask" not in e:
                    continue
                m = np.asarray(Image.open(os.path.join(root, e["mask"]))) > 0
                check(m.shape == (256, 256), f"{e['mask']}: {m.shape}")
                ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
                near[k] += bool(len(xs)) and min(xs.min(), ys.min(), 255 - xs.max(), 255 - ys.max()) < 8
    check(near[0] > near[1], f"--border-defects: {near[0]} masks within 8 px of an edge, plain build {near[1]}")
    print(f"--border-defects: {near[0]} defect masks within 8 px of an edge (plain build: {near[1]})")
    more = json.load(open(os.path.join(src, "tools", "dataset", "classes-more.json")))["classes"]
    check(more and all(c["split"] == "known" and c["kind"] == "texture" for c in more), "classes-more.json: not known textures")
    unseen_fam = {c["family"] for c in TABLE["classes"] if c["split"] == "unseen"}
    check(not ({c["family"] for c in more} & unseen_fam), "classes-more.json shares a family with an unseen class")
    check(not ({c["name"] for c in more} & {c["name"] for c in TABLE["classes"]}), "classes-more.json reuses a name")
    if not all(os.path.exists(f) for f in more[0]["sources"]):
        print(f"--more-known skipped: {more[0]['package']} not installed")
        return
    d = os.path.join(tmp, "more")
    p = subprocess.run([sys.executable, BUILD, "--out", d, "--small", "--seed", "0", "--more-known"],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"--more-known build failed: {p.stderr}")
    split = json.load(open(os.path.join(d, "split.json")))
    check(more[0]["name"] in split["known"], f"{more[0]['name']} not in split.json's known list")
    man = json.load(open(os.path.join(d, "manifest.json")))
    ent = [c for c in man["classes"] if c["name"] == more[0]["name"]]
    check(ent and ent[0].get("package") == more[0]["package"] and len(ent[0]["images"]) > 5,
          f"{more[0]['name']}: not built with its package")
    hm, hp = digest(d), digest(plain)
    same = [k for k in hp if k.endswith((".jpg", ".png"))]
    check(all(hm.get(k) == hp[k] for k in same), "--more-known changed the table's classes' files")
    print(f"--more-known: {more[0]['name']} ({more[0]['package']}) built; {len(same)} files of the table's classes "
          "identical to the plain build")


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
    import PIL, scipy
    if (PIL.__version__, np.__version__, scipy.__version__) == SQUARE_SMALL_VERSIONS:
        got = hashlib.sha256(json.dumps(sorted(h0.items())).encode()).hexdigest()
        check(got == SQUARE_SMALL_DIGEST, "the square --small build changed (was byte-identical before --geometry)")
    else:
        print("square digest check skipped: library versions differ from the recorded ones")
    check_camera(tmp, split)
    check_border_more(tmp, outs[0])
    print(f"{len(h0)} files, {ndef} defective images; deterministic; seeds differ")
    print("ok" if not fails else f"{fails} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
