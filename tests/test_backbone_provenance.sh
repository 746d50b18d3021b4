#!/usr/bin/env bash
# test_backbone_provenance.sh — the committed default backbone
# (models/mobilenet_v2.safetensors) is what its NOTICE says it is, and is what
# tools/nsfwjs-convert.mjs makes from the npm package nsfwjs@4.4.0 today.
#
# 1. Offline: the file's sha256, the converter's sha256 and the npm integrity
#    match the lines in models/mobilenet_v2.NOTICE (a converter edit without a
#    regenerated file fails here).
# 2. Online: re-derives the file from the npm tarball (npm pack, cached in
#    $RD_NPM_CACHE or $top_builddir/.cache) and compares hashes.  When node or
#    the npm registry is unreachable it says so and exits 77 (skip): only step 1
#    was checked.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=$(cd "${top_builddir:-.}" && pwd)
NODE=${NODE:-node}
cache=${RD_NPM_CACHE:-$top_builddir/.cache}
file=$top_srcdir/models/mobilenet_v2.safetensors
notice=$top_srcdir/models/mobilenet_v2.NOTICE
conv=$top_srcdir/tools/nsfwjs-convert.mjs
fail() { echo "FAIL: $*"; exit 1; }

want_out=$(sed -n 's/^ *output sha256 *\([0-9a-f]\{64\}\)$/\1/p' "$notice")
want_conv=$(sed -n 's/^ *(sha256 \([0-9a-f]\{64\}\))$/\1/p' "$notice")
want_int=$(sed -n 's/^ *integrity *\(sha512-[^ ]*\)$/\1/p' "$notice")
[ -n "$want_out" ] && [ -n "$want_conv" ] && [ -n "$want_int" ] || fail "$notice: missing output sha256, converter sha256 or integrity line"
got=$(sha256sum "$file" | cut -d' ' -f1)
[ "$got" = "$want_out" ] || fail "$file: sha256 $got, NOTICE says $want_out"
got=$(sha256sum "$conv" | cut -d' ' -f1)
[ "$got" = "$want_conv" ] || fail "$conv changed (sha256 $got, NOTICE says $want_conv): regenerate the backbone and update the NOTICE"
grep -qF "const INTEGRITY = '$want_int';" "$conv" || fail "$conv does not pin the integrity the NOTICE names ($want_int)"
echo "offline: file, converter and integrity match $notice"

skip() { echo "SKIP: $1; checked the committed file against its NOTICE only, did not re-derive it from npm"; exit 77; }
command -v "$NODE" >/dev/null 2>&1 || skip "node not found"
work=$(mktemp -d "${TMPDIR:-/tmp}/rd-backbone.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# Fail fast when the registry cannot be reached rather than retrying for minutes.
if ! npm_config_fetch_retries=0 npm_config_fetch_timeout=30000 \
    "$NODE" "$conv" --out "$work/mobilenet_v2.safetensors" --cache "$cache/npm-nsfwjs" >"$work/log" 2>&1; then
    cat "$work/log"
    grep -q "npm-unreachable" "$work/log" && skip "npm pack nsfwjs@4.4.0 failed (registry unreachable?)"
    fail "converter"
fi
cat "$work/log"
got=$(sha256sum "$work/mobilenet_v2.safetensors" | cut -d' ' -f1)
[ "$got" = "$want_out" ] || fail "re-derived backbone has sha256 $got, committed file $want_out"
echo "online: re-derived from npm nsfwjs@4.4.0, sha256 $got identical to the committed file"
