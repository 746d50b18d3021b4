#!/usr/bin/env bash
# bench/run.sh — the benchmarks (not tests), each printing ratios against a
# reference measured in the same run.
#
#   bench/run.sh [BUILDDIR]        (default: build/)
#
# 1. pipeline: ms/image per stage (decode, preprocess, backbone, NN search,
#    scoring, heatmap) of `resad`'s whole inspection for the default backbone
#    and for wide_resnet50_2 (random weights), at 224 and 256 px, 4-shot, 1 and
#    2 threads, on real photographs (Debian openarena textures); then the
#    default pipeline with the shipped learned model (what resadd serves) with
#    each stage's share of the total, against residual-norm in the same run.
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
echo "== default pipeline with the shipped learned model (scorer resad) vs residual-norm, 224 px, 4-shot"
model=$build/models/resad_mobilenet_v2.safetensors
printf '%-14s %3s | %6s %6s %8s %6s %6s (%7s) %7s | %7s\n' scorer thr decode prep backbone nn score learned heatmap total
for t in 1 2; do
  for m in "-m $model" ""; do
    # shellcheck disable=SC2086
    "$build/bench/bench_pipeline" $m "$default" 224 "$t" "$iters" "$tmp"/img/ref{1,2,3,4}.jpg -- "$tmp/img/defect.jpg"
  done
done | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
for r in rows:
    print("%-14s %3d | %6.2f %6.2f %8.2f %6.2f %6.2f (%7.2f) %7.2f | %7.2f ms" % (r["scorer"], r["threads"], r["decode"],
          r["preprocess"], r["backbone"], r["nn"], r["score"], r["learned"], r["heatmap"], r["total"]))
    if r["scorer"] == "resad":
        print("%-14s %3s | %5.1f%% %5.1f%% %7.1f%% %5.1f%% %5.1f%% (%6.1f%%) %6.1f%% |" % (("  share",  "") + tuple(
              100 * r[k] / r["total"] for k in ("decode", "preprocess", "backbone", "nn", "score", "learned", "heatmap"))))
for t in (1, 2):
    a = [r for r in rows if r["threads"] == t and r["scorer"] == "resad"][0]
    b = [r for r in rows if r["threads"] == t and r["scorer"] != "resad"][0]
    print("%d thread(s): learned / residual-norm total = %.2f; learned pipeline %.1f ms/image (target < 60)" %
          (t, a["total"] / b["total"], a["total"]))'
echo
echo "== backbone vs PyTorch (wide_resnet50_2, layers 1-3)"
bash "$top/bench/backbone.sh" "$build"
