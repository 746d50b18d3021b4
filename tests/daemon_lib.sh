# tests/daemon_lib.sh — helpers for resadd's integration tests (sourced).
# Starts the real resadd on 127.0.0.1 with a random free port and a temp data
# dir, waits for /readyz, and stops it with SIGTERM checking exit status 0.
set -u
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
PY=/usr/bin/python3
RESADD="$top_builddir/resadd"
T=$(mktemp -d "${TMPDIR:-/tmp}/resadd-test.XXXXXX")
trap 'rd_cleanup' EXIT
FAILS=0
# Sanitizer builds run several times slower: tests scale their request counts by this.
SANITIZED=0
ldd "$RESADD" 2>/dev/null | grep -q libasan && SANITIZED=1
PID=
PORT=

rd_cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    if [ "$FAILS" -eq 0 ]; then rm -rf "$T"; else echo "kept $T for inspection"; fi
}

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
check() { # check DESC CMD... — records a failure when CMD fails
    local d=$1; shift
    if "$@"; then ok "$d"; else fail "$d (last body: ${BODY:0:400})"; fi
}

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_resadd [extra args...]: data dir $T/data unless --data-dir given.
# Waits until /readyz says ready (every class loaded); WAIT_FOR=healthz waits
# only for liveness (HTTP answers before the classes are loaded).
start_resadd() {
    PORT=$(free_port)
    URL="http://127.0.0.1:$PORT"
    "$RESADD" --listen "127.0.0.1:$PORT" --data-dir "$T/data" "$@" 2>>"$T/resadd.log" &
    PID=$!
    for _ in $(seq 600); do
        curl -fs "$URL/${WAIT_FOR:-readyz}" >/dev/null 2>&1 && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "resadd did not start:"; tail -20 "$T/resadd.log"
    exit 1
}

stop_resadd() {
    kill -TERM "$PID"
    wait "$PID"
    local rc=$?
    PID=
    [ "$rc" -eq 0 ] || { fail "resadd exit status $rc after SIGTERM"; tail -20 "$T/resadd.log"; }
    return 0
}

# req METHOD PATH [curl args...] → sets CODE and BODY (file $T/body)
req() {
    local m=$1 p=$2; shift 2
    CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$URL$p" "$@")
    BODY=$(head -c 4000 "$T/body" | tr -d '\0')
}

# jq-like: jget EXPR (python expression on j = parsed $BODY)
jget() { $PY -c "import json,sys; j=json.load(open('$T/body')); v=($1); print(v)"; }

expect() { # expect DESC CODE [ERRCODE]
    local d=$1 want=$2 werr=${3:-}
    if [ "$CODE" != "$want" ]; then fail "$d: HTTP $CODE, expected $want: $BODY"; return; fi
    if [ -n "$werr" ]; then
        local got
        got=$(jget 'j["error"]["code"]' 2>/dev/null)
        [ "$got" = "$werr" ] || { fail "$d: error code '$got', expected '$werr': $BODY"; return; }
    fi
    ok "$d ($CODE${werr:+ $werr})"
}

make_images() { # real photographs (openarena textures) with a drawn defect
    [ -f /usr/share/games/openarena/baseoa/pak4-textures.pk3 ] || { echo "openarena-081-textures missing: skip"; exit 77; }
    $PY "$top_srcdir/tools/demo-images.py" "$T/img" --refs 6 >/dev/null || exit 1
}

done_test() {
    if [ "$FAILS" -eq 0 ]; then echo "PASS"; exit 0; fi
    echo "$FAILS check(s) failed"; exit 1
}
