#!/usr/bin/env bash
# eval/ablations.sh — the learned model's ablations (issue 5): one short
# training run per variant, all else equal, each evaluated like the shipped
# model (unseen classes, 4-shot, 3 seeds, scorer resad).  Writes a table to
# eval/ablations.md (and the raw JSON beside the models in WORK).
#
#   eval/ablations.sh [BUILDDIR] [EPOCHS] [VARIANT...]    (defaults: build/, 6, all)
#
# Variants (the reference is "base" = the shipped model's settings, fewer epochs):
#   base      constraintor 3×3, K=4 coupling blocks, subnet width 256,
#             residual x−x*, ML loss −logsigmoid(logp/C)
#   no-cstr   flow directly on the residuals (no Feature Constraintor)
#   cstr1x1   1×1 constraintor
#   K2, K8    2 or 8 coupling blocks
#   sq        residual (x−x*)² (the official code's form)
#   nll       ML loss = plain negative log-likelihood
#   pos-none  the flow without a positional condition (--flow-pos none)
#   pos-shift the condition randomly translated in training (--flow-pos shift)
#   glass-local   GLASS-style local anomalies, 16 per class (--synth-local 16)
#   glass-global  GLASS-style global anomalies for a quarter of the flow rows (--synth-global 0.25)
#   glass-both    both
# About 5-8 minutes per variant on 2 cores at 6 epochs; glass-* do more work per mixed epoch
# (local: +28 % images; global: +25 % flow rows, each with 2 extra forward/backward passes).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
epochs=${2:-6}
shift 2 2>/dev/null || shift $#
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(base no-cstr cstr1x1 K2 K8 sq nll)
work=${WORK:-$build/ablations}
data=$build/data/resad-textures
mkdir -p "$work"
[ -f "$data/split.json" ] || make -C "$build" dataset >/dev/null

args_for() {
  local base="--flow-blocks 4 --flow-hidden 256"
  case $1 in
    base) echo "$base" ;;
    no-cstr) echo "$base --no-constraintor" ;;
    cstr1x1) echo "$base --cstr-kernel 1" ;;
    K2) echo "--flow-blocks 2 --flow-hidden 256" ;;
    K8) echo "--flow-blocks 8 --flow-hidden 256" ;;
    sq) echo "$base --residual sq" ;;
    nll) echo "$base --ml nll" ;;
    pos-none) echo "$base --flow-pos none" ;;
    pos-shift) echo "$base --flow-pos shift" ;;
    glass-local) echo "$base --synth-local 16" ;;
    glass-global) echo "$base --synth-global 0.25" ;;
    glass-both) echo "$base --synth-local 16 --synth-global 0.25" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

for v in "${variants[@]}"; do
  a=$(args_for "$v")
  if [ ! -f "$work/$v.json" ]; then
    t0=$(date +%s)
    # shellcheck disable=SC2086
    "$build/resad" train --data "$data" --out "$work/$v.safetensors" --epochs "$epochs" --seed 0 $a \
      2>"$work/$v.train.log"
    t1=$(date +%s)
    "$build/resad" eval --data "$data" --classes unseen --shots 4 --seeds 3 --scorer resad \
      --model "$work/$v.safetensors" --json "$work/$v.json" >"$work/$v.eval.txt" 2>/dev/null
    echo "$((t1 - t0))" >"$work/$v.train_s"
    echo "$a" >"$work/$v.args"
  fi
  echo "ablation $v done" >&2
done

/usr/bin/python3 - "$work" "$epochs" "${variants[@]}" >"$top/eval/ablations.md" <<'EOF'
import json, re, sys
work, epochs, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
print("# Ablations of the learned model (issue 5)\n")
print(f"Each variant: `resad train --epochs {epochs} --seed 0` on the known classes, then "
      "`resad eval --classes unseen --shots 4 --seeds 3 --scorer resad`; produced by "
      f"`eval/ablations.sh BUILD {epochs}`. Percent, mean ± std over seeds.\n")
print("| variant | settings | train s | I-AUROC | P-AUROC | PRO | I-F1 | P-AP | final losses (occ / ml / bgad) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for v in variants:
    r = json.load(open(f"{work}/{v}.json"))
    o = r["runs"][0]["overall"]
    t = open(f"{work}/{v}.train_s").read().strip()
    log = open(f"{work}/{v}.train.log").read().strip().splitlines()
    wrote = [l for l in log if l.startswith("train: wrote")]
    m = re.search(r"occ (\S+) ml (\S+) bgad (\S+)\)", wrote[-1]) if wrote else None
    loss = " / ".join(m.groups()) if m else "?"
    cell = lambda k: f"{100 * o[k]:.1f} ± {100 * o[k + '_std']:.1f}"
    a = open(f"{work}/{v}.args").read().strip()
    print(f"| {v} | `{a}` | {t} | {cell('image_auroc')} | {cell('pixel_auroc')} | "
          f"{cell('pro')} | {cell('image_f1_max')} | {cell('pixel_ap')} | {loss} |")
EOF
cat "$top/eval/ablations.md"
