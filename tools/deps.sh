#!/usr/bin/env bash
# tools/deps.sh — installs what resadd needs from Debian 12's archive, by
# purpose, and says what each package is for (idempotent; needs root or sudo).
#
#   bash tools/deps.sh build run   # the quick start: compile, run, demo images
#   bash tools/deps.sh test        # the test command: build + run + test oracles
#   bash tools/deps.sh package     # building and checking the Debian package
#   bash tools/deps.sh dataset     # extra photographs for tools/dataset/build.py --more-known
#   bash tools/deps.sh bench       # references the benchmarks compare with (FAISS)
#   bash tools/deps.sh --list GROUP...   # print the packages, install nothing
#
# Nothing here is fetched from npm: the default backbone is committed
# (models/mobilenet_v2.safetensors).  Node.js/npm are test-only (the tfjs parity
# test and the test that re-derives the backbone from npm).
set -euo pipefail

# group  package  why
TABLE='
build build-essential        C compiler, make
build autoconf               ./configure from configure.ac
build automake               Makefile.in from Makefile.am
build pkg-config             finds the libraries below
build libopenblas-dev        BLAS for the convolutions and flows
build libjpeg62-turbo-dev    JPEG decoding
build libpng-dev             PNG decoding and heatmaps
build libjansson-dev         JSON
build libssl-dev             SHA-256 (libcrypto)
build libmicrohttpd-dev      the HTTP server of resadd
build libsqlite3-dev         the store of resadd
build libcurl4-openssl-dev   webhook deliveries of resadd (HTTP client)
run   ca-certificates        apt over https
run   curl                   the quick start talks to resadd with curl
run   python3-pil            demo images: crops, a drawn scratch (tools/demo-images.py)
run   openarena-081-textures demo data: the real photographs the demo crops come from
test  python3-numpy          reference implementations in the Python tests
test  python3-torch          PyTorch parity of convolutions, ResNets, flows, gradients
test  python3-torchvision    ResNet parity (torchvision models)
test  python3-scipy          metric oracles; the eval dataset builder (make dataset)
test  python3-sklearn        AUROC/AP oracles for the eval metrics
test  mandoc                 man pages: mandoc -Tlint, and --help drift checks
test  bc                     arithmetic in the daemon tests (daemon_recover.sh, daemon_harden.sh)
test  clang                  libFuzzer targets (tools/fuzz.sh, make fuzz)
test  libclang-rt-14-dev     the libFuzzer runtime (only a Recommends of clang)
test  chromium               the dashboard test in a real browser (headless; tests/daemon_dashboard.sh)
package debhelper            dh, debian/rules
package lintian              checks the built .deb
package fakeroot             dpkg-buildpackage without root
dataset colobot-common-textures build.py --more-known: known classes (regolith, Mars ground, dirty plate; GPL-3+)
dataset gimp-data              build.py --more-known: known classes from GIMP patterns (burlap, paper, earth; GPL-3+)
bench python3-faiss            reference of the search benchmark: FAISS exact IndexFlatL2 (bench/search.sh)
'

list=0
[ "${1:-}" = --list ] && { list=1; shift; }
[ $# -gt 0 ] || set -- build run test
groups=" "
for g in "$@"; do
  case $g in
    build|run|package|dataset|bench) groups="$groups$g " ;;
    test) groups="$groups""build run test " ;;
    all) groups=" build run test package dataset bench " ;;
    *) echo "usage: $0 [--list] build|run|test|package|dataset|bench|all..." >&2; exit 2 ;;
  esac
done

want=""
while read -r g p why; do
  [ -n "$g" ] || continue
  case $groups in *" $g "*) ;; *) continue ;; esac
  if [ $list = 1 ]; then echo "$p"; continue; fi
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    st=present
  else
    st=install; want="$want $p"
  fi
  printf 'deps: %-7s %-8s %-23s %s\n' "$g" "$st" "$p" "$why" >&2
done <<<"$TABLE"
[ $list = 1 ] && exit 0

# node and npm (any source: Debian's nodejs+npm, or NodeSource's nodejs) for the tests.
case $groups in *" test "*)
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    printf 'deps: %-7s %-8s %-23s %s\n' test present "node, npm" "tfjs parity and backbone re-derivation tests" >&2
  else
    printf 'deps: %-7s %-8s %-23s %s\n' test install "nodejs npm" "tfjs parity and backbone re-derivation tests" >&2
    want="$want nodejs npm"
  fi ;;
esac

if [ -n "$want" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: apt-get install --no-install-recommends$want" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi
echo "deps: all present (${groups# })" >&2
