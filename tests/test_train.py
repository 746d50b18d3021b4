#!/usr/bin/python3
"""test_train.py — `resad train` end to end on a tiny generated dataset.

Checks: the loss decreases over a few epochs; the model file has every tensor
and metadata key and imports back (train_tool check → rd_flow_import /
rd_cstr_import); a run resumed from an epoch-2 checkpoint ends with parameters
bit-identical to an uninterrupted run with the same --threads and OpenBLAS core
type (the environment's, then pinned to Prescott); bad arguments give clear
errors."""
import json
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile

from PIL import Image, ImageDraw
import random

B = os.environ.get("top_builddir", ".")
TOOL = os.path.join(B, "tests", "train_tool")
BACKBONE = os.path.join(B, "models", "mobilenet_v2.safetensors")
failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


def make_dataset(root):
    rng = random.Random(7)
    for ci, cls in enumerate(["alpha", "beta"]):
        base = (60 + 80 * ci, 120, 200 - 70 * ci)
        def img(defect=None):
            im = Image.new("RGB", (80, 64), base)
            d = ImageDraw.Draw(im)
            for k in range(6):  # texture
                x, y = rng.randrange(80), rng.randrange(64)
                d.ellipse([x, y, x + 6, y + 6], fill=(base[0] // 2, base[1], 255 - base[2]))
            mk = Image.new("L", (80, 64), 0)
            if defect:
                x, y = rng.randrange(10, 50), rng.randrange(10, 40)
                d.rectangle([x, y, x + 14, y + 10], fill=(250, 10, 10))
                ImageDraw.Draw(mk).rectangle([x, y, x + 14, y + 10], fill=255)
            return im, mk
        for sub in ["train/good", "test/good", "test/scratch", "ground_truth/scratch"]:
            os.makedirs(os.path.join(root, cls, sub), exist_ok=True)
        for i in range(4):
            img()[0].save(os.path.join(root, cls, "train/good/%03d.png" % i))
        img()[0].save(os.path.join(root, cls, "test/good/000.png"))
        for i in range(2):
            im, mk = img(True)
            im.save(os.path.join(root, cls, "test/scratch/%03d.png" % i))
            mk.save(os.path.join(root, cls, "ground_truth/scratch/%03d_mask.png" % i))
    with open(os.path.join(root, "split.json"), "w") as f:
        json.dump({"known": ["alpha", "beta"], "unseen": []}, f)


def run(args, **kw):
    return subprocess.run([TOOL, "train"] + args, capture_output=True, text=True, timeout=120, **kw)


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", {})
    data = {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in hdr.items()}
    return hdr, meta, data


def main():
    if not os.path.exists(TOOL) or not os.path.exists(BACKBONE):
        print("skip: train_tool or default backbone not built")
        return 77
    tmp = tempfile.mkdtemp(prefix="resad-train-")
    ds = os.path.join(tmp, "ds")
    make_dataset(ds)
    common = ["--data", ds, "--backbone", BACKBONE, "--batch", "3", "--shots", "2", "--flow-blocks", "2",
              "--flow-hidden", "32", "--threads", "2", "--seed", "5", "--lr", "1e-3", "--normal-epochs", "1"]

    # 1. a short run: the flow loss goes down
    full = os.path.join(tmp, "full.safetensors")
    r = run(common + ["--epochs", "3", "--out", full, "--checkpoint", os.path.join(tmp, "full.ckpt")])
    sys.stderr.write(r.stderr)
    check(r.returncode == 0, "training run failed: rc %d" % r.returncode)
    ml = [float(m) for m in re.findall(r"epoch \d+/\d+ .*? ml (-?[0-9.]+)", r.stderr)]
    check(len(ml) == 3, "expected 3 epoch lines, got %d" % len(ml))
    if len(ml) == 3:
        check(ml[-1] < ml[0], "ML loss did not decrease: %s" % ml)
        print("ml per epoch:", ml)

    # 2. model file: tensors, metadata, imports back
    hdr, meta, data = read_st(full)
    for k in ["resadd.kind", "resadd.version", "resadd.backbone_arch", "resadd.backbone_sha256", "resadd.levels",
              "resadd.size", "resadd.nlevels", "resadd.residual", "resadd.metric", "resadd.constraintor",
              "resadd.cstr_kernel", "resadd.flow_blocks", "resadd.flow_hidden", "resadd.seed", "resadd.epochs",
              "resadd.final_losses", "resadd.train_manifest_sha256", "resadd.train_classes", "resadd.created"]:
        check(k in meta, "metadata %s missing" % k)
    check(meta.get("resadd.kind") == "resad-model", "kind")
    check(meta.get("resadd.epochs") == "3", "epochs %s" % meta.get("resadd.epochs"))
    check(meta.get("resadd.train_classes") == "alpha,beta", "classes %s" % meta.get("resadd.train_classes"))
    check(len(meta.get("resadd.train_manifest_sha256", "")) == 64, "manifest sha")
    json.loads(meta.get("resadd.final_losses", "{}"))
    nl = int(meta.get("resadd.nlevels", "0"))
    check(nl >= 1 and len(meta.get("resadd.levels", "").split(",")) == nl, "levels")
    for l in range(nl):
        check("level%d.flow.block1.subnet.0.weight" % l in hdr, "flow tensors of level %d" % l)
        check("level%d.cstr.conv.weight" % l in hdr, "constraintor tensors of level %d" % l)
        check(hdr.get("level%d.cstr.conv.weight" % l, {}).get("shape", [0, 0, 0, 0])[2] == 3, "3x3 kernel")
    check(not any(k.startswith("ckpt.") for k in hdr), "model file holds checkpoint state")
    c = subprocess.run([TOOL, "check", full], capture_output=True, text=True)
    check(c.returncode == 0 and "check ok" in c.stdout, "model does not import back: " + c.stderr)

    # 2b. evaluated and annotated (tools/model-annotate.py): the eval summary lands in
    # the metadata, the tensors stay byte-identical, `resad info` reports it
    resad = os.path.join(B, "resad")
    ann = os.path.join(tmp, "annotated.safetensors")
    res = os.path.join(tmp, "eval.json")
    open(ann, "wb").write(open(full, "rb").read())
    e = subprocess.run([resad, "eval", "--data", ds, "--backbone", BACKBONE, "--model", ann, "--shots", "2",
                        "--scorer", "all", "--json", res], capture_output=True, text=True, timeout=300)
    check(e.returncode == 0, "eval of the trained model: " + e.stderr[-500:])
    annotate = [sys.executable, os.path.join(os.environ.get("top_srcdir", "."), "tools", "model-annotate.py")]
    a = subprocess.run(annotate + [ann, res, "--note", "test"], capture_output=True, text=True)
    check(a.returncode == 0, "annotate: " + a.stderr[-500:])
    hdr2, meta2, data2 = read_st(ann)
    check(data2 == data and {k: v for k, v in meta2.items() if k != "resadd.eval"} == meta, "annotation changed more")
    ev = json.loads(meta2.get("resadd.eval", "{}"))
    check(sorted(ev.get("scorers", {})) == ["knn", "resad", "residual-norm"], "eval summary scorers %s" % ev)
    i = subprocess.run([resad, "info", "--backbone", BACKBONE, "--model", ann], capture_output=True, text=True)
    prov = json.loads(i.stdout).get("model_provenance", {}) if i.returncode == 0 else {}
    check(prov.get("eval", {}).get("note") == "test" and prov.get("train_classes") == "alpha,beta",
          "resad info provenance: %s %s" % (prov, i.stderr[-300:]))
    a = subprocess.run(annotate + [full + ".x", res], capture_output=True, text=True)
    check(a.returncode != 0, "annotating a missing file succeeded")
    open(ann + ".other", "wb").write(open(full, "rb").read()[:-4] + b"\0\0\0\1")
    a = subprocess.run(annotate + [ann + ".other", res], capture_output=True, text=True)
    check(a.returncode != 0 and "not" in a.stderr, "annotating with another model's results: %r" % a.stderr)

    # 3. checkpoint + resume is bit-exact for a fixed thread count and OpenBLAS
    #    kernel set (what the README guarantees; another --threads or core type
    #    sums in another order and gives another, equally valid, result).  The
    #    three runs share --threads 2 and the environment's core type; then the
    #    same check with the core type pinned explicitly (Prescott: every x86-64).
    def resume_check(label, env, ref_data, ref_meta):
        part = os.path.join(tmp, "part-%s.safetensors" % label)
        ck = os.path.join(tmp, "part-%s.ckpt" % label)
        r = run(common + ["--epochs", "3", "--out", part, "--checkpoint", ck, "--stop-after", "2"], env=env)
        check(r.returncode == 0, "%s: interrupted run failed: %s" % (label, r.stderr[-500:]))
        check(read_st(part)[1].get("resadd.epochs") == "2", "%s: stop-after did not stop at 2" % label)
        res = os.path.join(tmp, "resumed-%s.safetensors" % label)
        r = run(common + ["--epochs", "3", "--out", res, "--resume", ck], env=env)
        check(r.returncode == 0, "%s: resumed run failed: %s" % (label, r.stderr[-500:]))
        if r.returncode != 0:
            return ck
        h2, m2, d2 = read_st(res)
        check(set(d2) == set(ref_data), "%s: resumed model has other tensors" % label)
        diff = [k for k in ref_data if ref_data[k] != d2.get(k)]
        check(not diff, "%s: resumed parameters differ from the uninterrupted run: %s" % (label, diff[:5]))
        check(m2.get("resadd.final_losses") == ref_meta.get("resadd.final_losses"),
              "%s: final losses differ after resume: %s vs %s" % (label, m2.get("resadd.final_losses"),
                                                                 ref_meta.get("resadd.final_losses")))
        if not diff:
            print("resume bit-exact (%s)" % label)
        return ck

    core = os.environ.get("OPENBLAS_CORETYPE") or "auto"
    ck = resume_check("coretype-" + core, None, data, meta)
    if platform.machine() in ("x86_64", "AMD64"):
        env = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
        pin = os.path.join(tmp, "full-prescott.safetensors")
        r = run(common + ["--epochs", "3", "--out", pin], env=env)
        check(r.returncode == 0, "Prescott run failed: " + r.stderr[-500:])
        if r.returncode == 0:
            _, pmeta, pdata = read_st(pin)
            resume_check("coretype-Prescott", env, pdata, pmeta)
    res = os.path.join(tmp, "resumed.safetensors")
    # a checkpoint from other settings is refused
    r = run(common[:-2] + ["--normal-epochs", "2", "--epochs", "3", "--out", res, "--resume", ck])
    check(r.returncode != 0 and "other settings" in r.stderr, "mismatched resume accepted: " + r.stderr[-300:])
    # ... and so is one made without the mirrored input margin (other features)
    r = run(common + ["--epochs", "3", "--input-pad", "16", "--out", res, "--resume", ck])
    check(r.returncode != 0 and "other settings" in r.stderr, "resume with another --input-pad accepted: " + r.stderr[-300:])

    # --max-minutes stops cleanly and still writes a model
    tl = os.path.join(tmp, "tl.safetensors")
    r = run(common + ["--epochs", "50", "--out", tl, "--max-minutes", "0.0001"])
    check(r.returncode == 0 and os.path.exists(tl), "time-limited run failed: " + r.stderr[-300:])
    if os.path.exists(tl):
        check(read_st(tl)[1].get("resadd.stopped_early") == "yes", "stopped_early not recorded")

    # 4. no constraintor, squared residual, 1x1
    nc = os.path.join(tmp, "nc.safetensors")
    r = run(common + ["--epochs", "1", "--out", nc, "--no-constraintor", "--residual", "sq"])
    check(r.returncode == 0, "--no-constraintor run failed: " + r.stderr[-300:])
    h, m, _ = read_st(nc)
    check(m.get("resadd.constraintor") == "off" and m.get("resadd.residual") == "sq", "nc metadata")
    check(not any(".cstr." in k for k in h), "constraintor tensors written with --no-constraintor")
    check(subprocess.run([TOOL, "check", nc], capture_output=True).returncode == 0, "nc model import")

    # 4b. GLASS-style synthesis (core/synth.c): local anomalies join the data, global
    #     ones the flow chunks; recorded in the metadata; resume stays bit-exact with
    #     them; a checkpoint made without them is refused
    syn = ["--synth-local", "2", "--synth-global", "0.5", "--gas-steps", "2", "--gas-shell", "0.4,0.9"]
    sf = os.path.join(tmp, "synth.safetensors")
    r = run(common + syn + ["--epochs", "3", "--out", sf])
    check(r.returncode == 0 and "4 synthesized local anomalies" in r.stderr, "synthesis run: " + r.stderr[-500:])
    if r.returncode == 0:
        sh, sm, sd = read_st(sf)
        check(sm.get("resadd.synth_local", "").startswith("2 per class") and
              sm.get("resadd.synth_global", "").startswith("share 0.5, 2 steps, shell [0.4, 0.9]") and
              meta.get("resadd.synth_local") == "off" and meta.get("resadd.synth_global") == "off",
              "synthesis metadata: %s / %s" % (sm.get("resadd.synth_local"), sm.get("resadd.synth_global")))
        check(sd != data, "synthesis changed nothing")
        check(subprocess.run([TOOL, "check", sf], capture_output=True).returncode == 0, "synthesis model import")
        sp, sck = os.path.join(tmp, "synth-part.safetensors"), os.path.join(tmp, "synth.ckpt")
        r = run(common + syn + ["--epochs", "3", "--out", sp, "--checkpoint", sck, "--stop-after", "2"])
        check(r.returncode == 0, "synthesis: interrupted run: " + r.stderr[-300:])
        r = run(common + syn + ["--epochs", "3", "--out", sp, "--resume", sck])
        check(r.returncode == 0 and read_st(sp)[2] == sd, "synthesis: resumed run differs: " + r.stderr[-300:])
        r = run(common + ["--epochs", "3", "--out", sp, "--resume", sck])
        check(r.returncode != 0 and "other settings" in r.stderr, "checkpoint with synthesis resumed without it")

    # 5. bad arguments
    for args, want in [(["--out", nc], "--data"),
                       (["--data", ds, "--out", nc, "--epochs", "0"], "--epochs"),
                       (["--data", ds, "--out", nc, "--cstr-kernel", "2"], "--cstr-kernel"),
                       (["--data", ds, "--out", nc, "--residual", "abs"], "--residual"),
                       (["--data", ds, "--out", nc, "--lr", "x"], "--lr"),
                       (["--data", ds, "--out", nc, "--bogus", "1"], "unknown option"),
                       (["--data", ds, "--out", nc, "--synth-global", "2"], "--synth-global"),
                       (["--data", ds, "--out", nc, "--gas-shell", "1,0.5"], "--gas-shell"),
                       (["--data", ds, "--out", nc, "--gas-shell", "1"], "--gas-shell"),
                       (["--data", ds, "--out", nc, "--synth-local", "-1"], "--synth-local"),
                       (["--data", ds, "--out", nc, "--epochs"], "needs a value"),
                       (["--data", os.path.join(tmp, "nope"), "--out", nc, "--backbone", BACKBONE], "nope"),
                       (common + ["--out", nc, "--resume", os.path.join(tmp, "missing.ckpt")], "missing.ckpt")]:
        r = run(args)
        check(r.returncode != 0 and want in r.stderr, "args %s: rc %d, stderr %r" % (args, r.returncode,
                                                                                  r.stderr[-300:]))
    print("ok" if not failures else "%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
