#!/usr/bin/python3
"""test_learned_parity.py — the C flow and constraintor against plain PyTorch.

The reference is written here in plain torch (float64; no FrEIA): the
AllInOneBlock maths of docs/resad-method.md (FrEIA's SOFTPLUS global affine,
soft clamp, fixed rotation; condition = the official get_position_encoding),
the constraintor Conv2d + BatchNorm2d (train mode) + ReLU, the losses, and
torch.optim.Adam with weight decay.  Random weights are written to a
safetensors file (by hand: no safetensors package), tests/learned_tool runs the
C side, and the outputs are compared:
  logp/C (inference plan and training forward)  rel ≤ 1e-4
  gradients and input gradients                 rel ≤ 1e-3
  parameters after one Adam step                rel ≤ 1e-5
Cases: C = 24, 32, 64 (MobileNetV2 levels) and 17 (odd), K = 2 and 8,
kernels 1×1 and 3×3, a non-default subnet width.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print("skip: torch/numpy unavailable:", e)
    sys.exit(77)

torch.set_default_dtype(torch.float64)
BUILD = os.environ.get("top_builddir", ".")
TOOL = os.path.join(BUILD, "tests", "learned_tool")
FAILS = []


def st_write(path, tensors):
    hdr, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(np.asarray(t, dtype="<f4"))
        if a.ndim == 0:
            a = a.reshape(1)
        b = a.tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        assert e["dtype"] == "F32"
        out[name] = torch.from_numpy(
            np.frombuffer(data[8 + n + b:8 + n + end], dtype="<f4").astype(np.float64).reshape(e["shape"]))
    return out


def rel(a, b):
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def check(label, err, tol):
    ok = err <= tol
    print(f"  {label:<40} rel err {err:.2e}  (tol {tol:.0e}) {'ok' if ok else 'FAIL'}")
    if not ok:
        FAILS.append(label)


def position_encoding(D, H, W):
    """The official ResAD get_position_encoding (D×H×W)."""
    P = torch.zeros(D, H, W)
    D = D // 2
    div_term = torch.exp(torch.arange(0.0, D, 2) * -(math.log(1e4) / D))
    pos_w = torch.arange(0.0, W).unsqueeze(1)
    pos_h = torch.arange(0.0, H).unsqueeze(1)
    P[0:D:2, :, :] = torch.sin(pos_w * div_term).transpose(0, 1).unsqueeze(1).repeat(1, H, 1)
    P[1:D:2, :, :] = torch.cos(pos_w * div_term).transpose(0, 1).unsqueeze(1).repeat(1, H, 1)
    P[D::2, :, :] = torch.sin(pos_h * div_term).transpose(0, 1).unsqueeze(2).repeat(1, 1, W)
    P[D + 1::2, :, :] = torch.cos(pos_h * div_term).transpose(0, 1).unsqueeze(2).repeat(1, 1, W)
    return P


def adam_step(params, flat_grad, lr, wd):
    """torch.optim.Adam (weight_decay = L2 on the gradient), one step in
    float32 like the C side, applied to the C gradient (the gradient itself is
    compared separately).  In float64, components where g + wd·p cancels to
    ~eps would differ by float rounding amplified ~1e4 — not an optimizer bug."""
    ps, off = [], 0
    for p in params:
        q = p.detach().float().clone().requires_grad_(True)
        q.grad = flat_grad[off:off + q.numel()].reshape(q.shape).float().clone()
        off += q.numel()
        ps.append(q)
    opt = torch.optim.Adam(ps, lr=lr, weight_decay=wd)
    opt.step()
    return [q.detach().double() for q in ps]


def flow_forward(blocks, rots, x, cond, C, clamp):
    cp, ca = C - C // 2, C // 2
    logdet = torch.zeros(x.shape[0])
    for b, R in zip(blocks, rots):
        x1, x2 = x[:, :cp], x[:, cp:]
        h = F.relu(F.linear(torch.cat([x1, cond], 1), b["w1"], b["b1"]))
        a = 0.1 * F.linear(h, b["w2"], b["b2"])
        s = clamp * torch.tanh(a[:, :ca])
        x2 = x2 * torch.exp(s) + a[:, ca:]
        g = 0.1 * F.softplus(b["gamma"], beta=0.5)
        x = F.linear(torch.cat([x1, x2], 1) * g + b["offset"], R)
        logdet = logdet + s.sum(1) + torch.log(g).sum()
    logp = -0.5 * C * math.log(2 * math.pi) - 0.5 * (x ** 2).sum(1) + logdet
    return logp / C


def haar(C, gen):
    q, r = torch.linalg.qr(torch.randn(C, C, generator=gen))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def flow_case(tmp, C, K, hid, seed, lr=1e-3, wd=5e-4):
    print(f"flow C {C} K {K} hidden {hid or 'default'}:")
    gen = torch.Generator().manual_seed(seed)
    P, clamp, H, W = 256, 1.9, 6, 7
    cp, ca = C - C // 2, C // 2
    hid = hid or 2 * (cp + P)
    g0 = 2.0 * math.log(math.exp(5.0) - 1.0)

    def U(*shape, s=1.0):
        return (torch.rand(*shape, generator=gen) * 2 - 1) * s

    blocks, rots = [], []
    for _ in range(K):
        blocks.append({
            "w1": U(hid, cp + P, s=1 / math.sqrt(cp + P)), "b1": U(hid, s=1 / math.sqrt(cp + P)),
            "w2": U(2 * ca, hid, s=3 / math.sqrt(hid)), "b2": U(2 * ca, s=1 / math.sqrt(hid)),
            "gamma": g0 + U(C), "offset": U(C, s=0.2)})
        rots.append(haar(C, gen))
    x = torch.randn(H * W, C, generator=gen)
    mask = (torch.rand(H * W, generator=gen) < 0.25).double()
    cond = position_encoding(P, H, W).permute(1, 2, 0).reshape(H * W, P)
    # parameters as the C side will see them (float32)
    for b in blocks:
        for k in b:
            b[k] = b[k].float().double()
    rots = [r.float().double() for r in rots]
    x = x.float().double()
    with torch.no_grad():
        lpc0 = flow_forward(blocks, rots, x, cond, C, clamp)
    # a BGAD boundary with both sides active, away from every value
    nl = torch.sort(lpc0[mask == 0])[0]
    bn = None
    for q in np.linspace(0.2, 0.8, 61):
        cand = float(np.quantile(nl.numpy(), q))
        d = torch.minimum((lpc0 - cand).abs(), (lpc0 - (cand - 0.1)).abs()).min()
        if d > 2e-3 and ((lpc0 >= cand - 0.1) & (mask == 1)).any():
            bn = cand
            break
    if bn is None:
        bn = float(nl[len(nl) // 3]) + 1e-3

    tensors = {"flow.config": [1, C, K, P, hid, clamp], "x": x, "hw": [H, W], "mask": mask, "bn": [bn],
               "adam": [lr, wd]}
    for i, (b, R) in enumerate(zip(blocks, rots)):
        p = f"flow.block{i}."
        tensors.update({p + "subnet.0.weight": b["w1"], p + "subnet.0.bias": b["b1"], p + "subnet.2.weight": b["w2"],
                        p + "subnet.2.bias": b["b2"], p + "global_scale": b["gamma"], p + "global_offset": b["offset"],
                        p + "rot": R})
    fin, fout = os.path.join(tmp, "fin.safetensors"), os.path.join(tmp, "fout.safetensors")
    st_write(fin, tensors)
    r = subprocess.run([TOOL, "flow", fin, fout], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        FAILS.append(f"flow C {C} K {K}: tool failed")
        return
    out = st_read(fout)

    params = []
    for b in blocks:
        for k in ("w1", "b1", "w2", "b2", "gamma", "offset"):
            b[k] = b[k].clone().requires_grad_(True)
            params.append(b[k])
    xg = x.clone().requires_grad_(True)
    lpc = flow_forward(blocks, rots, xg, cond, C, clamp)
    n, a = mask == 0, mask == 1
    loss = F.softplus(-lpc[n]).mean()
    sel = n & (lpc <= bn)
    if sel.any():
        loss = loss + F.softplus(bn - lpc[sel]).mean()
    sel = a & (lpc >= bn - 0.1)
    if sel.any():
        loss = loss + F.softplus(lpc[sel] - (bn - 0.1)).mean()
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in params])
    after = adam_step(params, out["grad"], lr, wd)

    check("logp/C inference plan", rel(out["lpc_plan"], lpc.detach()), 1e-4)
    check("logp/C training forward", rel(out["lpc_train"], lpc.detach()), 1e-4)
    check("loss", rel(out["loss"], loss.detach()), 1e-4)
    check("gradient, all parameters", rel(out["grad"], grad), 1e-3)
    check("gradient, flow input", rel(out["dx"], xg.grad), 1e-3)
    worst, j = 0.0, 0
    for i in range(K):
        p = f"flow.block{i}."
        for name in ("subnet.0.weight", "subnet.0.bias", "subnet.2.weight", "subnet.2.bias", "global_scale",
                     "global_offset"):
            worst = max(worst, rel(out[p + name], after[j]))
            j += 1
    check("parameters after one Adam step", worst, 1e-5)


def cstr_case(tmp, C, k, seed, lr=1e-3, wd=5e-4):
    print(f"constraintor C {C} kernel {k}x{k}:")
    gen = torch.Generator().manual_seed(seed)
    N, H, W = 2, 6, 7

    def U(*shape, s=1.0):
        return ((torch.rand(*shape, generator=gen) * 2 - 1) * s).float().double()

    fan = C * k * k
    Wt, b = U(C, C, k, k, s=1 / math.sqrt(fan)), U(C, s=1 / math.sqrt(fan))
    gamma, beta = 1 + U(C, s=0.3), U(C, s=0.3)
    rm, rv = U(C, s=0.2), 1 + U(C, s=0.5)
    x = torch.randn(N, H, W, C, generator=gen).float().double()
    mask = (torch.rand(N * H * W, generator=gen) < 0.3).double()
    tensors = {"cstr.config": [1, C, k, 1e-5], "cstr.conv.weight": Wt, "cstr.conv.bias": b, "cstr.bn.weight": gamma,
               "cstr.bn.bias": beta, "cstr.bn.running_mean": rm, "cstr.bn.running_var": rv, "x": x, "mask": mask,
               "adam": [lr, wd]}
    fin, fout = os.path.join(tmp, "cin.safetensors"), os.path.join(tmp, "cout.safetensors")
    st_write(fin, tensors)
    r = subprocess.run([TOOL, "cstr", fin, fout], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        FAILS.append(f"cstr C {C} k {k}: tool failed")
        return
    out = st_read(fout)

    params = [t.clone().requires_grad_(True) for t in (Wt, b, gamma, beta)]
    xg = x.clone().requires_grad_(True)
    rm_t, rv_t = rm.clone(), rv.clone()
    y = F.conv2d(xg.permute(0, 3, 1, 2), params[0], params[1], padding=k // 2)
    y = F.relu(F.batch_norm(y, rm_t, rv_t, params[2], params[3], training=True, momentum=0.1, eps=1e-5))
    e = y.permute(0, 2, 3, 1).reshape(-1, C)
    r_ = x.reshape(-1, C)  # the target is the residual itself, not differentiated
    n, a = mask == 0, mask == 1
    loss = (torch.sqrt((e[n] ** 2).sum(1) + 1) - 1).mean() + F.mse_loss(e[a], r_[a])
    loss.backward()
    grad = torch.cat([params[0].grad.permute(0, 2, 3, 1).reshape(-1)] + [p.grad.reshape(-1) for p in params[1:]])
    gc = out["grad"]
    nb = C * C * k * k
    gc = torch.cat([gc[:nb].reshape(C, k, k, C).permute(0, 3, 1, 2).reshape(-1), gc[nb:]])
    params = adam_step(params, gc, lr, wd)
    with torch.no_grad():
        ye = F.conv2d(x.permute(0, 3, 1, 2), params[0], params[1], padding=k // 2)
        ye = F.relu(F.batch_norm(ye, rm_t, rv_t, params[2], params[3], training=False, eps=1e-5))

    check("train-mode output", rel(out["out_train"], y.detach().permute(0, 2, 3, 1)), 1e-4)
    check("OCC loss", rel(out["loss"], loss.detach()), 1e-4)
    # the conv bias gradient is ~0 under BN (rounding noise): compared absolutely
    g_c, g_t = out["grad"], grad
    nb = C * C * k * k
    check("gradient, weight/γ/β", rel(torch.cat([g_c[:nb], g_c[nb + C:]]), torch.cat([g_t[:nb], g_t[nb + C:]])),
          1e-3)
    bias_abs = float((g_c[nb:nb + C] - g_t[nb:nb + C]).abs().max() / g_t.abs().max())
    check("gradient, conv bias (≈0, vs max grad)", bias_abs, 1e-4)
    check("gradient, input", rel(out["dx"], xg.grad), 1e-3)
    check("running mean", rel(out["cstr.bn.running_mean"], rm_t), 1e-5)
    check("running var (unbiased)", rel(out["cstr.bn.running_var"], rv_t), 1e-5)
    worst = max(rel(out["cstr.conv.weight"], params[0].detach()), rel(out["cstr.conv.bias"], params[1].detach()),
                rel(out["cstr.bn.weight"], params[2].detach()), rel(out["cstr.bn.bias"], params[3].detach()))
    check("parameters after one Adam step", worst, 1e-5)
    check("folded BN inference (eval mode)", rel(out["out_eval"], ye.permute(0, 2, 3, 1)), 1e-4)


def main():
    if not os.path.exists(TOOL):
        print("learned_tool not built:", TOOL)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for i, (C, K, hid) in enumerate([(24, 8, 0), (32, 2, 0), (64, 8, 0), (17, 2, 0), (17, 8, 48), (24, 2, 96),
                                          (64, 2, 64)]):  # hid % 16 == 0: the fused AVX-512 subnet
            flow_case(tmp, C, K, hid, 100 + i)
        for i, (C, k) in enumerate([(24, 3), (32, 1), (64, 3), (17, 1), (17, 3)]):
            cstr_case(tmp, C, k, 200 + i)
    # the comparison must be able to fail: a perturbed parameter set is caught
    e = rel(torch.ones(10) * (1 + 2e-5), torch.ones(10))
    if e <= 1e-5:
        FAILS.append("self-test: comparison cannot see a 2e-5 error")
    if FAILS:
        print("FAILED:", ", ".join(FAILS))
        return 1
    print("ok test_learned_parity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
