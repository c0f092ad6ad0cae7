"""Start-up sequence of the exareme stand-in, in the order of exareme 24.5.1's bootstrap.sh.

1. Wait for the keystore (/v1/health/state/passing), a bounded number of tries.
2. Publish data/<NODE_NAME>/<pathology> for each pathology in the data folder.
3. Master: serve the gateway and control ports, then register
   master/<NODE_NAME> and active_workers/<NODE_NAME> with this node's IP.
   Worker: read the master's IP from master/ (bounded), serve its health port,
   pass the master's start-up check (ENVIRONMENT_TYPE=PROD only), register
   active_workers/<NODE_NAME>, then probe the master every few seconds.

Every failure that the real container exits on makes this one exit with
status 1, so that Swarm restarts it. Datasets are published at start only.
"""

import json
import logging
import os
import signal
import sys
import threading
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, build_opener

from .datasets import discover_local_datasets
from .keystore import ACTIVE_WORKERS_PREFIX, DATA_PREFIX, MASTER_PREFIX, KeystoreClient, KeystoreError
from .servers import MasterControlHandler, MasterGatewayHandler, WorkerHandler, start_server
from .settings import SettingsError, load_settings

LOG = logging.getLogger("exareme")

# Calls to the master stay on the federation network: proxy variables are ignored.
_OPENER = build_opener(ProxyHandler({}))

# Timeout of one master reachability probe, as `ping -W 2` in bootstrap.sh.
MASTER_PROBE_TIMEOUT = 2.0


def wait_for_keystore(settings, keystore, stop):
    """Return True once the keystore reports a passing check, False after the last try."""
    attempts = settings.keystore_max_attempts
    for attempt in range(1, attempts + 1):
        try:
            if keystore.is_passing():
                LOG.info("Keystore at %s is passing", settings.keystore_url)
                return True
            reason = "no passing check"
        except KeystoreError as error:
            reason = str(error)

        if attempt == attempts:
            break
        LOG.info(
            "Keystore at %s not ready (try %d of %d): %s; retrying in %g s",
            settings.keystore_url, attempt, attempts, reason, settings.retry_interval,
        )
        if stop.wait(settings.retry_interval):
            return False

    LOG.error(
        "Keystore at %s did not answer after %d tries (last error: %s); exiting so that Swarm restarts the node",
        settings.keystore_url, attempts, reason,
    )
    return False


def publish_datasets(settings, keystore):
    """Publish data/<node>/<pathology> = JSON list of dataset codes for each local pathology."""
    published = discover_local_datasets(settings.data_folder)
    for pathology, codes, source in published:
        key = "%s%s/%s" % (DATA_PREFIX, settings.node_name, pathology)
        keystore.put(key, json.dumps(codes, separators=(",", ":")))
        LOG.info("Published %s = %s (from %s)", key, json.dumps(codes), source)
    LOG.info("Published the datasets of %d pathologies from %s", len(published), settings.data_folder)


def register(settings, keystore, prefix):
    key = prefix + settings.node_name
    keystore.put(key, settings.node_ip)
    LOG.info("Registered %s = %s", key, settings.node_ip)


def wait_for_master_ip(settings, keystore, stop):
    """Return the master's IP from master/<name>, or None after the last try."""
    attempts = settings.master_ip_max_attempts
    for attempt in range(1, attempts + 1):
        try:
            keys = keystore.list_keys(MASTER_PREFIX)
            if keys:
                if len(keys) > 1:
                    LOG.warning("Several masters are registered (%s); using %s", ", ".join(keys), keys[0])
                master_ip = (keystore.get_raw(keys[0]) or "").strip()
                if master_ip:
                    LOG.info("Master %s is at %s", keys[0][len(MASTER_PREFIX):], master_ip)
                    return master_ip
            reason = "no key under %s" % MASTER_PREFIX
        except KeystoreError as error:
            reason = str(error)

        if attempt == attempts:
            break
        LOG.info("Master not registered yet (try %d of %d): %s; retrying in %g s", attempt, attempts, reason, settings.retry_interval)
        if stop.wait(settings.retry_interval):
            return None

    LOG.error("No master registered in the keystore after %d tries (%s); exiting", attempts, reason)
    return None


def check_in_with_master(settings, master_ip, stop):
    """Return True once the master's /check/worker lists this node (ENVIRONMENT_TYPE=PROD only)."""
    if settings.environment_type != "PROD":
        LOG.info("Skipping the start-up check with the master: ENVIRONMENT_TYPE=%s, not PROD", settings.environment_type)
        return True

    query = urlencode({"NODE_IP": settings.node_ip, "NODE_NAME": settings.node_name, "NODE_PORT": settings.http_port})
    url = "http://%s:%d/check/worker?%s" % (master_ip, settings.control_port, query)
    attempts = settings.startup_check_max_attempts
    for attempt in range(1, attempts + 1):
        try:
            with _OPENER.open(url, timeout=settings.health_check_timeout) as response:
                active_nodes = json.loads(response.read().decode("utf-8")).get("active_nodes", [])
            if settings.node_name in active_nodes:
                LOG.info("Start-up check passed: the master at %s reached this node", master_ip)
                return True
            reason = "the master did not reach this node (active_nodes: %s)" % active_nodes
        except (URLError, OSError, ValueError, AttributeError) as error:
            reason = "%s failed: %s" % (url, error)

        if attempt == attempts:
            break
        LOG.info(
            "Start-up check failed (try %d of %d): %s; retrying in %g s",
            attempt, attempts, reason, settings.startup_check_interval,
        )
        if stop.wait(settings.startup_check_interval):
            return False

    LOG.error("Start-up check with the master failed after %d tries: %s; exiting", attempts, reason)
    return False


def watch_master(settings, master_ip, stop):
    """Probe the master until stop is set. Return False after too many failed probes in a row.

    exareme pings the master every 5 s and exits when it is unreachable. The
    stand-in probes the master's /health over HTTP instead of ICMP, and any
    HTTP status counts as reachable: a master that reports its keystore down
    is still up.
    """
    url = "http://%s:%d/health" % (master_ip, settings.control_port)
    failures = 0
    while not stop.wait(settings.master_check_interval):
        try:
            with _OPENER.open(url, timeout=MASTER_PROBE_TIMEOUT) as response:
                response.read()
            failures = 0
            continue
        except HTTPError as error:
            LOG.debug("Master probe %s returned HTTP %d; the master is reachable", url, error.code)
            failures = 0
            continue
        except (URLError, OSError) as error:
            failures += 1
            LOG.warning("Master probe %s failed (%d of %d in a row): %s", url, failures, settings.master_check_max_failures, error)
        if failures >= settings.master_check_max_failures:
            LOG.error("Master at %s is unreachable; exiting so that Swarm restarts the node", master_ip)
            return False
    return True


def run_master(settings, keystore, stop):
    gateway = start_server(settings, keystore, settings.http_port, MasterGatewayHandler, "gateway")
    control = start_server(settings, keystore, settings.control_port, MasterControlHandler, "control port")
    try:
        register(settings, keystore, MASTER_PREFIX)
        register(settings, keystore, ACTIVE_WORKERS_PREFIX)
        LOG.info("Master %s is ready", settings.node_name)
        stop.wait()
    finally:
        gateway.shutdown()
        control.shutdown()
    return 0


def run_worker(settings, keystore, stop):
    master_ip = wait_for_master_ip(settings, keystore, stop)
    if master_ip is None:
        return 0 if stop.is_set() else 1

    server = start_server(settings, keystore, settings.http_port, WorkerHandler, "health port")
    try:
        if not check_in_with_master(settings, master_ip, stop):
            return 0 if stop.is_set() else 1
        register(settings, keystore, ACTIVE_WORKERS_PREFIX)
        LOG.info("Worker %s is ready", settings.node_name)
        return 0 if watch_master(settings, master_ip, stop) else 1
    finally:
        server.shutdown()


def configure_logging(environ):
    level = logging.DEBUG if environ.get("LOG_LEVEL", "INFO").upper() == "DEBUG" else logging.INFO
    logging.basicConfig(stream=sys.stdout, level=level, format="%(asctime)s %(levelname)s %(message)s")


def main(environ=None):
    """Run the node until SIGTERM or a fatal error and return the exit status."""
    environ = os.environ if environ is None else environ
    configure_logging(environ)
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        LOG.error("Invalid environment: %s", error)
        return 1

    LOG.info(
        "Starting the exareme stand-in: node %s, role %s, IP %s, keystore %s, data folder %s",
        settings.node_name, settings.role, settings.node_ip, settings.keystore_url, settings.data_folder,
    )
    stop = threading.Event()

    # PID 1 in a container ignores SIGTERM unless a handler is installed.
    def request_stop(signum, _frame):
        LOG.info("Stopping on signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    keystore = KeystoreClient(settings.keystore_url)
    if not wait_for_keystore(settings, keystore, stop):
        return 0 if stop.is_set() else 1

    if settings.convert_csvs.upper() == "TRUE":
        LOG.warning("CONVERT_CSVS=TRUE: the stand-in converts no CSVs; it reads them directly where no datasets.db exists")
    else:
        LOG.info("CSV conversion is off (CONVERT_CSVS=%s)", settings.convert_csvs)

    try:
        publish_datasets(settings, keystore)
        if settings.role == "master":
            status = run_master(settings, keystore, stop)
        else:
            status = run_worker(settings, keystore, stop)
    except KeystoreError as error:
        LOG.error("Keystore write failed: %s; exiting", error)
        return 1
    except OSError as error:
        LOG.error("Cannot serve HTTP on %s: %s; exiting", settings.bind_address, error)
        return 1

    LOG.info("Stopped with status %d", status)
    return status
