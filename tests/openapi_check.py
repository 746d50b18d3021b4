#!/usr/bin/env python3
"""tests/openapi_check.py — live responses against the served OpenAPI document.

Usage: openapi_check.py BASE_URL IMG_DIR [TOKEN]

Drives a short session over real HTTP (class create/get/patch, references,
sync and async inspections, listing, stats, model, errors) and checks every
response: its status must be documented for the route (errors included), and a
JSON body must validate against the documented schema.  The validator covers
the subset of OpenAPI 3.0 schemas resadd's document uses: type, nullable,
enum, properties, required, items, additionalProperties, minimum, maximum,
pattern and local $ref.  Exit 0 when every check passed."""
import json
import re
import sys
import time
import urllib.error
import urllib.request

BASE, IMG = sys.argv[1], sys.argv[2]
TOKEN = sys.argv[3] if len(sys.argv) > 3 else None
fails = 0
checked = 0


def http(method, path, body=None, ctype=None, headers=None):
    h = dict(headers or {})
    if ctype:
        h["Content-Type"] = ctype
    if TOKEN:
        h["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


status, _, raw = http("GET", "/v1/openapi.json")
DOC = json.loads(raw)


def resolve(s):
    while "$ref" in s:
        ref = s["$ref"]
        assert ref.startswith("#/"), ref
        node = DOC
        for part in ref[2:].split("/"):
            node = node[part]
        s = node
    return s


TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def validate(v, s, where, errs):
    s = resolve(s)
    for sub in s.get("allOf", []):
        validate(v, sub, where, errs)
    if v is None:
        if not s.get("nullable"):
            errs.append(f"{where}: null but not nullable")
        return
    t = s.get("type")
    if t == "integer":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif t == "number":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif t:
        ok = isinstance(v, TYPES[t]) and not (t != "boolean" and isinstance(v, bool))
    else:
        ok = True
    if not ok:
        errs.append(f"{where}: {v!r} is not {t}")
        return
    if "enum" in s and v not in s["enum"]:
        errs.append(f"{where}: {v!r} not in {s['enum']}")
    if "minimum" in s and v < s["minimum"]:
        errs.append(f"{where}: {v} < minimum {s['minimum']}")
    if "maximum" in s and v > s["maximum"]:
        errs.append(f"{where}: {v} > maximum {s['maximum']}")
    if "maxLength" in s and isinstance(v, str) and len(v) > s["maxLength"]:
        errs.append(f"{where}: longer than {s['maxLength']}")
    if "pattern" in s and isinstance(v, str) and not re.search(s["pattern"], v):
        errs.append(f"{where}: {v!r} does not match {s['pattern']}")
    if isinstance(v, dict):
        props = s.get("properties", {})
        for k in s.get("required", []):
            if k not in v:
                errs.append(f"{where}: required '{k}' missing")
        ap = s.get("additionalProperties", True)
        for k, x in v.items():
            if k in props:
                validate(x, props[k], f"{where}.{k}", errs)
            elif ap is False:
                errs.append(f"{where}: unexpected '{k}'")
            elif isinstance(ap, dict):
                validate(x, ap, f"{where}.{k}", errs)
    if isinstance(v, list) and "items" in s:
        for i, x in enumerate(v):
            validate(x, s["items"], f"{where}[{i}]", errs)


def doc_path(path):
    path = path.split("?")[0]
    for p in DOC["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(p)) + "$"
        if re.match(rx, path):
            return p
    return None


def call(desc, method, path, body=None, ctype=None, headers=None, want=None):
    """Calls, checks against the document, returns the parsed body."""
    global fails, checked
    status, rct, raw = http(method, path, body, ctype, headers)
    checked += 1
    errs = []
    p = doc_path(path)
    op = DOC["paths"].get(p, {}).get(method.lower()) if p else None
    if op is None:
        errs.append(f"{method} {path} is not documented")
    else:
        resp = op["responses"].get(str(status))
        if resp is None:
            errs.append(f"status {status} is not documented for {method} {p} (has {sorted(op['responses'])})")
        else:
            resp = resolve(resp)
            content = resp.get("content", {})
            if rct.startswith("application/json"):
                if "application/json" not in content:
                    errs.append(f"JSON body but {status} documents {sorted(content)}")
                else:
                    validate(json.loads(raw), content["application/json"]["schema"], f"{method} {p} {status}", errs)
            elif content and not any(rct.startswith(c.split(";")[0]) for c in content):
                errs.append(f"Content-Type {rct} not among {sorted(content)}")
    if want is not None and status != want:
        errs.append(f"HTTP {status}, expected {want}: {raw[:200]!r}")
    if errs:
        fails += 1
        for e in errs:
            print(f"FAIL: {desc}: {e}")
    else:
        print(f"ok: {desc} ({status} matches the schema)")
    try:
        return json.loads(raw) if rct.startswith("application/json") else raw
    except ValueError:
        return None


def img(name):
    with open(f"{IMG}/{name}", "rb") as f:
        return f.read()


def png_grey(w, h, value):
    """A w x h 8-bit grey PNG of one value (stdlib only)."""
    import struct, zlib
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    rows = b"".join(b"\0" + bytes([value]) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


J = "application/json"
call("healthz", "GET", "/healthz", want=200)
call("readyz", "GET", "/readyz", want=200)
call("openapi", "GET", "/v1/openapi.json", want=200)
call("model", "GET", "/v1/model", want=200)
call("dashboard", "GET", "/", want=200)
call("create class", "POST", "/v1/classes", json.dumps({"name": "oa-part", "description": "d"}).encode(), J, want=201)
call("duplicate class", "POST", "/v1/classes", json.dumps({"name": "oa-part"}).encode(), J, want=409)
call("bad class body", "POST", "/v1/classes", b"{", J, want=400)
call("class list", "GET", "/v1/classes", want=200)
call("class (not ready)", "GET", "/v1/classes/oa-part", want=200)
call("missing class", "GET", "/v1/classes/nope", want=404)
call("bad name", "GET", "/v1/classes/BAD!", want=400)
call("roi mask: none yet", "GET", "/v1/classes/oa-part/roi-mask", want=404)
call("roi mask: put", "PUT", "/v1/classes/oa-part/roi-mask", png_grey(64, 64, 255), "image/png", want=200)
call("roi mask: get", "GET", "/v1/classes/oa-part/roi-mask", want=200)
call("roi mask: all black", "PUT", "/v1/classes/oa-part/roi-mask", png_grey(64, 64, 0), "image/png", want=422)
call("roi mask: not an image", "PUT", "/v1/classes/oa-part/roi-mask", b"hello", "text/plain", want=415)
call("roi mask: delete", "DELETE", "/v1/classes/oa-part/roi-mask", want=200)
call("roi mask: delete again", "DELETE", "/v1/classes/oa-part/roi-mask", want=404)
call("inspect before ready", "POST", "/v1/classes/oa-part/inspections", img("good.jpg"), "image/jpeg", want=409)
reg = None
for k in range(1, 5):
    reg = call(f"reference {k}", "POST", "/v1/classes/oa-part/references", img(f"ref{k}.jpg"), "image/jpeg", want=201)
call("duplicate reference", "POST", "/v1/classes/oa-part/references", img("ref1.jpg"), "image/jpeg", want=201)
call("not an image", "POST", "/v1/classes/oa-part/references", b"hello", "text/plain", want=415)
call("undecodable image", "POST", "/v1/classes/oa-part/references", b"\xff\xd8garbage", "image/jpeg", want=422)
refs = call("references", "GET", "/v1/classes/oa-part/references", want=200)
rid = refs["references"][0]["id"]
call("reference bytes", "GET", f"/v1/classes/oa-part/references/{rid}", want=200)
call("missing reference", "GET", "/v1/classes/oa-part/references/999999", want=404)
call("roi mask after references", "PUT", "/v1/classes/oa-part/roi-mask", png_grey(64, 64, 255), "image/png",
     want=409)
call("patch threshold", "PATCH", "/v1/classes/oa-part", json.dumps({"threshold": 1.5}).encode(), J, want=200)
call("patch back to auto", "PATCH", "/v1/classes/oa-part", json.dumps({"threshold": None}).encode(), J, want=200)
good = call("inspect good", "POST", "/v1/classes/oa-part/inspections", img("good.jpg"), "image/jpeg",
            {"X-Request-Id": "oa-1"}, want=200)
bad = call("inspect defect", "POST", "/v1/classes/oa-part/inspections", img("defect.jpg"), "image/jpeg", want=200)
q = call("inspect async", "POST", "/v1/classes/oa-part/inspections?async=1", img("good.jpg"), "image/jpeg", want=202)
for _ in range(600):
    a = call("async result", "GET", f"/v1/inspections/{q['id']}", want=200)
    if a and a.get("status") != "queued":
        break
    time.sleep(0.1)
call("inspection", "GET", f"/v1/inspections/{good['id']}", want=200)
call("missing inspection", "GET", "/v1/inspections/999999", want=404)
call("bad id", "GET", "/v1/inspections/abc", want=400)
call("heatmap", "GET", f"/v1/inspections/{bad['id']}/heatmap.png", want=200)
call("heatmap bad kind", "GET", f"/v1/inspections/{bad['id']}/heatmap.png?kind=x", want=400)
call("original image", "GET", f"/v1/inspections/{bad['id']}/image", want=200)
call("original image of a missing inspection", "GET", "/v1/inspections/999999/image", want=404)
su = call("signed URL", "GET", f"/v1/signed-url?path=/v1/inspections/{bad['id']}/heatmap.png&ttl=60", want=200)
call("signed URL of a JSON route", "GET", "/v1/signed-url?path=/v1/classes", want=400)
call("list", "GET", "/v1/inspections?limit=2", want=200)
call("list after_id", "GET", "/v1/inspections?after_id=0&limit=100", want=200)
call("list bad limit", "GET", "/v1/inspections?limit=0", want=400)
call("stats", "GET", "/v1/stats", want=200)
call("stats of a class", "GET", "/v1/stats?class=oa-part", want=200)
call("stats bad since", "GET", "/v1/stats?since=yesterday", want=400)
tok = call("create token", "POST", "/v1/tokens", json.dumps({"scope": "read", "name": "oa", "expires_in_s": 600}).encode(),
           J, want=201)
call("create token, bad scope", "POST", "/v1/tokens", json.dumps({"scope": "root"}).encode(), J, want=400)
call("tokens", "GET", "/v1/tokens", want=200)
call("revoke token", "DELETE", f"/v1/tokens/{tok['id']}", want=200)
call("revoke again", "DELETE", f"/v1/tokens/{tok['id']}", want=404)
call("delete reference", "DELETE", f"/v1/classes/oa-part/references/{rid}", want=200)
call("delete class", "DELETE", "/v1/classes/oa-part", want=200)
call("delete missing class", "DELETE", "/v1/classes/oa-part", want=404)
print(f"{checked} responses checked, {fails} failed")
sys.exit(1 if fails else 0)
