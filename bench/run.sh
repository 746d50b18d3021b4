#!/usr/bin/env bash
# bench/run.sh — the benchmarks (not tests), each printing ratios against a
# reference measured in the same run.
#
#   bench/run.sh [BUILDDIR]        (default: build/)
#
# 1. pipeline: ms/image per stage (decode, preprocess, backbone, NN search,
#    scoring, heatmap) of `resad`'s whole inspection for the default backbone
#    and for wide_resnet50_2 (random weights), at 224 and 256 px, 4-shot, 1 and
#    2 threads, on real photographs (Debian openarena textures).
# 2. backbone: wide_resnet50_2 layers 1-3 vs PyTorch, same machine, same run
#    (bench/backbone.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
make -C "$build" bench/bench_pipeline tests/backbone_tool >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$top/tools/demo-images.py" "$tmp/img" --size 512 >/dev/null
/usr/bin/python3 "$top/tools/torch2safetensors.py" --arch wide_resnet50_2 --random --seed 1 "$tmp/wrn.safetensors" >/dev/null
default=$build/models/mobilenet_v2.safetensors
iters=${ITERS:-20}

printf '%-16s %4s %3s | %7s %7s %8s %7s %7s %7s | %7s | %6s\n' backbone S thr decode prep backbone nn score heatmap total GFLOP/s
for bb in "$default" "$tmp/wrn.safetensors"; do
  for s in 224 256; do
    for t in 1 2; do
      it=$iters; [ "$bb" = "$default" ] || it=$((iters / 4 + 1))
      "$build/bench/bench_pipeline" "$bb" "$s" "$t" "$it" "$tmp"/img/ref{1,2,3,4}.jpg -- "$tmp/img/defect.jpg" |
        /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-16s %4d %3d | %7.2f %7.2f %8.2f %7.2f %7.2f %7.2f | %7.2f | %6.1f" % (r["arch"], r["size"], r["threads"],
      r["decode"], r["preprocess"], r["backbone"], r["nn"], r["score"], r["heatmap"], r["total"], r["backbone_gflops"]))'
    done
  done
done
echo
echo "== backbone vs PyTorch (wide_resnet50_2, layers 1-3)"
bash "$top/bench/backbone.sh" "$build"
