"""The ui role's derived settings and its checks, run by ansible-playbook on the controller only.

Each test writes an inventory and a playbook that includes the role's
validate.yml and prints the derived variables. The checks are assert tasks,
which run on the controller, so no node and no network are involved.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
PLAYBOOK_BINARY = REPOSITORY / ".venv" / "bin" / "ansible-playbook"
DERIVED = ("ui_exareme_url", "ui_keycloak_client_id", "ui_keycloak_client_secret", "ui_keycloak_ssl_required")

pytestmark = pytest.mark.skipif(
    not (REPOSITORY / "build" / "collections" / "ansible_collections" / "mip" / "federation").exists(),
    reason="run `make collection` first")

VALID = {
    "mip_federation_name": "labfed",
    "ui_public_host": "portal.example.org",
    "ui_database_admin_password": "admin-password",
    "ui_database_password": "portal-password",
}


def run_validation(tmp_path, group_vars=None, master_vars=None, pusher_vars=None):
    """Run the role's checks; return (exit code, output, derived variables or None)."""
    inventory = {
        "federation": {
            "children": {
                "pusher": {"hosts": {"labpusher": dict({"ansible_connection": "local"}, **(pusher_vars or {}))}},
                "master": {"hosts": {"labms": dict({"ansible_host": "192.0.2.11"}, **(master_vars or {}))}},
                "ui": {"hosts": {"labui": {"ansible_connection": "local"}}},
            },
            "vars": dict(VALID, **(group_vars or {})),
        }
    }
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    derived = ", ".join('"%s": {{ %s | to_json }}' % (name, name) for name in DERIVED)
    playbook = [{
        "name": "Check the ui settings",
        "hosts": "ui",
        "gather_facts": False,
        "tasks": [
            {"name": "Run the checks", "ansible.builtin.include_role": {
                "name": "mip.federation.ui", "tasks_from": "validate", "public": True}},
            {"name": "Print the derived settings", "ansible.builtin.debug": {
                "msg": "DERIVED {%s} END" % derived}},
        ],
    }]
    (tmp_path / "playbook.yml").write_text(json.dumps(playbook))

    environment = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPOSITORY / "build" / "collections"),
                       ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    result = subprocess.run([str(PLAYBOOK_BINARY), "-i", str(tmp_path / "inventory.yml"),
                             str(tmp_path / "playbook.yml")],
                            capture_output=True, text=True, timeout=300, env=environment, check=False)
    output = result.stdout + result.stderr
    values = None
    if "DERIVED {" in output:
        text = output.split("DERIVED ", 1)[1].split(" END", 1)[0]
        values = json.loads(text.replace('\\"', '"'))
    return result.returncode, output, values


def test_defaults_derive_from_inventory(tmp_path):
    code, output, values = run_validation(
        tmp_path, pusher_vars={"mip_keycloak_client_secret": "from-the-pusher"})

    assert code == 0, output
    assert values["ui_exareme_url"] == "http://192.0.2.11:9090"
    assert values["ui_keycloak_client_id"] == "labfed"
    assert values["ui_keycloak_client_secret"] == "from-the-pusher"
    assert values["ui_keycloak_ssl_required"] == "external"


def test_exareme_url_prefers_advertise_address(tmp_path):
    code, output, values = run_validation(
        tmp_path, master_vars={"mip_advertise_address": "10.8.0.2"},
        group_vars={"ui_keycloak_enabled": False})

    assert code == 0, output
    assert values["ui_exareme_url"] == "http://10.8.0.2:9090"


def test_exareme_url_brackets_ipv6_address(tmp_path):
    code, output, values = run_validation(
        tmp_path, master_vars={"mip_advertise_address": "2001:db8::11"},
        group_vars={"ui_keycloak_enabled": False})

    assert code == 0, output
    assert values["ui_exareme_url"] == "http://[2001:db8::11]:9090"


@pytest.mark.parametrize("settings, expected", [
    ({"ui_keycloak_protocol": "http", "ui_public_protocol": "http"}, "none"),
    ({"ui_keycloak_protocol": "http", "ui_public_protocol": "https"}, "external"),
    ({"ui_keycloak_protocol": "https", "ui_public_protocol": "http"}, "external"),
    ({"ui_keycloak_protocol": "http", "ui_public_protocol": "http", "ui_link": "proxied",
      "ui_external_protocol": "http"}, "none"),
    ({"ui_keycloak_protocol": "http", "ui_public_protocol": "http", "ui_link": "proxied",
      "ui_external_protocol": "https"}, "external"),
])
def test_ssl_required_follows_protocols(tmp_path, settings, expected):
    code, output, values = run_validation(
        tmp_path, group_vars=dict(settings, ui_keycloak_client_secret="secret"))

    assert code == 0, output
    assert values["ui_keycloak_ssl_required"] == expected


@pytest.mark.parametrize("settings, variable", [
    ({"ui_public_host": ""}, "ui_public_host"),
    ({"ui_public_host": "127.0.0.1"}, "ui_public_host"),
    ({"ui_public_host": "127.0.1.1:8080"}, "ui_public_host"),
    ({"ui_public_host": "[::1]"}, "ui_public_host"),
    ({"ui_exareme_address": "master.example.org"}, "ui_exareme_address"),
    ({"ui_exareme_address": "192.0.2.300"}, "ui_exareme_address"),
    ({"ui_keycloak_client_secret": ""}, "ui_keycloak_client_secret"),
    ({"ui_database_admin_password": ""}, "ui_database_admin_password"),
    ({"ui_database_password": "it's"}, "ui_database_password"),
    ({"ui_tls_mode": "files", "ui_public_protocol": "https"}, "ui_tls_mode"),
])
def test_invalid_setting_names_variable(tmp_path, settings, variable):
    code, output, values = run_validation(tmp_path, group_vars=dict({"ui_keycloak_client_secret": "secret"},
                                                                    **settings))

    failures = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]

    assert code != 0
    assert values is None
    assert any('"msg": "%s ' % variable in line for line in failures), output
