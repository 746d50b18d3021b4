#!/usr/bin/python3
"""test_cli_score.py — `resad score` end to end on real photographs.

Crops of a steel diamond-plate photograph from Debian's openarena-081-textures: 4 references, a
good part and a part with a drawn scratch and stain.  Checks: the defective
part scores clearly higher than the good one and above the calibrated
threshold, the good one below it; the raw heatmap's hottest pixel lies on the
drawn defect (original image geometry); the three PNGs exist with the scale
chunk; bad input (truncated JPEG, missing file, bad options) gives the
documented exit codes and messages, never a crash.
"""
import json, os, subprocess, sys, tempfile

from PIL import Image

top = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
build = os.environ.get("top_builddir", top)
RESAD = os.path.join(build, "resad")
failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg, file=sys.stderr)


def run(args, expect_rc=None):
    p = subprocess.run([RESAD] + args, capture_output=True, text=True, timeout=120)
    if expect_rc is not None:
        check(p.returncode == expect_rc, f"resad {' '.join(args[:3])}...: rc {p.returncode}, expected {expect_rc}\n{p.stderr}")
    return p


def score_case(refs, good, bad, heat, box, extra, want):
    """Scores the good and the defective part; checks verdicts, timings and
    that the heatmap's hot spot lies on the drawn defect."""
    p = run(["score", "--ref", *refs, "--image", good, bad, "--heatmap", heat, "-v"] + extra, 0)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    check(len(lines) == 2, f"expected 2 JSON lines, got {p.stdout!r}")
    if len(lines) != 2:
        return False
    g, d = lines
    print(f"[{want}] good score {g['score']:.3f}  defect score {d['score']:.3f}  threshold {g['threshold']:.3f}", file=sys.stderr)
    print(f"timings (defect): {d['timings_ms']}", file=sys.stderr)
    check(g["scorer"] == want and d["scorer"] == want, f"scorer {g['scorer']}, want {want}")
    check(d["score"] > g["score"] * 1.5, "defect not clearly higher than good")
    check(d["anomalous"] is True, "defect not flagged")
    check(g["anomalous"] is False, "good part flagged")
    for k in ("decode", "preprocess", "backbone", "nn", "score", "heatmap", "total"):
        check(k in d["timings_ms"], f"timing {k} missing")

    raw = Image.open(d["heatmaps"]["raw"])
    check(raw.size == Image.open(bad).size, f"raw heatmap size {raw.size} != image size")
    check("resadd:scale" in raw.info, f"no resadd:scale text chunk: {raw.info}")
    px = raw.load()
    W, H = raw.size
    best = max(((px[x, y], x, y) for y in range(H) for x in range(W)))
    _, bx, by = best
    m = 12
    check(box[0] - m <= bx <= box[2] + m and box[1] - m <= by <= box[3] + m,
          f"hot spot ({bx},{by}) not on the defect box {box}")
    print(f"hot spot at ({bx},{by}); defect box {box}", file=sys.stderr)
    for kind in ("overlay", "mask"):
        im = Image.open(d["heatmaps"][kind])
        check(im.size == (W, H), f"{kind} size {im.size}")
    mask = Image.open(d["heatmaps"]["mask"]).convert("L").load()
    check(mask[bx, by] == 255, "mask not set at the hot spot")
    return True


def main():
    if not os.path.exists("/usr/share/games/openarena/baseoa/pak4-textures.pk3"):
        print("openarena-081-textures not installed", file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix="rd-cli-")
    subprocess.run(["/usr/bin/python3", os.path.join(top, "tools", "demo-images.py"), tmp, "--size", "320"],
                   check=True, capture_output=True)
    box = json.load(open(os.path.join(tmp, "defect.json")))["defect_box"]
    refs = [os.path.join(tmp, f"ref{i}.jpg") for i in range(1, 5)]
    good, bad = os.path.join(tmp, "good.jpg"), os.path.join(tmp, "defect.jpg")
    heat = os.path.join(tmp, "heat")

    # the shipped learned model (default) and the residual-norm baseline (--model none)
    for extra, want in [([], "resad"), (["--model", "none"], "residual-norm")]:
        if not score_case(refs, good, bad, heat, box, extra, want):
            return 1

    # bad inputs
    trunc = os.path.join(tmp, "trunc.jpg")
    data = open(bad, "rb").read()
    open(trunc, "wb").write(data[: len(data) // 3])
    p = run(["score", "--ref", *refs, "--image", trunc, good], 1)
    out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    check(len(out) == 2 and "error" in out[0] and "score" in out[1], f"truncated image: {p.stdout!r}")
    p = run(["score", "--ref", *refs, "--image", os.path.join(tmp, "nope.png")], 1)
    check("nope.png" in p.stdout, "missing file not named")
    run(["score", "--ref", refs[0], "--image", good], 2)
    run(["score", "--ref", *refs, "--image", good, "--shots", "9"], 2)
    run(["score", "--bogus"], 2)
    run(["frobnicate"], 2)
    p = run(["--help"], 0)
    check("--ref" in p.stdout and "Exit status" in p.stdout, "--help does not teach")
    p = run(["score", "--ref", trunc, *refs[:2], "--image", good], 3)
    check("trunc.jpg" in p.stderr, "bad reference not named")
    p = run(["score", "--backbone", trunc, "--ref", *refs, "--image", good], 3)
    check("cannot load backbone" in p.stderr, f"bad backbone message: {p.stderr}")
    p = run(["score", "--ref", *refs, "--image", good, bad, "--fail-on-anomaly"], 4)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
