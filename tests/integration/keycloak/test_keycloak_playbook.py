"""playbooks/keycloak.yml and the keycloak_sync module run by ansible-playbook against the emulator."""

import json
import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(REPO, "playbooks", "keycloak.yml")


def write_inputs(tmp_path, emulator, extra_tasks=False):
    inventory = tmp_path / "inventory.yml"
    # The playbook checks the whole federation inventory first; only the
    # pusher is contacted, the other nodes are named for that check.
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"federation": {"children": {
        "pusher": {"hosts": {"localhost": local}},
        "master": {"hosts": {"ms": local}},
        "workers": {"hosts": {"wk1": local, "wk2": local}},
    }}}))
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({
        "mip_federation_name": "fed1",
        "mip_keycloak_server_url": emulator.url,
        "mip_keycloak_admin_client_secret": emulator.admin_client_secret,
        "mip_keycloak_admin_username": emulator.admin_user,
        "mip_keycloak_admin_password": emulator.admin_password,
        "mip_keycloak_redirect_uris": ["https://portal.fed1.test/*"],
        "mip_keycloak_data_structure": [
            {"pathology": "dementia", "nodes": [{"node": "wk1", "datasets": [{"code": "edsd", "rows": 4}]},
                                                {"node": "wk2", "datasets": [{"code": "ppmi", "rows": 2}]}]}],
    }))
    return inventory, variables


def run_playbook(inventory, variables, playbook, *options):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
         "-e", "@" + str(variables), str(playbook)] + list(options),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=240, check=False)
    assert completed.returncode == 0, completed.stdout
    recap = re.search(r"localhost\s*: ok=(\d+)\s+changed=(\d+)", completed.stdout)
    assert recap, completed.stdout
    return int(recap.group(2)), completed.stdout


def test_playbook_check_run_rerun(emulator, tmp_path):
    inventory, variables = write_inputs(tmp_path, emulator)
    emulator.reset_stats()

    checked, check_output = run_playbook(inventory, variables, PLAYBOOK, "--check", "--diff")
    writes_in_check = emulator.stats()["writes"]
    applied, _output = run_playbook(inventory, variables, PLAYBOOK)
    emulator.reset_stats()
    rerun, rerun_output = run_playbook(inventory, variables, PLAYBOOK, "--diff")

    assert checked == 1
    assert writes_in_check == 0
    assert "RESEARCH_PATHOLOGY_dementia" in check_output
    assert "FED1_RESEARCHER_dementia" in check_output
    assert applied == 1
    assert rerun == 0
    assert emulator.stats()["writes"] == 0
    assert set(emulator.roles("fed1")["RESEARCH_PATHOLOGY_dementia"]["composites"]) == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi"}
    for secret in (emulator.admin_password, emulator.admin_client_secret):
        assert secret not in check_output
        assert secret not in rerun_output


def test_playbook_sets_client_secret_fact_without_printing_it(emulator, tmp_path):
    inventory, variables = write_inputs(tmp_path, emulator)
    probe = tmp_path / "probe.yml"
    probe.write_text("\n".join([
        "- name: Run the KeyCloak step",
        "  import_playbook: %s" % PLAYBOOK,
        "- name: Check the secret fact",
        "  hosts: pusher",
        "  gather_facts: false",
        "  tasks:",
        "    - name: Write the secret fact to a file for the test",
        "      ansible.builtin.copy:",
        "        content: '{{ mip_keycloak_client_secret }}'",
        "        dest: %s" % (tmp_path / "secret.txt"),
        "        mode: '0600'",
        "      no_log: true",
        ""]))

    _changed, output = run_playbook(inventory, variables, probe, "-v")

    client = emulator.client("fed1")
    secret = emulator.admin("GET", "clients/%s/client-secret" % client["id"]).json()["value"]
    assert (tmp_path / "secret.txt").read_text() == secret
    assert secret not in output
