#!/usr/bin/env bash
# bench/search.sh — the level-1 nearest-neighbour search against the machine's
# own fp32 FMA peak and against FAISS, measured in the same run (issue 13).
#
#   bench/search.sh [BUILDDIR]     (default: build/; ITERS=N rounds, default 15)
#
# Shapes: 3136 queries (a 56×56 level-1 map) × 24 channels against 12544 pool
# rows (4 shots) and 50176 (16 shots), on 1 and 2 threads.  bench_search times
# every kernel this CPU runs (rd_pool_nearest), each round paired with an
# FMA-chain microbenchmark of the same threads doing the same number of flops;
# flops = 2·nq·nref·C.  Ratios:
#   peak (best)   best search GFLOP/s / best peak GFLOP/s over the rounds
#   peak (paired) median over rounds of search/peak, wall clock
#   peak (cpu)    the same per CPU-second: what a loaded machine does not distort
#                 (GF/cpus, pk/cpus: search and peak GFLOP/s per CPU-second)
#   vs FAISS      FAISS exact IndexFlatL2 (k = 1, Debian python3-faiss through
#                 /usr/bin/python3, same threads, best time) / our best time
#   NN=fp32       share of queries whose nearest row is the fp32 fused kernel's
#   resid rel     mean / largest relative change of the residual norm against it
#   unsure        bf16-fused: share of queries whose winner its error bound
#                 could not prove exact (top-RD_POOL_BF16_TOPK re-scoring only)
# bf16-fused counts 2 flops per channel product like the rest, so its ratios to
# the fp32 FMA peak can exceed 1.  Data are uniform random (speed does not
# depend on them; the NN agreement does: real features are checked by make eval).
# FAISS missing: its columns say so and the rest still runs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
iters=${ITERS:-15}
make -C "$build" bench/bench_search >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cpus; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in 1 2; do
  "$build/bench/bench_search" "$t" "$iters" 12544 50176 >>"$tmp/ours.jsonl"
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t /usr/bin/python3 - "$t" "$iters" >>"$tmp/faiss.jsonl" <<'EOF' || true
import json, sys, time
t, iters = int(sys.argv[1]), int(sys.argv[2])
try:
    import faiss, numpy as np
except ImportError as e:
    print(json.dumps({"threads": t, "skipped": "FAISS not importable by /usr/bin/python3 (%s): apt-get install python3-faiss" % e}))
    sys.exit(0)
faiss.omp_set_num_threads(t)
rng = np.random.default_rng(1)
q = rng.random((3136, 24), dtype=np.float32)
for nref in (12544, 50176):
    index = faiss.IndexFlatL2(24)
    index.add(rng.random((nref, 24), dtype=np.float32))
    ts = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        index.search(q, 1)
        ts.append(time.perf_counter() - t0)
    ts = sorted(ts[1:])
    print(json.dumps({"threads": t, "nref": nref, "ms_best": 1e3 * ts[0], "ms_median": 1e3 * ts[len(ts) // 2],
                      "version": faiss.__version__}))
EOF
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$tmp/ours.jsonl" "$tmp/faiss.jsonl" <<'EOF'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
faiss = [json.loads(l) for l in open(sys.argv[2])]
fa = {(r["threads"], r["nref"]): r for r in faiss if "nref" in r}
skips = [r["skipped"] for r in faiss if "skipped" in r]
print("%-13s %3s %6s | %8s %8s %7s %7s | %6s %6s %6s | %7s %7s | %9s %7s | %7s %17s %6s" % ("kernel", "thr", "nref",
      "ms best", "ms med", "GFLOP/s", "peak", "best", "paired", "cpu", "GF/cpus", "pk/cpus", "FAISS ms", "vs FAISS",
      "NN=fp32", "resid rel mean/max", "unsure"))
for r in ours:
    if "skipped" in r:
        print("%-13s skipped: %s" % (r["kernel"], r["skipped"]))
        continue
    f = fa.get((r["threads"], r["nref"]))
    print("%-13s %3d %6d | %8.2f %8.2f %7.1f %7.1f | %6.3f %6.3f %6.3f | %7.1f %7.1f | %9s %7s | %7.4f %8.2g/%-8.2g %6.3f" % (
          r["kernel"], r["threads"], r["nref"], r["ms_best"], r["ms_median"], r["gflops_best"], r["peak_gflops_best"],
          r["ratio_best"], r["ratio_paired_median"], r["ratio_cpu_median"], r["gflops_per_cpu_s"],
          r["peak_gflops_per_cpu_s"], "%.2f" % f["ms_best"] if f else "-",
          "%.1fx" % (f["ms_best"] / r["ms_best"]) if f else "-", r["nn_same"], r["resid_rel_mean"],
          r["resid_rel_max"], r["unsure"]))
for s in sorted(set(skips)):
    print("FAISS skipped: " + s)
if fa:
    print("FAISS %s; ratios: our search / FMA peak of the same threads; vs FAISS = FAISS time / ours" %
          next(iter(fa.values()))["version"])
EOF
