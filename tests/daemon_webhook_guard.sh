#!/usr/bin/env bash
# tests/daemon_webhook_guard.sh — where a webhook may lead (review fix, 2026-12):
#  * by default POST /v1/webhooks refuses, 400 bad_request naming the address,
#    every host that resolves to a loopback, link-local, private, shared,
#    unspecified or multicast address: IPv4 and IPv6 literals, IPv4-mapped
#    IPv6, a decimal IPv4, and `localhost` by name; public addresses are
#    accepted (nothing is sent to them: no event happens while they exist);
#  * webhook_allow_private = on: a loopback receiver is accepted and gets a
#    class event;
#  * restarted with it off again, the next delivery to that stored hook is
#    refused where it connects (DNS may change after registration): the
#    receiver gets nothing and the hook's last_error names 127.0.0.1.
. "$(dirname "$0")/daemon_lib.sh"
J=(-H 'Content-Type: application/json')
printf 'webhook_max_attempts = 1\n' > "$T/off.conf"
printf 'webhook_max_attempts = 1\nwebhook_allow_private = on\n' > "$T/on.conf"
hook() { req POST /v1/webhooks "${J[@]}" -d "{\"url\":\"$1\",\"secret\":\"s3cret-key!\",\"events\":[\"class\"]}"; }

start_resadd --config "$T/off.conf"
for u in 'http://127.0.0.1:9/h' 'http://localhost:9/h' 'http://[::1]:9/h' 'http://10.1.2.3/h' 'http://172.16.0.1/h' \
         'http://192.168.1.1/h' 'http://169.254.169.254/latest/meta-data' 'https://[fe80::1]/h' 'http://[fd00::1]/h' \
         'http://[::ffff:10.0.0.1]/h' 'http://0.0.0.0/h' 'http://100.64.0.1/h' 'http://224.0.0.1/h' \
         'http://2130706433:9/h'; do
    hook "$u"
    expect "refused by default: $u" 400 bad_request
done
check "the message names the resolved address (2130706433 is 127.0.0.1)" grep -q '127\.0\.0\.1' "$T/body"
hook 'ftp://198.51.100.7/h'
expect "not http(s)" 400 bad_request
for u in 'http://198.51.100.7:8080/h' 'https://[2001:db8::7]/h'; do
    hook "$u"
    expect "public address accepted: $u" 201
    req DELETE "/v1/webhooks/$(jget 'j["id"]')"
    expect "and deleted" 200
done
stop_resadd

# allowed: a loopback receiver gets the class event
$PY "$top_srcdir/tests/webhook_receiver.py" "$T/recv.port" "$T/recv.log" 's3cret-key!' &
RECV=$!
for _ in $(seq 100); do [ -f "$T/recv.port" ] && break; sleep 0.05; done
HOOK_URL="http://127.0.0.1:$(cat "$T/recv.port")/hook"
start_resadd --config "$T/on.conf"
hook "$HOOK_URL"
expect "loopback receiver accepted with webhook_allow_private = on" 201
HID=$(jget 'j["id"]')
req POST /v1/classes "${J[@]}" -d '{"name":"one"}'
for _ in $(seq 200); do [ -s "$T/recv.log" ] && break; sleep 0.05; done
check "the receiver got the class event" [ "$(wc -l < "$T/recv.log" 2>/dev/null)" = 1 ]
stop_resadd

# off again: the stored hook's next delivery is refused where it connects
start_resadd --config "$T/off.conf"
req POST /v1/classes "${J[@]}" -d '{"name":"two"}'
for _ in $(seq 200); do
    req GET "/v1/webhooks/$HID"
    [ "$(jget 'j["deliveries"]["pending"]')" = 0 ] && break
    sleep 0.05
done
check "the delivery was refused, naming the address" $PY -c "
import json, sys; d = json.load(open('$T/body'))['deliveries']
sys.exit(0 if d['pending'] == 0 and d['failed'] == 2 and '127.0.0.1' in (d['last_error'] or '') and 'refused' in d['last_error'] else 1)"
sleep 0.5
check "the receiver got nothing more" [ "$(wc -l < "$T/recv.log")" = 1 ]
stop_resadd
kill "$RECV" 2>/dev/null; wait "$RECV" 2>/dev/null
done_test
