"""HTTP endpoints of the exareme stand-in.

Master, gateway port (9090 in exareme):
  GET  /mining/algorithms.json   static algorithm list in exareme's shape
  POST /mining/query/LIST_DATASET  {node: {pathology: [datasets]}} from the keystore
  POST /mining/query/HEALTH_CHECK  {"active_nodes": [...]} from the keystore
  GET  /mining/datasets          lab only: the same answer as LIST_DATASET
  GET  /health                   lab only: this node, and whether the keystore answers
Master, control port (9092 in exareme):
  GET  /check/worker?NODE_IP=&NODE_NAME=[&NODE_PORT=]  calls the worker back;
       NODE_PORT is a lab addition, defaulting to the master's own gateway port
  GET  /health
Worker, gateway port (not published):
  GET  /health                   lab only: the master calls it from /check/worker
"""

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import URLError
from urllib.parse import parse_qs, urlsplit
from urllib.request import ProxyHandler, build_opener

from .keystore import KeystoreError, list_active_nodes, read_federation_datasets

LOG = logging.getLogger("exareme")

ALGORITHMS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "algorithms.json")

# exareme's error response types (HBPQueryHelper.ErrorResponse).
USER_ERROR = "text/plain+user_error"
ERROR = "text/plain+error"

# Calls between nodes stay on the federation network: proxy variables are ignored.
_OPENER = build_opener(ProxyHandler({}))


def error_response(message, error_type):
    """Return exareme's error body: {"result": [{"data": message, "type": error_type}]}."""
    return {"result": [{"data": message, "type": error_type}]}


def load_algorithms():
    with open(ALGORITHMS_PATH, encoding="utf-8") as handle:
        return json.load(handle)


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler with JSON replies. Requests are logged at DEBUG level, errors at WARNING."""

    protocol_version = "HTTP/1.1"
    server_version = "lab-exareme"

    def log_message(self, format, *args):  # noqa: A002 (signature fixed by http.server)
        LOG.debug("%s %s", self.address_string(), format % args)

    def send_json(self, status, payload):
        if status >= 400:
            LOG.warning("%s %s from %s: HTTP %d: %s", self.command, self.path, self.client_address[0], status, payload)
        body = json.dumps(payload, indent=2).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def discard_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def target(self):
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query)

    def send_health(self):
        settings = self.server.settings
        payload = {"node": settings.node_name, "role": settings.role, "status": "ok"}
        status = 200
        if settings.role == "master":
            try:
                reachable = self.server.keystore.is_passing()
            except KeystoreError as error:
                LOG.warning("Health check: keystore unreachable: %s", error)
                reachable = False
            payload["keystore"] = "passing" if reachable else "unreachable"
            if not reachable:
                payload["status"] = "degraded"
                status = 503
        self.send_json(status, payload)

    def do_POST(self):
        self.discard_body()
        self.send_json(405, error_response("POST is not allowed on %s" % self.target()[0], USER_ERROR))


class MasterGatewayHandler(JsonHandler):
    """The master's gateway port: algorithm list, dataset queries and health."""

    def do_GET(self):
        path, _query = self.target()
        if path == "/mining/algorithms.json":
            self.send_json(200, self.server.algorithms)
        elif path == "/mining/datasets":
            self._send_federation_datasets()
        elif path == "/health":
            self.send_health()
        elif path.startswith("/mining/query/"):
            self.send_json(405, error_response("Queries must be sent with POST", USER_ERROR))
        else:
            self.send_json(404, error_response("Not found: %s" % path, USER_ERROR))

    def do_POST(self):
        self.discard_body()
        path, _query = self.target()
        if not path.startswith("/mining/query/"):
            self.send_json(404, error_response("Not found: %s" % path, USER_ERROR))
            return

        algorithm = path[len("/mining/query/"):]
        known = {entry["name"] for entry in self.server.algorithms}
        if algorithm == "LIST_DATASET":
            self._send_federation_datasets()
        elif algorithm == "HEALTH_CHECK":
            self._send_active_nodes()
        elif algorithm in known:
            message = "The lab stand-in of exareme runs no analyses, so %s is listed but not available." % algorithm
            self.send_json(501, error_response(message, ERROR))
        else:
            self.send_json(400, error_response("Algorithm %s does not exist." % algorithm, USER_ERROR))

    def _send_federation_datasets(self):
        try:
            datasets = read_federation_datasets(self.server.keystore)
        except KeystoreError as error:
            LOG.error("Reading the datasets from the keystore failed: %s", error)
            self.send_json(503, error_response("The keystore did not answer: %s" % error, ERROR))
            return
        self.send_json(200, datasets)

    def _send_active_nodes(self):
        try:
            nodes = list_active_nodes(self.server.keystore)
        except KeystoreError as error:
            LOG.error("Reading the active nodes from the keystore failed: %s", error)
            self.send_json(503, error_response("The keystore did not answer: %s" % error, ERROR))
            return
        self.send_json(200, {"active_nodes": nodes})


class MasterControlHandler(JsonHandler):
    """The master's control port: the worker start-up check and health."""

    def do_GET(self):
        path, query = self.target()
        if path == "/check/worker":
            self._check_worker(query)
        elif path == "/health":
            self.send_health()
        else:
            self.send_json(404, error_response("Not found: %s" % path, USER_ERROR))

    def _check_worker(self, query):
        node_ip = (query.get("NODE_IP") or [""])[0]
        node_name = (query.get("NODE_NAME") or [""])[0]
        node_port = (query.get("NODE_PORT") or [str(self.server.settings.http_port)])[0]
        if not node_ip or not node_name or not node_port.isdigit():
            self.send_json(400, error_response("NODE_IP and NODE_NAME are required; NODE_PORT must be a number", USER_ERROR))
            return

        active_nodes = [self.server.settings.node_name]
        url = "http://%s:%s/health" % (node_ip, node_port)
        try:
            with _OPENER.open(url, timeout=5) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except (URLError, OSError, ValueError) as error:
            LOG.warning("Worker check: %s at %s did not answer: %s", node_name, url, error)
        else:
            if answer.get("node") == node_name:
                active_nodes.append(node_name)
                LOG.info("Worker check: %s answered at %s", node_name, url)
            else:
                LOG.warning("Worker check: %s answered as %r, expected %s", url, answer.get("node"), node_name)
        self.send_json(200, {"active_nodes": active_nodes})


class WorkerHandler(JsonHandler):
    """The worker's port: health only."""

    def do_GET(self):
        path, _query = self.target()
        if path == "/health":
            self.send_health()
        else:
            self.send_json(404, error_response("Not found: %s" % path, USER_ERROR))


class NodeServer(ThreadingHTTPServer):
    """HTTP server that gives its handlers the node's settings and keystore client."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler_class, settings, keystore):
        super().__init__(address, handler_class)
        self.settings = settings
        self.keystore = keystore
        self.algorithms = load_algorithms()


def start_server(settings, keystore, port, handler_class, label):
    """Start a NodeServer on a daemon thread and return it."""
    server = NodeServer((settings.bind_address, port), handler_class, settings, keystore)
    # A short poll interval lets shutdown() return within 0.1 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=label, daemon=True)
    thread.start()
    LOG.info("Serving the %s on %s:%d", label, settings.bind_address, server.server_address[1])
    return server
