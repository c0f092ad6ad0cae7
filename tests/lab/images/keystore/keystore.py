"""Lab stand-in for the Consul 1.8 agent that exareme uses as its keystore.

It serves the part of Consul's HTTP API that exareme 24.5.1 and its
bootstrap.sh call: the KV store under /v1/kv/ (GET with ?raw, ?recurse and
?keys, PUT with ?flags and ?cas, DELETE with ?recurse and ?cas),
/v1/health/state/<state> and /v1/status/leader|peers. Key lookups follow
Consul: ?keys and ?recurse match every key that starts with the given
prefix, so `data/wk1?keys` also lists `data/wk10/...` while `data/wk1/?keys`
does not.

The store lives in memory. A restarted keystore starts empty, as a replaced
bitnami/consul container without a volume does. Blocking queries
(?index=, ?wait=) return at once, and ACL tokens, sessions and datacenters
are ignored.

Environment (bitnami/consul names and defaults):
  CONSUL_CLIENT_LAN_ADDRESS  address the HTTP API binds to, default 0.0.0.0
  CONSUL_HTTP_PORT_NUMBER    HTTP API port, default 8500
  CONSUL_BIND_INTERFACE      accepted and ignored (there is no cluster traffic)
  LOG_LEVEL                  INFO (default) or DEBUG; DEBUG logs every request
"""

import base64
import json
import logging
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOG = logging.getLogger("keystore")

# Consul's default kv_max_value_size (512 KiB).
MAX_VALUE_BYTES = 512 * 1024

# Consul server RPC port, reported by /v1/status/leader and /v1/status/peers.
SERVER_RPC_PORT = 8300

CHECK_STATES = ("any", "passing", "warning", "critical")


class KeyValueEntry:
    """One stored key with Consul's metadata."""

    __slots__ = ("key", "value", "flags", "create_index", "modify_index")

    def __init__(self, key, value, flags, index):
        self.key = key
        self.value = value
        self.flags = flags
        self.create_index = index
        self.modify_index = index

    def to_json(self):
        """Return the entry as Consul's KV endpoint encodes it, Value in base64."""
        encoded = base64.b64encode(self.value).decode("ascii") if self.value else None
        return {
            "LockIndex": 0,
            "Key": self.key,
            "Flags": self.flags,
            "Value": encoded,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


class KeyValueStore:
    """Thread-safe in-memory KV store with Consul's index and prefix semantics."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}
        # Consul's Raft index: it starts above zero and grows with every write.
        self._index = 1

    @property
    def index(self):
        with self._lock:
            return self._index

    def get(self, key):
        with self._lock:
            return self._entries.get(key)

    def list(self, prefix):
        """Return every entry whose key starts with prefix, sorted by key."""
        with self._lock:
            return [self._entries[key] for key in sorted(self._entries) if key.startswith(prefix)]

    def keys(self, prefix, separator=""):
        """Return the keys under prefix, cut after the first separator past the prefix."""
        with self._lock:
            matching = sorted(key for key in self._entries if key.startswith(prefix))
        if not separator:
            return matching

        folded = []
        for key in matching:
            cut = key.find(separator, len(prefix))
            folded_key = key if cut < 0 else key[: cut + len(separator)]
            if not folded or folded[-1] != folded_key:
                folded.append(folded_key)
        return folded

    def put(self, key, value, flags=0, cas=None):
        """Store value under key and return True.

        With cas, the write happens only if the key's ModifyIndex equals cas,
        and cas=0 means only if the key does not exist. Otherwise it returns False.
        """
        with self._lock:
            entry = self._entries.get(key)
            if cas is not None:
                current = entry.modify_index if entry else 0
                if current != cas:
                    return False

            self._index += 1
            if entry is None:
                self._entries[key] = KeyValueEntry(key, value, flags, self._index)
            else:
                entry.value = value
                entry.flags = flags
                entry.modify_index = self._index
            return True

    def delete(self, key, recurse=False, cas=None):
        """Delete key, or every key under the prefix with recurse, and return True.

        With cas, the key is deleted only if its ModifyIndex equals cas.
        Otherwise it returns False.
        """
        with self._lock:
            if recurse:
                doomed = [name for name in self._entries if name.startswith(key)]
            else:
                entry = self._entries.get(key)
                if cas is not None and (entry is None or entry.modify_index != cas):
                    return False
                doomed = [key] if entry is not None else []

            if doomed:
                self._index += 1
            for name in doomed:
                del self._entries[name]
            return True


class ConsulRequestHandler(BaseHTTPRequestHandler):
    """Routes Consul HTTP API requests to the server's KeyValueStore."""

    protocol_version = "HTTP/1.1"
    server_version = "lab-keystore"

    # --- plumbing -------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 (signature fixed by http.server)
        LOG.debug("%s %s", self.address_string(), format % args)

    def _parse_target(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        return unquote(parts.path), query

    def _send(self, status, body=b"", content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, payload, with_index=False):
        headers = {"X-Consul-Knownleader": "true", "X-Consul-Lastcontact": "0"}
        if with_index:
            headers["X-Consul-Index"] = str(self.server.store.index)
        self._send(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"), headers=headers)

    def _send_error_text(self, status, reason):
        """Send a plain-text error and close the connection, since part of the request body may be unread."""
        LOG.warning("%s %s from %s: HTTP %d: %s", self.command, self.path, self.client_address[0], status, reason)
        self.close_connection = True
        self._send(
            status,
            (reason + "\n").encode("utf-8"),
            content_type="text/plain; charset=utf-8",
            headers={"Connection": "close"},
        )

    def _send_not_found(self, with_index=True):
        headers = {"X-Consul-Index": str(self.server.store.index)} if with_index else None
        self._send(404, b"", content_type="text/plain; charset=utf-8", headers=headers)

    def _read_body(self):
        """Return the request body, or None after sending 400 or 413 for an invalid or too large body."""
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._read_chunked()
            else:
                body = self._read_sized(int(self.headers.get("Content-Length") or 0))
        except ValueError as error:
            self._send_error_text(400, "Invalid Content-Length or chunk size: %s" % error)
            return None

        if body is None:
            self._send_error_text(
                413, "Request body too large: the maximum value size is %d bytes." % MAX_VALUE_BYTES
            )
        return body

    def _read_sized(self, length):
        """Return length bytes of body, or None after draining a body over MAX_VALUE_BYTES."""
        if length > MAX_VALUE_BYTES:
            # Drain the body in pieces, so that the client gets the 413 instead of a reset.
            remaining = length
            while remaining > 0:
                piece = self.rfile.read(min(remaining, 65536))
                if not piece:
                    break
                remaining -= len(piece)
            return None
        return self.rfile.read(length)

    def _read_chunked(self):
        """Return a chunked body, or None as soon as it exceeds MAX_VALUE_BYTES."""
        chunks = []
        total = 0
        while True:
            size_line = self.rfile.readline().split(b";", 1)[0].strip()
            size = int(size_line or b"0", 16)
            if size == 0:
                # Skip trailers up to the empty line that ends the message.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
            total += size
            if total > MAX_VALUE_BYTES:
                return None
        return b"".join(chunks)

    # --- HTTP methods ---------------------------------------------------

    def do_GET(self):
        path, query = self._parse_target()
        if path.startswith("/v1/kv/"):
            self._get_kv(path[len("/v1/kv/"):], query)
        elif path.startswith("/v1/health/state/"):
            self._get_health_state(path[len("/v1/health/state/"):])
        elif path == "/v1/status/leader":
            self._send_json(200, self.server.leader_address)
        elif path == "/v1/status/peers":
            self._send_json(200, [self.server.leader_address])
        else:
            self._send_error_text(404, "Not found: %s" % path)

    def do_PUT(self):
        path, query = self._parse_target()
        if not path.startswith("/v1/kv/"):
            self._send_error_text(405, "Method PUT is not allowed on %s" % path)
            return
        self._put_kv(path[len("/v1/kv/"):], query)

    def do_DELETE(self):
        path, query = self._parse_target()
        if not path.startswith("/v1/kv/"):
            self._send_error_text(405, "Method DELETE is not allowed on %s" % path)
            return
        self._delete_kv(path[len("/v1/kv/"):], query)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        path, _query = self._parse_target()
        self._send_error_text(405, "Method POST is not allowed on %s" % path)

    # --- endpoints ------------------------------------------------------

    def _get_kv(self, key, query):
        store = self.server.store

        if "keys" in query:
            separator = (query.get("separator") or query.get("seperator") or [""])[0]
            keys = store.keys(key, separator)
            # Consul returns 404 for an empty key list, except at the root.
            if not keys and key:
                self._send_not_found()
                return
            self._send_json(200, keys, with_index=True)
            return

        if "recurse" in query:
            entries = store.list(key)
        elif not key:
            self._send_error_text(400, "Missing key name")
            return
        else:
            entry = store.get(key)
            entries = [entry] if entry is not None else []

        if not entries:
            self._send_not_found()
            return

        if "raw" in query and "recurse" not in query:
            self._send(
                200,
                entries[0].value,
                content_type="text/plain",
                headers={"X-Consul-Index": str(store.index), "X-Content-Type-Options": "nosniff"},
            )
            return

        self._send_json(200, [entry.to_json() for entry in entries], with_index=True)

    def _put_kv(self, key, query):
        body = self._read_body()
        if body is None:
            return
        if not key:
            self._send_error_text(400, "Missing key name")
            return

        try:
            flags = int((query.get("flags") or ["0"])[0])
            cas = int(query["cas"][0]) if "cas" in query else None
        except ValueError as error:
            self._send_error_text(400, "Invalid flags or cas parameter: %s" % error)
            return

        stored = self.server.store.put(key, body, flags=flags, cas=cas)
        LOG.info("PUT %s (%d bytes)%s", key, len(body), "" if stored else ": cas mismatch, not stored")
        self._send_json(200, stored)

    def _delete_kv(self, key, query):
        recurse = "recurse" in query
        if recurse and "cas" in query:
            self._send_error_text(400, "Conflicting flags: recurse and cas cannot be combined")
            return
        if not key and not recurse:
            self._send_error_text(400, "Missing key name")
            return

        try:
            cas = int(query["cas"][0]) if "cas" in query else None
        except ValueError as error:
            self._send_error_text(400, "Invalid cas parameter: %s" % error)
            return

        deleted = self.server.store.delete(key, recurse=recurse, cas=cas)
        LOG.info("DELETE %s%s", key, " (recursive)" if recurse else "")
        self._send_json(200, deleted)

    def _get_health_state(self, state):
        if state not in CHECK_STATES:
            self._send_error_text(400, "Invalid check state: %s" % state)
            return
        checks = []
        if state in ("any", "passing"):
            checks.append(self.server.serf_health_check())
        self._send_json(200, checks, with_index=True)


class KeystoreServer(ThreadingHTTPServer):
    """HTTP server that owns the KV store and this agent's identity."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, node_name, node_address):
        super().__init__(address, ConsulRequestHandler)
        self.store = KeyValueStore()
        self.node_name = node_name
        self.leader_address = "%s:%d" % (node_address, SERVER_RPC_PORT)

    def serf_health_check(self):
        """Return the agent's own serfHealth check, the one a single dev server reports."""
        return {
            "Node": self.node_name,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "Definition": {},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }


def resolve_node_address(hostname):
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return "127.0.0.1"


def read_port(name, default):
    raw = os.environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SystemExit("%s=%r is invalid: expected a TCP port number from 0 to 65535." % (name, raw))
    return port


def main():
    level = logging.DEBUG if os.environ.get("LOG_LEVEL", "INFO").upper() == "DEBUG" else logging.INFO
    logging.basicConfig(stream=sys.stdout, level=level, format="%(asctime)s %(levelname)s %(message)s")

    bind_address = os.environ.get("CONSUL_CLIENT_LAN_ADDRESS", "0.0.0.0")
    port = read_port("CONSUL_HTTP_PORT_NUMBER", 8500)
    if os.environ.get("CONSUL_BIND_INTERFACE"):
        LOG.info("Ignoring CONSUL_BIND_INTERFACE=%s: the stand-in has no cluster traffic", os.environ["CONSUL_BIND_INTERFACE"])

    hostname = socket.gethostname()
    server = KeystoreServer((bind_address, port), hostname, resolve_node_address(hostname))

    # PID 1 in a container ignores SIGTERM unless a handler is installed.
    def stop(signum, _frame):
        LOG.info("Stopping on signal %d", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    LOG.info("Keystore listening on %s:%d (node %s)", bind_address, server.server_address[1], hostname)
    try:
        # A short poll interval lets SIGTERM stop the server within 0.1 s.
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    LOG.info("Keystore stopped")


if __name__ == "__main__":
    main()
