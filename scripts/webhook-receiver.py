"""A webhook receiver for the tests: verifies every delivery with the
`standardwebhooks` package and appends one JSON line per request to a file.
Usage: python webhook-receiver.py PORT SECRET OUTFILE"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

port, secret, outfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
webhook = Webhook(secret)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
            line = {"id": headers["webhook-id"], "verified": True, "payload": payload}
            status = 204
        except WebhookVerificationError as error:
            line = {"id": headers.get("webhook-id"), "verified": False, "error": str(error)}
            status = 400
        with open(outfile, "a") as out:
            out.write(json.dumps(line) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
