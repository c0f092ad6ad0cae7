"""What an engineer checks by hand after deploying the lab federation."""

import base64
import json
import os
import shlex
import urllib.parse
import urllib.request

import pytest
import testinfra

NODES = ["labpusher", "labms", "labui", "labwk1", "labwk2"]
WORKERS = ["labwk1", "labwk2"]
ADMIN = "mipadmin"


def node(node_id):
    return testinfra.get_host("docker://mip-lab-" + node_id)


def node_id_of(host):
    return host.backend.get_hostname().replace("mip-lab-", "")


def test_admin_user_exists(host):
    assert host.user(ADMIN).exists
    assert host.user(ADMIN).shell == "/bin/bash"


def test_sshd_accepts_keys_only(host):
    if node_id_of(host) == "labpusher":
        pytest.skip("the pusher is not a federation node")
    settings = host.check_output("sshd -T")
    assert "passwordauthentication no" in settings
    assert "kbdinteractiveauthentication no" in settings


def test_data_folder_owned_by_admin(host):
    if node_id_of(host) not in ["labms"] + WORKERS:
        pytest.skip("only the master and the workers hold data")
    folder = host.file("/data/lab")
    assert folder.is_directory
    assert folder.user == ADMIN
    assert folder.mode == 0o750


def test_docker_daemon_json_has_interface_mtu(host):
    if node_id_of(host) == "labpusher":
        pytest.skip("the pusher runs no Docker")
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    interface_mtu = int(host.file("/sys/class/net/eth0/mtu").content_string)
    assert daemon["mtu"] == interface_mtu
    assert host.service("docker").is_running


def swarm_nodes():
    listing = node("labms").check_output("docker node ls -q")
    inspected = json.loads(node("labms").check_output("docker node inspect " + " ".join(listing.split())))
    return inspected


def test_swarm_has_master_leader_and_two_workers():
    nodes = swarm_nodes()
    assert len(nodes) == 3, [entry["Description"]["Hostname"] for entry in nodes]
    by_label = {entry["Spec"]["Labels"].get("name"): entry for entry in nodes}
    assert sorted(by_label) == ["labms", "labwk1", "labwk2"]
    assert by_label["labms"]["ManagerStatus"]["Leader"] is True
    for worker in WORKERS:
        assert by_label[worker]["Spec"]["Role"] == "worker"
        assert by_label[worker]["Status"]["State"] == "ready"


def test_swarm_keeps_no_stale_node_entry():
    states = [entry["Status"]["State"] for entry in swarm_nodes()]
    assert "down" not in states


def test_console_opens_federation_session():
    pusher = node("labpusher")
    pusher.check_output("runuser -u %s -- mip-console --replace --detach" % ADMIN)
    try:
        windows = pusher.check_output(
            "runuser -u %s -- tmux list-windows -t =lab -F '#{window_index} #{window_name}'" % ADMIN)
        panes = pusher.check_output(
            "runuser -u %s -- tmux list-panes -t =lab:logs -F '#{pane_start_command}'" % ADMIN)
    finally:
        pusher.run("runuser -u %s -- tmux kill-session -t =lab" % ADMIN)
    assert windows.splitlines() == ["0 pusher", "1 logs", "2 labms", "3 labui", "4 labwk1", "5 labwk2"]
    assert len(panes.splitlines()) == 4
    assert "labwk2" in panes


def test_pusher_reaches_nodes_with_federation_key_and_known_host_keys():
    pusher = node("labpusher")
    for node_id in ["labms", "labui"] + WORKERS:
        output = pusher.check_output(
            "runuser -u %s -- ssh -o BatchMode=yes %s hostname" % (ADMIN, node_id))
        assert output == node_id


def recorded_containers(node_id):
    """Return the containers {name: id} recorded after each converge of the scenario."""
    runs = node(node_id).file("/var/lib/mip-lab-containers.log").content_string.splitlines()
    return [dict(entry.split("=", 1) for entry in run.split()) for run in runs]


def test_rerun_restarted_no_container():
    for node_id in ["labms", "labui"] + WORKERS:
        runs = recorded_containers(node_id)
        assert len(runs) >= 2, node_id
        assert runs[0] == runs[1], node_id
        assert runs[0], node_id


def test_portal_setting_change_recreated_only_frontend():
    runs = recorded_containers("labui")
    assert len(runs) == 3
    before, after = runs[1], runs[2]
    assert sorted(before) == sorted(after)
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["mipfederation-frontend-1"]


def test_every_exareme_service_runs_one_replica():
    services = node("labms").check_output("docker service ls --format '{{.Name}} {{.Replicas}}'").splitlines()
    assert sorted(services) == [
        "labms_exareme-keystore 1/1",
        "labms_exareme-master 1/1",
        "labwk1_exareme 1/1",
        "labwk2_exareme 1/1",
    ]


def keystore_datasets():
    master = node("labms")
    container = master.check_output("docker ps -q --filter label=com.docker.swarm.service.name=labms_exareme-master")
    entries = json.loads(master.check_output(
        "docker exec %s curl -fsS 'http://exareme-keystore:8500/v1/kv/data/?recurse'" % container))
    published = {}
    for entry in entries:
        _prefix, node_id, pathology = entry["Key"].split("/")
        published[(node_id, pathology)] = sorted(json.loads(base64.b64decode(entry["Value"])))
    return published


def test_workers_published_their_sample_datasets():
    published = keystore_datasets()
    master_entries = {key: value for key, value in published.items() if key[0] == "labms"}
    worker_entries = {key: value for key, value in published.items() if key[0] != "labms"}
    assert master_entries == {("labms", "dementia"): [], ("labms", "mentalhealth"): [], ("labms", "tbi"): []}
    assert worker_entries == {
        ("labwk1", "dementia"): ["edsd", "ppmi"],
        ("labwk1", "mentalhealth"): ["demo"],
        ("labwk2", "dementia"): ["desd-synthdata", "fake_longitudinal"],
        ("labwk2", "tbi"): ["dummy_tbi"],
    }


def rows_per_dataset(node_id, pathology):
    script = (
        "import json, sqlite3; "
        "db = sqlite3.connect('file:/data/lab/%s/datasets.db?mode=ro', uri=True); "
        "print(json.dumps(dict(db.execute('select dataset, count(*) from data group by dataset').fetchall())))"
        % pathology
    )
    return json.loads(node(node_id).check_output("python3 -c %s" % shlex.quote(script)))


def test_compiled_databases_hold_every_csv_row():
    assert rows_per_dataset("labwk1", "dementia") == {"edsd": 474, "ppmi": 714}
    assert rows_per_dataset("labwk1", "mentalhealth") == {"demo": 104}
    assert rows_per_dataset("labwk2", "dementia") == {"desd-synthdata": 1000, "fake_longitudinal": 18038}
    assert rows_per_dataset("labwk2", "tbi") == {"dummy_tbi": 99}


def test_master_databases_have_empty_data_tables():
    for pathology in ["dementia", "tbi", "mentalhealth"]:
        assert rows_per_dataset("labms", pathology) == {}


LAB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build", "lab")
PORTAL = "http://172.30.100.12"
KEYCLOAK = "http://172.30.100.30:8080"


def http_json(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def test_portal_backend_lists_published_datasets():
    health = http_json(PORTAL + "/services/health")
    assert health["status"] == "UP"
    assert health["database"]["status"] == "UP"
    assert health["exareme"]["status"] == "UP"
    datasets = http_json(PORTAL + "/services/datasets")
    assert datasets["labwk1"] == {"dementia": ["edsd", "ppmi"], "mentalhealth": ["demo"]}
    assert datasets["labwk2"] == {"dementia": ["desd-synthdata", "fake_longitudinal"], "tbi": ["dummy_tbi"]}


def test_portal_env_file_is_root_only():
    secrets = node("labui").check_output("find /opt/mip-deployment/Federation -name '*.env' -printf '%m %u %p\\n'")
    lines = secrets.splitlines()
    assert lines, "no environment file found"
    for line in lines:
        assert line.startswith("600 root "), line


def keycloak_client_roles():
    with open(os.path.join(LAB_DIR, "keycloak-admin-password"), encoding="utf-8") as handle:
        password = handle.read().strip()
    with open(os.path.join(LAB_DIR, "keycloak-admin-client-secret"), encoding="utf-8") as handle:
        client_secret = handle.read().strip()
    form = urllib.parse.urlencode({
        "grant_type": "password", "client_id": "realm-management", "client_secret": client_secret,
        "username": "realmadmin", "password": password,
    }).encode("ascii")
    token = http_json(KEYCLOAK + "/realms/MIP/protocol/openid-connect/token", data=form)["access_token"]
    headers = {"Authorization": "Bearer " + token}
    clients = http_json(KEYCLOAK + "/admin/realms/MIP/clients?clientId=lab", headers=headers)
    assert len(clients) == 1
    roles = http_json(KEYCLOAK + "/admin/realms/MIP/clients/%s/roles?max=1000" % clients[0]["id"], headers=headers)
    return {role["name"] for role in roles}


def test_keycloak_has_role_for_every_dataset_and_pathology():
    roles = keycloak_client_roles()
    for dataset in ["edsd", "ppmi", "desd-synthdata", "fake_longitudinal", "dummy_tbi", "demo"]:
        assert "RESEARCH_DATASET_" + dataset in roles
    for pathology in ["dementia", "tbi", "mentalhealth"]:
        assert "RESEARCH_PATHOLOGY_" + pathology in roles
        assert "DC_CONTROL_" + pathology in roles
    assert {"DC_HOSPITAL_labwk1", "DC_HOSPITAL_labwk2", "DC_ADMIN", "RESEARCH_DATASET_ALL"} <= roles


def test_keycloak_rerun_sent_no_write():
    with open(os.path.join(LAB_DIR, "keycloak-writes.log"), encoding="utf-8") as handle:
        writes = [int(line) for line in handle.read().split()]
    assert len(writes) >= 2
    assert writes[0] > 0
    assert writes[1] == writes[0]
