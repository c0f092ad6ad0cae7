from ansible_collections.mip.federation.plugins.filter.federation import (
    container_row,
    federation_inventory_problems,
    format_table,
    is_ip_address,
    node_id_problem,
    overlapping_networks,
    published_datasets,
    service_problems,
    swarm_node_row,
)


def lab_groups(**overrides):
    groups = {
        "pusher": ["labpusher"],
        "master": ["labms"],
        "ui": ["labui"],
        "workers": ["labwk1", "labwk2"],
    }
    groups.update(overrides)
    groups.setdefault("federation", sorted(set(host for members in groups.values() for host in members)))
    return groups


def test_node_id_accepts_letters_and_digits():
    assert node_id_problem("wk1") is None
    assert node_id_problem("hospital10") is None


def test_node_id_rejects_dash_with_hint():
    message = node_id_problem("fed-wk1")
    assert "'fed-wk1' is invalid" in message
    assert "'fedwk1'" in message


def test_node_id_rejects_upper_case_dot_underscore_and_leading_digit():
    for name in ("Wk1", "wk.1", "wk_1", "1wk", "", "a" * 41):
        assert node_id_problem(name) is not None, name


def test_node_id_rejects_non_string():
    assert "empty or not a string" in node_id_problem(None)


def test_inventory_valid_lab_has_no_problem():
    assert federation_inventory_problems(lab_groups(), "lab") == []


def test_inventory_without_ui_is_valid():
    assert federation_inventory_problems(lab_groups(ui=[]), "lab") == []


def test_inventory_rejects_two_masters():
    problems = federation_inventory_problems(lab_groups(master=["ms1", "ms2"]), "lab")
    assert problems == ["inventory group 'master' has 2 hosts ['ms1', 'ms2'], expected exactly 1"]


def test_inventory_rejects_no_worker():
    problems = federation_inventory_problems(lab_groups(workers=[]), "lab")
    assert problems == ["inventory group 'workers' has 0 hosts [], expected at least 1"]


def test_inventory_rejects_host_in_two_groups():
    problems = federation_inventory_problems(lab_groups(ui=["labwk1"]), "lab")
    assert problems == ["host 'labwk1' is in both groups 'ui' and 'workers'; a node has one role"]


def test_inventory_reports_invalid_worker_and_federation_name():
    problems = federation_inventory_problems(lab_groups(workers=["wk-1"]), "My Fed")
    assert len(problems) == 2
    assert problems[0].startswith("mip_federation_name 'My Fed' is invalid")
    assert problems[1].startswith("inventory host name 'wk-1' is invalid")
    assert problems[1].endswith("(in group 'workers')")


def test_is_ip_address_accepts_ipv4_and_ipv6():
    assert is_ip_address("192.0.2.10")
    assert is_ip_address("2001:db8::1")


def test_is_ip_address_rejects_host_names():
    assert not is_ip_address("master.example.org")
    assert not is_ip_address("")


def test_format_table_aligns_columns():
    text = format_table([["labms", "manager"], ["labwk10", "worker"]], ["NODE", "ROLE"])
    assert text.splitlines() == [
        "NODE     ROLE",
        "labms    manager",
        "labwk10  worker",
    ]


def test_swarm_node_row_reads_leader_and_label():
    node = {
        "Description": {"Hostname": "ms1"},
        "Spec": {"Role": "manager", "Availability": "active", "Labels": {"name": "labms"}},
        "Status": {"State": "ready", "Addr": "192.0.2.11"},
        "ManagerStatus": {"Leader": True},
    }
    assert swarm_node_row(node) == ["ms1", "manager", "ready", "active", "leader", "labms", "192.0.2.11"]


def test_swarm_node_row_marks_missing_label():
    node = {"Description": {"Hostname": "wk"}, "Spec": {"Role": "worker"}, "Status": {}}
    assert swarm_node_row(node)[5] == "(none)"
    assert swarm_node_row(node)[4] == ""


def facts_with_network(network, netmask, interface="eth0"):
    return {"ansible_facts": {"interfaces": [interface], interface: {"ipv4": {"network": network, "netmask": netmask}}}}


def test_overlapping_networks_reports_node_network():
    hostvars = {"ms": facts_with_network("10.20.0.0", "255.255.0.0"), "wk1": facts_with_network("192.0.2.0", "255.255.255.0")}
    assert overlapping_networks("10.20.30.0/24", hostvars, ["ms", "wk1"]) == ["10.20.0.0/16 on ms (eth0)"]


def test_overlapping_networks_ignores_docker_interfaces_and_free_ranges():
    hostvars = {"ms": facts_with_network("10.20.30.0", "255.255.255.0", interface="docker_gwbridge")}
    hostvars["ms"]["ansible_facts"]["interfaces"] = ["docker_gwbridge"]
    assert overlapping_networks("10.20.30.0/24", hostvars, ["ms"]) == []
    assert overlapping_networks("10.99.0.0/24", {"wk": facts_with_network("192.0.2.0", "255.255.255.0")}, ["wk"]) == []


def swarm_state(tasks):
    return {
        "nodes": [{"ID": "n1", "Spec": {"Labels": {"name": "wk1"}}, "Description": {"Hostname": "host1"}}],
        "services": [{"ID": "s1", "Spec": {"Name": "wk1_exareme"}}],
        "tasks": tasks,
    }


def task(state, created, error=None, node="n1", desired="running"):
    status = {"State": state}
    if error:
        status["Err"] = error
    return {"ServiceID": "s1", "NodeID": node, "DesiredState": desired, "CreatedAt": created, "Status": status}


def test_service_problems_none_when_task_runs():
    report = service_problems(swarm_state([task("rejected", "1", "x"), task("running", "2")]), ["wk1_exareme"])
    assert report == {"pending": [], "failing": []}


def test_service_problems_missing_service_is_pending():
    report = service_problems(swarm_state([]), ["wk2_exareme"])
    assert report["pending"] == ["service wk2_exareme does not exist"]


def test_service_problems_missing_image_fails_with_node_and_reason():
    tasks = [task("rejected", str(index), "No such image: hbpmip/exareme:24.5.1") for index in range(3)]
    report = service_problems(swarm_state(tasks), ["wk1_exareme"])
    assert report["pending"] == []
    assert report["failing"] == [
        "service wk1_exareme on node wk1: task rejected: No such image: hbpmip/exareme:24.5.1"]


def test_service_problems_unsatisfiable_constraint_fails_at_once():
    pending_task = task("pending", "1", node="")
    pending_task["Status"]["Message"] = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    report = service_problems(swarm_state([pending_task]), ["wk1_exareme"])
    assert report["failing"] == [
        "service wk1_exareme on node no node: task pending: "
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"]


def test_service_problems_single_rejection_still_pending():
    report = service_problems(swarm_state([task("rejected", "1", "boom")]), ["wk1_exareme"])
    assert report["failing"] == []
    assert len(report["pending"]) == 1


def test_published_datasets_matches_keys_exactly():
    entries = [
        {"Key": "data/wk1/dementia", "Value": "WyJwcG1pIiwiZWRzZCJd"},
        {"Key": "data/wk10/tbi", "Value": "WyJkdW1teV90YmkiXQ=="},
        {"Key": "active_workers/wk1", "Value": "MTAuMjAuMzAuMg=="},
        {"Key": "data/wk1", "Value": ""},
    ]
    assert published_datasets(entries) == {"wk1": {"dementia": ["edsd", "ppmi"]}, "wk10": {"tbi": ["dummy_tbi"]}}


def test_service_problems_ignores_failures_of_earlier_definition():
    tasks = [task("rejected", str(index), "old error") for index in range(3)] + [task("assigned", "9")]
    state = swarm_state(tasks)
    state["services"][0]["UpdatedAt"] = "5"
    report = service_problems(state, ["wk1_exareme"])
    assert report["failing"] == []
    assert report["pending"] == ["service wk1_exareme on node wk1: task assigned: no reason given"]


def test_container_row_reads_compose_service():
    container = {
        "Names": ["/mipfederation-frontend-1"],
        "Labels": {"com.docker.compose.service": "frontend"},
        "Status": "Up 2 minutes",
        "Image": "hbpmip/portal-frontend:9.3.1",
    }
    assert container_row(container) == ["mipfederation-frontend-1", "frontend", "Up 2 minutes",
                                        "hbpmip/portal-frontend:9.3.1"]


def test_service_problems_reports_failures_behind_new_task():
    tasks = [task("rejected", str(index), "No such image: x:missing") for index in range(3)] + [task("preparing", "9")]
    report = service_problems(swarm_state(tasks), ["wk1_exareme"])
    assert report["pending"] == []
    assert report["failing"] == ["service wk1_exareme on node wk1: task rejected: No such image: x:missing"]


def test_inventory_without_federation_group_is_invalid():
    groups = lab_groups()
    del groups["federation"]
    problems = federation_inventory_problems(groups, "lab")
    assert problems == [
        "inventory group 'federation' is missing: make pusher, master, ui and workers its children"]


def test_inventory_node_outside_federation_is_invalid():
    groups = lab_groups(workers=["labwk1", "labwk2", "labwk3"],
                        federation=["labpusher", "labms", "labui", "labwk1", "labwk2"])
    problems = federation_inventory_problems(groups, "lab")
    assert problems == [
        "hosts ['labwk3'] are not in the group 'federation': make pusher, master, ui and workers its children"]
