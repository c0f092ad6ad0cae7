"""Count the requests keycloak_sync sends, against a delete-and-recreate baseline.

Starts the KeyCloak emulator on 127.0.0.1, builds a federation of
--datasets datasets over --workers workers, and measures on the same server:

* keycloak_sync: first sync into an empty realm, then a no-op sync;
* the baseline, which works like the reference keycloak_roles_sync.py. It
  deletes every client role and recreates it, with one GET per created role
  for its id. Then it backs up each group's members, deletes the group,
  recreates it, maps its roles and restores the members. It runs the same
  way every time.

Prints request counts and the ratios baseline / keycloak_sync.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import quote

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(REPO, "tests", "lab", "keycloak_emulator", "server.py")

from ansible_collections.mip.federation.plugins.module_utils._keycloak_api import connect  # noqa: E402
from ansible_collections.mip.federation.plugins.module_utils._keycloak_sync import (  # noqa: E402
    build_wanted,
    client_representation,
    group_prefix,
    is_managed_group,
    sync,
)

CLIENT = "benchfed"


def federation(datasets, workers, pathologies):
    """Spread datasets over pathologies round-robin; dataset i lives on worker i and, for every third, i+1."""
    structure = dict((index, {}) for index in range(pathologies))
    for index in range(datasets):
        pathology = index % pathologies
        nodes = [index % workers] + ([(index + 1) % workers] if index % 3 == 0 else [])
        for node in nodes:
            structure[pathology].setdefault("wk%d" % node, []).append("ds%04d" % index)
    return [{"pathology": "pathology%02d" % pathology,
             "nodes": [{"node": node, "datasets": [{"code": code, "rows": 100} for code in codes]}
                       for node, codes in sorted(nodes.items())]}
            for pathology, nodes in sorted(structure.items())]


class Emulator:
    def __init__(self, page_size):
        self.secret = uuid.uuid4().hex
        self.password = uuid.uuid4().hex
        self.port_file = os.path.join(tempfile.mkdtemp(), "port")
        env = dict(os.environ, KC_EMULATOR_ADMIN_PASSWORD=self.password, KC_EMULATOR_ADMIN_CLIENT_SECRET=self.secret)
        self.process = subprocess.Popen([sys.executable, SERVER, "--port", "0", "--port-file", self.port_file,
                                         "--admin-user", "realmadmin", "--max-page-size", str(page_size),
                                         "--log-level", "WARNING"], env=env)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("the KeyCloak emulator did not start")
            time.sleep(0.05)
        with open(self.port_file) as handle:
            self.url = "http://127.0.0.1:%s" % handle.read()

    def stats(self):
        return requests.get(self.url + "/_emulator/stats").json()

    def reset(self):
        requests.post(self.url + "/_emulator/reset-stats").raise_for_status()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


class Baseline:
    """Delete-and-recreate sync over plain HTTP, one request per object as the reference script sends."""

    def __init__(self, emulator, page_size):
        self.url = emulator.url
        self.page_size = page_size
        self.session = requests.Session()
        token = self.session.post(self.url + "/realms/MIP/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "realm-management", "client_secret": emulator.secret,
            "username": "realmadmin", "password": emulator.password}).json()["access_token"]
        self.session.headers["Authorization"] = "Bearer " + token

    def call(self, method, path, **kwargs):
        response = self.session.request(method, self.url + "/admin/realms/MIP/" + path, **kwargs)
        response.raise_for_status()
        return response

    def list_all(self, path, **params):
        items, first = [], 0
        while True:
            page = self.call("GET", path, params=dict(params, first=first, max=self.page_size)).json()
            if not page:
                return items
            items.extend(page)
            first += len(page)

    def sync(self, data):
        wanted = build_wanted(data, CLIENT)
        found = self.call("GET", "clients", params={"clientId": CLIENT}).json()
        if not found:
            self.call("POST", "clients", json=client_representation(CLIENT, ["*"]))
            found = self.call("GET", "clients", params={"clientId": CLIENT}).json()
        client = found[0]["id"]

        for role in self.list_all("clients/%s/roles" % client):
            self.call("DELETE", "clients/%s/roles/%s" % (client, quote(role["name"], safe="")))
        ids = {}
        for name, spec in sorted(wanted["roles"].items()):
            self.call("POST", "clients/%s/roles" % client, json={"name": name, "description": spec["description"]})
            ids[name] = self.call("GET", "clients/%s/roles/%s" % (client, quote(name, safe=""))).json()["id"]
        for name, spec in sorted(wanted["roles"].items()):
            if spec["composites"]:
                self.call("POST", "clients/%s/roles/%s/composites" % (client, quote(name, safe="")),
                          json=[{"id": ids[member], "name": member} for member in sorted(spec["composites"])])

        backup = {}
        for group in self.list_all("groups", search=group_prefix(CLIENT)):
            if is_managed_group(group["name"], CLIENT):
                backup[group["name"]] = [user["id"] for user in self.list_all("groups/%s/members" % group["id"])]
                self.call("DELETE", "groups/%s" % group["id"])
        for name, roles in sorted(wanted["groups"].items()):
            group_id = self.call("POST", "groups", json={"name": name}).headers["Location"].rsplit("/", 1)[-1]
            self.call("POST", "groups/%s/role-mappings/clients/%s" % (group_id, client),
                      json=[{"id": ids[role], "name": role} for role in sorted(roles)])
            for user_id in backup.get(name, []):
                self.call("PUT", "users/%s/groups/%s" % (user_id, group_id))


def measure(emulator, run):
    emulator.reset()
    started = time.time()
    run()
    elapsed = time.time() - started
    stats = emulator.stats()
    return {"requests": stats["total"], "reads": stats["reads"], "writes": stats["writes"], "seconds": elapsed}


def module_sync(emulator, data, page_size):
    def run():
        api = connect(emulator.url, "MIP", "MIP", "realm-management", emulator.secret, "realmadmin",
                      emulator.password)
        result = sync(api, CLIENT, data, redirect_uris=["*"], page_size=page_size)
        assert result["changed"] in (True, False)
    return run


def ratio(numerator, denominator):
    return "%.1f" % (float(numerator) / denominator) if denominator else "inf (0 in keycloak_sync)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=500, help="datasets in the federation (default 500)")
    parser.add_argument("--workers", type=int, default=20, help="worker nodes (default 20)")
    parser.add_argument("--pathologies", type=int, default=10, help="pathologies (default 10)")
    parser.add_argument("--page-size", type=int, default=100,
                        help="server page size and requested page size (default 100)")
    args = parser.parse_args()
    data = federation(args.datasets, args.workers, args.pathologies)
    wanted = build_wanted(data, CLIENT)
    print("federation: %d datasets, %d workers, %d pathologies -> %d client roles, %d groups; page size %d"
          % (args.datasets, args.workers, args.pathologies, len(wanted["roles"]), len(wanted["groups"]),
             args.page_size))

    results = {}
    emulator = Emulator(args.page_size)
    try:
        results["sync first"] = measure(emulator, module_sync(emulator, data, args.page_size))
        results["sync no-op"] = measure(emulator, module_sync(emulator, data, args.page_size))
    finally:
        emulator.stop()
    emulator = Emulator(args.page_size)
    try:
        baseline = Baseline(emulator, args.page_size)
        results["baseline first"] = measure(emulator, lambda: baseline.sync(data))
        results["baseline again"] = measure(emulator, lambda: baseline.sync(data))
    finally:
        emulator.stop()

    print("%-16s %9s %7s %7s %9s" % ("run", "requests", "reads", "writes", "seconds"))
    for name, numbers in results.items():
        print("%-16s %9d %7d %7d %9.2f" % (name, numbers["requests"], numbers["reads"], numbers["writes"],
                                           numbers["seconds"]))
    print("ratio baseline/sync, first sync: requests %s, writes %s" % (
        ratio(results["baseline first"]["requests"], results["sync first"]["requests"]),
        ratio(results["baseline first"]["writes"], results["sync first"]["writes"])))
    print("ratio baseline/sync, unchanged federation: requests %s, writes %s" % (
        ratio(results["baseline again"]["requests"], results["sync no-op"]["requests"]),
        ratio(results["baseline again"]["writes"], results["sync no-op"]["writes"])))
    pages = -(-len(wanted["roles"]) // args.page_size) + 1 + -(-len(wanted["groups"]) // args.page_size) + 1
    print("no-op sync reads per list page: %.1f (%d reads for %d list pages)" % (
        float(results["sync no-op"]["reads"]) / pages, results["sync no-op"]["reads"], pages))
    return 0 if results["sync no-op"]["writes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
