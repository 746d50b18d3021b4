#!/usr/bin/env bash
# test_mobilenet_parity.sh — the embedded MobileNetV2 backbone against
# @tensorflow/tfjs (pure-JS CPU backend) running the original nsfwjs model.
#
# 1. Converts nsfwjs@4.4.0 again (tools/nsfwjs-convert.mjs, npm tarball cached
#    in $top_builddir/.cache/npm-nsfwjs) and checks the result is byte-identical
#    to the models/mobilenet_v2.safetensors that `make` built (determinism).
# 2. Installs @tensorflow/tfjs (pinned) into $top_builddir/.cache/npm-tfjs,
#    never into the source tree.
# 3. tests/mobilenet_parity.mjs: tfjs vs tests/backbone_tool on the default
#    levels at S = 224 (also with a team of 2), 256, 320 and an odd 225;
#    relative L2 and max error must be <= 1e-4; then, at 224, levels that
#    stop the BatchNorm/ReLU fusion (bn_Conv1, block_1_project, ...).
# 4. The optional InceptionV3 backbone (`nsfwjs-convert.mjs --model
#    inception_v3`, not committed): converted into the work directory and
#    checked the same way (tfjs running the nsfwjs model with the same
#    "valid" → "same" rewrite, --same 1) at 224 and 256 (Concatenate, TF
#    "same" padding at stride 2), then at 224 on mid-chain levels.
# Skips (77), saying why, when node/npm are missing or the npm registry cannot
# be reached (the build itself never needs npm: the backbone is committed).
# The npm cache is $RD_NPM_CACHE if set, else $top_builddir/.cache.
set -u
TFJS_VERSION=4.22.0
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
top_builddir=$(cd "$top_builddir" && pwd)
NODE=${NODE:-node}
NPM=${NPM:-npm}
model=$top_builddir/models/mobilenet_v2.safetensors
tool=$top_builddir/tests/backbone_tool
cache=${RD_NPM_CACHE:-$top_builddir/.cache}
# Fail fast when the registry cannot be reached rather than retrying for minutes.
export npm_config_fetch_retries=0 npm_config_fetch_timeout=30000

unavailable() { # npm could not fetch something
    echo "SKIP: $1: tfjs parity not checked"
    exit 77
}

command -v "$NODE" >/dev/null 2>&1 || unavailable "node not found"
command -v "$NPM" >/dev/null 2>&1 || unavailable "npm not found"
[ -x "$tool" ] || { echo "FAIL: $tool not built"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rd-mnet-parity.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

if ! "$NODE" "$top_srcdir/tools/nsfwjs-convert.mjs" --out "$work/mobilenet_v2.safetensors" \
    --cache "$cache/npm-nsfwjs" >"$work/convert.log" 2>&1; then
    cat "$work/convert.log"
    grep -q "npm-unreachable" "$work/convert.log" && unavailable "npm pack nsfwjs failed"
    echo "FAIL: converter"
    exit 1
fi
cat "$work/convert.log"
if [ -f "$model" ]; then
    cmp "$model" "$work/mobilenet_v2.safetensors" || { echo "FAIL: converter output differs from $model"; exit 1; }
    echo "converter output identical to $model"
else
    model=$work/mobilenet_v2.safetensors
fi

tfjs=$cache/npm-tfjs
if ! grep -qs "\"version\": \"$TFJS_VERSION\"" "$tfjs/node_modules/@tensorflow/tfjs/package.json"; then
    mkdir -p "$tfjs"
    echo "installing @tensorflow/tfjs@$TFJS_VERSION into $tfjs"
    (cd "$tfjs" && "$NPM" install --no-save --no-audit --no-fund --ignore-scripts --no-package-lock \
        --prefix "$tfjs" "@tensorflow/tfjs@$TFJS_VERSION" >"$work/npm.log" 2>&1) ||
        { tail -20 "$work/npm.log"; unavailable "npm install @tensorflow/tfjs@$TFJS_VERSION failed"; }
fi

"$NODE" "$top_srcdir/tests/mobilenet_parity.mjs" --tfjs "$tfjs" \
    --nsfwjs "$cache/npm-nsfwjs/package/dist/models/mobilenet_v2" --model "$model" --tool "$tool" \
    --work "$work" --sizes 224,256,320,225 2>&1 | grep -v -e "^=*$" -e "TensorFlow.js in Node" -e "^$"
rc=${PIPESTATUS[0]}
# Levels whose BatchNorm/ReLU cannot be fused (a level in the middle of a
# conv+BN+ReLU chain runs the rest as separate nodes), and the last frozen layer.
"$NODE" "$top_srcdir/tests/mobilenet_parity.mjs" --tfjs "$tfjs" \
    --nsfwjs "$cache/npm-nsfwjs/package/dist/models/mobilenet_v2" --model "$model" --tool "$tool" \
    --work "$work" --sizes 224 --levels bn_Conv1,block_1_project,block_3_expand_relu,block_10_project_BN 2>&1 |
    grep -v -e "^=*$" -e "TensorFlow.js in Node" -e "^$"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1

inc=$work/inception_v3.safetensors
if ! "$NODE" "$top_srcdir/tools/nsfwjs-convert.mjs" --model inception_v3 --out "$inc" \
    --cache "$cache/npm-nsfwjs" >"$work/convert.log" 2>&1; then
    cat "$work/convert.log"
    echo "FAIL: converter (inception_v3)"
    exit 1
fi
cat "$work/convert.log"
for args in "--sizes 224,256" "--sizes 224 --levels conv2d_5,mixed0,conv2d_36"; do
    # shellcheck disable=SC2086 # $args is a list of options
    "$NODE" "$top_srcdir/tests/mobilenet_parity.mjs" --tfjs "$tfjs" \
        --nsfwjs "$cache/npm-nsfwjs/package/dist/models/inception_v3" --model "$inc" --tool "$tool" \
        --work "$work" --same 1 $args 2>&1 | grep -v -e "^=*$" -e "TensorFlow.js in Node" -e "^$"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
exit "$rc"
