"""Lab stand-in for the MIP portal backend.

Serves on port 8080:

- GET /services/health: whether the database named by PORTAL_DB_URL (as
  PORTAL_DB_USER) and the exareme at EXAREME_URL respond, with the settings
  that are not secret. The status is 200 when both respond, else 503.
- GET /services/datasets: the body of GET <EXAREME_URL>/mining/datasets,
  which maps node to pathology to dataset codes.
- GET /services/algorithms: the body of GET <EXAREME_URL>/mining/algorithms.json.

Secrets (PORTAL_DB_PASSWORD, KEYCLOAK_CLIENT_SECRET) are never returned or
logged; /services/health only says whether the client secret is set.
"""

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

LOG = logging.getLogger("portal-backend")
EXAREME_TIMEOUT_SECONDS = 10


def database_settings():
    """Return psycopg2 connection arguments from PORTAL_DB_URL and PORTAL_DB_SERVER."""
    url = os.environ.get("PORTAL_DB_URL", "jdbc:postgresql://portalbackend_db:5433/portal")
    parsed = urllib.parse.urlsplit(url[len("jdbc:"):] if url.startswith("jdbc:") else url)
    host, _separator, port = os.environ.get("PORTAL_DB_SERVER", parsed.netloc).partition(":")
    return {
        "host": host,
        "port": int(port or 5432),
        "dbname": parsed.path.lstrip("/") or "portal",
        "user": os.environ.get("PORTAL_DB_USER", "portal"),
        "password": os.environ.get("PORTAL_DB_PASSWORD", ""),
        "connect_timeout": 5,
    }


def check_database():
    settings = database_settings()
    try:
        with psycopg2.connect(**settings) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            database, user = cursor.fetchone()
        connection.close()
    except psycopg2.Error as error:
        LOG.warning("database %s:%s/%s not reachable: %s", settings["host"], settings["port"],
                    settings["dbname"], str(error).strip())
        return {"status": "DOWN", "error": str(error).strip()}
    return {"status": "UP", "database": database, "user": user}


def fetch_exareme(path):
    """Return (HTTP status, parsed JSON or error text) for GET <EXAREME_URL><path>."""
    url = os.environ.get("EXAREME_URL", "").rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=EXAREME_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        LOG.warning("exareme %s returned HTTP %d", url, error.code)
        return error.code, "exareme returned HTTP %d for %s" % (error.code, url)
    except (urllib.error.URLError, OSError, ValueError) as error:
        LOG.warning("exareme %s not reachable: %s", url, error)
        return 502, "exareme not reachable at %s: %s" % (url, error)


def health():
    database = check_database()
    exareme_status, algorithms = fetch_exareme("/mining/algorithms.json")
    exareme = {"status": "UP" if exareme_status == 200 else "DOWN", "url": os.environ.get("EXAREME_URL")}
    if exareme_status != 200:
        exareme["error"] = algorithms
    return {
        "status": "UP" if database["status"] == exareme["status"] == "UP" else "DOWN",
        "database": database,
        "exareme": exareme,
        "authentication": os.environ.get("AUTHENTICATION"),
        "keycloak": {
            "auth_url": os.environ.get("KEYCLOAK_AUTH_URL"),
            "realm": os.environ.get("KEYCLOAK_REALM"),
            "client_id": os.environ.get("KEYCLOAK_CLIENT_ID"),
            "client_secret_set": bool(os.environ.get("KEYCLOAK_CLIENT_SECRET")),
            "ssl_required": os.environ.get("KEYCLOAK_SSL_REQUIRED"),
        },
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "mip-lab-portal-backend"

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/services/health":
            body = health()
            self.send_json(200 if body["status"] == "UP" else 503, body)
        elif path == "/services/datasets":
            self.send_json(*fetch_exareme("/mining/datasets"))
        elif path == "/services/algorithms":
            self.send_json(*fetch_exareme("/mining/algorithms.json"))
        else:
            self.send_json(404, {"error": "not found: %s" % path})

    def send_json(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        LOG.info("%s %s", self.address_string(), format % args)


def main():
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = ThreadingHTTPServer(("", 8080), Handler)
    LOG.info("listening on :8080; exareme at %s", os.environ.get("EXAREME_URL"))
    server.serve_forever()


if __name__ == "__main__":
    main()
