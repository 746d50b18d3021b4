#!/usr/bin/env bash
# tools/test.sh — the README's test command: installs the build, run and test
# dependencies (tools/deps.sh test: adds PyTorch, scikit-learn, ...), builds with
# AddressSanitizer+UBSan in build-asan/, runs `make check` (unit, parity and
# integration tests) and prints one summary line "N passed, N failed".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash tools/deps.sh test
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
mkdir -p build-asan
cd build-asan
[ -f Makefile ] || ../configure --enable-sanitizers >/dev/null
make -j2 >/dev/null
set +e
make -j2 check
rc=$?
set -e
log=test-suite.log
pass=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
xfail=$(sed -n 's/^# XFAIL: *//p' "$log" | head -1)
xpass=$(sed -n 's/^# XPASS: *//p' "$log" | head -1)
err=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
[ "$rc" -eq 0 ] || cat "$log" | tail -200
echo "$((${pass:-0} + ${xfail:-0})) passed, $((${fail:-0} + ${err:-0} + ${xpass:-0})) failed, ${skip:-0} skipped"
exit $rc
