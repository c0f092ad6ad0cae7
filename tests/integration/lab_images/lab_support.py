"""Helpers for the lab image tests: HTTP on loopback, stand-in processes and tiny data folders."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import ProxyHandler, Request, build_opener

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "lab" / "images"
KEYSTORE_SCRIPT = IMAGES / "keystore" / "keystore.py"
EXAREME_PATH = IMAGES / "exareme"

# Test traffic goes to 127.0.0.1 only, whatever proxy the environment names.
OPENER = build_opener(ProxyHandler({}))

# Retry settings that keep every bounded wait under a second.
FAST_RETRIES = {
    "LAB_RETRY_INTERVAL": "0.1",
    "EXAREME_HEALTH_CHECK_AWAIT_TIME": "0.1",
    "EXAREME_NODE_HEALTH_CHECK_TIMEOUT": "2",
    "LAB_MASTER_CHECK_INTERVAL": "0.1",
    "LAB_MASTER_CHECK_MAX_FAILURES": "2",
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method, url, body=None, timeout=5):
    """Send a request and return (status, body bytes, headers). HTTP errors are returned, not raised."""
    request = Request(url, data=body, method=method)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except HTTPError as error:
        return error.code, error.read(), error.headers


def http_json(method, url, body=None):
    status, payload, _headers = http(method, url, body)
    return status, json.loads(payload.decode("utf-8"))


def wait_until(condition, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    return condition()


class LabProcess:
    """A stand-in process whose output goes to a log file."""

    def __init__(self, name, command, env, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self):
        return self.log_path.read_text(encoding="utf-8")

    def wait(self, timeout):
        """Return the exit status, or fail the test with the log when the process is still running."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("%s still running after %s s; log:\n%s" % (self.name, timeout, self.log()))

    def stop(self):
        """Send SIGTERM, wait up to 5 s (then kill) and return the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


class Keystore:
    """A running keystore stand-in and helpers for its KV API."""

    def __init__(self, process, port):
        self.process = process
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.address = "127.0.0.1:%d" % port

    def put(self, key, value):
        status, body, _headers = http("PUT", "%s/v1/kv/%s" % (self.url, key), value.encode("utf-8"))
        assert (status, body) == (200, b"true")

    def raw(self, key):
        """Return the value of key as text, or None when it is missing."""
        status, body, _headers = http("GET", "%s/v1/kv/%s?raw" % (self.url, key))
        if status == 404:
            return None
        assert status == 200
        return body.decode("utf-8")

    def keys(self, prefix):
        status, body, _headers = http("GET", "%s/v1/kv/%s?keys" % (self.url, prefix))
        return [] if status == 404 else json.loads(body.decode("utf-8"))


def responds_ok(url):
    try:
        return http("GET", url, timeout=1)[0] == 200
    except OSError:
        return False


def wait_for_registration(keystore, node):
    """Wait until node has registered under active_workers/, failing with its log otherwise."""
    key = "active_workers/" + node.name
    registered = wait_until(lambda: keystore.raw(key) is not None or node.process.poll() is not None)
    assert registered and keystore.raw(key) is not None, "%s did not register; log:\n%s" % (node.name, node.log())


def write_cde(folder, pathology, datasets):
    """Write a minimal CDEsMetadata.json with only the dataset variable."""
    cde = {
        "code": pathology,
        "label": pathology.title(),
        "version": "lab",
        "variables": [
            {
                "code": "dataset",
                "label": "Dataset",
                "sql_type": "text",
                "isCategorical": True,
                "type": "nominal",
                "enumerations": [{"code": code, "label": code.upper()} for code in datasets],
            }
        ],
    }
    (folder / "CDEsMetadata.json").write_text(json.dumps(cde, indent=2), encoding="utf-8")


def write_database(folder, datasets):
    """Write datasets.db with METADATA and a DATA table holding one row per dataset code given."""
    connection = sqlite3.connect(str(folder / "datasets.db"))
    try:
        connection.execute(
            "CREATE TABLE METADATA (code TEXT PRIMARY KEY, label TEXT, sql_type TEXT, "
            "isCategorical INTEGER, enumerations TEXT, min REAL, max REAL)"
        )
        connection.execute("INSERT INTO METADATA VALUES ('dataset', 'Dataset', 'text', 1, ?, NULL, NULL)", (",".join(sorted(set(datasets))),))
        connection.execute("CREATE TABLE DATA (subjectcode TEXT, dataset TEXT)")
        connection.executemany(
            "INSERT INTO DATA VALUES (?, ?)", [("s%d" % index, code) for index, code in enumerate(datasets)]
        )
        connection.commit()
    finally:
        connection.close()


def make_pathology(data_folder, pathology, csv_files=None, database=None):
    """Create data_folder/pathology with a CDE, the given CSV texts and optionally a datasets.db."""
    folder = data_folder / pathology
    folder.mkdir(parents=True)
    csv_files = csv_files or {}
    write_cde(folder, pathology, database or ["edsd"])
    for file_name, text in csv_files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    if database is not None:
        write_database(folder, database)
    return folder


def launch_keystore(log_path, **extra_env):
    """Start a keystore on a free loopback port, wait until it responds and return it."""
    port = free_port()
    env = dict(os.environ, CONSUL_CLIENT_LAN_ADDRESS="127.0.0.1", CONSUL_HTTP_PORT_NUMBER=str(port))
    env.update(extra_env)
    process = LabProcess("keystore", [sys.executable, "-u", str(KEYSTORE_SCRIPT)], env, log_path)

    keystore = Keystore(process, port)
    answered = wait_until(lambda: responds_ok(keystore.url + "/v1/status/leader") or process.process.poll() is not None)
    if not answered or process.process.poll() is not None:
        process.stop()
        pytest.fail("keystore did not start; log:\n" + process.log())
    return keystore


def launch_node(name, role, data_folder, consul_address, log_path, control_port, **extra_env):
    """Start an exareme stand-in node on 127.0.0.1 with a free gateway port and return its LabProcess.

    An extra_env value of None removes that variable.
    """
    http_port = free_port()
    env = dict(os.environ)
    env.update(FAST_RETRIES)
    env.update(
        NODE_NAME=name,
        FEDERATION_ROLE=role,
        CONSULURL=consul_address,
        ENVIRONMENT_TYPE="PROD",
        CONVERT_CSVS="FALSE",
        DOCKER_DATA_FOLDER=str(data_folder),
        NODE_IP="127.0.0.1",
        LAB_BIND_ADDRESS="127.0.0.1",
        LAB_HTTP_PORT=str(http_port),
        LAB_CONTROL_PORT=str(control_port),
        PYTHONPATH=str(EXAREME_PATH),
    )
    for variable, value in extra_env.items():
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value

    process = LabProcess(name, [sys.executable, "-u", "-m", "exareme_standin"], env, log_path)
    process.http_port = http_port
    process.http_url = "http://127.0.0.1:%d" % http_port
    process.control_url = "http://127.0.0.1:%d" % control_port
    return process
