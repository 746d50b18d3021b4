#!/usr/bin/env python3
"""tests/webhook_receiver.py PORTFILE LOGFILE SECRET — a webhook receiver on
127.0.0.1 for tests/daemon_integrator.sh: answers 500 to the first delivery
and 200 to every later one, checks X-Resadd-Signature (HMAC-SHA256 of the body
with SECRET), and appends one JSON line per request to LOGFILE.  Runs until
killed; it outlives the daemon's restarts."""
import hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

portfile, logfile, secret = sys.argv[1], sys.argv[2], sys.argv[3].encode()
seen = [0]

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        want = 'sha256=' + hmac.new(secret, body, hashlib.sha256).hexdigest()
        seen[0] += 1
        code = 500 if seen[0] == 1 else 200
        rec = {'n': seen[0], 'code': code, 'sig_ok': hmac.compare_digest(want, self.headers.get('X-Resadd-Signature', '')),
               'delivery': self.headers.get('X-Resadd-Delivery'), 'event': self.headers.get('X-Resadd-Event'),
               'body': json.loads(body)}
        with open(logfile, 'a') as f: f.write(json.dumps(rec) + '\n')
        self.send_response(code); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass

srv = HTTPServer(('127.0.0.1', 0), H)
with open(portfile + '.tmp', 'w') as f: f.write(str(srv.server_address[1]))
import os; os.rename(portfile + '.tmp', portfile)
srv.serve_forever()
