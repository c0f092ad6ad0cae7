"""Fixtures that start the KeyCloak emulator on 127.0.0.1 and read its state."""

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SERVER = os.path.join(REPO, "tests", "lab", "keycloak_emulator", "server.py")


class Emulator:
    """A running emulator process and an admin session to inspect and prepare its realm."""

    def __init__(self, tmp_path, max_page_size=100, legacy_auth_path=False, token_lifetime=300):
        self.admin_user = "realmadmin"
        self.admin_password = "pw-" + uuid.uuid4().hex
        self.admin_client_id = "realm-management"
        self.admin_client_secret = "secret-" + uuid.uuid4().hex
        port_file = tmp_path / ("port-" + uuid.uuid4().hex)
        env = dict(os.environ, KC_EMULATOR_ADMIN_PASSWORD=self.admin_password,
                   KC_EMULATOR_ADMIN_CLIENT_SECRET=self.admin_client_secret)
        command = [sys.executable, SERVER, "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
                   "--admin-user", self.admin_user, "--max-page-size", str(max_page_size),
                   "--token-lifetime", str(token_lifetime), "--log-level", "WARNING"]
        if legacy_auth_path:
            command.append("--legacy-auth-path")
        self.process = subprocess.Popen(command, env=env)
        deadline = time.time() + 10
        while not port_file.exists():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("the KeyCloak emulator did not start")
            time.sleep(0.05)
        self.root = "http://127.0.0.1:%s" % port_file.read_text()
        self.url = self.root + ("/auth" if legacy_auth_path else "")
        self.session = requests.Session()
        self.login()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def login(self):
        response = self.session.post(self.url + "/realms/MIP/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": self.admin_client_id, "client_secret": self.admin_client_secret,
            "username": self.admin_user, "password": self.admin_password})
        response.raise_for_status()
        self.session.headers["Authorization"] = "Bearer " + response.json()["access_token"]

    def admin(self, method, path, expect=(200, 201, 204), **kwargs):
        response = self.session.request(method, self.url + "/admin/realms/MIP/" + path, **kwargs)
        if response.status_code == 401:
            self.login()
            response = self.session.request(method, self.url + "/admin/realms/MIP/" + path, **kwargs)
        assert response.status_code in expect, (method, path, response.status_code, response.text)
        return response

    # Test hooks, neither authenticated nor counted.
    def stats(self):
        return requests.get(self.root + "/_emulator/stats").json()

    def reset_stats(self):
        requests.post(self.root + "/_emulator/reset-stats").raise_for_status()

    def expire_tokens(self, after_requests=None):
        body = {} if after_requests is None else {"after_requests": after_requests}
        requests.post(self.root + "/_emulator/expire-tokens", json=body).raise_for_status()

    def conflict_on_create(self, roles=(), groups=()):
        requests.post(self.root + "/_emulator/conflict-on-create",
                      json={"roles": list(roles), "groups": list(groups)}).raise_for_status()

    # State, read and prepared through the admin API.
    def client_uuid(self, client_id):
        found = self.admin("GET", "clients", params={"clientId": client_id}).json()
        return found[0]["id"] if found else None

    def client(self, client_id):
        return self.admin("GET", "clients/" + self.client_uuid(client_id)).json()

    def roles(self, client_id):
        """Return {name: {"id", "description", "composites"}} with every page read."""
        client_uuid = self.client_uuid(client_id)
        result = {}
        first = 0
        while True:
            page = self.admin("GET", "clients/%s/roles" % client_uuid,
                              params={"first": first, "max": 1000, "briefRepresentation": "false"}).json()
            if not page:
                return result
            for role in page:
                composites = set()
                if role["composite"]:
                    composites = set(item["name"] for item in self.admin(
                        "GET", "clients/%s/roles/%s/composites" % (client_uuid, quote(role["name"], safe=""))).json())
                result[role["name"]] = {"id": role["id"], "description": role["description"],
                                        "composites": composites}
            first += len(page)

    def create_role(self, client_id, name, description=""):
        self.admin("POST", "clients/%s/roles" % self.client_uuid(client_id),
                   json={"name": name, "description": description})

    def groups(self, client_id=None):
        """Return {name: {"id", "roles"}}, roles being the client roles of client_id mapped to the group."""
        result = {}
        first = 0
        while True:
            page = self.admin("GET", "groups", params={"first": first, "max": 1000,
                                                       "briefRepresentation": "false"}).json()
            if not page:
                return result
            for group in page:
                mapped = set(group["clientRoles"].get(client_id, [])) if client_id else set()
                result[group["name"]] = {"id": group["id"], "roles": mapped}
            first += len(page)

    def create_group(self, name):
        location = self.admin("POST", "groups", json={"name": name}).headers["Location"]
        return location.rsplit("/", 1)[-1]

    def create_user_in_group(self, username, group_id):
        location = self.admin("POST", "users", json={"username": username}).headers["Location"]
        user_id = location.rsplit("/", 1)[-1]
        self.admin("PUT", "users/%s/groups/%s" % (user_id, group_id))
        return user_id

    def members(self, group_id):
        return set(user["username"] for user in self.admin("GET", "groups/%s/members" % group_id).json())


@pytest.fixture
def start_emulator(tmp_path):
    """Return a function that starts an emulator; every emulator started is stopped after the test."""
    started = []

    def start(**options):
        emulator = Emulator(tmp_path, **options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator):
    return start_emulator()
