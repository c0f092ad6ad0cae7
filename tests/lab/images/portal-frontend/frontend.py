"""Lab stand-in for the MIP portal frontend.

Serves on port 80 (HTTP) and 443 (HTTPS):

- GET /: an HTML page naming INSTANCE_NAME and VERSION;
- GET /assets/config.json: the settings the page would read, from the
  environment (PUBLIC_MIP_HOST, PUBLIC_MIP_PROTOCOL, DATACATALOGUE_SERVER, ...);
- /services/<path>: forwarded to http://<PORTAL_BACKEND_SERVER>/<PORTAL_BACKEND_CONTEXT>/<path>.

HTTPS uses /etc/mip/tls/cert.pem and key.pem when both exist (the role mounts
user-supplied files there). Otherwise it creates a self-signed certificate for
PUBLIC_MIP_HOST in /data/lab-tls on first start and keeps it, as the real
frontend keeps its certificates in /data. Unlike the real image, it does not
read /etc/caddy/Caddyfile.
"""

import html
import ipaddress
import json
import logging
import os
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("portal-frontend")
SUPPLIED_CERTIFICATE = "/etc/mip/tls/cert.pem"
SUPPLIED_KEY = "/etc/mip/tls/key.pem"
GENERATED_DIRECTORY = "/data/lab-tls"
UPSTREAM_TIMEOUT_SECONDS = 30


def page_config():
    return {
        "instanceName": os.environ.get("INSTANCE_NAME", ""),
        "version": os.environ.get("VERSION", ""),
        "publicHost": os.environ.get("PUBLIC_MIP_HOST", ""),
        "publicProtocol": os.environ.get("PUBLIC_MIP_PROTOCOL", ""),
        "datacatalogueServer": os.environ.get("DATACATALOGUE_SERVER", ""),
        "backendContext": os.environ.get("PORTAL_BACKEND_CONTEXT", "services"),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "mip-lab-portal-frontend"

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/services/"):
            self.forward()
        elif path == "/assets/config.json":
            self.reply(200, "application/json", json.dumps(page_config()).encode())
        elif path in ("/", "/index.html"):
            config = page_config()
            body = ("<!DOCTYPE html>\n<html><head><title>%s</title></head>\n"
                    "<body><h1>%s</h1><p>%s</p></body></html>\n"
                    % (html.escape(config["instanceName"]), html.escape(config["instanceName"]),
                       html.escape(config["version"])))
            self.reply(200, "text/html; charset=utf-8", body.encode())
        else:
            self.reply(404, "text/plain", b"not found\n")

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path.startswith("/services/"):
            self.forward()
        else:
            self.reply(404, "text/plain", b"not found\n")

    def forward(self):
        server = os.environ.get("PORTAL_BACKEND_SERVER", "portalbackend:8080")
        context = os.environ.get("PORTAL_BACKEND_CONTEXT", "services")
        url = "http://%s/%s/%s" % (server, context, self.path[len("/services/"):])
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
            LOG.warning("backend %s not reachable: %s", url, error)
            self.reply(502, "text/plain", ("backend not reachable at %s: %s\n" % (url, error)).encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        LOG.info("%s %s", self.address_string(), format % args)


def certificate_files():
    """Return the paths (certificate, key) of the supplied files, else of a self-signed pair it creates once."""
    if os.path.isfile(SUPPLIED_CERTIFICATE) and os.path.isfile(SUPPLIED_KEY):
        LOG.info("HTTPS uses the supplied certificate %s", SUPPLIED_CERTIFICATE)
        return SUPPLIED_CERTIFICATE, SUPPLIED_KEY

    certificate = os.path.join(GENERATED_DIRECTORY, "cert.pem")
    key = os.path.join(GENERATED_DIRECTORY, "key.pem")
    if not (os.path.isfile(certificate) and os.path.isfile(key)):
        host = os.environ.get("PUBLIC_MIP_HOST") or "localhost"
        try:
            ipaddress.ip_address(host)
            alt_name = "IP:" + host
        except ValueError:
            alt_name = "DNS:" + host
        os.makedirs(GENERATED_DIRECTORY, mode=0o700, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                        "-subj", "/CN=" + host, "-addext", "subjectAltName=" + alt_name,
                        "-keyout", key, "-out", certificate],
                       check=True, capture_output=True)
        LOG.info("created a self-signed certificate for %s in %s", host, GENERATED_DIRECTORY)
    return certificate, key


class TLSServer(ThreadingHTTPServer):
    """HTTPS server that runs each TLS handshake in the connection's own thread.

    Wrapping the listening socket would run handshakes in the accepting
    thread, where one client that never sends a ClientHello blocks all others.
    """

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        connection, client_address = self.socket.accept()
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), client_address


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate_files())
    plain = ThreadingHTTPServer(("", 80), Handler)
    secure = TLSServer(("", 443), Handler, context)

    threading.Thread(target=secure.serve_forever, daemon=True).start()
    LOG.info("listening on :80 and :443; backend at %s", os.environ.get("PORTAL_BACKEND_SERVER"))
    plain.serve_forever()


if __name__ == "__main__":
    main()
