"""What an engineer checks by hand after deploying the lab federation."""

import json

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
