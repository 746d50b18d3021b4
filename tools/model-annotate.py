#!/usr/bin/python3
"""model-annotate.py — records an evaluation summary in a learned model's
safetensors metadata (key "resadd.eval"), so the file says how well it did.

    tools/model-annotate.py MODEL.safetensors RESULTS.json [--note TEXT]

RESULTS.json is what `resad eval --json` wrote for this model (e.g. `make eval`
→ eval/results.json).  Only the header changes: the tensors and every other
metadata key stay byte-identical (so do the weights' offsets); the file's
sha256 changes, as it must.  Refuses a results file that was not produced
with this model (model_sha256 mismatch) unless it predates annotation.
"""
import argparse, hashlib, json, os, struct, sys


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        sys.exit(f"{path}: too short for safetensors")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        sys.exit(f"{path}: header length {n} beyond the file")
    return json.loads(raw[8:8 + n]), raw[8 + n:], hashlib.sha256(raw).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("results")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    hdr, data, sha = read(a.model)
    meta = hdr.setdefault("__metadata__", {})
    if meta.get("resadd.kind") != "resad-model":
        sys.exit(f"{a.model}: not a resad model (resadd.kind)")
    r = json.load(open(a.results))
    prev = json.loads(meta["resadd.eval"])["evaluated_sha256"] if "resadd.eval" in meta else None
    if r.get("model_sha256") not in (sha, prev):
        sys.exit(f"{a.results} was produced with model {r.get('model_sha256')}, not {a.model} ({sha})")
    summary = {"evaluated_sha256": r["model_sha256"], "backbone": r["backbone"], "size": r["size"],
               "seeds": r["seeds"], "classes": sorted(r["runs"][0]["classes"]), "note": a.note, "scorers": {}}
    keys = ("image_auroc", "pixel_auroc", "pro", "image_f1_max", "pixel_f1_max", "pixel_ap")
    for run in r["runs"]:
        o = run["overall"]
        summary["scorers"].setdefault(run["scorer"], {})[f"{run['shots']}-shot"] = {k: round(o[k], 4) for k in keys if k in o}
    meta["resadd.eval"] = json.dumps(summary, separators=(",", ":"), sort_keys=True)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = a.model + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    os.replace(tmp, a.model)
    print(f"{a.model}: resadd.eval = {meta['resadd.eval']}")


if __name__ == "__main__":
    main()
