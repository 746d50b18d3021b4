#!/usr/bin/python3
"""test_simline.py — `resad eval --simulate-line` end to end on a tiny dataset.

One texture class cropped from Debian's openarena textures (8 train/good,
8 test/good, 4 test/scratch), 2 references, N = 0,2,4, 2 seeds, the
residual-norm scorer (fast).  Checks the JSON: a row per N with every value in
[0, 1], the drawn scratches found (image AUROC well above chance at every N),
fpr:0.01 falling back to loo below 4 confirmed goods and applying from 4 on,
the K-shot comparison present and the same in every row; the table on stdout;
and that bad counts, too few good test images and a missing --data give clear
errors with exit status 2 or 1.  (The real numbers: README, `resad eval
--simulate-line 0,4,8,12` on the benchmark's unseen classes.)
"""
import io, json, os, random, subprocess, sys, tempfile, zipfile

from PIL import Image, ImageDraw

build = os.environ.get("top_builddir", ".")
RESAD = os.path.join(build, "resad")
PK3 = "/usr/share/games/openarena/baseoa/pak4-textures.pk3"
fails = 0


def check(c, msg):
    global fails
    if not c:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def make_dataset(root):
    z = zipfile.ZipFile(PK3)
    src = Image.open(io.BytesIO(z.read("textures/acc_dm5/rust.jpg"))).convert("RGB")
    rng = random.Random(3)
    W, H = src.size
    s = min(160, W, H)

    def crop():
        x, y = rng.randrange(0, W - s + 1), rng.randrange(0, H - s + 1)
        return src.crop((x, y, x + s, y + s))

    for d in ["train/good", "test/good", "test/scratch", "ground_truth/scratch"]:
        os.makedirs(f"{root}/rust/{d}", exist_ok=True)
    for i in range(8):
        crop().save(f"{root}/rust/train/good/{i:03d}.png")
    for i in range(8):
        crop().save(f"{root}/rust/test/good/{i:03d}.png")
    for i in range(4):
        im, m = crop(), Image.new("L", (s, s), 0)
        x, y = rng.randrange(20, 100), rng.randrange(20, 100)
        ImageDraw.Draw(im).line([(x, y), (x + 40, y + 25)], fill=(240, 240, 230), width=4)
        ImageDraw.Draw(m).line([(x, y), (x + 40, y + 25)], fill=255, width=4)
        im.save(f"{root}/rust/test/scratch/{i:03d}.png")
        m.save(f"{root}/rust/ground_truth/scratch/{i:03d}_mask.png")


def run(*args):
    return subprocess.run([RESAD, "eval", *args], capture_output=True, text=True)


def main():
    if not os.path.exists(PK3):
        print("openarena-081-textures missing: skip")
        return 77
    with tempfile.TemporaryDirectory() as t:
        make_dataset(f"{t}/data")
        out = f"{t}/sim.json"
        p = run("--data", f"{t}/data", "--simulate-line", "0,2,4", "--refs", "2", "--seeds", "2", "--model", "none",
                "--threads", "1", "--json", out)
        check(p.returncode == 0, f"simulate-line exit {p.returncode}: {p.stderr[-500:]}")
        if p.returncode == 0:
            j = json.load(open(out))
            rows = j["rows"]
            check([r["n"] for r in rows] == [0, 2, 4], f"rows {[r['n'] for r in rows]}")
            check(j["refs"] == 2 and j["full_shots"] == 6 and j["policy"] == "fpr:0.01" and j["seeds"] == 2, "header")
            for r in rows:
                for k in ["image_auroc", "recall_loo", "frr_loo", "recall_fpr", "frr_fpr", "fpr_applied",
                          "image_auroc_full_shots"]:
                    check(0 <= r[k] <= 1 and k + "_std" in r, f"N={r['n']} {k} = {r[k]}")
                check(r["image_auroc"] >= 0.75, f"N={r['n']}: scratches found (AUROC {r['image_auroc']})")
                check("rust" in r["classes"], "per-class values")
            check(rows[0]["fpr_applied"] == 0 and rows[1]["fpr_applied"] == 0, "fpr falls back below 4 goods")
            check(rows[2]["fpr_applied"] == 1, "fpr applies with 4 confirmed goods")
            check(rows[0]["recall_fpr"] == rows[0]["recall_loo"], "the fall-back is loo")
            check(len({r["image_auroc_full_shots"] for r in rows}) == 1, "one K-shot figure")
            check("I-AUROC" in p.stdout and "recall@fpr" in p.stdout, "table on stdout")
        p = run("--data", f"{t}/data", "--simulate-line", "4,2", "--model", "none")
        check(p.returncode == 2 and "increasing" in p.stderr, f"decreasing counts: {p.returncode} {p.stderr}")
        p = run("--simulate-line", "0,4", "--model", "none")
        check(p.returncode == 2 and "--data" in p.stderr, f"no --data: {p.returncode} {p.stderr}")
        p = run("--data", f"{t}/data", "--simulate-line", "8", "--refs", "2", "--model", "none", "--threads", "1")
        check(p.returncode == 1 and "good test" in p.stderr, f"too few good test images: {p.returncode} {p.stderr}")
    print("ok test_simline" if not fails else f"{fails} check(s) failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
