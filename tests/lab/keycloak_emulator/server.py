"""Emulate the parts of the KeyCloak Admin REST API that keycloak_sync uses.

Standard library only, so that it runs in a bare lab container. One realm,
held in memory. The endpoints follow Keycloak's documented behaviour
(https://www.keycloak.org/docs-api/latest/rest-api/), with three test aids:

* ``--max-page-size`` caps ``max`` on every list, as a small server page would;
* tokens expire after ``--token-lifetime`` seconds, or at once through
  ``POST /_emulator/expire-tokens``;
* ``GET /_emulator/stats`` counts requests per method and path, and
  ``POST /_emulator/reset-stats`` sets the counters back to zero.

The ``/_emulator`` endpoints need no token and are never counted.
"""

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOG = logging.getLogger("keycloak_emulator")


class HttpError(Exception):
    """An error response: status code and Keycloak-style JSON body."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Realm:
    """The in-memory state of one realm: clients, roles, groups, users, tokens."""

    def __init__(self, name, token_lifetime, max_page_size):
        self.name = name
        self.token_lifetime = token_lifetime
        self.max_page_size = max_page_size
        self.lock = threading.RLock()
        self.clients = {}  # uuid -> client representation plus "_roles", "_secret"
        self.groups = {}  # id -> {"id", "name", "path", "_client_roles": {client uuid: set(role ids)}}
        self.users = {}  # id -> {"id", "username", "_groups": set(group ids)}
        self.passwords = {}  # username -> password
        self.access_tokens = {}  # token -> expiry (epoch seconds)
        self.refresh_tokens = {}  # token -> (expiry, grant parameters)
        self.expire_after_requests = None
        self.conflicts = {"roles": set(), "groups": set()}
        self.stats = {}
        self.reset_stats()

    # Bootstrap -------------------------------------------------------------

    def add_user(self, username, password):
        user_id = str(uuid.uuid4())
        self.users[user_id] = {"id": user_id, "username": username, "enabled": True, "_groups": set()}
        self.passwords[username] = password
        return user_id

    def add_client(self, representation, secret=None):
        client_uuid = str(uuid.uuid4())
        client = {
            "id": client_uuid,
            "clientId": representation["clientId"],
            "name": representation.get("name", ""),
            "enabled": representation.get("enabled", True),
            "protocol": representation.get("protocol", "openid-connect"),
            "publicClient": representation.get("publicClient", False),
            "bearerOnly": representation.get("bearerOnly", False),
            "clientAuthenticatorType": representation.get("clientAuthenticatorType", "client-secret"),
            "standardFlowEnabled": representation.get("standardFlowEnabled", True),
            "directAccessGrantsEnabled": representation.get("directAccessGrantsEnabled", False),
            "serviceAccountsEnabled": representation.get("serviceAccountsEnabled", False),
            "redirectUris": list(representation.get("redirectUris", [])),
            "webOrigins": list(representation.get("webOrigins", [])),
            "protocolMappers": [],
            "_roles": {},
            "_secret": secret or representation.get("secret") or secrets.token_urlsafe(24),
        }
        for mapper in representation.get("protocolMappers", []):
            self.add_mapper(client, mapper)
        self.clients[client_uuid] = client
        return client

    @staticmethod
    def add_mapper(client, mapper):
        for existing in client["protocolMappers"]:
            if existing["name"] == mapper.get("name"):
                raise HttpError(409, "Protocol mapper exists with same name")
        stored = dict(mapper)
        stored["id"] = str(uuid.uuid4())
        stored.setdefault("config", {})
        client["protocolMappers"].append(stored)
        return stored

    # Statistics --------------------------------------------------------------

    def reset_stats(self):
        self.stats = {"total": 0, "reads": 0, "writes": 0, "token_requests": 0,
                      "unauthorized": 0, "by_method": {}, "by_path": {}}

    def count(self, method, path, is_token, status):
        stats = self.stats
        stats["total"] += 1
        if is_token:
            stats["token_requests"] += 1
        elif method == "GET":
            stats["reads"] += 1
        else:
            stats["writes"] += 1
        if status == 401:
            stats["unauthorized"] += 1
        stats["by_method"][method] = stats["by_method"].get(method, 0) + 1
        key = method + " " + path
        stats["by_path"][key] = stats["by_path"].get(key, 0) + 1

    # Tokens ----------------------------------------------------------------------

    def issue_token(self, grant):
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        now = time.time()
        self.access_tokens[access] = now + self.token_lifetime
        self.refresh_tokens[refresh] = (now + 2 * self.token_lifetime, grant)
        return {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "refresh_token": refresh,
            "refresh_expires_in": 2 * self.token_lifetime,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def expire_tokens(self):
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def check_token(self, header):
        if self.expire_after_requests is not None:
            if self.expire_after_requests <= 0:
                self.expire_tokens()
                self.expire_after_requests = None
            else:
                self.expire_after_requests -= 1
        if not header or not header.startswith("Bearer "):
            raise HttpError(401, "HTTP 401 Unauthorized")
        expiry = self.access_tokens.get(header[len("Bearer "):])
        if expiry is None or expiry < time.time():
            raise HttpError(401, "HTTP 401 Unauthorized")

    def client_by_client_id(self, client_id):
        for client in self.clients.values():
            if client["clientId"] == client_id:
                return client
        return None

    def token(self, form):
        grant_type = form.get("grant_type", "")
        if grant_type == "refresh_token":
            entry = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if entry is None or entry[0] < time.time():
                raise HttpError(400, {"error": "invalid_grant", "error_description": "Token is not active"})
            return self.issue_token(entry[1])

        client = self.client_by_client_id(form.get("client_id", ""))
        if client is None:
            raise HttpError(401, {"error": "invalid_client", "error_description": "Invalid client credentials"})
        if not client["publicClient"] and form.get("client_secret") != client["_secret"]:
            raise HttpError(401, {"error": "unauthorized_client",
                                  "error_description": "Invalid client or Invalid client credentials"})
        if grant_type == "password":
            if not client["directAccessGrantsEnabled"]:
                raise HttpError(400, {"error": "unauthorized_client",
                                      "error_description": "Client not allowed for direct access grants"})
            if self.passwords.get(form.get("username")) != form.get("password") or form.get("password") is None:
                raise HttpError(401, {"error": "invalid_grant", "error_description": "Invalid user credentials"})
        elif grant_type == "client_credentials":
            if not client["serviceAccountsEnabled"]:
                raise HttpError(400, {"error": "unauthorized_client",
                                      "error_description": "Client not enabled to retrieve service account"})
        else:
            raise HttpError(400, {"error": "unsupported_grant_type",
                                  "error_description": "Unsupported grant_type"})
        return self.issue_token({"grant_type": grant_type, "client_id": client["clientId"]})

    # Lookups ---------------------------------------------------------------------

    def client(self, client_uuid):
        client = self.clients.get(client_uuid)
        if client is None:
            raise HttpError(404, "Could not find client")
        return client

    @staticmethod
    def role(client, name):
        role = client["_roles"].get(name)
        if role is None:
            raise HttpError(404, "Could not find role")
        return role

    def group(self, group_id):
        group = self.groups.get(group_id)
        if group is None:
            raise HttpError(404, "Could not find group by id")
        return group

    def user(self, user_id):
        user = self.users.get(user_id)
        if user is None:
            raise HttpError(404, "User not found")
        return user

    def role_by_id(self, role_id):
        for client in self.clients.values():
            for role in client["_roles"].values():
                if role["id"] == role_id:
                    return client, role
        return None, None

    def page(self, items, query):
        first = int(query.get("first", "0") or 0)
        requested = query.get("max")
        count = self.max_page_size if requested in (None, "", "-1") else min(int(requested), self.max_page_size)
        return items[first:first + count]

    # Representations -------------------------------------------------------------

    @staticmethod
    def client_view(client):
        return {key: value for key, value in client.items() if not key.startswith("_")}

    @staticmethod
    def role_view(role, brief=False):
        view = {
            "id": role["id"],
            "name": role["name"],
            "description": role["description"],
            "composite": bool(role["_composites"]),
            "clientRole": True,
            "containerId": role["containerId"],
        }
        if not brief:
            view["attributes"] = {}
        return view

    def group_view(self, group, brief):
        view = {"id": group["id"], "name": group["name"], "path": group["path"], "subGroups": [],
                "subGroupCount": 0}
        if not brief:
            client_roles = {}
            for client_uuid, role_ids in group["_client_roles"].items():
                client = self.clients.get(client_uuid)
                if client is None or not role_ids:
                    continue
                names = []
                for role in client["_roles"].values():
                    if role["id"] in role_ids:
                        names.append(role["name"])
                client_roles[client["clientId"]] = sorted(names)
            view["clientRoles"] = client_roles
            view["realmRoles"] = []
            view["attributes"] = {}
        return view

    def resolve_roles(self, client, body):
        """Return the ids of the roles of client named or identified in body."""
        if not isinstance(body, list):
            raise HttpError(400, "expected a JSON list of roles")
        role_ids = []
        for item in body:
            role = None
            if item.get("id"):
                owner, role = self.role_by_id(item["id"])
                if owner is not client:
                    role = None
            elif item.get("name") in client["_roles"]:
                role = client["_roles"][item["name"]]
            if role is None:
                raise HttpError(404, "Could not find role")
            role_ids.append(role["id"])
        return role_ids

    def delete_role(self, client, name):
        role = self.role(client, name)
        del client["_roles"][name]
        for other_client in self.clients.values():
            for other in other_client["_roles"].values():
                other["_composites"].discard(role["id"])
        for group in self.groups.values():
            for role_ids in group["_client_roles"].values():
                role_ids.discard(role["id"])


class Api:
    """Route one request of the admin API to the realm."""

    def __init__(self, realm):
        self.realm = realm

    def dispatch(self, method, parts, query, body, headers):
        realm = self.realm
        if parts[:1] == ["realms"] and len(parts) >= 2:
            if parts[1] != realm.name:
                raise HttpError(404, "Realm does not exist")
            return self.public(method, parts[2:], body)
        if parts[:2] == ["admin", "realms"] and len(parts) >= 3:
            realm.check_token(headers.get("Authorization"))
            if parts[2] != realm.name:
                raise HttpError(404, "Realm not found.")
            return self.admin(method, parts[3:], query, body)
        raise HttpError(404, "Unable to find matching target resource method")

    def public(self, method, rest, body):
        if method == "GET" and rest == []:
            return 200, {"realm": self.realm.name, "public_key": "", "token-service": "",
                         "account-service": "", "tokens-not-before": 0}
        if method == "GET" and rest == [".well-known", "openid-configuration"]:
            return 200, {"issuer": "realms/" + self.realm.name,
                         "grant_types_supported": ["password", "client_credentials", "refresh_token"]}
        if method == "POST" and rest == ["protocol", "openid-connect", "token"]:
            return 200, self.realm.token(body)
        raise HttpError(404, "Unable to find matching target resource method")

    def admin(self, method, rest, query, body):
        realm = self.realm
        if rest[:1] == ["clients"]:
            return self.clients(method, rest[1:], query, body)
        if rest[:1] == ["groups"]:
            return self.groups(method, rest[1:], query, body)
        if rest[:1] == ["users"]:
            return self.users(method, rest[1:], query, body)
        if method == "GET" and rest == []:
            return 200, {"realm": realm.name, "enabled": True}
        raise HttpError(404, "Unable to find matching target resource method")

    def clients(self, method, rest, query, body):
        realm = self.realm
        if rest == []:
            if method == "GET":
                wanted = query.get("clientId")
                exact = query.get("search", "false") != "true"
                found = []
                for client in realm.clients.values():
                    if wanted is None or (client["clientId"] == wanted if exact
                                          else wanted.lower() in client["clientId"].lower()):
                        found.append(realm.client_view(client))
                return 200, realm.page(found, query)
            if method == "POST":
                if not body.get("clientId"):
                    raise HttpError(400, "clientId is required")
                if realm.client_by_client_id(body["clientId"]) is not None:
                    raise HttpError(409, "Client " + body["clientId"] + " already exists")
                client = realm.add_client(body)
                return 201, None, "clients/" + client["id"]
        client = realm.client(rest[0])
        rest = rest[1:]
        if rest == [] and method == "GET":
            return 200, realm.client_view(client)
        if rest == ["client-secret"]:
            if method == "POST":
                client["_secret"] = secrets.token_urlsafe(24)
            if method in ("GET", "POST"):
                return 200, {"type": "secret", "value": client["_secret"]}
        if rest == ["protocol-mappers", "models"]:
            if method == "GET":
                return 200, client["protocolMappers"]
            if method == "POST":
                stored = realm.add_mapper(client, body)
                return 201, None, "clients/" + client["id"] + "/protocol-mappers/models/" + stored["id"]
        if rest[:1] == ["roles"]:
            return self.roles(client, method, rest[1:], query, body)
        raise HttpError(404, "Unable to find matching target resource method")

    def roles(self, client, method, rest, query, body):
        realm = self.realm
        if rest == []:
            if method == "GET":
                brief = query.get("briefRepresentation", "true") != "false"
                roles = sorted(client["_roles"].values(), key=lambda role: role["name"])
                return 200, [realm.role_view(role, brief) for role in realm.page(roles, query)]
            if method == "POST":
                name = body.get("name")
                if not name:
                    raise HttpError(400, "role name is required")
                if name in realm.conflicts["roles"]:
                    realm.conflicts["roles"].discard(name)
                    self.create_role(client, name, "created by another session")
                if name in client["_roles"]:
                    raise HttpError(409, "Role with name " + name + " already exists")
                self.create_role(client, name, body.get("description", ""))
                return 201, None, "clients/" + client["id"] + "/roles/" + name
        name = rest[0]
        role = realm.role(client, name)
        rest = rest[1:]
        if rest == []:
            if method == "GET":
                return 200, realm.role_view(role)
            if method == "PUT":
                role["description"] = body.get("description", role["description"])
                return 204, None
            if method == "DELETE":
                realm.delete_role(client, name)
                return 204, None
        if rest == ["composites"]:
            if method == "GET":
                views = []
                for role_id in sorted(role["_composites"]):
                    _owner, member = realm.role_by_id(role_id)
                    if member is not None:
                        views.append(realm.role_view(member))
                return 200, views
            if method == "POST":
                role["_composites"].update(realm.resolve_roles(client, body))
                return 204, None
            if method == "DELETE":
                role["_composites"].difference_update(realm.resolve_roles(client, body))
                return 204, None
        raise HttpError(404, "Unable to find matching target resource method")

    def create_role(self, client, name, description):
        client["_roles"][name] = {"id": str(uuid.uuid4()), "name": name, "description": description,
                                  "containerId": client["id"], "_composites": set()}

    def groups(self, method, rest, query, body):
        realm = self.realm
        if rest == []:
            if method == "GET":
                search = query.get("search")
                brief = query.get("briefRepresentation", "true") != "false"
                found = [group for group in sorted(realm.groups.values(), key=lambda group: group["name"])
                         if not search or search.lower() in group["name"].lower()]
                return 200, [realm.group_view(group, brief) for group in realm.page(found, query)]
            if method == "POST":
                name = body.get("name")
                if not name:
                    raise HttpError(400, "group name is required")
                if name in realm.conflicts["groups"]:
                    realm.conflicts["groups"].discard(name)
                    self.create_group(name)
                if any(group["name"] == name for group in realm.groups.values()):
                    raise HttpError(409, "Top level group named '" + name + "' already exists.")
                group = self.create_group(name)
                return 201, None, "groups/" + group["id"]
        group = realm.group(rest[0])
        rest = rest[1:]
        if rest == []:
            if method == "GET":
                return 200, realm.group_view(group, brief=False)
            if method == "PUT":
                group["name"] = body.get("name", group["name"])
                group["path"] = "/" + group["name"]
                return 204, None
            if method == "DELETE":
                del realm.groups[group["id"]]
                for user in realm.users.values():
                    user["_groups"].discard(group["id"])
                return 204, None
        if rest == ["members"] and method == "GET":
            members = [{"id": user["id"], "username": user["username"]}
                       for user in sorted(realm.users.values(), key=lambda user: user["username"])
                       if group["id"] in user["_groups"]]
            return 200, realm.page(members, query)
        if rest[:2] == ["role-mappings", "clients"] and len(rest) == 3:
            client = realm.client(rest[2])
            mapped = group["_client_roles"].setdefault(client["id"], set())
            if method == "GET":
                roles = [role for role in client["_roles"].values() if role["id"] in mapped]
                return 200, [realm.role_view(role) for role in sorted(roles, key=lambda role: role["name"])]
            if method == "POST":
                mapped.update(realm.resolve_roles(client, body))
                return 204, None
            if method == "DELETE":
                mapped.difference_update(realm.resolve_roles(client, body))
                return 204, None
        raise HttpError(404, "Unable to find matching target resource method")

    def create_group(self, name):
        group_id = str(uuid.uuid4())
        group = {"id": group_id, "name": name, "path": "/" + name, "_client_roles": {}}
        self.realm.groups[group_id] = group
        return group

    def users(self, method, rest, query, body):
        realm = self.realm
        if rest == []:
            if method == "GET":
                wanted = query.get("username")
                found = [{"id": user["id"], "username": user["username"], "enabled": user["enabled"]}
                         for user in realm.users.values() if wanted is None or user["username"] == wanted]
                return 200, realm.page(found, query)
            if method == "POST":
                username = body.get("username")
                if not username:
                    raise HttpError(400, "username is required")
                if any(user["username"] == username for user in realm.users.values()):
                    raise HttpError(409, "User exists with same username")
                user_id = realm.add_user(username, None)
                return 201, None, "users/" + user_id
        user = realm.user(rest[0])
        rest = rest[1:]
        if rest == ["groups"] and method == "GET":
            return 200, [{"id": group_id, "name": realm.groups[group_id]["name"],
                          "path": realm.groups[group_id]["path"]}
                         for group_id in sorted(user["_groups"]) if group_id in realm.groups]
        if len(rest) == 2 and rest[0] == "groups":
            group = realm.group(rest[1])
            if method == "PUT":
                user["_groups"].add(group["id"])
                return 204, None
            if method == "DELETE":
                user["_groups"].discard(group["id"])
                return 204, None
        raise HttpError(404, "Unable to find matching target resource method")


class Handler(BaseHTTPRequestHandler):
    """Decode a request, pass it to Api or to the test hooks, encode the response."""

    server_version = "keycloak-emulator/1"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, a
    # client's delayed ACK then adds about 40 ms to every response.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by BaseHTTPRequestHandler
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_PUT(self):
        self.handle_request("PUT")

    def do_DELETE(self):
        self.handle_request("DELETE")

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            return {key: values[0] for key, values in parse_qs(raw.decode("utf-8")).items()}
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise HttpError(400, "invalid JSON body: %s" % exc) from None

    def handle_request(self, method):
        settings = self.server.settings
        realm = settings["realm"]
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        raw_path = split.path
        parts = [unquote(part) for part in raw_path.split("/") if part]

        if parts[:1] == ["_emulator"]:
            self.handle_hook(method, parts[1:])
            return

        prefix = settings["prefix"]
        status, payload, location = 404, {"error": "Unable to find matching target resource method"}, None
        is_token = parts[-3:] == ["protocol", "openid-connect", "token"]
        with realm.lock:
            try:
                if prefix:
                    if parts[:1] != [prefix]:
                        raise HttpError(404, "Unable to find matching target resource method")
                    parts = parts[1:]
                body = self.read_body()
                result = Api(realm).dispatch(method, parts, query, body, self.headers)
                status, payload = result[0], result[1]
                if len(result) > 2:
                    base = "http://%s/%sadmin/realms/%s/" % (self.headers.get("Host", "localhost"),
                                                             prefix + "/" if prefix else "", realm.name)
                    location = base + result[2]
            except HttpError as error:
                status = error.status
                payload = error.message if isinstance(error.message, dict) else {"errorMessage": error.message}
            except Exception:  # noqa: BLE001 - a bug in the emulator must not kill the connection silently
                LOG.exception("%s %s failed", method, raw_path)
                status, payload = 500, {"errorMessage": "internal emulator error"}
            realm.count(method, raw_path, is_token, status)
        self.send_json(status, payload, location)

    def handle_hook(self, method, rest):
        realm = self.server.settings["realm"]
        with realm.lock:
            body = self.read_body()
            if method == "GET" and rest == ["stats"]:
                self.send_json(200, realm.stats)
                return
            if method == "POST" and rest == ["reset-stats"]:
                realm.reset_stats()
            elif method == "POST" and rest == ["expire-tokens"]:
                if body.get("after_requests") is not None:
                    realm.expire_after_requests = int(body["after_requests"])
                else:
                    realm.expire_tokens()
            elif method == "POST" and rest == ["conflict-on-create"]:
                realm.conflicts["roles"].update(body.get("roles", []))
                realm.conflicts["groups"].update(body.get("groups", []))
            else:
                self.send_json(404, {"errorMessage": "unknown emulator hook"})
                return
        self.send_json(204, None)

    def send_json(self, status, payload, location=None):
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default 0)")
    parser.add_argument("--realm", default="MIP", help="name of the realm (default MIP)")
    parser.add_argument("--legacy-auth-path", action="store_true",
                        help="serve everything under /auth, as Keycloak 16 and older do")
    parser.add_argument("--admin-user", help="user allowed to log in with the password grant")
    parser.add_argument("--admin-password", default=os.environ.get("KC_EMULATOR_ADMIN_PASSWORD"),
                        help="password of --admin-user (default: $KC_EMULATOR_ADMIN_PASSWORD)")
    parser.add_argument("--admin-client-id", default="realm-management",
                        help="confidential client for the admin login (default realm-management)")
    parser.add_argument("--admin-client-secret", default=os.environ.get("KC_EMULATOR_ADMIN_CLIENT_SECRET"),
                        help="secret of --admin-client-id; also enables its service account "
                             "(default: $KC_EMULATOR_ADMIN_CLIENT_SECRET)")
    parser.add_argument("--token-lifetime", type=int, default=300, help="access token lifetime in seconds")
    parser.add_argument("--max-page-size", type=int, default=100,
                        help="largest number of items one list request returns (default 100)")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.admin_user and not args.admin_password:
        parser.error("--admin-user needs --admin-password or $KC_EMULATOR_ADMIN_PASSWORD")
    if not args.admin_client_secret:
        parser.error("--admin-client-secret or $KC_EMULATOR_ADMIN_CLIENT_SECRET is required")
    return args


def build_realm(args):
    realm = Realm(args.realm, args.token_lifetime, args.max_page_size)
    realm.add_client({"clientId": args.admin_client_id, "directAccessGrantsEnabled": bool(args.admin_user),
                      "serviceAccountsEnabled": True}, secret=args.admin_client_secret)
    if args.admin_user:
        realm.add_user(args.admin_user, args.admin_password)
    return realm


def stop_on_sigterm(signum, frame):
    """Turn SIGTERM into KeyboardInterrupt so that main() closes the socket and logs the stop."""
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.settings = {"realm": build_realm(args), "prefix": "auth" if args.legacy_auth_path else ""}
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as handle:
            handle.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    LOG.info("serving realm %s on http://%s:%d%s", args.realm, args.host, port,
             "/auth" if args.legacy_auth_path else "")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
