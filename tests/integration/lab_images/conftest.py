"""Fixtures that run the lab keystore and exareme stand-ins as processes on 127.0.0.1."""

import pytest

from lab_support import free_port, http, launch_keystore, launch_node


@pytest.fixture
def lab_processes():
    started = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def start_keystore(tmp_path, lab_processes):
    """Return a function that starts a keystore of the test's own."""

    def start(**extra_env):
        keystore = launch_keystore(tmp_path / "keystore.log", **extra_env)
        lab_processes.append(keystore.process)
        return keystore

    return start


@pytest.fixture(scope="module")
def shared_keystore(tmp_path_factory):
    """One keystore process per test module, because a process start took about half a second on the lab host."""
    keystore = launch_keystore(tmp_path_factory.mktemp("keystore") / "keystore.log", CONSUL_BIND_INTERFACE="lo")
    yield keystore
    keystore.process.stop()


@pytest.fixture
def keystore(shared_keystore):
    """Return the module's keystore, emptied."""
    status, body, _headers = http("DELETE", shared_keystore.url + "/v1/kv/?recurse")
    assert (status, body) == (200, b"true")
    assert shared_keystore.keys("") == []
    return shared_keystore


@pytest.fixture
def start_node(tmp_path, lab_processes):
    """Return a function that starts a node. Nodes of one test share the control port.

    Sharing it lets workers find the master's /check/worker, as they do on
    port 9092 in a federation.
    """
    control_port = free_port()

    def start(name, role, data_folder, consul_address, **extra_env):
        log_path = tmp_path / ("%s-%d.log" % (name, len(lab_processes)))
        process = launch_node(name, role, data_folder, consul_address, log_path, control_port, **extra_env)
        lab_processes.append(process)
        return process

    return start
