#!/usr/bin/python3
"""bench/decode_accuracy.py — how close reduced decoding stays to full decode (not a test).

Frames tiled from real photographs (openarena textures, native resolution, sensor
noise, JPEG q92) at 1920x1080, 5000x4000 and 4000x3000; each is resized to its
default working grid (PIL BICUBIC: the same filter as core/image.c's
rd_resize_u8) from (a) the full decode and (b) each reduced decode: libjpeg-turbo
DCT scaling (Pillow's draft(), the same library) and box reduction (Pillow's
reduce(), what resadd does to PNG rows).  Prints mean and max |diff| in levels
of the working image, and the decoded short side over the working short side
(resadd keeps it >= 2: RD_DECODE_OVERSAMPLE in engine/engine.c).

usage: /usr/bin/python3 bench/decode_accuracy.py
"""
import io, zipfile, numpy as np
from PIL import Image
PK3="/usr/share/games/openarena/baseoa/pak4-textures.pk3"
z=zipfile.ZipFile(PK3)
names=[n for n in z.namelist() if n.endswith('.jpg')]
rng=np.random.default_rng(0)
def texframe(W,H,seed):
    r=np.random.default_rng(seed)
    out=Image.new('RGB',(W,H))
    picks=[n for n in names if Image.open(io.BytesIO(z.read(n))).size[0]>=256]
    y=0
    while y<H:
        x=0
        while x<W:
            t=Image.open(io.BytesIO(z.read(picks[r.integers(len(picks))]))).convert('RGB')
            out.paste(t,(x,y)); x+=t.size[0]
        y+=t.size[1]
    a=np.asarray(out).astype(np.float32)+r.normal(0,3,(H,W,3))
    return Image.fromarray(a.clip(0,255).astype(np.uint8))
for (W,H,ww,wh) in [(1920,1080,400,224),(5000,4000,280,224),(4000,3000,304,224)]:
    im=texframe(W,H,1)
    b=io.BytesIO(); im.save(b,'JPEG',quality=92); data=b.getvalue()
    full=Image.open(io.BytesIO(data)).convert('RGB')
    ref=np.asarray(full.resize((ww,wh),Image.BICUBIC)).astype(float)
    for d in (2,4,8):
        if min(W,H)/d < wh: continue
        r=Image.open(io.BytesIO(data)); r.draft('RGB',(W//d,H//d)); r=r.convert('RGB')
        a=np.asarray(r.resize((ww,wh),Image.BICUBIC)).astype(float)
        short=min(r.size)
        print(f"{W}x{H} JPEG 1/{d} -> {r.size} short/work={short/wh:.2f}: mean {np.abs(a-ref).mean():.2f} max {np.abs(a-ref).max():.0f}")
    for k in (2,3,4,5,8,10,16):
        if min(W,H)/k < wh: continue
        r=full.reduce(k)
        a=np.asarray(r.resize((ww,wh),Image.BICUBIC)).astype(float)
        print(f"{W}x{H} box k={k} -> {r.size} short/work={min(r.size)/wh:.2f}: mean {np.abs(a-ref).mean():.2f} max {np.abs(a-ref).max():.0f}")
