# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Call the KeyCloak Admin REST API through python-keycloak's raw request helpers.

The adapter uses the connection's raw_get, raw_post, raw_put and raw_delete,
which python-keycloak 5.x and 7.x share. It adds paging, one retry after a
401 with a fresh login, and request counters, and it leaves HTTP 409 to the
caller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported on managed nodes
    from urllib import quote

try:
    import keycloak
    from keycloak import KeycloakOpenIDConnection
    from keycloak.connection import ConnectionManager
    from keycloak.exceptions import KeycloakError
    KEYCLOAK_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the node
    keycloak = None
    KeycloakOpenIDConnection = None
    ConnectionManager = None
    KeycloakError = Exception
    KEYCLOAK_IMPORT_ERROR = exc

# KeycloakOpenIDConnection takes grant_type since python-keycloak 5.0, which
# needs Python 3.9. Debian 13 ships 5.3, PyPI has 7.x.
MIN_KEYCLOAK_VERSION = (5, 0)


class KeycloakApiError(Exception):
    """A request to KeyCloak failed: connection, login or an unexpected HTTP status."""

    def __init__(self, message, status=None):
        super(KeycloakApiError, self).__init__(message)
        self.status = status


def keycloak_version():
    """Return the installed python-keycloak version as a tuple of ints, or None."""
    if keycloak is None:
        return None
    text = getattr(keycloak, "__version__", None)
    if text is None:
        try:
            from keycloak import _version
            text = _version.__version__
        except (ImportError, AttributeError):
            return None
    numbers = []
    for part in str(text).split("."):
        digits = "".join(char for char in part if char.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def check_keycloak_library():
    """Return an error message when python-keycloak is missing or too old, else None."""
    if KEYCLOAK_IMPORT_ERROR is not None or KeycloakOpenIDConnection is None:
        return "python-keycloak >= %d.%d is required on the node that runs this module: %s" % (
            MIN_KEYCLOAK_VERSION + (KEYCLOAK_IMPORT_ERROR,))
    version = keycloak_version()
    if version is not None and version < MIN_KEYCLOAK_VERSION:
        return "python-keycloak >= %d.%d is required; found %s" % (
            MIN_KEYCLOAK_VERSION + (".".join(str(number) for number in version),))
    return None


def path(*segments):
    """Join path segments, percent-encoding each one (a role name may contain '/', ' ' or '%')."""
    return "/".join(quote(str(segment), safe="") for segment in segments)


def _body_text(response):
    text = response.text or ""
    return text if len(text) <= 300 else text[:300] + "..."


class AdminApi:
    """Admin REST API of one realm, reached through a logged-in python-keycloak connection."""

    def __init__(self, connection, realm, base_url):
        self.connection = connection
        self.realm = realm
        self.base_url = base_url
        self.requests = {"GET": 0, "POST": 0, "PUT": 0, "DELETE": 0}
        self.relogins = 0

    def admin_path(self, *segments):
        return path("admin", "realms", self.realm, *segments)

    def _send(self, method, relative, data=None, params=None):
        params = params or {}
        payload = None if data is None else json.dumps(data)
        for attempt in (1, 2):
            self.requests[method] += 1
            try:
                if method == "GET":
                    response = self.connection.raw_get(relative, **params)
                elif method == "POST":
                    response = self.connection.raw_post(relative, data=payload, **params)
                elif method == "PUT":
                    response = self.connection.raw_put(relative, data=payload, **params)
                else:
                    response = self.connection.raw_delete(relative, data=payload, **params)
            except KeycloakError as exc:
                raise KeycloakApiError("%s %s%s failed: %s" % (method, self.base_url, relative, exc))
            if response.status_code != 401 or attempt == 2:
                return response
            # The token expired or was revoked during the sync: log in again once.
            self.relogins += 1
            login(self.connection, self.base_url)
        return response  # pragma: no cover - the loop always returns

    def request(self, method, segments, data=None, params=None, accept=(200, 201, 204)):
        """Send a request to admin/realms/<realm>/<segments> and return the response.

        Raise KeycloakApiError unless the status is in accept.
        """
        relative = self.admin_path(*segments)
        response = self._send(method, relative, data=data, params=params)
        if response.status_code not in accept:
            raise KeycloakApiError("%s %s%s returned HTTP %d: %s" % (
                method, self.base_url, relative, response.status_code, _body_text(response)),
                status=response.status_code)
        return response

    def get(self, segments, params=None):
        response = self.request("GET", segments, params=params)
        try:
            return response.json()
        except ValueError:
            raise KeycloakApiError("GET %s%s returned a body that is not JSON: %s" % (
                self.base_url, self.admin_path(*segments), _body_text(response)))

    def list_all(self, segments, page_size, params=None):
        """GET every item of a list endpoint, page by page.

        A server may cap max below page_size, so a short page does not mean
        the end: only an empty page does. A page made only of items already
        seen means that the server ignores first, and raises KeycloakApiError.
        """
        items = []
        seen = set()
        first = 0
        while True:
            query = dict(params or {})
            query["first"] = first
            query["max"] = page_size
            page = self.get(segments, params=query)
            if not isinstance(page, list):
                raise KeycloakApiError("GET %s%s returned %s, expected a JSON list" % (
                    self.base_url, self.admin_path(*segments), type(page).__name__))
            if not page:
                return items
            ids = [item.get("id") for item in page if isinstance(item, dict)]
            if ids and all(item_id in seen for item_id in ids):
                raise KeycloakApiError("GET %s%s ignores the first parameter: paging is impossible" % (
                    self.base_url, self.admin_path(*segments)))
            seen.update(ids)
            items.extend(page)
            first += len(page)


def login(connection, base_url):
    """Fetch a new token for the connection; raise KeycloakApiError on failure."""
    try:
        connection.get_token()
    except KeycloakError as exc:
        raise KeycloakApiError("login at %s failed: %s" % (base_url, exc),
                               status=getattr(exc, "response_code", None))
    if not connection.token:
        raise KeycloakApiError("login at %s failed: no token returned" % base_url)


def _realm_exists(base_url, realm, validate_certs, timeout):
    # A plain ConnectionManager, because KeycloakOpenIDConnection logs in
    # before its first request, which fails at a wrong base URL.
    probe = ConnectionManager(base_url=base_url, headers={}, timeout=timeout, verify=validate_certs)
    try:
        response = probe.raw_get(path("realms", realm, ".well-known", "openid-configuration"))
    except KeycloakError as exc:
        raise KeycloakApiError("cannot reach %s: %s" % (base_url, exc))
    return response.status_code == 200


def connect(server_url, realm, auth_realm, client_id, client_secret=None, username=None, password=None,
            validate_certs=True, timeout=30, detect_auth_path=True):
    """Log in and return an AdminApi for realm.

    Keycloak 16 and older serve everything under /auth, Keycloak 17 and newer
    at the root. When detect_auth_path is true and auth_realm is not found at
    server_url, the same URL with /auth appended is tried.
    """
    base = server_url.rstrip("/") + "/"
    candidates = [base]
    if detect_auth_path and not base.endswith("/auth/"):
        candidates.append(base + "auth/")
    if username:
        grant_type = "password"
    elif client_secret:
        grant_type = "client_credentials"
    else:
        raise KeycloakApiError("no credentials: set auth_username and auth_password, "
                               "or auth_client_secret for a service account")

    for candidate in candidates:
        if not _realm_exists(candidate, auth_realm, validate_certs, timeout):
            continue
        connection = KeycloakOpenIDConnection(
            server_url=candidate, grant_type=grant_type, username=username, password=password,
            realm_name=auth_realm, client_id=client_id, client_secret_key=client_secret,
            verify=validate_certs, timeout=timeout)
        login(connection, candidate)
        return AdminApi(connection, realm, candidate)
    raise KeycloakApiError("realm %s not found at %s" % (auth_realm, " nor at ".join(candidates)))
