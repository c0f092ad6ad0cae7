"""Client for the Consul KV calls that exareme makes, and the federation view built from them."""

import json
import logging
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import ProxyHandler, Request, build_opener

LOG = logging.getLogger("exareme")

MASTER_PREFIX = "master/"
ACTIVE_WORKERS_PREFIX = "active_workers/"
DATA_PREFIX = "data/"

# Keystore traffic stays on the federation network: proxy variables are ignored.
_OPENER = build_opener(ProxyHandler({}))


class KeystoreError(Exception):
    """A keystore request failed, or returned something Consul would not return."""


class KeystoreClient:
    """Minimal Consul HTTP client: KV get, put and key listing, and the health state."""

    def __init__(self, base_url, timeout=5.0):
        self.base_url = base_url
        self.timeout = timeout

    def _request(self, method, path, body=None):
        url = self.base_url + path
        request = Request(url, data=body, method=method)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except HTTPError as error:
            return error.code, error.read()
        except (URLError, OSError) as error:
            raise KeystoreError("%s %s failed: %s" % (method, url, getattr(error, "reason", error)))

    def _kv_path(self, key):
        return "/v1/kv/" + quote(key, safe="/")

    def is_passing(self):
        """Return True when /v1/health/state/passing lists a passing check, as bootstrap.sh requires."""
        status, body = self._request("GET", "/v1/health/state/passing")
        if status != 200:
            raise KeystoreError("GET /v1/health/state/passing returned HTTP %d" % status)
        try:
            checks = json.loads(body.decode("utf-8"))
        except ValueError as error:
            raise KeystoreError("GET /v1/health/state/passing returned invalid JSON: %s" % error)
        return any(isinstance(check, dict) and check.get("Status") == "passing" for check in checks)

    def put(self, key, value):
        status, body = self._request("PUT", self._kv_path(key), value.encode("utf-8"))
        if status != 200 or body.strip() != b"true":
            raise KeystoreError("PUT %s returned HTTP %d: %r" % (key, status, body[:200]))

    def get_raw(self, key):
        """Return the value of key as text, or None when the key does not exist."""
        status, body = self._request("GET", self._kv_path(key) + "?raw")
        if status == 404:
            return None
        if status != 200:
            raise KeystoreError("GET %s?raw returned HTTP %d" % (key, status))
        return body.decode("utf-8")

    def list_keys(self, prefix):
        """Return the keys that start with prefix, as Consul's `?keys` matches them, so mind the trailing slash."""
        status, body = self._request("GET", self._kv_path(prefix) + "?keys")
        if status == 404:
            return []
        if status != 200:
            raise KeystoreError("GET %s?keys returned HTTP %d" % (prefix, status))
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as error:
            raise KeystoreError("GET %s?keys returned invalid JSON: %s" % (prefix, error))


def list_active_nodes(keystore):
    """Return the names registered under active_workers/, sorted. The master registers there too."""
    names = []
    for key in keystore.list_keys(ACTIVE_WORKERS_PREFIX):
        name = key[len(ACTIVE_WORKERS_PREFIX):]
        if name and "/" not in name:
            names.append(name)
    return sorted(names)


def read_node_datasets(keystore, node_name):
    """Return {pathology: [dataset codes]} that node_name published under data/<node_name>/.

    The trailing slash keeps wk1 from matching wk10's keys. A value that is
    not a JSON list of strings is logged and left out.
    """
    prefix = DATA_PREFIX + node_name + "/"
    pathologies = {}
    for key in keystore.list_keys(prefix):
        pathology = key[len(prefix):]
        if not pathology or "/" in pathology:
            continue

        raw = keystore.get_raw(key)
        if raw is None:
            continue
        try:
            datasets = json.loads(raw)
        except ValueError as error:
            LOG.error("Keystore key %s is not valid JSON (%s); leaving it out", key, error)
            continue
        if not isinstance(datasets, list) or not all(isinstance(code, str) for code in datasets):
            LOG.error("Keystore key %s is not a JSON list of dataset codes: %r; leaving it out", key, raw[:200])
            continue
        pathologies[pathology] = datasets
    return pathologies


def read_federation_datasets(keystore):
    """Return {node: {pathology: [dataset codes]}} for every active node, the shape LIST_DATASET returns."""
    return {name: read_node_datasets(keystore, name) for name in list_active_nodes(keystore)}
