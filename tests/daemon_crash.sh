#!/usr/bin/env bash
# tests/daemon_crash.sh — crash safety of resadd: kill -9 during a 12-image (3 under ASan)
# registration (and while sync inspections run), then restart: no
# half-registered class or reference, every acknowledged (2xx) write present,
# no inspection left "queued".  Rounds 1-2 kill mid-registration, round 3 just
# after its 201.
. "$(dirname "$0")/daemon_lib.sh"
[ -f /usr/share/games/openarena/baseoa/pak4-textures.pk3 ] || exit 77
$PY "$top_srcdir/tools/demo-images.py" "$T/img" --refs 16 >/dev/null || exit 1
I=$T/img
J=(-H 'Content-Type: application/json')
LAST=16; [ "$SANITIZED" = 1 ] && LAST=7   # images ref5..ref$LAST are registered; fewer under ASan
NIMG=$((LAST - 4))
start_resadd
req POST /v1/classes "${J[@]}" -d '{"name":"alpha"}'
req POST /v1/classes/alpha/references -F "a=@$I/ref1.jpg" -F "b=@$I/ref2.jpg" -F "c=@$I/ref3.jpg" -F "d=@$I/ref4.jpg"
expect "register alpha" 201
stop_resadd
ROUNDS="1 2 3"; [ "$SANITIZED" = 1 ] && ROUNDS="2 3"
for round in $ROUNDS; do
    start_resadd
    req POST /v1/classes "${J[@]}" -d "{\"name\":\"k$round\"}"
    expect "round $round: create class" 201
    # background: a 12-image registration, and sync inspections recording acknowledged ids
    args=(); for n in $(seq 5 $LAST); do args+=(-F "f$n=@$I/ref$n.jpg"); done
    curl -s -o "$T/reg$round" -w '%{http_code}' -X POST "$URL/v1/classes/k$round/references" "${args[@]}" > "$T/reg$round.code" &
    CURL=$!
    ( for n in $(seq 10); do
        curl -s -X POST "$URL/v1/classes/alpha/inspections" -H 'Content-Type: image/jpeg' --data-binary "@$I/good.jpg" \
          | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || break
      done > "$T/acked$round" ) &
    INS=$!
    if [ "$round" = 3 ]; then wait "$CURL"; else sleep "$(echo "0.1 0.5" | cut -d" " -f$round)"; fi
    kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
    wait "$CURL" "$INS" 2>/dev/null
    start_resadd
    req GET "/v1/classes/k$round"
    n=$(jget 'j["references"]'); ready=$(jget 'j["ready"]')
    code=$(cat "$T/reg$round.code"); echo "round $round: registration reply $code, $n refs after restart"
    if [ "$code" = 201 ]; then
        check "round $round: acknowledged registration fully present" [ "$n $ready" = "$NIMG True" ]
    else
        check "round $round: unacknowledged registration all or nothing ($n refs)" [ "$n $ready" = "0 False" -o "$n $ready" = "$NIMG True" ]
    fi
    miss=0
    while read -r id; do
        req GET "/v1/inspections/$id"; [ "$(jget 'j["status"]')" = done ] || miss=$((miss + 1))
    done < "$T/acked$round"
    check "round $round: all $(wc -l < "$T/acked$round") acknowledged inspections present" [ "$miss" -eq 0 ]
    req GET "/v1/inspections?limit=1000"
    check "round $round: no inspection left queued" [ "$(jget 'sum(i["status"] == "queued" for i in j["inspections"])')" = 0 ]
    stop_resadd
done
done_test
