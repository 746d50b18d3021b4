#!/bin/bash
# backbone.sh — backbone forward time, ours vs PyTorch, measured in the same run.
#
#   bench/backbone.sh [BUILDDIR]      (default: the current directory)
#
# wide_resnet50_2 with random weights (tools/torch2safetensors.py --random),
# layers 1–3 (stem + layer1..3, what resadd extracts), one image, S = 224 and
# 256, 1 and 2 threads (OpenBLAS threads for us, torch.set_num_threads for
# PyTorch).  "ours" uses OpenBLAS's threads (rd_graph_forward); "team" splits
# every node across a team of threads with single-threaded OpenBLAS
# (rd_graph_forward_team).  PyTorch runs with the same OPENBLAS_CORETYPE, i.e.
# with the fast kernels too (without it Debian's torch is ~1.7x slower).  Each
# figure is the best of ITERS forwards after a warm-up, over ROUNDS interleaved
# rounds (default 3), so bursts of other load on the machine inflate it less.  Prints ms/forward, the ratio torch/ours (> 1: we
# are faster) and the GFLOP/s we reach (2·MACs / time).
# Needs tests/backbone_tool (make check, or make tests/backbone_tool) and
# /usr/bin/python3 with Debian's python3-torch and python3-torchvision.
set -euo pipefail

builddir=${1:-.}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
python=${TORCH_PYTHON:-/usr/bin/python3}
iters=${ITERS:-5}
rounds=${ROUNDS:-3}
tool=$builddir/tests/backbone_tool
if [ ! -x "$tool" ]; then
    make -C "$builddir" tests/backbone_tool >/dev/null
fi
# core/blas.c re-execs with the right OpenBLAS kernels by itself; set them here
# too so a tool built before that existed is measured fairly.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$tmp/wide_resnet50_2.safetensors
"$python" "$srcdir/tools/torch2safetensors.py" --arch wide_resnet50_2 --random --seed 1 "$model" >/dev/null

cat >"$tmp/torch_bench.py" <<'EOF'
import sys, time
import torch, torchvision
s, threads, iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
m = torchvision.models.wide_resnet50_2(weights=None).eval()
body = torch.nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3)
x = torch.randn(1, 3, s, s)
with torch.no_grad():
    body(x)
    best = 1e30
    for _ in range(iters):
        t0 = time.perf_counter()
        body(x)
        best = min(best, time.perf_counter() - t0)
print("%.2f" % (best * 1e3))
EOF

ms() { sed -n 's/.*ms=\([0-9.]*\).*/\1/p'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 < b + 0) ? a : b }'; }
declare -A OURS TEAM TORCH
macs=
for ((r = 0; r < rounds; r++)); do
    for s in 224 256; do
        for t in 1 2; do
            out=$("$tool" bench "$model" "$s" "$iters" "$t")
            [ "$s" = 256 ] && macs=$(sed -n 's/.*macs=\([0-9.e+]*\).*/\1/p' <<<"$out")
            OURS[$s.$t]=$(min "$(ms <<<"$out")" "${OURS[$s.$t]:-}")
            TEAM[$s.$t]=$(min "$("$tool" benchteam "$model" "$s" "$iters" "$t" | ms)" "${TEAM[$s.$t]:-}")
            TORCH[$s.$t]=$(min "$("$python" "$tmp/torch_bench.py" "$s" "$t" "$iters")" "${TORCH[$s.$t]:-}")
        done
    done
done
# MACs scale with the number of output pixels: S^2.
printf '%-16s %4s %7s %9s %9s %9s %7s %7s %8s\n' arch S threads ours_ms team_ms torch_ms ratio r_team GFLOP/s
for s in 224 256; do
    for t in 1 2; do
        o=${OURS[$s.$t]} m=${TEAM[$s.$t]} p=${TORCH[$s.$t]}
        awk -v s="$s" -v t="$t" -v o="$o" -v m="$m" -v p="$p" -v macs="$macs" 'BEGIN {
            best = (o < m) ? o : m
            gf = 2 * macs * (s * s) / (256 * 256) / (best * 1e-3) * 1e-9
            printf "%-16s %4d %7d %9.2f %9.2f %9.2f %7.2f %7.2f %8.1f\n", "wide_resnet50_2", s, t, o, m, p, p / o, p / m, gf
        }'
    done
done
echo "ratio = torch_ms / ours_ms, r_team = torch_ms / team_ms (> 1: resadd is faster); GFLOP/s of the faster of ours/team"
echo "best of $iters forwards x $rounds rounds; OpenBLAS kernels: ${OPENBLAS_CORETYPE:-auto}"
