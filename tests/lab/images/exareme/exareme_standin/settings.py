"""Settings of the exareme stand-in, read from the container's environment.

The names without a LAB_ prefix are the ones exareme 24.5.1's bootstrap.sh and
its compose files use, with the same defaults. LAB_* names and NODE_IP exist
only in the stand-in, so that tests can run several nodes on 127.0.0.1.
"""

import re
import socket
from collections import namedtuple

# Node ids as the collection defines them: exareme rejects dashes and dots,
# Docker stack names must be lower case, and an underscore would be ambiguous
# in <stack>_<service>.
NODE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,39}$")

ROLES = ("master", "worker")

Settings = namedtuple(
    "Settings",
    [
        "node_name",
        "role",
        "keystore_url",
        "environment_type",
        "convert_csvs",
        "data_folder",
        "node_ip",
        "bind_address",
        "http_port",
        "control_port",
        "keystore_max_attempts",
        "master_ip_max_attempts",
        "retry_interval",
        "startup_check_max_attempts",
        "startup_check_interval",
        "health_check_timeout",
        "master_check_interval",
        "master_check_max_failures",
        "debug",
    ],
)


class SettingsError(Exception):
    """An environment variable is missing or invalid; the message names it."""


def _required(environ, name):
    value = environ.get(name, "")
    if not value:
        raise SettingsError("%s is unset: the compose file must set it." % name)
    return value


def _integer(environ, name, default, minimum):
    raw = environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError("%s=%r is invalid: expected an integer." % (name, raw))
    if value < minimum:
        raise SettingsError("%s=%r is invalid: expected at least %d." % (name, raw, minimum))
    return value


def _seconds(environ, name, default):
    raw = environ.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError("%s=%r is invalid: expected a number of seconds." % (name, raw))
    if value < 0:
        raise SettingsError("%s=%r is invalid: expected a number of seconds, 0 or more." % (name, raw))
    return value


def _port(environ, name, default):
    value = _integer(environ, name, default, 0)
    if value > 65535:
        raise SettingsError("%s=%d is invalid: expected a TCP port number up to 65535." % (name, value))
    return value


def _keystore_url(consul_url):
    """Return the keystore's base URL; CONSULURL is host:port, as curl accepts it."""
    if "://" in consul_url:
        return consul_url.rstrip("/")
    return "http://" + consul_url.rstrip("/")


def _node_ip(environ):
    """Return NODE_IP, or the address the container's hostname resolves to (`hostname -i`)."""
    if environ.get("NODE_IP"):
        return environ["NODE_IP"]
    hostname = socket.gethostname()
    try:
        return socket.gethostbyname(hostname)
    except OSError as error:
        raise SettingsError("NODE_IP is unset and hostname %r does not resolve: %s" % (hostname, error))


def load_settings(environ):
    """Return Settings from environ, or raise SettingsError naming the first missing or invalid variable."""
    node_name = _required(environ, "NODE_NAME")
    if not NODE_NAME_PATTERN.match(node_name):
        raise SettingsError(
            "NODE_NAME=%r is invalid: expected a node id matching %s." % (node_name, NODE_NAME_PATTERN.pattern)
        )

    role = _required(environ, "FEDERATION_ROLE")
    if role not in ROLES:
        raise SettingsError("FEDERATION_ROLE=%r is invalid: expected master or worker." % role)

    return Settings(
        node_name=node_name,
        role=role,
        keystore_url=_keystore_url(_required(environ, "CONSULURL")),
        environment_type=_required(environ, "ENVIRONMENT_TYPE"),
        convert_csvs=_required(environ, "CONVERT_CSVS"),
        data_folder=environ.get("DOCKER_DATA_FOLDER", "/root/exareme/data/"),
        node_ip=_node_ip(environ),
        bind_address=environ.get("LAB_BIND_ADDRESS", "0.0.0.0"),
        http_port=_port(environ, "LAB_HTTP_PORT", 9090),
        control_port=_port(environ, "LAB_CONTROL_PORT", 9092),
        keystore_max_attempts=_integer(environ, "CONSUL_CONNECTION_MAX_ATTEMPTS", 20, 1),
        master_ip_max_attempts=_integer(environ, "CONSUL_WAIT_FOR_MASTER_IP_MAX_ATTEMPTS", 20, 1),
        retry_interval=_seconds(environ, "LAB_RETRY_INTERVAL", 5),
        startup_check_max_attempts=_integer(environ, "EXAREME_NODE_STARTUP_HEALTH_CHECK_MAX_ATTEMPTS", 10, 1),
        startup_check_interval=_seconds(environ, "EXAREME_HEALTH_CHECK_AWAIT_TIME", 60),
        health_check_timeout=_seconds(environ, "EXAREME_NODE_HEALTH_CHECK_TIMEOUT", 60),
        master_check_interval=_seconds(environ, "LAB_MASTER_CHECK_INTERVAL", 5),
        master_check_max_failures=_integer(environ, "LAB_MASTER_CHECK_MAX_FAILURES", 5, 1),
        debug=environ.get("LOG_LEVEL", "INFO").upper() == "DEBUG",
    )
