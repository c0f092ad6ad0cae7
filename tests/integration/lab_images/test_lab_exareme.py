"""The exareme stand-in starts, registers and publishes as exareme 24.5.1 does, and serves its HTTP API."""

import json
import time
from types import SimpleNamespace

import pytest

from lab_support import (
    free_port,
    http,
    http_json,
    launch_keystore,
    launch_node,
    make_pathology,
    wait_for_registration,
    wait_until,
)

# Dataset codes in order of first appearance; blank values and other columns are ignored.
WK10_DEMENTIA_CSV = {
    "a.csv": '\ufeff"subjectcode","dataset","age"\n"s1","desd-synthdata","70"\n"s2","desd-synthdata","71"\n',
    "b.csv": "subjectcode,age,dataset\ns3,60,fake_longitudinal\ns4,61,\ns5,62,desd-synthdata\n",
}


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """A keystore, master ms and workers wk1 and wk10, started once for the read-only tests."""
    root = tmp_path_factory.mktemp("federation")

    ms_data = root / "ms"
    make_pathology(ms_data, "dementia")
    make_pathology(ms_data, "tbi", database=[])

    wk1_data = root / "wk1"
    make_pathology(
        wk1_data,
        "dementia",
        csv_files={"edsd.csv": "subjectcode,dataset\ns1,not_from_the_database\n"},
        database=["edsd", "edsd", "ppmi"],
    )

    wk10_data = root / "wk10"
    make_pathology(wk10_data, "dementia", csv_files=WK10_DEMENTIA_CSV)
    make_pathology(
        wk10_data,
        "tbi",
        csv_files={"codes.csv": "subjectcode,gcs\ns1,3\n", "dummy_tbi.csv": "subjectcode,dataset\ns1,dummy_tbi\n"},
    )
    make_pathology(wk10_data, "mentalhealth")

    keystore = launch_keystore(root / "keystore.log")
    control_port = free_port()
    nodes = {}
    try:
        nodes["ms"] = launch_node("ms", "master", ms_data, keystore.address, root / "ms.log", control_port)
        wait_for_registration(keystore, nodes["ms"])
        for name, data in (("wk1", wk1_data), ("wk10", wk10_data)):
            nodes[name] = launch_node(name, "worker", data, keystore.address, root / (name + ".log"), control_port)
        for name in ("wk1", "wk10"):
            wait_for_registration(keystore, nodes[name])
        yield SimpleNamespace(keystore=keystore, **nodes)
    finally:
        for node in nodes.values():
            node.stop()
        keystore.process.stop()


# --- keystore keys -----------------------------------------------------------


def test_master_registers_master_and_active_worker(federation):
    assert federation.keystore.raw("master/ms") == "127.0.0.1"
    assert federation.keystore.raw("active_workers/ms") == "127.0.0.1"


def test_workers_register_as_active_workers(federation):
    assert federation.keystore.raw("active_workers/wk1") == "127.0.0.1"
    assert federation.keystore.raw("active_workers/wk10") == "127.0.0.1"
    assert federation.keystore.keys("master/") == ["master/ms"]


def test_worker_publishes_database_datasets(federation):
    assert federation.keystore.raw("data/wk1/dementia") == '["edsd","ppmi"]'
    assert "from datasets.db" in federation.wk1.log()


def test_worker_falls_back_to_csv_column(federation):
    assert federation.keystore.raw("data/wk10/dementia") == '["desd-synthdata","fake_longitudinal"]'


def test_csv_without_dataset_column_is_skipped(federation):
    assert federation.keystore.raw("data/wk10/tbi") == '["dummy_tbi"]'
    assert "codes.csv has no dataset column" in federation.wk10.log()


def test_pathology_without_data_is_not_published(federation):
    assert federation.keystore.raw("data/wk10/mentalhealth") is None
    assert federation.keystore.raw("data/ms/dementia") is None


def test_master_publishes_empty_database(federation):
    assert federation.keystore.raw("data/ms/tbi") == "[]"


def test_worker_logs_steps_in_start_up_order(federation):
    log = federation.wk1.log()
    steps = [
        "Keystore at http://127.0.0.1:%d is passing" % federation.keystore.port,
        "Published data/wk1/dementia",
        "Master ms is at 127.0.0.1",
        "Start-up check passed",
        "Registered active_workers/wk1 = 127.0.0.1",
        "Worker wk1 is ready",
    ]
    positions = [log.find(step) for step in steps]
    assert -1 not in positions, log
    assert positions == sorted(positions), log


# --- master HTTP API ---------------------------------------------------------


def test_datasets_endpoint_separates_similar_nodes(federation):
    status, datasets = http_json("GET", federation.ms.http_url + "/mining/datasets")
    assert status == 200
    assert datasets == {
        "ms": {"tbi": []},
        "wk1": {"dementia": ["edsd", "ppmi"]},
        "wk10": {"dementia": ["desd-synthdata", "fake_longitudinal"], "tbi": ["dummy_tbi"]},
    }


def test_list_dataset_query_matches_datasets_endpoint(federation):
    status, listed = http_json("POST", federation.ms.http_url + "/mining/query/LIST_DATASET", b"[]")
    assert status == 200
    _status, datasets = http_json("GET", federation.ms.http_url + "/mining/datasets")
    assert listed == datasets


def test_algorithms_json_has_exareme_shape(federation):
    status, algorithms = http_json("GET", federation.ms.http_url + "/mining/algorithms.json")
    assert status == 200
    assert isinstance(algorithms, list)
    names = [algorithm["name"] for algorithm in algorithms]
    assert "LIST_DATASET" in names
    assert "HEALTH_CHECK" in names
    for algorithm in algorithms:
        assert set(algorithm) == {"name", "desc", "label", "type", "parameters"}
        for parameter in algorithm["parameters"]:
            assert {"name", "label", "desc", "type", "value", "valueNotBlank", "valueMultiple", "valueType"} <= set(parameter)


def test_health_check_query_lists_active_nodes(federation):
    status, answer = http_json("POST", federation.ms.http_url + "/mining/query/HEALTH_CHECK", b"")
    assert status == 200
    assert answer == {"active_nodes": ["ms", "wk1", "wk10"]}


def test_listed_algorithm_returns_not_implemented(federation):
    status, answer = http_json("POST", federation.ms.http_url + "/mining/query/DESCRIPTIVE_STATS", b"[]")
    assert status == 501
    assert answer["result"][0]["type"] == "text/plain+error"
    assert "runs no analyses" in answer["result"][0]["data"]


def test_unknown_algorithm_is_rejected(federation):
    status, answer = http_json("POST", federation.ms.http_url + "/mining/query/NO_SUCH_ALGORITHM", b"[]")
    assert status == 400
    assert answer["result"][0]["type"] == "text/plain+user_error"


def test_query_requires_post(federation):
    status, _body, _headers = http("GET", federation.ms.http_url + "/mining/query/LIST_DATASET")
    assert status == 405


def test_master_health_reports_keystore(federation):
    status, health = http_json("GET", federation.ms.http_url + "/health")
    assert status == 200
    assert health == {"node": "ms", "role": "master", "status": "ok", "keystore": "passing"}


def test_worker_health_names_node(federation):
    status, health = http_json("GET", federation.wk10.http_url + "/health")
    assert status == 200
    assert health == {"node": "wk10", "role": "worker", "status": "ok"}


def test_check_worker_calls_worker_back(federation):
    query = "NODE_IP=127.0.0.1&NODE_NAME=wk1&NODE_PORT=%d" % federation.wk1.http_port
    status, answer = http_json("GET", federation.ms.control_url + "/check/worker?" + query)
    assert status == 200
    assert answer == {"active_nodes": ["ms", "wk1"]}


def test_check_worker_leaves_out_wrong_node(federation):
    # wk10's port reports node wk10, so a check for wk1 there must fail.
    query = "NODE_IP=127.0.0.1&NODE_NAME=wk1&NODE_PORT=%d" % federation.wk10.http_port
    status, answer = http_json("GET", federation.ms.control_url + "/check/worker?" + query)
    assert status == 200
    assert answer == {"active_nodes": ["ms"]}


# --- start-up failures and restarts ------------------------------------------


def test_node_exits_when_keystore_unreachable(tmp_path, start_node):
    nowhere = "127.0.0.1:%d" % free_port()
    node = start_node("wk1", "worker", tmp_path, nowhere, CONSUL_CONNECTION_MAX_ATTEMPTS="3")

    started = time.monotonic()
    assert node.wait(10) == 1
    assert time.monotonic() - started < 5
    assert "did not answer after 3 tries" in node.log()


def test_worker_exits_when_no_master_registers(tmp_path, keystore, start_node):
    make_pathology(tmp_path, "dementia", csv_files={"edsd.csv": "subjectcode,dataset\ns1,edsd\n"})
    node = start_node("wk1", "worker", tmp_path, keystore.address, CONSUL_WAIT_FOR_MASTER_IP_MAX_ATTEMPTS="2")

    assert node.wait(10) == 1
    assert "No master registered in the keystore after 2 tries" in node.log()
    assert keystore.raw("data/wk1/dementia") == '["edsd"]'
    assert keystore.raw("active_workers/wk1") is None


def test_worker_exits_when_start_up_check_fails(tmp_path, keystore, start_node):
    keystore.put("master/ms", "127.0.0.1")
    node = start_node("wk1", "worker", tmp_path, keystore.address, EXAREME_NODE_STARTUP_HEALTH_CHECK_MAX_ATTEMPTS="2")

    assert node.wait(10) == 1
    assert "Start-up check with the master failed after 2 tries" in node.log()
    assert keystore.raw("active_workers/wk1") is None


def test_dev_worker_skips_start_up_check(tmp_path, keystore, start_node):
    keystore.put("master/ms", "127.0.0.1")
    node = start_node("wk1", "worker", tmp_path, keystore.address, ENVIRONMENT_TYPE="DEV")

    wait_for_registration(keystore, node)
    assert "Skipping the start-up check" in node.log()
    # No master responds to its probes, so the worker exits for Swarm to restart it.
    assert node.wait(10) == 1
    assert "Master at 127.0.0.1 is unreachable" in node.log()


def test_worker_exits_when_master_stops(tmp_path, keystore, start_node):
    master = start_node("ms", "master", tmp_path / "ms", keystore.address)
    wait_for_registration(keystore, master)
    worker = start_node("wk1", "worker", tmp_path / "wk1", keystore.address)
    wait_for_registration(keystore, worker)

    assert master.stop() == 0
    assert worker.wait(10) == 1
    assert "is unreachable; exiting" in worker.log()


def test_worker_survives_keystore_outage(tmp_path, start_keystore, start_node):
    own_keystore = start_keystore()
    master = start_node("ms", "master", tmp_path / "ms", own_keystore.address)
    wait_for_registration(own_keystore, master)
    worker = start_node("wk1", "worker", tmp_path / "wk1", own_keystore.address)
    wait_for_registration(own_keystore, worker)

    own_keystore.process.stop()
    # Ten probe intervals: the master now returns 503 from /health, which still proves it is up.
    time.sleep(1.0)
    assert worker.process.poll() is None, worker.log()
    assert "is unreachable" not in worker.log()


def test_datasets_are_published_at_start_only(tmp_path, keystore, start_node):
    data = tmp_path / "wk1"
    make_pathology(data, "dementia", csv_files={"edsd.csv": "subjectcode,dataset\ns1,edsd\n"})
    master = start_node("ms", "master", tmp_path / "ms", keystore.address)
    wait_for_registration(keystore, master)
    worker = start_node("wk1", "worker", data, keystore.address)
    wait_for_registration(keystore, worker)

    make_pathology(data, "tbi", csv_files={"dummy_tbi.csv": "subjectcode,dataset\ns1,dummy_tbi\n"})
    time.sleep(0.5)
    assert keystore.raw("data/wk1/tbi") is None

    assert worker.stop() == 0
    restarted = start_node("wk1", "worker", data, keystore.address)
    assert wait_until(lambda: keystore.raw("data/wk1/tbi") is not None or restarted.process.poll() is not None)
    assert keystore.raw("data/wk1/tbi") == '["dummy_tbi"]'
    assert keystore.raw("data/wk1/dementia") == '["edsd"]'


def test_unreadable_database_is_left_out(tmp_path, keystore, start_node):
    dementia = make_pathology(tmp_path, "dementia")
    (dementia / "datasets.db").write_bytes(b"this is not an SQLite database")
    make_pathology(tmp_path, "tbi", csv_files={"dummy_tbi.csv": "subjectcode,dataset\ns1,dummy_tbi\n"})
    node = start_node("wk1", "worker", tmp_path, keystore.address, CONSUL_WAIT_FOR_MASTER_IP_MAX_ATTEMPTS="1")

    assert node.wait(10) == 1
    assert keystore.raw("data/wk1/tbi") == '["dummy_tbi"]'
    assert keystore.raw("data/wk1/dementia") is None
    assert "Pathology dementia left out" in node.log()
    assert "datasets.db" in node.log()


def test_master_leaves_out_invalid_keystore_value(tmp_path, keystore, start_node):
    master = start_node("ms", "master", tmp_path, keystore.address)
    wait_for_registration(keystore, master)
    keystore.put("active_workers/wk2", "127.0.0.1")
    keystore.put("data/wk2/dementia", "not json")
    keystore.put("data/wk2/tbi", '["dummy_tbi"]')

    status, datasets = http_json("GET", master.http_url + "/mining/datasets")
    assert status == 200
    assert datasets["wk2"] == {"tbi": ["dummy_tbi"]}
    assert "data/wk2/dementia is not valid JSON" in master.log()


def test_master_health_fails_without_keystore(tmp_path, start_keystore, start_node):
    own_keystore = start_keystore()
    master = start_node("ms", "master", tmp_path, own_keystore.address)
    wait_for_registration(own_keystore, master)

    own_keystore.process.stop()
    status, health = http_json("GET", master.http_url + "/health")
    assert status == 503
    assert health["keystore"] == "unreachable"

    status, answer = http_json("GET", master.http_url + "/mining/datasets")
    assert status == 503
    assert answer["result"][0]["type"] == "text/plain+error"


def test_sigterm_stops_master_with_status_zero(tmp_path, keystore, start_node):
    master = start_node("ms", "master", tmp_path, keystore.address)
    wait_for_registration(keystore, master)
    assert master.stop() == 0
    assert "Stopped with status 0" in master.log()


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("NODE_NAME", "wk-1", "NODE_NAME='wk-1' is invalid"),
        ("NODE_NAME", "Wk1", "NODE_NAME='Wk1' is invalid"),
        ("FEDERATION_ROLE", "manager", "FEDERATION_ROLE='manager' is invalid"),
        ("CONVERT_CSVS", None, "CONVERT_CSVS is unset"),
        ("CONSULURL", None, "CONSULURL is unset"),
        ("LAB_RETRY_INTERVAL", "soon", "LAB_RETRY_INTERVAL='soon' is invalid"),
    ],
)
def test_invalid_environment_is_rejected(tmp_path, start_node, variable, value, message):
    node = start_node("wk1", "worker", tmp_path, "127.0.0.1:1", **{variable: value})
    assert node.wait(10) == 1
    assert message in node.log()


def test_stand_in_reads_consul_url_with_scheme(tmp_path, keystore, start_node):
    master = start_node("ms", "master", tmp_path, keystore.url)
    wait_for_registration(keystore, master)
    assert json.loads(http("GET", master.http_url + "/mining/datasets")[1]) == {"ms": {}}
