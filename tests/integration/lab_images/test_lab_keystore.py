"""The keystore stand-in serves Consul's KV, health and status API as Consul 1.8 does."""

import base64
import json
from http.client import HTTPConnection

from lab_support import http, http_json


def test_put_returns_true_and_get_returns_entry(keystore):
    status, body, _headers = http("PUT", keystore.url + "/v1/kv/data/wk1/dementia", b'["edsd"]')
    assert status == 200
    assert body == b"true"

    status, entries = http_json("GET", keystore.url + "/v1/kv/data/wk1/dementia")
    assert status == 200
    assert len(entries) == 1
    entry = entries[0]
    assert entry["Key"] == "data/wk1/dementia"
    assert base64.b64decode(entry["Value"]) == b'["edsd"]'
    assert entry["Flags"] == 0
    assert entry["LockIndex"] == 0
    assert entry["CreateIndex"] == entry["ModifyIndex"]
    assert entry["CreateIndex"] > 0


def test_get_reports_consul_index_header(keystore):
    keystore.put("master/ms", "10.20.30.2")
    status, _body, headers = http("GET", keystore.url + "/v1/kv/master/ms")
    assert status == 200
    assert int(headers["X-Consul-Index"]) > 0


def test_get_missing_key_returns_404(keystore):
    status, body, _headers = http("GET", keystore.url + "/v1/kv/master/ms")
    assert status == 404
    assert body == b""


def test_raw_returns_stored_bytes(keystore):
    keystore.put("master/ms", "10.20.30.2")
    status, body, headers = http("GET", keystore.url + "/v1/kv/master/ms?raw")
    assert status == 200
    assert body == b"10.20.30.2"
    assert headers["Content-Type"].startswith("text/plain")


def test_update_keeps_create_index(keystore):
    keystore.put("active_workers/wk1", "10.20.30.3")
    _status, first = http_json("GET", keystore.url + "/v1/kv/active_workers/wk1")
    keystore.put("active_workers/wk1", "10.20.30.9")
    _status, second = http_json("GET", keystore.url + "/v1/kv/active_workers/wk1")

    assert second[0]["CreateIndex"] == first[0]["CreateIndex"]
    assert second[0]["ModifyIndex"] > first[0]["ModifyIndex"]
    assert base64.b64decode(second[0]["Value"]) == b"10.20.30.9"


def test_empty_value_is_null(keystore):
    keystore.put("flags/empty", "")
    _status, entries = http_json("GET", keystore.url + "/v1/kv/flags/empty")
    assert entries[0]["Value"] is None


def test_flags_are_stored(keystore):
    status, _body, _headers = http("PUT", keystore.url + "/v1/kv/flagged?flags=42", b"x")
    assert status == 200
    _status, entries = http_json("GET", keystore.url + "/v1/kv/flagged")
    assert entries[0]["Flags"] == 42


def test_recurse_matches_plain_prefix(keystore):
    keystore.put("data/wk1/dementia", '["edsd"]')
    keystore.put("data/wk10/dementia", '["ppmi"]')
    keystore.put("data/wk10/tbi", '["dummy_tbi"]')

    _status, without_slash = http_json("GET", keystore.url + "/v1/kv/data/wk1?recurse")
    assert [entry["Key"] for entry in without_slash] == ["data/wk1/dementia", "data/wk10/dementia", "data/wk10/tbi"]

    _status, with_slash = http_json("GET", keystore.url + "/v1/kv/data/wk1/?recurse")
    assert [entry["Key"] for entry in with_slash] == ["data/wk1/dementia"]


def test_keys_trailing_slash_excludes_similar_node(keystore):
    keystore.put("data/wk1/dementia", '["edsd"]')
    keystore.put("data/wk10/dementia", '["ppmi"]')

    _status, without_slash = http_json("GET", keystore.url + "/v1/kv/data/wk1?keys")
    assert without_slash == ["data/wk1/dementia", "data/wk10/dementia"]

    _status, with_slash = http_json("GET", keystore.url + "/v1/kv/data/wk1/?keys")
    assert with_slash == ["data/wk1/dementia"]


def test_keys_separator_folds_subkeys(keystore):
    keystore.put("data/wk1/dementia", "[]")
    keystore.put("data/wk1/tbi", "[]")
    keystore.put("data/wk2/dementia", "[]")
    keystore.put("master/ms", "10.20.30.2")

    _status, keys = http_json("GET", keystore.url + "/v1/kv/data/?keys&separator=/")
    assert keys == ["data/wk1/", "data/wk2/"]

    _status, top = http_json("GET", keystore.url + "/v1/kv/?keys&separator=/")
    assert top == ["data/", "master/"]


def test_keys_missing_prefix_returns_404(keystore):
    status, _body, _headers = http("GET", keystore.url + "/v1/kv/master/?keys")
    assert status == 404


def test_keys_at_root_returns_empty_list(keystore):
    status, keys = http_json("GET", keystore.url + "/v1/kv/?keys")
    assert status == 200
    assert keys == []


def test_recurse_missing_prefix_returns_404(keystore):
    status, _body, _headers = http("GET", keystore.url + "/v1/kv/data/?recurse")
    assert status == 404


def test_delete_removes_only_that_key(keystore):
    keystore.put("data/wk1/dementia", "[]")
    keystore.put("data/wk1/tbi", "[]")

    status, body, _headers = http("DELETE", keystore.url + "/v1/kv/data/wk1/dementia")
    assert (status, body) == (200, b"true")
    assert keystore.raw("data/wk1/dementia") is None
    assert keystore.raw("data/wk1/tbi") == "[]"


def test_delete_recurse_removes_prefix_only(keystore):
    keystore.put("data/wk1/dementia", "[]")
    keystore.put("data/wk10/dementia", "[]")

    status, _body, _headers = http("DELETE", keystore.url + "/v1/kv/data/wk1/?recurse")
    assert status == 200
    assert keystore.keys("data/") == ["data/wk10/dementia"]


def test_cas_put_requires_matching_index(keystore):
    status, body, _headers = http("PUT", keystore.url + "/v1/kv/lock?cas=0", b"first")
    assert (status, body) == (200, b"true")

    status, body, _headers = http("PUT", keystore.url + "/v1/kv/lock?cas=0", b"second")
    assert (status, body) == (200, b"false")
    assert keystore.raw("lock") == "first"

    _status, entries = http_json("GET", keystore.url + "/v1/kv/lock")
    index = entries[0]["ModifyIndex"]
    status, body, _headers = http("PUT", keystore.url + "/v1/kv/lock?cas=%d" % index, b"third")
    assert (status, body) == (200, b"true")
    assert keystore.raw("lock") == "third"


def test_cas_delete_requires_matching_index(keystore):
    keystore.put("lock", "held")
    _status, entries = http_json("GET", keystore.url + "/v1/kv/lock")
    index = entries[0]["ModifyIndex"]

    status, body, _headers = http("DELETE", keystore.url + "/v1/kv/lock?cas=%d" % (index + 100))
    assert (status, body) == (200, b"false")
    assert keystore.raw("lock") == "held"

    status, body, _headers = http("DELETE", keystore.url + "/v1/kv/lock?cas=%d" % index)
    assert (status, body) == (200, b"true")
    assert keystore.raw("lock") is None


def test_missing_key_name_is_rejected(keystore):
    assert http("GET", keystore.url + "/v1/kv/")[0] == 400
    assert http("PUT", keystore.url + "/v1/kv/", b"x")[0] == 400
    assert http("DELETE", keystore.url + "/v1/kv/")[0] == 400


def test_value_over_512_kib_is_rejected(keystore):
    status, _body, _headers = http("PUT", keystore.url + "/v1/kv/big", b"x" * (512 * 1024 + 1))
    assert status == 413
    assert keystore.raw("big") is None

    status, _body, _headers = http("PUT", keystore.url + "/v1/kv/big", b"x" * (512 * 1024))
    assert status == 200


def test_chunked_put_is_stored(keystore):
    connection = HTTPConnection("127.0.0.1", keystore.port, timeout=5)
    try:
        connection.request("PUT", "/v1/kv/data/wk1/dementia", body=iter([b'["edsd",', b'"ppmi"]']), encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b"true"
    finally:
        connection.close()
    assert keystore.raw("data/wk1/dementia") == '["edsd","ppmi"]'


def test_key_with_escaped_characters_round_trips(keystore):
    status, _body, _headers = http("PUT", keystore.url + "/v1/kv/data/wk1/path%20with%20space", b"[]")
    assert status == 200
    assert keystore.keys("data/wk1/") == ["data/wk1/path with space"]


def test_post_is_not_allowed(keystore):
    status, _body, _headers = http("POST", keystore.url + "/v1/kv/master/ms", b"x")
    assert status == 405


def test_health_passing_lists_serf_check(keystore):
    status, checks = http_json("GET", keystore.url + "/v1/health/state/passing")
    assert status == 200
    assert len(checks) == 1
    assert checks[0]["CheckID"] == "serfHealth"
    assert checks[0]["Status"] == "passing"


def test_health_critical_is_empty(keystore):
    status, checks = http_json("GET", keystore.url + "/v1/health/state/critical")
    assert status == 200
    assert checks == []


def test_health_unknown_state_is_rejected(keystore):
    assert http("GET", keystore.url + "/v1/health/state/sleepy")[0] == 400


def test_status_leader_returns_server_address(keystore):
    status, leader = http_json("GET", keystore.url + "/v1/status/leader")
    assert status == 200
    assert isinstance(leader, str)
    assert leader.endswith(":8300")

    _status, peers = http_json("GET", keystore.url + "/v1/status/peers")
    assert peers == [leader]


def test_bind_interface_is_accepted_and_ignored(start_keystore):
    keystore = start_keystore(CONSUL_BIND_INTERFACE="eth7")
    assert keystore.process.process.poll() is None
    assert "Ignoring CONSUL_BIND_INTERFACE=eth7" in keystore.process.log()


def test_sigterm_stops_keystore(start_keystore):
    keystore = start_keystore()
    keystore.put("master/ms", "10.20.30.2")
    assert keystore.process.stop() == 0
    assert "Keystore stopped" in keystore.process.log()


def test_restarted_keystore_starts_empty(start_keystore):
    first = start_keystore()
    first.put("master/ms", "10.20.30.2")
    first.process.stop()

    second = start_keystore()
    assert second.raw("master/ms") is None


def test_raw_round_trips_json_list(keystore):
    keystore.put("data/wk1/dementia", json.dumps(["edsd", "ppmi"]))
    assert json.loads(keystore.raw("data/wk1/dementia")) == ["edsd", "ppmi"]
