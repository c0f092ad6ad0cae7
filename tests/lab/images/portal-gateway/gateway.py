"""Lab stand-in for the MIP gateway.

Listens on GATEWAY_PORT (default 8081) and forwards GET and POST requests to
ENGINE_BASE_URL joined with the request path, so /health reaches
http://portalbackend:8080/services/health. GET /gateway/health returns the
gateway's own status without forwarding.
"""

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("portal-gateway")
UPSTREAM_TIMEOUT_SECONDS = 30


class Handler(BaseHTTPRequestHandler):
    server_version = "mip-lab-portal-gateway"

    def do_GET(self):
        if urllib.parse.urlsplit(self.path).path == "/gateway/health":
            self.reply(200, "application/json", json.dumps({"status": "UP"}).encode())
            return
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        base = os.environ.get("ENGINE_BASE_URL", "http://portalbackend:8080/services/")
        url = urllib.parse.urljoin(base, self.path.lstrip("/"))
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(url, data=self.rfile.read(length) if length else None,
                                         method=self.command)
        if self.headers.get("Content-Type"):
            request.add_header("Content-Type", self.headers["Content-Type"])
        try:
            with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT_SECONDS) as response:
                self.reply(response.status, response.headers.get("Content-Type"), response.read())
        except urllib.error.HTTPError as error:
            self.reply(error.code, error.headers.get("Content-Type"), error.read())
        except (urllib.error.URLError, OSError) as error:
            LOG.warning("engine %s not reachable: %s", url, error)
            self.reply(502, "text/plain", ("engine not reachable at %s: %s\n" % (url, error)).encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        LOG.info("%s %s", self.address_string(), format % args)


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = int(os.environ.get("GATEWAY_PORT", "8081"))
    server = ThreadingHTTPServer(("", port), Handler)
    LOG.info("listening on :%d; engine at %s", port, os.environ.get("ENGINE_BASE_URL"))
    server.serve_forever()


if __name__ == "__main__":
    main()
