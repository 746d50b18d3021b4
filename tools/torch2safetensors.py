#!/usr/bin/python3
"""torch2safetensors.py — export a torchvision ResNet backbone for resadd.

    /usr/bin/python3 tools/torch2safetensors.py --arch wide_resnet50_2 OUT.safetensors
    /usr/bin/python3 tools/torch2safetensors.py --arch resnet18 --weights resnet18.pth OUT.safetensors
    /usr/bin/python3 tools/torch2safetensors.py --arch resnet50 --random --seed 1 OUT.safetensors

Without --weights, the torchvision default (ImageNet) weights are used only if
they are already in the torch hub cache (~/.cache/torch/hub/checkpoints or
$TORCH_HOME); nothing is downloaded.  --weights takes a state_dict saved with
torch.save (timm ResNet checkpoints use the same tensor names).  --random
writes randomly initialized weights with non-trivial BatchNorm statistics (for
tests and benchmarks).  The file holds every float tensor except the
classifier ("fc.*") as F32, plus metadata "resadd.arch".

Needs Debian's python3-torch and python3-torchvision; the safetensors format
is written by hand (8-byte little-endian header length, JSON header, raw data),
so no safetensors package is needed.
"""
import argparse
import json
import os
import struct
import sys

ARCHS = ("resnet18", "resnet34", "resnet50", "wide_resnet50_2")


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy float32 array); written atomically."""
    import numpy as np

    header = {}
    offset = 0
    blobs = []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        data = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def randomize(model, seed):
    """Random weights with BatchNorm statistics far from identity."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def build_model(arch):
    import torchvision

    return getattr(torchvision.models, arch)(weights=None)


def cached_default_weights(arch):
    """Path of torchvision's default weights in the hub cache, or None."""
    import torch
    import torchvision

    enum_name = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights",
                 "wide_resnet50_2": "Wide_ResNet50_2_Weights"}[arch]
    url = getattr(torchvision.models, enum_name).DEFAULT.url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return path if os.path.isfile(path) else None, path


def state_dict_tensors(sd):
    out = []
    for name, t in sd.items():
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        if not t.is_floating_point():
            continue
        out.append((name, t.detach().to("cpu").float().contiguous().numpy()))
    return out


def export(arch, out, weights=None, random=False, seed=0):
    """Writes OUT; returns the torch model (eval mode) holding the same weights."""
    import torch

    model = build_model(arch)
    source = ""
    if random:
        randomize(model, seed)
        source = "random seed %d" % seed
    else:
        if weights is None:
            weights, expected = cached_default_weights(arch)
            if weights is None:
                raise SystemExit("torch2safetensors: no --weights given and torchvision's default %s weights are not "
                                 "in the torch hub cache (%s); download them with torchvision first, pass "
                                 "--weights FILE.pth, or use --random" % (arch, expected))
        try:
            sd = torch.load(weights, map_location="cpu", weights_only=True)  # no arbitrary pickles
        except Exception as e:
            raise SystemExit("torch2safetensors: %s: cannot load a state_dict: %s" % (weights, e))
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
        try:
            missing, unexpected = model.load_state_dict(sd, strict=False)
        except RuntimeError as e:
            lines = str(e).splitlines()
            raise SystemExit("torch2safetensors: %s does not fit %s:\n%s" % (weights, arch, "\n".join(lines[1:4])))
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise SystemExit("torch2safetensors: %s: missing tensors for %s: %s" % (weights, arch, ", ".join(missing[:8])))
        source = os.path.basename(weights)
    model.eval()
    write_safetensors(out, state_dict_tensors(model.state_dict()),
                      {"resadd.arch": arch, "resadd.source": source, "format": "pt"})
    return model


def main():
    ap = argparse.ArgumentParser(description="Export a torchvision ResNet backbone to safetensors for resadd.")
    ap.add_argument("--arch", required=True, choices=ARCHS)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--weights", help="state_dict file (.pth) saved with torch.save")
    src.add_argument("--random", action="store_true", help="random weights (tests, benchmarks)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random")
    ap.add_argument("out", help="output .safetensors file")
    args = ap.parse_args()
    export(args.arch, args.out, weights=args.weights, random=args.random, seed=args.seed)
    print("wrote %s (%s)" % (args.out, args.arch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
