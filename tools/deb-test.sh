#!/usr/bin/env bash
# tools/deb-test.sh — the Debian package, end to end, as CI runs it (.ci/run):
#  1. builds it with `dpkg-buildpackage -us -uc -b` from a clean copy of the
#     tree (tests skipped with the nocheck profile: `make distcheck` has just run
#     them on the same sources), and runs lintian on it (must be clean; the
#     overrides are justified in debian/README.source);
#  2. `apt-get install ./resadd_*.deb`; checks the files, the conffile, the
#     system user and the state directory;
#  3. starts the installed daemon the way the installed unit would: its User=,
#     Group=, UMask=, ExecStart= and empty environment, read from
#     /lib/systemd/system/resadd.service (systemd is not PID 1 in CI, so
#     setpriv stands in for it; only --listen is added, to a free loopback
#     port); scores the demo images through it with curl;
#  4. `apt-get remove`, then `apt-get purge`, and checks nothing is left.
# Needs root (it installs and removes the package).  Leaves nothing behind,
# except a copy of the .deb, the build log and lintian's output in $DEB_OUT if set.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
PORT=${PORT:-18089}
[ "$(id -u)" -eq 0 ] || { echo "deb-test: needs root (installs the package)" >&2; exit 1; }
bash tools/deps.sh build run package
say() { echo "== deb-test: $*"; }
die() { echo "deb-test: FAIL: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' resadd 2>/dev/null | grep -q installed; then
  die "a resadd package is already installed; remove it first"
fi

work=$(mktemp -d /tmp/resadd-deb.XXXXXX)
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' resadd 2>/dev/null | grep -q "ok installed\|config-files"; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq resadd >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. build from a clean copy (the tracked and new files, never build outputs)
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$work/resadd-$ver
mkdir -p "$src"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | xargs -0 cp --parents -t "$src"
else
  tar -C "$top" --exclude='./build*' --exclude=./debian/build -cf - . | tar -C "$src" -xf -
fi
say "building resadd $ver in $src"
start=$(date +%s)
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" DEB_BUILD_PROFILES=nocheck \
   dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { tail -60 "$work/build.log"; die "dpkg-buildpackage"; }
deb=$(ls "$work"/resadd_"$ver"_*.deb)
say "built $(basename "$deb") in $(( $(date +%s) - start )) s, $(du -k "$deb" | cut -f1) KiB"
[ -z "${DEB_OUT:-}" ] || { mkdir -p "$DEB_OUT" && cp "$deb" "$work/build.log" "$DEB_OUT/"; }
lintian --fail-on error,warning --display-info --pedantic "$work"/resadd_"$ver"_*.changes | tee "$work/lintian.log" ||
  die "lintian"
say "lintian: $(grep -c . "$work/lintian.log" || true) tag(s) (info level, see above)"
[ -z "${DEB_OUT:-}" ] || cp "$work/lintian.log" "$DEB_OUT/"

# 2. install
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; die "apt-get install"; }
say "installed: $(dpkg-query -W -f='${Package} ${Version} ${Installed-Size} KiB' resadd)"
dpkg -L resadd | sort >"$work/files"
for f in /usr/bin/resadd /usr/bin/resad /etc/resadd/resadd.conf /lib/systemd/system/resadd.service \
         /usr/share/resadd/mobilenet_v2.safetensors /usr/share/resadd/resad_mobilenet_v2.safetensors \
         /usr/share/resadd/mobilenet_v2.NOTICE /usr/share/man/man1/resad.1.gz /usr/share/man/man8/resadd.8.gz \
         /usr/share/doc/resadd/copyright; do
  grep -qx "$f" "$work/files" && [ -e "$f" ] || die "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' resadd | grep -q '^ /etc/resadd/resadd.conf ' || die "resadd.conf is not a conffile"
getent passwd resadd >/dev/null || die "no system user resadd"
[ "$(stat -c '%U:%G %a' /var/lib/resadd)" = "resadd:resadd 750" ] || die "/var/lib/resadd: $(stat -c '%U:%G %a' /var/lib/resadd)"
cmp -s /usr/share/resadd/mobilenet_v2.safetensors models/mobilenet_v2.safetensors || die "installed backbone differs"
resad --version

# 3. run it as the unit would
unit=/lib/systemd/system/resadd.service
key() { sed -n "s/^$1=//p" "$unit" | tail -1; }
user=$(key User); group=$(key Group); umask=$(key UMask); exec_start=$(key ExecStart); state=$(key StateDirectory)
[ -n "$user" ] && [ -n "$exec_start" ] && [ "$state" = resadd ] || die "$unit: User=$user ExecStart=$exec_start StateDirectory=$state"
grep -q "^DynamicUser" "$unit" && die "$unit still has DynamicUser"
say "unit: User=$user Group=$group UMask=$umask StateDirectory=/var/lib/$state"
say "ExecStart=$exec_start  (+ --listen 127.0.0.1:$PORT)"
cd /
# setpriv execs (no fork), so $pid is the daemon itself.
setpriv --reuid "$user" --regid "${group:-$user}" --init-groups --no-new-privs -- \
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  sh -c "umask ${umask:-0022}; exec $exec_start --listen 127.0.0.1:$PORT" 2>"$work/resadd.log" &
pid=$!
cd "$top"
url=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "$url/readyz" >/dev/null || { cat "$work/resadd.log"; die "installed resadd did not become ready"; }
[ "$(ps -o user=,comm= -p "$pid" | tr -s ' ')" = "$user resadd" ] || die "pid $pid is not resadd run by $user: $(ps -o user=,comm= -p "$pid")"
/usr/bin/python3 tools/demo-images.py "$work/img" >/dev/null
curl -fsS -X POST "$url/v1/classes" -H 'Content-Type: application/json' -d '{"name": "steel-plate"}' >/dev/null
curl -fsS -X POST "$url/v1/classes/steel-plate/references" -F "img=@$work/img/ref1.jpg" -F "img=@$work/img/ref2.jpg" \
  -F "img=@$work/img/ref3.jpg" -F "img=@$work/img/ref4.jpg" >/dev/null
good=$(curl -fsS -X POST "$url/v1/classes/steel-plate/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$work/img/good.jpg")
bad=$(curl -fsS -X POST "$url/v1/classes/steel-plate/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$work/img/defect.jpg")
echo "good part:   $good" | cut -c1-160
echo "defect part: $bad" | cut -c1-160
lm=$(sha256sum /usr/share/resadd/resad_mobilenet_v2.safetensors | cut -d' ' -f1)
for j in "$good" "$bad"; do
  echo "$j" | grep -q '"scorer":"resad"' && echo "$j" | grep -q "\"model_sha256\":\"$lm\"" ||
    die "inspection not scored by the installed learned model: $j"
done
echo "$good" | grep -q '"anomalous":false' || die "the good part was flagged"
echo "$bad" | grep -q '"anomalous":true' || die "the defective part was not flagged"
[ "$(stat -c %U /var/lib/resadd/resadd.db)" = "$user" ] || die "resadd.db is not owned by $user"
kill -TERM "$pid"
wait "$pid" || die "resadd did not exit cleanly on TERM (rc $?)"
pid=""
say "scored the demo images through the installed daemon as $user; stopped cleanly"

# 4. remove keeps the conffile and the state; purge removes everything
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq resadd >/dev/null
[ ! -e /usr/bin/resadd ] || die "remove left /usr/bin/resadd"
[ -f /etc/resadd/resadd.conf ] && [ -d /var/lib/resadd ] || die "remove should keep the conffile and /var/lib/resadd"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq resadd >/dev/null
dpkg-query -W -f='${Status}' resadd 2>/dev/null | grep -q "not-installed\|^$" ||
  [ -z "$(dpkg-query -W -f='${Status}' resadd 2>/dev/null)" ] || die "dpkg still knows resadd: $(dpkg-query -W -f='${Status}' resadd)"
left=""
while read -r f; do
  [ -e "$f" ] && [ ! -d "$f" ] && left="$left $f"
done <"$work/files"
for d in /etc/resadd /var/lib/resadd /usr/share/resadd /usr/share/doc/resadd; do [ -e "$d" ] && left="$left $d"; done
getent passwd resadd >/dev/null && left="$left user:resadd"
getent group resadd >/dev/null && left="$left group:resadd"
[ -z "$left" ] || die "purge left:$left"
say "removed and purged: no file, directory, user or group left"
