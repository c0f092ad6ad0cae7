"""Unit tests of the keycloak_sync module entry point; no network."""

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.mip.federation.plugins.modules import keycloak_sync


def test_documented_options_match_argument_spec():
    options = yaml.safe_load(keycloak_sync.DOCUMENTATION)["options"]

    assert set(options) == set(keycloak_sync.ARGUMENT_SPEC)
    for name, spec in keycloak_sync.ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name
        assert bool(options[name].get("required")) == bool(spec.get("required")), name


def test_secret_options_are_no_log():
    assert keycloak_sync.ARGUMENT_SPEC["auth_password"]["no_log"] is True
    assert keycloak_sync.ARGUMENT_SPEC["auth_client_secret"]["no_log"] is True


def test_documented_attributes_state_full_support():
    attributes = yaml.safe_load(keycloak_sync.DOCUMENTATION)["attributes"]

    assert {name: value["support"] for name, value in attributes.items()} == {
        "check_mode": "full", "diff_mode": "full", "idempotent": "full"}


def run_main(capsys, arguments):
    with patch_module_args(arguments):
        with pytest.raises(SystemExit):
            keycloak_sync.main()
    return json.loads(capsys.readouterr().out)


def test_main_rejects_page_size_below_one(capsys):
    result = run_main(capsys, {"server_url": "http://127.0.0.1:9", "client_id": "fed1", "data_structure": [],
                               "auth_client_secret": "a-long-test-secret", "page_size": 0})

    assert result["failed"] is True
    assert result["msg"] == "page_size must be at least 1, got 0"


def test_main_requires_some_credentials(capsys):
    result = run_main(capsys, {"server_url": "http://127.0.0.1:9", "client_id": "fed1", "data_structure": []})

    assert result["failed"] is True
    assert "auth_username" in result["msg"]
    assert "auth_client_secret" in result["msg"]
