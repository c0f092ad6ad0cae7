"""Serve the two exareme endpoints the portal backend requests, on port 9090.

GET /mining/datasets returns {node: {pathology: [dataset codes]}} from the
JSON in the environment variable FAKE_EXAREME_DATASETS, and
GET /mining/algorithms.json returns a one-algorithm list.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATASETS = json.loads(os.environ.get("FAKE_EXAREME_DATASETS", "{}"))
ALGORITHMS = [{"name": "LIST_DATASET", "desc": "fake exareme of the ui lab test"}]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        bodies = {"/mining/datasets": DATASETS, "/mining/algorithms.json": ALGORITHMS}
        if self.path not in bodies:
            self.send_error(404)
            return
        data = json.dumps(bodies[self.path]).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("", 9090), Handler).serve_forever()
