#!/usr/bin/env bash
# bench/bench_bigframe.sh — big camera frames through the daemon (not a test):
# "big frames cost decode, not inference" (issue 13) and "a 5000x4000 JPEG
# well under a second" (issue 9).  Starts resadd from a build tree on a free
# 127.0.0.1 port with a temp data dir, registers two classes from frames tiled
# from a real photograph (openarena textures) with sensor noise — 16:9
# (references 1920x1080 JPEG) and 5:4 (references 1250x1000 JPEG) — then
# posts, one at a time, N (default 15) each of: a 1920x1080 JPEG and a 512x288
# PNG (the same aspect, so the same working grid) to the 16:9 class and a
# 5000x4000 JPEG (q92, 20 MP) to the 5:4 class.  Prints per image the client
# p50 latency, the server's p50 decode / inference / total (timings_ms) and
# the decode share of the total, then the ratios: 1920x1080 JPEG / 512x288 PNG
# p50 (goal <= 1.5) and the 5000x4000 p50 (goal well under 1 s).  Then the
# score effect of reduced decoding: the same pixels as JPEG, PNG and Adam7 PNG
# (which is never reduced: the full-decode reference), clean and with defects.
# usage: bench/bench_bigframe.sh [BUILD_DIR] [N]   (extra resadd args via RESADD_ARGS)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
N=${2:-15}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/resadd-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
$PY - "$T" <<'PY'
import io, sys, zipfile
import numpy as np
from PIL import Image
d = sys.argv[1]
z = zipfile.ZipFile("/usr/share/games/openarena/baseoa/pak4-textures.pk3")
tex = Image.open(io.BytesIO(z.read("textures/base_floor/clang_floor.jpg"))).convert("RGB")
rng = np.random.default_rng(0)
def scene(w, h):
    s = Image.new("RGB", (w, h))
    for y in range(0, h, tex.size[1]):
        for x in range(0, w, tex.size[0]):
            s.paste(tex, (x, y))
    return s
def noisy(im):
    a = np.asarray(im).astype(np.int16) + rng.integers(-4, 5, (im.size[1], im.size[0], 3), dtype=np.int16)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))
wide = scene(1920, 1080)
for i in range(4):
    noisy(wide).save(f"{d}/w{i}.jpg", quality=92)
noisy(wide).save(f"{d}/part1920.jpg", quality=92)
noisy(wide.resize((512, 288), Image.BICUBIC)).save(f"{d}/part512.png")
big = scene(5000, 4000)
for i in range(4):
    noisy(big.resize((1250, 1000), Image.BICUBIC)).save(f"{d}/b{i}.jpg", quality=92)
noisy(big).save(f"{d}/part5000.jpg", quality=92)
PY
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2086
printf 'max_body_mb = 256\n' > "$T/conf"  # the 20 MP Adam7 reference PNG
"$build/resadd" --listen 127.0.0.1:$PORT --data-dir "$T/data" --config "$T/conf" ${RESADD_ARGS:-} 2>"$T/log" &
PID=$!
for _ in $(seq 600); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
grep -E "OpenBLAS|worker" "$T/log" | sed 's/^<[0-9]>[a-z]*: /resadd: /' || true
for c in wide:w big:b; do
  curl -fs -X POST "$URL/v1/classes" -H 'Content-Type: application/json' -d "{\"name\":\"${c%%:*}\"}" >/dev/null
  p=${c#*:}
  curl -fs -X POST "$URL/v1/classes/${c%%:*}/references" -F "a=@$T/${p}0.jpg" -F "b=@$T/${p}1.jpg" \
       -F "c=@$T/${p}2.jpg" -F "d=@$T/${p}3.jpg" >/dev/null
done
echo "$(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - "$URL" "$T" "$N" <<'PY'
import json, sys, time, urllib.request
url, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = [("1920x1080 JPEG", "wide", "part1920.jpg", "image/jpeg"), ("512x288 PNG", "wide", "part512.png", "image/png"),
         ("5000x4000 JPEG", "big", "part5000.jpg", "image/jpeg")]
def post(cls, body, ct):
    r = urllib.request.Request(f"{url}/v1/classes/{cls}/inspections", data=body, method="POST")
    r.add_header("Content-Type", ct)
    t = time.perf_counter()
    with urllib.request.urlopen(r, timeout=120) as f:
        j = json.loads(f.read())
    return (time.perf_counter() - t) * 1e3, j
med = lambda a: sorted(a)[len(a) // 2]
p50 = {}
print("image            bytes     p50_ms  server: decode_ms  inference_ms  total_ms  decode_share  width x height")
for name, cls, f, ct in cases:
    body = open(f"{d}/{f}", "rb").read()
    for _ in range(2): post(cls, body, ct)  # warm-up
    lat, dec, inf, tot = [], [], [], []
    for _ in range(n):
        l, j = post(cls, body, ct)
        t = j["timings_ms"]
        lat.append(l); dec.append(t["decode"]); inf.append(t["inference"]); tot.append(t["total"])
    p50[name] = med(lat)
    print(f"{name:15s} {len(body):8d}  {med(lat):7.1f}  {med(dec):17.1f}  {med(inf):12.1f}  {med(tot):8.1f}"
          f"  {med(dec) / med(tot):12.2f}  {j['width']} x {j['height']}")
print(f"ratio 1920x1080 JPEG / 512x288 PNG p50: {p50['1920x1080 JPEG'] / p50['512x288 PNG']:.2f} (goal <= 1.5)")
print(f"5000x4000 JPEG p50: {p50['5000x4000 JPEG']:.0f} ms (goal well under 1000); "
      f"/ 512x288 PNG p50: {p50['5000x4000 JPEG'] / p50['512x288 PNG']:.2f}")
PY
# score effect of the reduced decode: the same pixels posted as the JPEG
# (DCT-reduced), a PNG (box-reduced) and an Adam7 PNG (never reduced: full
# decode + resize, the reference), clean and with drawn defects
$PY - "$URL" "$T" <<'PY'
import io, json, struct, sys, urllib.request, zlib
import numpy as np
from PIL import Image, ImageDraw
url, d = sys.argv[1], sys.argv[2]
def adam7(rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"".join(b"\0" + r.tobytes() for r in rgb[y0::dy, x0::dx]) for x0, y0, dx, dy in
                   [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
                   if rgb[y0::dy, x0::dx].size)
    ch = lambda t, b: struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)) + ch(b"IDAT", zlib.compress(raw, 1)) + ch(b"IEND", b"")
def score(cls, body, ct):
    r = urllib.request.Request(f"{url}/v1/classes/{cls}/inspections", data=body, method="POST")
    r.add_header("Content-Type", ct)
    with urllib.request.urlopen(r, timeout=300) as f:
        return json.loads(f.read())["score"]
print("score effect (reference: Adam7 PNG = full decode + resize)")
print("image                       full     JPEG (reduced)   PNG (box-reduced)")
for cls, f in [("wide", "part1920.jpg"), ("big", "part5000.jpg")]:
    base = Image.open(f"{d}/{f}").convert("RGB")
    W, H = base.size
    for what in ("clean", "scratch", "stain"):
        im = base.copy()
        if what == "scratch": ImageDraw.Draw(im).line([(W * 0.3, H * 0.4), (W * 0.6, H * 0.45)], fill=(25, 25, 25), width=max(3, W // 300))
        if what == "stain": ImageDraw.Draw(im).ellipse([W * 0.7, H * 0.6, W * 0.78, H * 0.72], fill=(120, 80, 40))
        jb = io.BytesIO(); im.save(jb, "JPEG", quality=92)
        px = np.asarray(Image.open(io.BytesIO(jb.getvalue())).convert("RGB"))  # the JPEG's own pixels
        pb = io.BytesIO(); Image.fromarray(px).save(pb, "PNG", compress_level=1)
        full = score(cls, adam7(px), "image/png")
        sj, sp = score(cls, jb.getvalue(), "image/jpeg"), score(cls, pb.getvalue(), "image/png")
        print(f"{W}x{H} {what:8s}   {full:8.4f}   {sj:8.4f} ({sj - full:+.4f})   {sp:8.4f} ({sp - full:+.4f})")
PY
kill -TERM $PID; wait $PID; PID=
