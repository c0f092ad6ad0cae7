# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring the roles and groups of a federation's KeyCloak client to the wanted state.

The role model is the one portal-backend reads (client roles in the
``authorities`` claim of the ID token):

* fixed roles DC_ADMIN, RESEARCH_DATASET_ALL, RESEARCH_EXPERIMENT_ALL,
  RESEARCH_PATHOLOGY_ALL and WORKFLOW_ADMIN;
* RESEARCH_DATASET_<dataset> per dataset, DC_CONTROL_<pathology> per
  pathology, the composite RESEARCH_PATHOLOGY_<pathology> holding the dataset
  roles of that pathology, and DC_HOSPITAL_<node> per worker;
* realm groups ``<CLIENT ID upper-cased>_<suffix>`` mapped to those roles.

The sync reads the current state, computes a plan and applies only the
differences, so role ids and group memberships survive every run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mip.federation.plugins.module_utils._keycloak_api import KeycloakApiError

FIXED_ROLES = {
    "DC_ADMIN": "Administration of the data catalogue",
    "RESEARCH_DATASET_ALL": "Access to every dataset of the federation",
    "RESEARCH_EXPERIMENT_ALL": "Access to every experiment of the federation",
    "RESEARCH_PATHOLOGY_ALL": "Access to every pathology of the federation",
    "WORKFLOW_ADMIN": "Administration of the workflow engine",
}
DATASET_PREFIX = "RESEARCH_DATASET_"
CONTROL_PREFIX = "DC_CONTROL_"
PATHOLOGY_PREFIX = "RESEARCH_PATHOLOGY_"
HOSPITAL_PREFIX = "DC_HOSPITAL_"
MANAGED_ROLE_PREFIXES = (DATASET_PREFIX, CONTROL_PREFIX, PATHOLOGY_PREFIX, HOSPITAL_PREFIX)
FIXED_GROUP_SUFFIXES = ("DC_ADMIN", "PROCESSOR", "WORKFLOW_ADMIN")
MANAGED_GROUP_PREFIXES = ("DC_HOSPITAL_", "CONTROLLER_", "RESEARCHER_")

ROLE_MAPPER_TYPE = "oidc-usermodel-client-role-mapper"
ROLE_MAPPER_CLAIM = "authorities"


class SyncError(Exception):
    """The input or the server state prevents the sync. The message names the object."""


# Wanted state ---------------------------------------------------------------


def _require(mapping, key, kind, where):
    if not isinstance(mapping, dict):
        raise SyncError("%s: expected a mapping, got %s" % (where, type(mapping).__name__))
    if key not in mapping:
        raise SyncError("%s: missing key '%s'" % (where, key))
    value = mapping[key]
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise SyncError("%s.%s: expected a non-empty string, got %r" % (where, key, value))
    if kind is list and not isinstance(value, list):
        raise SyncError("%s.%s: expected a list, got %s" % (where, key, type(value).__name__))
    return value


def build_wanted(data_structure, client_id):
    """Return the wanted roles and groups for a federation's data structure.

    data_structure is a list of {pathology, nodes: [{node, datasets: [{code}]}]}.
    The result is {"roles": {name: {"description", "composites"}},
    "groups": {name: set of role names}}, where composites is a set of role
    names of the same client. Raise SyncError on malformed input or on a
    dataset code used by two pathologies, because RESEARCH_DATASET_<code>
    would then grant access to both.
    """
    if not isinstance(data_structure, list):
        raise SyncError("data_structure: expected a list of pathologies, got %s"
                        % type(data_structure).__name__)

    datasets = {}  # code -> (pathology, set of nodes)
    pathologies = {}  # pathology -> set of dataset codes
    workers = set()
    for index, item in enumerate(data_structure):
        where = "data_structure[%d]" % index
        pathology = _require(item, "pathology", str, where)
        where = "data_structure[%d] (pathology %s)" % (index, pathology)
        codes = pathologies.setdefault(pathology, set())
        for node_index, node_item in enumerate(_require(item, "nodes", list, where)):
            node_where = "%s.nodes[%d]" % (where, node_index)
            node = _require(node_item, "node", str, node_where)
            workers.add(node)
            node_where = "%s.nodes[%d] (node %s)" % (where, node_index, node)
            for dataset_index, dataset in enumerate(_require(node_item, "datasets", list, node_where)):
                code = _require(dataset, "code", str, "%s.datasets[%d]" % (node_where, dataset_index))
                owner = datasets.setdefault(code, (pathology, set()))
                if owner[0] != pathology:
                    raise SyncError("dataset %s appears in pathologies %s and %s: a dataset code must be "
                                    "unique in the federation because role %s%s grants it"
                                    % (code, owner[0], pathology, DATASET_PREFIX, code))
                owner[1].add(node)
                codes.add(code)

    roles = {}
    for name, description in FIXED_ROLES.items():
        roles[name] = {"description": description, "composites": set()}
    for code, (pathology, nodes) in datasets.items():
        roles[DATASET_PREFIX + code] = {
            "description": "%s - Worker %s" % (pathology, ", ".join(sorted(nodes))),
            "composites": set(),
        }
    for pathology, codes in pathologies.items():
        roles[CONTROL_PREFIX + pathology] = {
            "description": "Data control of pathology %s" % pathology, "composites": set()}
        roles[PATHOLOGY_PREFIX + pathology] = {
            "description": "Access to every dataset of pathology %s" % pathology,
            "composites": set(DATASET_PREFIX + code for code in codes),
        }
    for node in workers:
        roles[HOSPITAL_PREFIX + node] = {"description": "Data controller of worker %s" % node,
                                         "composites": set()}

    prefix = group_prefix(client_id)
    groups = {
        prefix + "DC_ADMIN": {"DC_ADMIN"},
        prefix + "PROCESSOR": {"RESEARCH_DATASET_ALL", "RESEARCH_EXPERIMENT_ALL", "RESEARCH_PATHOLOGY_ALL"},
        prefix + "WORKFLOW_ADMIN": {"WORKFLOW_ADMIN"},
    }
    for node in workers:
        groups[prefix + "DC_HOSPITAL_" + node] = {HOSPITAL_PREFIX + node}
    for pathology in pathologies:
        groups[prefix + "CONTROLLER_" + pathology] = {CONTROL_PREFIX + pathology, PATHOLOGY_PREFIX + pathology}
        groups[prefix + "RESEARCHER_" + pathology] = {PATHOLOGY_PREFIX + pathology}
    return {"roles": roles, "groups": groups}


def group_prefix(client_id):
    return client_id.upper() + "_"


def is_managed_role(name):
    """Tell whether a role name follows the naming patterns of this sync (prune only touches those)."""
    return name in FIXED_ROLES or any(name.startswith(prefix) and len(name) > len(prefix)
                                      for prefix in MANAGED_ROLE_PREFIXES)


def is_managed_group(name, client_id):
    """Tell whether a group name follows the naming patterns of this sync for client_id."""
    prefix = group_prefix(client_id)
    if not name.startswith(prefix):
        return False
    suffix = name[len(prefix):]
    return suffix in FIXED_GROUP_SUFFIXES or any(suffix.startswith(start) and len(suffix) > len(start)
                                                 for start in MANAGED_GROUP_PREFIXES)


# Current state --------------------------------------------------------------


def read_roles(api, client_uuid, page_size, names_with_composites):
    """Return {name: {"id", "description", "composites"}} for the client's roles.

    Composites (as names of this client's roles) are read for the composite
    roles in names_with_composites only; other roles get None.
    """
    roles = {}
    for item in api.list_all(["clients", client_uuid, "roles"], page_size,
                             params={"briefRepresentation": "false"}):
        roles[item["name"]] = {"id": item["id"], "description": item.get("description") or "",
                               "composite": bool(item.get("composite")), "composites": None}
    for name in names_with_composites:
        role = roles.get(name)
        if role is None:
            continue
        if not role["composite"]:
            role["composites"] = set()
            continue
        members = api.get(["clients", client_uuid, "roles", name, "composites"])
        # Realm roles and other clients' roles in a composite are left alone.
        role["composites"] = set(member["name"] for member in members
                                 if member.get("clientRole") and member.get("containerId") == client_uuid)
    return roles


def read_groups(api, client_id, client_uuid, page_size):
    """Return {name: {"id", "roles"}} for the top-level groups that follow our patterns.

    roles is the set of this client's roles mapped to the group. A listing
    in brief representation has no clientRoles, and then the mappings are
    read group by group.
    """
    groups = {}
    listing = api.list_all(["groups"], page_size,
                           params={"search": group_prefix(client_id), "briefRepresentation": "false"})
    for item in listing:
        name = item.get("name", "")
        if not is_managed_group(name, client_id) or name in groups:
            continue
        if "clientRoles" in item:
            mapped = set((item.get("clientRoles") or {}).get(client_id, []))
        else:
            mapped = read_group_mappings(api, item["id"], client_uuid)
        groups[name] = {"id": item["id"], "roles": mapped}
    return groups


def read_group_mappings(api, group_id, client_uuid):
    return set(role["name"] for role in api.get(["groups", group_id, "role-mappings", "clients", client_uuid]))


# Plan -----------------------------------------------------------------------------


def plan_sync(wanted, roles, groups, client_id, prune):
    """Compare wanted and current state and return the plan of changes.

    roles and groups are as read_roles and read_groups return them (empty
    when the client does not exist yet). Composites and group mappings are
    compared as sets of role names of this client.
    """
    plan = {
        "create_roles": [], "update_roles": {}, "delete_roles": [], "unwanted_roles": [],
        "create_groups": [], "update_groups": {}, "delete_groups": [], "unwanted_groups": [],
    }
    for name in sorted(wanted["roles"]):
        spec = wanted["roles"][name]
        current = roles.get(name)
        if current is None:
            plan["create_roles"].append(name)
            continue
        change = {}
        if current["description"] != spec["description"]:
            change["description"] = spec["description"]
        existing = current["composites"] or set()
        add = sorted(spec["composites"] - existing)
        remove = sorted(existing - spec["composites"])
        if add:
            change["add_composites"] = add
        if remove:
            change["remove_composites"] = remove
        if change:
            plan["update_roles"][name] = change

    for name in sorted(roles):
        if name not in wanted["roles"] and is_managed_role(name):
            plan["delete_roles" if prune else "unwanted_roles"].append(name)

    for name in sorted(wanted["groups"]):
        current = groups.get(name)
        if current is None:
            plan["create_groups"].append(name)
            continue
        add = sorted(wanted["groups"][name] - current["roles"])
        remove = sorted(current["roles"] - wanted["groups"][name])
        if add or remove:
            plan["update_groups"][name] = {"add_roles": add, "remove_roles": remove}

    for name in sorted(groups):
        if name not in wanted["groups"] and is_managed_group(name, client_id):
            plan["delete_groups" if prune else "unwanted_groups"].append(name)
    return plan


def plan_changes(plan):
    return any(plan[key] for key in (
        "create_roles", "update_roles", "delete_roles", "create_groups", "update_groups", "delete_groups"))


def _role_view(description, composites):
    view = {"description": description}
    if composites:
        view["composites"] = sorted(composites)
    return view


def build_diff(plan, wanted, roles, groups):
    """Return Ansible's diff ({"before", "after"}) limited to what the plan changes."""
    before = {"roles": {}, "groups": {}}
    after = {"roles": {}, "groups": {}}
    for name in plan["create_roles"]:
        spec = wanted["roles"][name]
        after["roles"][name] = _role_view(spec["description"], spec["composites"])
    for name in plan["update_roles"]:
        spec = wanted["roles"][name]
        before["roles"][name] = _role_view(roles[name]["description"], roles[name]["composites"])
        after["roles"][name] = _role_view(spec["description"], spec["composites"])
    for name in plan["delete_roles"]:
        before["roles"][name] = _role_view(roles[name]["description"], roles[name]["composites"])
    for name in plan["create_groups"]:
        after["groups"][name] = {"client_roles": sorted(wanted["groups"][name])}
    for name in plan["update_groups"]:
        before["groups"][name] = {"client_roles": sorted(groups[name]["roles"])}
        after["groups"][name] = {"client_roles": sorted(wanted["groups"][name])}
    for name in plan["delete_groups"]:
        before["groups"][name] = {"client_roles": sorted(groups[name]["roles"])}
    return {"before": before, "after": after}


# Apply ----------------------------------------------------------------------------


def _references(roles, names, what):
    references = []
    for name in sorted(names):
        if name not in roles:
            raise SyncError("role %s, needed by %s, is missing on the server after its creation" % (name, what))
        references.append({"id": roles[name]["id"], "name": name})
    return references


def apply_plan(api, client_id, client_uuid, plan, wanted, roles, groups, page_size):
    """Write the plan to the server. Return the role names that already existed on creation (HTTP 409).

    roles and groups are the state the plan was computed from.
    """
    conflicts = []
    for name in plan["create_roles"]:
        response = api.request("POST", ["clients", client_uuid, "roles"],
                               data={"name": name, "description": wanted["roles"][name]["description"]},
                               accept=(201, 204, 409))
        if response.status_code == 409:
            conflicts.append(name)

    updates = dict(plan["update_roles"])
    if plan["create_roles"]:
        # Read the ids of the new roles, which composites and mappings need. A role
        # that another session created meanwhile (409) is compared like an existing one.
        roles = read_roles(api, client_uuid, page_size, list(wanted["roles"]))
        for name in plan["create_roles"]:
            spec = wanted["roles"][name]
            current = roles.get(name) or {"description": spec["description"], "composites": set()}
            existing = current["composites"] or set()
            change = {}
            if current["description"] != spec["description"]:
                change["description"] = spec["description"]
            if spec["composites"] - existing:
                change["add_composites"] = sorted(spec["composites"] - existing)
            if existing - spec["composites"]:
                change["remove_composites"] = sorted(existing - spec["composites"])
            if change:
                updates[name] = change

    for name in sorted(updates):
        change = updates[name]
        if "description" in change:
            api.request("PUT", ["clients", client_uuid, "roles", name],
                        data={"name": name, "description": change["description"]})
        if change.get("add_composites"):
            api.request("POST", ["clients", client_uuid, "roles", name, "composites"],
                        data=_references(roles, change["add_composites"], "composite role " + name))
        if change.get("remove_composites"):
            api.request("DELETE", ["clients", client_uuid, "roles", name, "composites"],
                        data=_references(roles, change["remove_composites"], "composite role " + name))

    if plan["create_groups"] or plan["update_groups"]:
        apply_groups(api, client_id, client_uuid, plan, wanted, groups, roles, page_size)

    for name in plan["delete_groups"]:
        api.request("DELETE", ["groups", groups[name]["id"]], accept=(204, 404))
    for name in plan["delete_roles"]:
        api.request("DELETE", ["clients", client_uuid, "roles", name], accept=(204, 404))
    return conflicts


def apply_groups(api, client_id, client_uuid, plan, wanted, groups, roles, page_size):
    mapping_changes = {}
    for name, change in plan["update_groups"].items():
        mapping_changes[name] = (groups[name]["id"], change["add_roles"], change["remove_roles"])

    conflicted = []
    for name in plan["create_groups"]:
        response = api.request("POST", ["groups"], data={"name": name}, accept=(201, 204, 409))
        location = response.headers.get("Location", "") if response.status_code != 409 else ""
        group_id = location.rstrip("/").rsplit("/", 1)[-1] if "/groups/" in location else None
        if group_id is None:
            conflicted.append(name)
            continue
        mapping_changes[name] = (group_id, sorted(wanted["groups"][name]), [])

    if conflicted:
        # Another session created these groups meanwhile: find them and compare their mappings.
        found = read_groups(api, client_id, client_uuid, page_size)
        for name in conflicted:
            if name not in found:
                raise SyncError("group %s: creation returned no id and the group is not listed" % name)
            current = found[name]["roles"]
            mapping_changes[name] = (found[name]["id"], sorted(wanted["groups"][name] - current),
                                     sorted(current - wanted["groups"][name]))

    for name in sorted(mapping_changes):
        group_id, add, remove = mapping_changes[name]
        segments = ["groups", group_id, "role-mappings", "clients", client_uuid]
        if add:
            api.request("POST", segments, data=_references(roles, add, "group " + name))
        if remove:
            api.request("DELETE", segments, data=_references(roles, remove, "group " + name))


# Client -----------------------------------------------------------------------------


def role_mapper(client_id):
    """Return the protocol mapper that puts the client's roles in the authorities claim."""
    return {
        "name": "clientRole",
        "protocol": "openid-connect",
        "protocolMapper": ROLE_MAPPER_TYPE,
        "consentRequired": False,
        "config": {
            "multivalued": "true",
            "usermodel.clientRoleMapping.clientId": client_id,
            "claim.name": ROLE_MAPPER_CLAIM,
            "jsonType.label": "String",
            "id.token.claim": "true",
            "access.token.claim": "true",
            "userinfo.token.claim": "true",
        },
    }


def has_role_mapper(mappers, client_id):
    for mapper in mappers or []:
        config = mapper.get("config") or {}
        if (mapper.get("protocolMapper") == ROLE_MAPPER_TYPE
                and config.get("claim.name") == ROLE_MAPPER_CLAIM
                and config.get("usermodel.clientRoleMapping.clientId") in (None, "", client_id)):
            return True
    return False


def client_representation(client_id, redirect_uris):
    return {
        "clientId": client_id,
        "name": client_id,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": False,
        "clientAuthenticatorType": "client-secret",
        "standardFlowEnabled": True,
        "directAccessGrantsEnabled": True,
        "redirectUris": list(redirect_uris),
        "protocolMappers": [role_mapper(client_id)],
    }


def find_client(api, client_id):
    for item in api.get(["clients"], params={"clientId": client_id}):
        if item.get("clientId") == client_id:
            return item
    return None


# Whole sync --------------------------------------------------------------------------


def sync(api, client_id, data_structure, redirect_uris=None, prune=False, return_client_secret=False,
         page_size=100, check_mode=False):
    """Sync the client, its roles and its groups, and return the module result with its diff."""
    wanted = build_wanted(data_structure, client_id)
    result = {"changed": False, "client_id": client_id, "client_created": False, "mapper_created": False,
              "conflicts": []}

    client = find_client(api, client_id)
    if client is None:
        if not redirect_uris:
            raise SyncError("client %s does not exist and redirect_uris is empty: give the redirect URIs "
                            "of the portal to create it" % client_id)
        result["client_created"] = True
        if not check_mode:
            api.request("POST", ["clients"], data=client_representation(client_id, redirect_uris),
                        accept=(201, 409))
            client = find_client(api, client_id)
            if client is None:
                raise SyncError("client %s: created but not found by clientId" % client_id)
    else:
        mappers = client.get("protocolMappers")
        if mappers is None:
            mappers = api.get(["clients", client["id"], "protocol-mappers", "models"])
        if not has_role_mapper(mappers, client_id):
            result["mapper_created"] = True
            if not check_mode:
                api.request("POST", ["clients", client["id"], "protocol-mappers", "models"],
                            data=role_mapper(client_id))

    if client is None:
        roles, groups = {}, {}
    else:
        # Composites are read for every wanted role that the server flags
        # composite, so that a stray composite on a plain role is removed too.
        roles = read_roles(api, client["id"], page_size, list(wanted["roles"]))
        groups = read_groups(api, client_id, client["id"], page_size)

    plan = plan_sync(wanted, roles, groups, client_id, prune)
    result["diff"] = build_diff(plan, wanted, roles, groups)
    if result["client_created"]:
        result["diff"]["after"]["client"] = {"client_id": client_id, "redirect_uris": list(redirect_uris),
                                             "authorities_mapper": True}
    elif result["mapper_created"]:
        result["diff"]["before"]["client"] = {"client_id": client_id, "authorities_mapper": False}
        result["diff"]["after"]["client"] = {"client_id": client_id, "authorities_mapper": True}
    if client is not None and not check_mode and plan_changes(plan):
        result["conflicts"] = apply_plan(api, client_id, client["id"], plan, wanted, roles, groups,
                                         page_size)

    result["created_roles"] = plan["create_roles"]
    result["updated_roles"] = sorted(plan["update_roles"])
    result["deleted_roles"] = plan["delete_roles"]
    result["unwanted_roles"] = plan["unwanted_roles"]
    result["created_groups"] = plan["create_groups"]
    result["updated_groups"] = sorted(plan["update_groups"])
    result["deleted_groups"] = plan["delete_groups"]
    result["unwanted_groups"] = plan["unwanted_groups"]
    result["counts"] = dict((key, len(result[key])) for key in (
        "created_roles", "updated_roles", "deleted_roles", "unwanted_roles",
        "created_groups", "updated_groups", "deleted_groups", "unwanted_groups"))
    result["changed"] = result["client_created"] or result["mapper_created"] or plan_changes(plan)

    # Reading the secret of an existing client writes nothing, so check mode
    # returns it too, and the portal step can be checked after this one.
    if client is not None and (return_client_secret or (result["client_created"] and not check_mode)):
        secret = api.get(["clients", client["id"], "client-secret"])
        result["client_secret"] = secret.get("value")
    return result


__all__ = ["SyncError", "KeycloakApiError", "build_wanted", "plan_sync", "build_diff", "sync"]
