#!/usr/bin/python3
"""fuzz/seeds.py — regenerates the seed corpora in fuzz/corpus/ (committed; run
this only to change them).  Needs Debian's python3-pil (a test dependency).

image/        one control byte (fuzz_image.c: decode options, PNG CRC repair) + a small JPEG or
              PNG of each kind the decoder handles, with EXIF orientation, and
              nasty ones: a 100000x100000 PNG header with a valid CRC,
              truncations, a JPEG claiming 65000x65000.
safetensors/  small valid files (every dtype, metadata), a learned-model
              constraintor + flow for level 0, a tiny Keras backbone, and
              broken headers (overlap, offsets past the end, huge length).
config/       resadd.conf-style snippets, valid and not."""
import io
import json
import os
import struct
import sys
import zlib

from PIL import Image

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(sub, name, data):
    d = os.path.join(top, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def picture(mode, w, h):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 37) & 255, (y * 53) & 255, ((x ^ y) * 11) & 255) for y in range(h) for x in range(w)])
    if mode == "RGBA":
        im = im.convert("RGBA")
        im.putalpha(Image.linear_gradient("L").resize((w, h)))
        return im
    return im.convert(mode)


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def enc(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def images():
    seeds = {
        "rgb.jpg": enc(picture("RGB", 24, 16), "JPEG", quality=80),
        "progressive.jpg": enc(picture("RGB", 24, 16), "JPEG", quality=80, progressive=True),
        "gray.jpg": enc(picture("L", 16, 16), "JPEG"),
        "cmyk.jpg": enc(picture("CMYK", 16, 8), "JPEG"),
        "exif6.jpg": enc(picture("RGB", 24, 16), "JPEG", exif=exif(6)),
        "exif3.jpg": enc(picture("RGB", 17, 9), "JPEG", exif=exif(3)),
        "big-scaled.jpg": enc(picture("RGB", 300, 260), "JPEG", quality=10),
        "rgb.png": enc(picture("RGB", 16, 12), "PNG"),
        "rgba.png": enc(picture("RGBA", 16, 12), "PNG"),
        "gray.png": enc(picture("L", 9, 7), "PNG"),
        "gray16.png": enc(picture("L", 8, 8).convert("I;16"), "PNG"),
        "palette.png": enc(picture("RGB", 12, 12).convert("P"), "PNG"),
        "exif8.png": enc(picture("RGB", 10, 6), "PNG", exif=exif(8)),
        "1x1.png": enc(picture("RGB", 1, 1), "PNG"),
        "1x300.png": enc(picture("L", 1, 300), "PNG"),
    }
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    seeds["bomb-header.png"] = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                                png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b""))
    # found by fuzz_image: an eXIf chunk claiming 0x7500001a bytes in a 170-byte file made libpng
    # allocate 1.9 GB (4 s under ASan); now refused before libpng starts
    ihdr = struct.pack(">IIBBBBB", 10, 6, 8, 2, 0, 0, 0)
    seeds["exif-chunk-2GB.png"] = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + struct.pack(">I", 0x7500001A) +
                                   b"eXIf" + b"MM\0*\0\0\0\x08\0\x01" + b"\x0b" * 16 + b"\x01\x12\0\x03" + b"\0" * 100)
    j = bytearray(seeds["rgb.jpg"])
    sof = j.find(b"\xff\xc0")
    j[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    seeds["huge-sof.jpg"] = bytes(j)
    seeds["truncated.jpg"] = seeds["progressive.jpg"][: len(seeds["progressive.jpg"]) // 2]
    seeds["truncated.png"] = seeds["rgba.png"][: len(seeds["rgba.png"]) - 20]
    # control byte: bits 0-1 min_short, bit 2 alpha ignore, bit 3 no EXIF orientation
    # bit 4: the target rewrites PNG chunk CRCs so that mutations get past them
    ctl = {"big-scaled.jpg": 1, "rgba.png": 4 | 16, "gray16.png": 16, "palette.png": 16, "exif3.jpg": 8}
    for name, data in seeds.items():
        put("image", name, bytes([ctl.get(name, 0)]) + data)


def safetensors(tensors, meta=None, raw_header=None):
    """tensors: name -> (dtype, shape, bytes)."""
    hdr, blob = {}, b""
    for name, (dt, shape, data) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if meta:
        hdr["__metadata__"] = meta
    h = raw_header if raw_header is not None else json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def models():
    put("safetensors", "dtypes.safetensors", safetensors({
        "a": ("F32", [2, 2], f32(1, 2, 3, 4)),
        "h": ("F16", [3], struct.pack("<3e", 1.5, -2, 65504)),
        "b": ("BF16", [2], b"\x80\x3f\x00\xc0"),
        "d": ("F64", [1], struct.pack("<d", 3.25)),
        "i": ("I64", [1], struct.pack("<q", -7)),
        "u": ("U8", [4], b"\x00\x01\x02\xff"),
        "e": ("F32", [0], b""),
        "s": ("F32", [], f32(9)),
    }, {"resadd.arch": "resnet18", "note": "fuzz seed"}))
    # learned model, level 0: constraintor C=2, k=1 and a flow C=2, K=1, P=4, hid=2
    c = 2
    cstr = {
        "level0.cstr.config": ("F32", [4], f32(1, c, 1, 1e-5)),
        "level0.cstr.conv.weight": ("F32", [c, c, 1, 1], f32(1, 0, 0, 1)),
        "level0.cstr.conv.bias": ("F32", [c], f32(0, 0)),
        "level0.cstr.bn.weight": ("F32", [c], f32(1, 1)),
        "level0.cstr.bn.bias": ("F32", [c], f32(0, 0)),
        "level0.cstr.bn.running_mean": ("F32", [c], f32(0, 0)),
        "level0.cstr.bn.running_var": ("F32", [c], f32(1, 1)),
    }
    cp, ca, p, hid = c - c // 2, c // 2, 4, 2
    flow = {"level0.flow.config": ("F32", [6], f32(1, c, 1, p, hid, 1.9))}
    b = "level0.flow.block0."
    flow[b + "subnet.0.weight"] = ("F32", [hid, cp + p], f32(*[0.1] * (hid * (cp + p))))
    flow[b + "subnet.0.bias"] = ("F32", [hid], f32(*[0] * hid))
    flow[b + "subnet.2.weight"] = ("F32", [2 * ca, hid], f32(*[0.1] * (2 * ca * hid)))
    flow[b + "subnet.2.bias"] = ("F32", [2 * ca], f32(*[0] * (2 * ca)))
    flow[b + "global_scale"] = ("F32", [c], f32(*[1] * c))
    flow[b + "global_offset"] = ("F32", [c], f32(*[0] * c))
    flow[b + "rot"] = ("F32", [c, c], f32(0, 1, 1, 0))
    put("safetensors", "learned.safetensors",
        safetensors({**cstr, **flow}, {"resadd.kind": "resad", "resadd.levels": "1"}))
    # a tiny Keras backbone: input -> conv 3x3 (relu) -> BN -> dwconv same -> add -> maxpool
    topo = [
        {"name": "input_1", "class_name": "InputLayer", "config": {"batch_input_shape": [None, 224, 224, 3]},
         "inbound": []},
        {"name": "pad", "class_name": "ZeroPadding2D", "config": {"padding": [[0, 1], [0, 1]]}, "inbound": ["input_1"]},
        {"name": "conv", "class_name": "Conv2D",
         "config": {"filters": 2, "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid", "use_bias": False,
                    "activation": "linear"}, "inbound": ["pad"]},
        {"name": "bn", "class_name": "BatchNormalization", "config": {"axis": -1, "epsilon": 0.001}, "inbound": ["conv"]},
        {"name": "relu", "class_name": "ReLU", "config": {"max_value": 6.0}, "inbound": ["bn"]},
        {"name": "dw", "class_name": "DepthwiseConv2D",
         "config": {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "use_bias": True,
                    "activation": "relu6", "depth_multiplier": 1}, "inbound": ["relu"]},
        {"name": "add", "class_name": "Add", "config": {}, "inbound": ["relu", "dw"]},
        {"name": "pool", "class_name": "MaxPooling2D", "config": {"pool_size": [2, 2], "strides": [2, 2],
                                                                   "padding": "valid"}, "inbound": ["add"]},
    ]
    kt = {
        "conv/kernel": ("F32", [3, 3, 3, 2], f32(*[0.05] * 54)),
        "bn/gamma": ("F32", [2], f32(1, 1)), "bn/beta": ("F32", [2], f32(0, 0)),
        "bn/moving_mean": ("F32", [2], f32(0, 0)), "bn/moving_variance": ("F32", [2], f32(1, 1)),
        "dw/depthwise_kernel": ("F32", [3, 3, 2, 1], f32(*[0.1] * 18)), "dw/bias": ("F32", [2], f32(0, 0)),
    }
    put("safetensors", "keras.safetensors", safetensors(kt, {
        "resadd.arch": "keras", "resadd.name": "tiny", "resadd.input": "scale [-1,1]", "resadd.size": "32",
        "resadd.levels": "add,pool", "fuzz.levels": "add,pool", "resadd.topology": json.dumps(topo)}))
    # Keras Concatenate and TF "same" padding at stride 2 (the InceptionV3 backbone's layers)
    topo2 = [
        {"name": "input_1", "class_name": "InputLayer", "config": {}, "inbound": []},
        {"name": "c", "class_name": "Conv2D",
         "config": {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False},
         "inbound": ["input_1"]},
        {"name": "m", "class_name": "MaxPooling2D", "config": {"pool_size": 3, "strides": 2, "padding": "same"},
         "inbound": ["input_1"]},
        {"name": "cat", "class_name": "Concatenate", "config": {"axis": -1}, "inbound": ["c", "m", "c"]},
    ]
    put("safetensors", "keras-concat.safetensors", safetensors({"c/kernel": ("F32", [3, 3, 3, 2], f32(*[0.05] * 54))}, {
        "resadd.arch": "keras", "resadd.name": "tiny", "resadd.size": "32", "resadd.levels": "cat",
        "fuzz.levels": "cat", "resadd.topology": json.dumps(topo2)}))
    # broken ones
    put("safetensors", "overlap.safetensors", safetensors({}, raw_header=json.dumps({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()) + b"\0" * 12)
    put("safetensors", "past-end.safetensors", safetensors({}, raw_header=json.dumps({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()) + b"\0" * 8)
    put("safetensors", "big-shape.safetensors", safetensors({}, raw_header=json.dumps({
        "a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}}).encode()))
    put("safetensors", "huge-len.safetensors", struct.pack("<Q", 0xFFFFFFFFFFFFFFF0) + b"{}")
    # found by fuzz_safetensors: 56 bytes of configuration made rd_flow_import calloc 172 GB (and
    # rd_cstr_import 1.2 GB) before looking for the tensors; now refused before any allocation
    put("safetensors", "config-bomb.safetensors", safetensors({
        "level0.flow.config": ("F32", [6], f32(1, 4096, 64, 4096, 65536, 1.9)),
        "level0.cstr.config": ("F32", [4], f32(1, 4096, 3, 0.5))}))
    put("safetensors", "not-object.safetensors", safetensors({}, raw_header=b'[1,2,{"a":null}]'))


def configs():
    put("config", "shipped.conf", b"""# resadd.conf
listen = 127.0.0.1:8080
data_dir = "/var/lib/resadd"
workers = 2
threads_per_worker = 0
queue_size = 64
auth = auto
max_body_mb = 32
max_megapixels = 40
max_side = 30000
max_json_kb = 64
max_json_depth = 16
max_references = 16
request_timeout_s = 30
max_connections = 128
retention_days = 30
retention_max_inspections = 1000000
log_level = info
learned_model = none
""")
    put("config", "v6.conf", b"listen = [::1]:0\nauth = on\nlog_file = /tmp/x.log\n")
    put("config", "override.conf", b"256\n")
    put("config", "v6-override.conf", b"[fe80::1]:65535\n")
    put("config", "path-override.conf", b"/var/lib/resadd-2\n")
    put("config", "bad-int.conf", b"workers = 99999999999999999999999\n")
    put("config", "no-eq.conf", b"   \t# comment\nlisten\n")
    put("config", "long-line.conf", b"data_dir = " + b"a" * 5000 + b"\n")
    put("config", "quotes.conf", b'backbone = "\n learned_model = ""\n')
    put("config", "nul.conf", b"workers = 1\x00junk\nqueue_size = 1\n")


if __name__ == "__main__":
    images()
    models()
    configs()
    sys.exit(0)
