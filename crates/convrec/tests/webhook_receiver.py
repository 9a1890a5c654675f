"""A webhook receiver for the tests: verifies every delivery with the published Standard
Webhooks library (PyPI `standardwebhooks`), appends what it got to a JSON-lines file, and answers
500 to its first FAIL_FIRST requests.

usage: webhook_receiver.py SECRET FAIL_FIRST OUT_FILE [PORT]
Prints the port it listens on, then serves until killed."""

import http.server
import json
import sys

from standardwebhooks.webhooks import Webhook

secret, fail_first, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
verifier = Webhook(secret)
requests = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global requests
        requests += 1
        body = self.rfile.read(int(self.headers["content-length"]))
        if requests <= fail_first:
            self.send_response(500)
            self.end_headers()
            return
        try:
            payload = verifier.verify(body, dict(self.headers))
            verified = True
        except Exception as error:  # noqa: BLE001 - the test reads what went wrong
            payload, verified = str(error), False
        with open(out, "a") as f:
            f.write(json.dumps({"id": self.headers["webhook-id"], "verified": verified, "payload": payload}) + "\n")
        self.send_response(204 if verified else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
