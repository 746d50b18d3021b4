#!/usr/bin/env bash
# tests/daemon_tls.sh — HTTPS with tls_cert/tls_key (libmicrohttpd's TLS, GnuTLS
# in Debian) against a self-signed certificate made here with openssl: curl
# with the certificate as its CA gets answers (a token works over it), plain
# HTTP and an unverified peer are refused, one key without the other stops the
# daemon with a message; and the warning at start when tokens would travel in
# clear on a non-loopback address.
. "$(dirname "$0")/daemon_lib.sh"
BODY=
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not installed"; exit 77; }
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null || { fail "openssl req"; exit 1; }
printf 'tls_cert = %s\ntls_key = %s\nauth = on\n' "$T/cert.pem" "$T/key.pem" > "$T/tls.conf"
mkdir -p "$T/data"
PORT=$(free_port)
"$RESADD" --config "$T/tls.conf" --listen "127.0.0.1:$PORT" --data-dir "$T/data" 2>>"$T/resadd.log" &
PID=$!
for _ in $(seq 600); do
    curl -fs --cacert "$T/cert.pem" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
URL="https://127.0.0.1:$PORT"
req GET /readyz --cacert "$T/cert.pem"
expect "HTTPS /readyz with the test CA" 200
check "log says https" grep -q "listening on https://127.0.0.1:$PORT" "$T/resadd.log"
READ=$("$RESADD" token create --scope read --data-dir "$T/data" 2>/dev/null)
req GET /v1/classes --cacert "$T/cert.pem" -H "Authorization: Bearer $READ"
expect "a token over HTTPS" 200
req GET /v1/classes --cacert "$T/cert.pem"
expect "no token over HTTPS" 401 unauthorized
check "an unverified peer is refused by curl" bash -c "! curl -fs -o /dev/null '$URL/healthz'"
check "plain HTTP on the TLS port gets no HTTP answer" bash -c \
    "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 'http://127.0.0.1:$PORT/healthz')\" = 000 ]"
req GET /healthz --cacert "$T/cert.pem"
expect "still serving after the plain-HTTP attempt" 200
stop_resadd
check "no clear-text warning with TLS" bash -c "! grep -q 'travel in clear' '$T/resadd.log'"

printf 'tls_cert = %s\n' "$T/cert.pem" > "$T/half.conf"
"$RESADD" --config "$T/half.conf" --listen "127.0.0.1:$(free_port)" --data-dir "$T/data" 2>"$T/half.log"
check "tls_cert without tls_key: exit status 1" [ $? -eq 1 ]
check "... with a message" grep -q "tls_cert and tls_key go together" "$T/half.log"

# a non-loopback address without TLS, auth on (auto): the warning
: > "$T/resadd.log"
PORT=$(free_port)
"$RESADD" --listen "0.0.0.0:$PORT" --data-dir "$T/data" 2>>"$T/resadd.log" &
PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 600); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
stop_resadd
check "warning: tokens travel in clear on 0.0.0.0" grep -q "listening on 0.0.0.0 without TLS: bearer tokens travel in clear" "$T/resadd.log"
[ "$FAILS" -eq 0 ] || exit 1
echo "PASS"
