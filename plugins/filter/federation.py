# Copyright: mip.federation contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that check a federation's inventory before anything is changed."""

from __future__ import annotations

import ipaddress
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
    return [
        node.get("Description", {}).get("Hostname", ""),
        spec.get("Role", ""),
        status.get("State", ""),
        spec.get("Availability", ""),
        "leader" if manager.get("Leader") else ("manager" if manager else ""),
        (spec.get("Labels") or {}).get("name", "(none)"),
        status.get("Addr", ""),
    ]


def format_table(rows, headers):
    """Format ROWS (lists of cells) under HEADERS as aligned text lines."""
    table = [[str(cell) for cell in headers]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[index]) for row in table) for index in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)


class FilterModule:
    """Filters of mip.federation."""

    def filters(self):
        return {
            "node_id_problem": node_id_problem,
            "federation_inventory_problems": federation_inventory_problems,
            "is_ip_address": is_ip_address,
            "swarm_node_row": swarm_node_row,
            "format_table": format_table,
        }
