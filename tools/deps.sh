#!/usr/bin/env bash
# tools/deps.sh — installs everything resadd needs to build, test and run, from
# Debian's archive (idempotent; needs root or sudo).  Node.js and npm are used
# at build time only, to convert the default backbone from the npm package.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BUILD="build-essential autoconf automake libtool pkg-config ca-certificates
  libopenblas-dev libjpeg62-turbo-dev libpng-dev libjansson-dev libssl-dev
  libmicrohttpd-dev libsqlite3-dev sqlite3 curl"
# Test oracles (PyTorch/torchvision for parity, PIL for resize parity,
# scikit-learn/scipy for metrics) and the real photographs used as data.
TEST="python3 python3-torch python3-torchvision python3-pil python3-numpy python3-scipy
  python3-sklearn openarena-081-textures"

want=""
for p in $BUILD $TEST; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
done
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || want="$want nodejs npm"
if [ -n "$want" ]; then
  echo "deps: installing:$want" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi
echo "deps: all present" >&2
