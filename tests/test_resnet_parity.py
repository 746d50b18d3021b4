#!/usr/bin/python3
"""test_resnet_parity.py — our ResNet backbones against PyTorch, layer by layer.

For resnet18, resnet50 and wide_resnet50_2 with random weights (and randomized
BatchNorm statistics so folding is exercised), exports the model with
tools/torch2safetensors.py, runs tests/backbone_tool on the same normalized
input, and compares layer1..3 with PyTorch forward hooks (NCHW → HWC):
relative error max|ours − torch| / max|torch| must be ≤ 1e-4.

Skips (77) when torch/torchvision are not importable or the tool is not built.
"""
import os
import subprocess
import sys
import tempfile
import time

TOL = 1e-4


def main():
    try:
        import numpy as np
        import torch
    except ImportError as e:
        print("skip: %s" % e)
        return 77
    srcdir = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), ".."))
    builddir = os.environ.get("top_builddir", ".")
    tool = os.path.join(builddir, "tests", "backbone_tool")
    if not os.path.exists(tool):
        print("skip: %s not built" % tool)
        return 77
    sys.path.insert(0, os.path.join(srcdir, "tools"))
    import torch2safetensors as t2s

    torch.set_num_threads(1)
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # (arch, S, seed, team threads): the last runs rd_graph_forward_team
    cases = [("resnet18", 224, 1, 1), ("resnet18", 256, 1, 1), ("resnet50", 224, 2, 1), ("wide_resnet50_2", 224, 3, 1),
             ("resnet50", 224, 2, 3)]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="rd-parity-") as tmp:
        models = {}
        for arch, size, seed, team in cases:
            t0 = time.time()
            path = os.path.join(tmp, arch + ".safetensors")
            if arch not in models:
                models[arch] = t2s.export(arch, path, random=True, seed=seed)
            model = models[arch]
            gen = torch.Generator().manual_seed(100 + size)
            x = torch.randn(1, 3, size, size, generator=gen)
            feats = {}
            hooks = [getattr(model, n).register_forward_hook(
                lambda m, i, o, n=n: feats.__setitem__(n, o.detach())) for n in ("layer1", "layer2", "layer3")]
            with torch.no_grad():
                model(x)
            for h in hooks:
                h.remove()
            inp = os.path.join(tmp, "input.raw")
            x[0].permute(1, 2, 0).contiguous().numpy().astype("<f4").tofile(inp)
            outdir = os.path.join(tmp, "out")
            os.makedirs(outdir, exist_ok=True)
            run_env = dict(env, BACKBONE_TOOL_TEAM=str(team))
            r = subprocess.run([tool, "levels", path, inp, str(size), outdir], env=run_env, capture_output=True,
                               text=True)
            if r.returncode != 0:
                print("FAIL %s S=%d: backbone_tool exited %d: %s" % (arch, size, r.returncode, r.stderr.strip()))
                failures += 1
                continue
            info = r.stdout.strip().splitlines()
            words = info[-1].split() if info else []
            if "peak" not in words or int(words[words.index("peak") + 1]) > int(words[words.index("plan") + 1]):
                print("FAIL %s S=%d: arena peak over the plan: %s" % (arch, size, info[-1] if info else r.stdout))
                failures += 1
            for level in ("layer1", "layer2", "layer3"):
                ref = feats[level][0].permute(1, 2, 0).contiguous().numpy()
                ours = np.fromfile(os.path.join(outdir, level + ".raw"), dtype="<f4")
                if ours.size != ref.size:
                    print("FAIL %s S=%d %s: %d values, torch has %s" % (arch, size, level, ours.size, ref.shape))
                    failures += 1
                    continue
                ours = ours.reshape(ref.shape)
                scale = float(np.abs(ref).max())
                err = float(np.abs(ours - ref).max()) / max(scale, 1e-30)
                ok = err <= TOL and np.isfinite(ours).all()
                failures += not ok
                print("%s %s S=%d%s %s %s: rel err %.2e (max |ref| %.3g)" % (
                    "ok  " if ok else "FAIL", arch, size, " team %d" % team if team > 1 else "", level,
                    "x".join(map(str, ref.shape)), err, scale))
            print("     %s (%.1f s)" % (info[-1] if info else "", time.time() - t0))
        # Recognition from tensor names alone: the same file without metadata.
        path = os.path.join(tmp, "nometa.safetensors")
        sd = models["resnet50"].state_dict()
        t2s.write_safetensors(path, t2s.state_dict_tensors(sd))
        inp = os.path.join(tmp, "input.raw")
        np.zeros((64, 64, 3), dtype="<f4").tofile(inp)
        r = subprocess.run([tool, "levels", path, inp, "64", os.path.join(tmp, "out"), "layer2,layer4"], env=env,
                           capture_output=True, text=True)
        ok = r.returncode == 0 and "arch resnet50" in r.stdout and "layer4 2 2 2048" in r.stdout
        failures += not ok
        print("%s recognized without metadata, levels layer2,layer4: %s" % ("ok  " if ok else "FAIL",
                                                                         r.stdout.strip().replace("\n", "; ")))
        # A missing tensor is an error that names it.
        tensors = [(n, a) for n, a in t2s.state_dict_tensors(sd) if n != "layer2.1.bn2.running_var"]
        t2s.write_safetensors(path, tensors, {"resadd.arch": "resnet50"})
        r = subprocess.run([tool, "levels", path, inp, "64", os.path.join(tmp, "out")], env=env, capture_output=True,
                           text=True)
        ok = r.returncode != 0 and "layer2.1.bn2.running_var" in r.stderr
        failures += not ok
        print("%s missing tensor: %s" % ("ok  " if ok else "FAIL", r.stderr.strip()))
        # Metadata that contradicts the tensors.
        t2s.write_safetensors(path, t2s.state_dict_tensors(sd), {"resadd.arch": "wide_resnet50_2"})
        r = subprocess.run([tool, "levels", path, inp, "64", os.path.join(tmp, "out")], env=env, capture_output=True,
                           text=True)
        ok = r.returncode != 0 and "wide_resnet50_2" in r.stderr
        failures += not ok
        print("%s arch mismatch: %s" % ("ok  " if ok else "FAIL", r.stderr.strip()))
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
