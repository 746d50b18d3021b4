#!/usr/bin/env bash
# bench/camera.sh — a 5000×4000 camera frame (20 MP JPEG, quality 92) through
# the inspection at the default resolution: decoding at full size and letting
# the pipeline resize, against DCT-scaled decoding (rd_decode_opts.min_short =
# the working size), both in the same run, each with its overlay heatmap over
# the whole frame at the decoded size.  Prints each mode's stages, the decode
# share of the total and the full/scaled ratio.
#
#   bench/camera.sh [BUILDDIR]        (default: build/)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
make -C "$build" bench/bench_camera >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$top/tools/demo-images.py" "$tmp/img" --size 640 >/dev/null
# the demo photographs (4 normal parts and one with a scratch and a stain)
# upscaled to 5000×4000 with sensor noise, as a 20 MP camera would send them
/usr/bin/python3 - "$tmp/img" <<'PY'
import sys, numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(0)
for n in ["ref1", "ref2", "ref3", "ref4", "defect"]:
    im = Image.open(f"{d}/{n}.jpg").convert("RGB").resize((5000, 4000), Image.BICUBIC)
    a = np.asarray(im).astype(np.float32) + rng.normal(0, 3, (4000, 5000, 3)).astype(np.float32)
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(f"{d}/{n}-20mp.jpg", quality=92)
PY
default=$build/models/mobilenet_v2.safetensors
model=$build/models/resad_mobilenet_v2.safetensors
iters=${ITERS:-5}
echo "== 5000x4000 JPEG, default resolution, 4-shot, shipped learned model"
for t in 1 2; do
  "$build/bench/bench_camera" -m "$model" "$default" "$t" "$iters" "$tmp/img/defect-20mp.jpg" \
    "$tmp"/img/ref{1,2,3,4}-20mp.jpg
done | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print("%-7s %-10s %5s | %8s %6s %8s %6s %6s %8s | %8s | %6s" % ("mode", "decoded", "scale", "decode", "prep",
      "backbone", "nn", "score", "heatmap", "total ms", "decode share"))
thr = None
for r in rows:
    if "mode" not in r:
        print("%d thread(s): full-size decode / scaled decode total = %.1fx; image score %.3f (full) vs %.3f (scaled)"
              % (r["threads"], r["full_over_scaled"], r["score_full"], r["score_scaled"]))
        continue
    print("%-7s %-10s %5s | %8.1f %6.1f %8.1f %6.1f %6.1f %8.1f | %8.1f | %5.1f%%" % (r["mode"], r["decoded"],
          r["scale"], r["decode"], r["preprocess"], r["backbone"], r["nn"], r["score"], r["heatmap"], r["total"],
          100 * r["decode_share"]))'
