# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check a federation's inventory before anything is changed."""

from __future__ import annotations

import base64
import ipaddress
import json
import re


# exareme rejects dashes and dots in node names, Docker stack and compose
# project names must be lower case, and an underscore would make
# "<stack>_<service>" ambiguous, so ids are lower-case letters and digits.
NODE_ID_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,39}$")
NODE_GROUPS = ("pusher", "master", "ui", "workers")


def node_id_problem(name, what="node id"):
    """Return why NAME cannot be a node id or federation name, or None."""
    if not isinstance(name, str) or name == "":
        return "%s %r is empty or not a string" % (what, name)
    if NODE_ID_PATTERN.match(name):
        return None
    hint = re.sub(r"[^a-z0-9]", "", name.lower())
    if hint and not hint[0].isalpha():
        hint = "n" + hint
    return (
        "%s %r is invalid: use 1 to 40 lower-case letters and digits, starting "
        "with a letter (exareme rejects dashes and dots, Docker stack names are "
        "lower case), for example %r" % (what, name, hint[:40] or "wk1")
    )


def federation_inventory_problems(groups, federation_name):
    """Return every problem of a federation inventory as a list of messages.

    GROUPS is Ansible's ``groups`` mapping. The pusher and the master are
    exactly one host each, the ui at most one, the workers at least one, and
    no host belongs to two of these groups.
    """
    problems = []
    federation_problem = node_id_problem(federation_name, "mip_federation_name")
    if federation_problem:
        problems.append(federation_problem)

    expected_counts = {"pusher": (1, 1), "master": (1, 1), "ui": (0, 1), "workers": (1, None)}
    for group, (minimum, maximum) in expected_counts.items():
        members = list(groups.get(group, []))
        if len(members) < minimum or (maximum is not None and len(members) > maximum):
            wanted = "exactly %d" % minimum if minimum == maximum else (
                "at most %d" % maximum if maximum is not None else "at least %d" % minimum)
            problems.append("inventory group %r has %d hosts %s, expected %s"
                            % (group, len(members), members, wanted))

    federation_hosts = set(groups.get("federation", []))
    if "federation" not in groups:
        problems.append("inventory group 'federation' is missing: make pusher, master, ui and workers its children")
    else:
        outside = sorted(set(host for group in NODE_GROUPS for host in groups.get(group, [])) - federation_hosts)
        if outside:
            problems.append("hosts %s are not in the group 'federation': make pusher, master, ui and workers "
                            "its children" % outside)

    seen = {}
    for group in NODE_GROUPS:
        for host in groups.get(group, []):
            problem = node_id_problem(host, "inventory host name")
            if problem and host not in seen:
                problems.append(problem + " (in group %r)" % group)
            if host in seen and seen[host] != group:
                problems.append("host %r is in both groups %r and %r; a node has one role"
                                % (host, seen[host], group))
            seen.setdefault(host, group)
    return problems


def is_ip_address(value):
    """Return whether VALUE is an IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def swarm_node_row(node):
    """Return a status table row for one node as docker_node_info reports it."""
    spec = node.get("Spec", {})
    status = node.get("Status", {})
    manager = node.get("ManagerStatus") or {}
    if manager.get("Leader"):
        manager_role = "leader"
    elif manager:
        manager_role = "manager"
    else:
        manager_role = ""
    return [
        node.get("Description", {}).get("Hostname", ""),
        spec.get("Role", ""),
        status.get("State", ""),
        spec.get("Availability", ""),
        manager_role,
        (spec.get("Labels") or {}).get("name", "(none)"),
        status.get("Addr", ""),
    ]


def format_table(rows, headers):
    """Format ROWS (lists of cells) under HEADERS as aligned text lines."""
    table = [[str(cell) for cell in headers]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[index]) for row in table) for index in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)


def overlapping_networks(subnet, hostvars, hosts):
    """List the networks of HOSTS (from their facts) that overlap SUBNET."""
    wanted = ipaddress.ip_network(subnet, strict=False)
    clashes = []
    for host in hosts:
        facts = hostvars[host].get("ansible_facts", {})
        for interface in facts.get("interfaces", []):
            details = facts.get(interface.replace("-", "_"), {})
            for address in [details.get("ipv4")] + list(details.get("ipv4_secondaries", [])):
                if not address or "network" not in address:
                    continue
                network = ipaddress.ip_network("%s/%s" % (address["network"], address["netmask"]), strict=False)
                # Docker's own overlay and bridge interfaces do not count.
                if network.overlaps(wanted) and not interface.startswith(("veth", "docker", "br-", "vx-", "ov-")):
                    clashes.append("%s on %s (%s)" % (network, host, interface))
    return clashes


def _task_node(task, nodes_by_id):
    node = nodes_by_id.get(task.get("NodeID", ""), {})
    labels = (node.get("Spec") or {}).get("Labels") or {}
    return labels.get("name") or (node.get("Description") or {}).get("Hostname") or "no node"


def service_problems(swarm_info, expected_services, failures_before_giving_up=3):
    """Sort the EXPECTED_SERVICES that run no task into pending and failing.

    SWARM_INFO is the result of docker_swarm_info with nodes, services and
    tasks in verbose output. A service is failing once its latest
    FAILURES_BEFORE_GIVING_UP tasks all failed or were rejected (for example
    when its image is missing on the node), or when its constraint matches no
    node, because waiting longer would not help. Each message names the service, the node and the
    reason Docker gives.
    """
    services = {(service.get("Spec") or {}).get("Name"): service for service in swarm_info.get("services") or []}
    nodes_by_id = {node.get("ID"): node for node in swarm_info.get("nodes") or []}
    tasks = swarm_info.get("tasks") or []
    pending, failing = [], []
    for name in expected_services:
        service = services.get(name)
        if service is None:
            pending.append("service %s does not exist" % name)
            continue
        all_tasks = [task for task in tasks if task.get("ServiceID") == service.get("ID")]
        if any((task.get("Status") or {}).get("State") == "running" and task.get("DesiredState") == "running"
               for task in all_tasks):
            continue
        # Failures of an earlier definition of the service tell nothing about this one.
        updated_at = service.get("UpdatedAt", "")
        own_tasks = sorted(
            (task for task in all_tasks if task.get("CreatedAt", "") >= updated_at),
            key=lambda task: task.get("CreatedAt", ""),
        )
        if not own_tasks:
            pending.append("service %s has no task yet" % name)
            continue
        # Swarm replaces a rejected task at once, so the newest task is often
        # a fresh one in progress. The reason is in the failures before it.
        newest_first = list(reversed(own_tasks))
        if (newest_first[0].get("Status") or {}).get("State") not in ("failed", "rejected") and len(newest_first) > 1:
            recent = newest_first[1:]
        else:
            recent = newest_first
        trailing_failures = 0
        for earlier in recent:
            if (earlier.get("Status") or {}).get("State") not in ("failed", "rejected"):
                break
            trailing_failures += 1
        reported = recent[0] if trailing_failures else newest_first[0]
        status = reported.get("Status") or {}
        reason = status.get("Err") or status.get("Message") or "no reason given"
        message = "service %s on node %s: task %s: %s" % (
            name, _task_node(reported, nodes_by_id), status.get("State", "unknown"), reason)
        unschedulable = status.get("State") == "pending" and "no suitable node" in reason
        if trailing_failures >= failures_before_giving_up or unschedulable:
            failing.append(message)
        else:
            pending.append(message)
    return {"pending": pending, "failing": failing}


def published_datasets(kv_entries):
    """Turn the keystore's data/<node>/<pathology> entries into {node: {pathology: [datasets]}}."""
    published = {}
    for entry in kv_entries or []:
        parts = entry.get("Key", "").split("/")
        if len(parts) != 3 or parts[0] != "data" or not parts[1] or not parts[2]:
            continue
        value = entry.get("Value") or ""
        try:
            datasets = json.loads(base64.b64decode(value).decode("utf-8")) if value else []
        except ValueError:
            datasets = ["(unreadable value)"]
        published.setdefault(parts[1], {})[parts[2]] = sorted(datasets) if isinstance(datasets, list) else datasets
    return published


def service_rows(swarm_info):
    """Return status table rows (service, node, running/desired, image) for every service."""
    nodes_by_id = {node.get("ID"): node for node in swarm_info.get("nodes") or []}
    rows = []
    for service in swarm_info.get("services") or []:
        spec = service.get("Spec") or {}
        replicated = (spec.get("Mode") or {}).get("Replicated")
        desired = replicated.get("Replicas", 0) if replicated else "global"
        running_tasks = [
            task for task in swarm_info.get("tasks") or []
            if task.get("ServiceID") == service.get("ID")
            and (task.get("Status") or {}).get("State") == "running" and task.get("DesiredState") == "running"
        ]
        nodes = sorted({_task_node(task, nodes_by_id) for task in running_tasks}) or ["-"]
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
        rows.append([spec.get("Name", ""), ",".join(nodes), "%d/%s" % (len(running_tasks), desired), image.split("@")[0]])
    return sorted(rows)


def dataset_rows(published):
    """Return status table rows (node, pathology, datasets) from published_datasets' result."""
    rows = []
    for node in sorted(published):
        for pathology in sorted(published[node]):
            datasets = published[node][pathology]
            rows.append([node, pathology, ", ".join(datasets) if isinstance(datasets, list) else str(datasets)])
    return rows


def container_row(container):
    """Return a status table row (name, compose service, state, image) for one container of docker_host_info."""
    labels = container.get("Labels") or {}
    names = container.get("Names") or [""]
    return [names[0].lstrip("/"), labels.get("com.docker.compose.service", ""),
            container.get("Status", container.get("State", "")), container.get("Image", "")]


class FilterModule:
    """Filters of mip.federation."""

    def filters(self):
        return {
            "node_id_problem": node_id_problem,
            "federation_inventory_problems": federation_inventory_problems,
            "is_ip_address": is_ip_address,
            "swarm_node_row": swarm_node_row,
            "format_table": format_table,
            "overlapping_networks": overlapping_networks,
            "service_problems": service_problems,
            "published_datasets": published_datasets,
            "service_rows": service_rows,
            "dataset_rows": dataset_rows,
            "container_row": container_row,
        }
