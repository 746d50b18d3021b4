#!/usr/bin/env bash
# tools/fuzz.sh [SECONDS] — builds the libFuzzer targets (fuzz/) with clang,
# ASan, UBSan and coverage in build-fuzz/ and runs each for SECONDS (default
# $FUZZ_SECONDS, else 30) on its seed corpus; stops at the first crash, leak or
# timeout and leaves the input in build-fuzz/fuzz/crash/.  See fuzz/README.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-${FUZZ_SECONDS:-30}}

# The build dependencies, and from the test group clang and its libFuzzer
# runtime (tools/deps.sh names both; the runtime is only a Recommends of clang).
bash tools/deps.sh build
want=""
for p in $(bash tools/deps.sh --list test | grep -E '^(clang|libclang-rt)'); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
done
if [ -n "$want" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "fuzz: apt-get install --no-install-recommends$want" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi

[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
mkdir -p build-fuzz
cd build-fuzz
[ -f Makefile ] || ../configure CC=clang --enable-fuzz >/dev/null
make -j2 fuzz FUZZ_SECONDS="$secs"
