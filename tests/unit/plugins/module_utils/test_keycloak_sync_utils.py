"""Unit tests of the KeyCloak sync logic and its API adapter; no network."""

import json

import pytest

from ansible_collections.mip.federation.plugins.module_utils import _keycloak_api
from ansible_collections.mip.federation.plugins.module_utils._keycloak_api import (
    AdminApi,
    KeycloakApiError,
    path,
)
from ansible_collections.mip.federation.plugins.module_utils._keycloak_sync import (
    SyncError,
    build_diff,
    build_wanted,
    has_role_mapper,
    is_managed_group,
    is_managed_role,
    plan_sync,
    role_mapper,
)


def structure(*pathologies):
    return [{"pathology": pathology,
             "nodes": [{"node": node, "datasets": [{"code": code, "rows": 1} for code in codes]}
                       for node, codes in nodes.items()]}
            for pathology, nodes in pathologies]


def current_from(wanted, client_id="fed1"):
    """Return read_roles/read_groups-shaped state equal to wanted."""
    roles = dict((name, {"id": "id-" + name, "description": spec["description"], "composite": bool(spec["composites"]),
                         "composites": set(spec["composites"])})
                 for name, spec in wanted["roles"].items())
    groups = dict((name, {"id": "gid-" + name, "roles": set(mapped)}) for name, mapped in wanted["groups"].items())
    return roles, groups


# build_wanted ---------------------------------------------------------------------

def test_wanted_roles_cover_role_model():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"], "wk2": ["ppmi"]})), "fed1")

    assert set(wanted["roles"]) == {
        "DC_ADMIN", "RESEARCH_DATASET_ALL", "RESEARCH_EXPERIMENT_ALL", "RESEARCH_PATHOLOGY_ALL", "WORKFLOW_ADMIN",
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi", "DC_CONTROL_dementia", "RESEARCH_PATHOLOGY_dementia",
        "DC_HOSPITAL_wk1", "DC_HOSPITAL_wk2"}


def test_wanted_dataset_description_joins_sorted_nodes():
    wanted = build_wanted(structure(("dementia", {"wk2": ["edsd"], "wk10": ["edsd"], "wk1": ["edsd"]})), "fed1")

    assert wanted["roles"]["RESEARCH_DATASET_edsd"]["description"] == "dementia - Worker wk1, wk10, wk2"


def test_wanted_pathology_composite_holds_its_datasets_only():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd", "ppmi"]}), ("tbi", {"wk1": ["dummy_tbi"]})),
                          "fed1")

    assert wanted["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"] == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi"}
    assert wanted["roles"]["RESEARCH_PATHOLOGY_tbi"]["composites"] == {"RESEARCH_DATASET_dummy_tbi"}
    composites = [name for name, spec in wanted["roles"].items() if spec["composites"]]
    assert sorted(composites) == ["RESEARCH_PATHOLOGY_dementia", "RESEARCH_PATHOLOGY_tbi"]


def test_wanted_groups_are_prefixed_with_upper_client_id():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]})), "fed1")

    assert wanted["groups"] == {
        "FED1_DC_ADMIN": {"DC_ADMIN"},
        "FED1_PROCESSOR": {"RESEARCH_DATASET_ALL", "RESEARCH_EXPERIMENT_ALL", "RESEARCH_PATHOLOGY_ALL"},
        "FED1_WORKFLOW_ADMIN": {"WORKFLOW_ADMIN"},
        "FED1_DC_HOSPITAL_wk1": {"DC_HOSPITAL_wk1"},
        "FED1_CONTROLLER_dementia": {"DC_CONTROL_dementia", "RESEARCH_PATHOLOGY_dementia"},
        "FED1_RESEARCHER_dementia": {"RESEARCH_PATHOLOGY_dementia"},
    }


def test_wanted_keeps_case_of_codes():
    wanted = build_wanted(structure(("Dementia", {"wk1": ["desd-synthdata", "EDSD"]})), "fed1")

    assert "RESEARCH_DATASET_EDSD" in wanted["roles"]
    assert "RESEARCH_PATHOLOGY_Dementia" in wanted["roles"]
    assert "FED1_RESEARCHER_Dementia" in wanted["groups"]


def test_wanted_merges_repeated_pathology():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]}), ("dementia", {"wk2": ["ppmi"]})), "fed1")

    assert wanted["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"] == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi"}


def test_wanted_rejects_dataset_in_two_pathologies():
    data = structure(("dementia", {"wk1": ["shared"]}), ("tbi", {"wk2": ["shared"]}))

    with pytest.raises(SyncError, match="dataset shared appears in pathologies dementia and tbi"):
        build_wanted(data, "fed1")


@pytest.mark.parametrize("data, message", [
    ({"pathology": "x"}, "data_structure: expected a list of pathologies, got dict"),
    (["dementia"], r"data_structure\[0\]: expected a mapping, got str"),
    ([{"nodes": []}], r"data_structure\[0\]: missing key 'pathology'"),
    ([{"pathology": "", "nodes": []}], r"data_structure\[0\]\.pathology: expected a non-empty string"),
    ([{"pathology": "dementia", "nodes": {}}], r"\(pathology dementia\)\.nodes: expected a list, got dict"),
    ([{"pathology": "dementia", "nodes": [{"datasets": []}]}], r"nodes\[0\]: missing key 'node'"),
    ([{"pathology": "dementia", "nodes": [{"node": "wk1", "datasets": [{"rows": 3}]}]}],
     r"\(node wk1\)\.datasets\[0\]: missing key 'code'"),
    ([{"pathology": "dementia", "nodes": [{"node": "wk1", "datasets": [{"code": 7}]}]}],
     r"datasets\[0\]\.code: expected a non-empty string, got 7"),
])
def test_wanted_rejects_malformed_structure(data, message):
    with pytest.raises(SyncError, match=message):
        build_wanted(data, "fed1")


# Naming patterns -----------------------------------------------------------------------

@pytest.mark.parametrize("name, managed", [
    ("DC_ADMIN", True), ("RESEARCH_DATASET_edsd", True), ("DC_CONTROL_tbi", True),
    ("RESEARCH_PATHOLOGY_tbi", True), ("DC_HOSPITAL_wk1", True),
    ("RESEARCH_DATASET_", False), ("CUSTOM", False), ("research_dataset_edsd", False), ("uma_protection", False),
])
def test_managed_role_patterns(name, managed):
    assert is_managed_role(name) is managed


@pytest.mark.parametrize("name, managed", [
    ("FED1_DC_ADMIN", True), ("FED1_PROCESSOR", True), ("FED1_WORKFLOW_ADMIN", True),
    ("FED1_DC_HOSPITAL_wk1", True), ("FED1_CONTROLLER_tbi", True), ("FED1_RESEARCHER_tbi", True),
    ("FED1_RESEARCHER_", False), ("FED1_EXTRA", False), ("FED10_PROCESSOR", False), ("OTHER_PROCESSOR", False),
    ("fed1_processor", False),
])
def test_managed_group_patterns(name, managed):
    assert is_managed_group(name, "fed1") is managed


# plan_sync ------------------------------------------------------------------------------

def test_plan_of_equal_state_is_empty():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd", "ppmi"]})), "fed1")
    roles, groups = current_from(wanted)

    plan = plan_sync(wanted, roles, groups, "fed1", prune=True)

    assert all(not value for value in plan.values())


def test_plan_compares_composites_as_sets():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd", "ppmi", "adni"]})), "fed1")
    roles, groups = current_from(wanted)
    roles["RESEARCH_PATHOLOGY_dementia"]["composites"] = {"RESEARCH_DATASET_adni", "RESEARCH_DATASET_ppmi",
                                                          "RESEARCH_DATASET_edsd"}

    plan = plan_sync(wanted, roles, groups, "fed1", prune=False)

    assert plan["update_roles"] == {}


def test_plan_adds_and_removes_composites():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd", "ppmi"]})), "fed1")
    roles, groups = current_from(wanted)
    roles["RESEARCH_PATHOLOGY_dementia"]["composites"] = {"RESEARCH_DATASET_edsd", "RESEARCH_DATASET_old"}

    plan = plan_sync(wanted, roles, groups, "fed1", prune=False)

    assert plan["update_roles"] == {"RESEARCH_PATHOLOGY_dementia": {
        "add_composites": ["RESEARCH_DATASET_ppmi"], "remove_composites": ["RESEARCH_DATASET_old"]}}


def test_plan_updates_description():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]})), "fed1")
    roles, groups = current_from(wanted)
    roles["RESEARCH_DATASET_edsd"]["description"] = "dementia - Worker wk9"

    plan = plan_sync(wanted, roles, groups, "fed1", prune=False)

    assert plan["update_roles"] == {"RESEARCH_DATASET_edsd": {"description": "dementia - Worker wk1"}}


def test_plan_without_prune_lists_unwanted_only():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]})), "fed1")
    roles, groups = current_from(wanted)
    roles["RESEARCH_DATASET_gone"] = {"id": "x", "description": "", "composite": False, "composites": None}
    roles["CUSTOM"] = {"id": "y", "description": "", "composite": False, "composites": None}
    groups["FED1_RESEARCHER_gone"] = {"id": "g", "roles": set()}

    plan = plan_sync(wanted, roles, groups, "fed1", prune=False)

    assert plan["delete_roles"] == []
    assert plan["delete_groups"] == []
    assert plan["unwanted_roles"] == ["RESEARCH_DATASET_gone"]
    assert plan["unwanted_groups"] == ["FED1_RESEARCHER_gone"]


def test_plan_with_prune_deletes_unwanted_of_our_patterns():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]})), "fed1")
    roles, groups = current_from(wanted)
    roles["RESEARCH_DATASET_gone"] = {"id": "x", "description": "", "composite": False, "composites": None}
    roles["CUSTOM"] = {"id": "y", "description": "", "composite": False, "composites": None}
    groups["FED1_RESEARCHER_gone"] = {"id": "g", "roles": set()}

    plan = plan_sync(wanted, roles, groups, "fed1", prune=True)

    assert plan["delete_roles"] == ["RESEARCH_DATASET_gone"]
    assert plan["delete_groups"] == ["FED1_RESEARCHER_gone"]
    assert plan["unwanted_roles"] == []
    assert plan["unwanted_groups"] == []


def test_plan_fixes_group_mappings():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd"]})), "fed1")
    roles, groups = current_from(wanted)
    groups["FED1_CONTROLLER_dementia"]["roles"] = {"DC_CONTROL_dementia", "DC_ADMIN"}

    plan = plan_sync(wanted, roles, groups, "fed1", prune=False)

    assert plan["update_groups"] == {"FED1_CONTROLLER_dementia": {
        "add_roles": ["RESEARCH_PATHOLOGY_dementia"], "remove_roles": ["DC_ADMIN"]}}


def test_diff_shows_created_updated_and_deleted():
    wanted = build_wanted(structure(("dementia", {"wk1": ["edsd", "new"]})), "fed1")
    roles, groups = current_from(wanted)
    del roles["RESEARCH_DATASET_new"]
    roles["RESEARCH_PATHOLOGY_dementia"]["composites"] = {"RESEARCH_DATASET_edsd"}
    roles["RESEARCH_DATASET_gone"] = {"id": "x", "description": "old", "composite": False, "composites": None}
    del groups["FED1_DC_ADMIN"]
    plan = plan_sync(wanted, roles, groups, "fed1", prune=True)

    diff = build_diff(plan, wanted, roles, groups)

    assert diff["after"]["roles"]["RESEARCH_DATASET_new"] == {"description": "dementia - Worker wk1"}
    assert diff["before"]["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"] == ["RESEARCH_DATASET_edsd"]
    assert diff["after"]["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"] == [
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_new"]
    assert diff["before"]["roles"]["RESEARCH_DATASET_gone"] == {"description": "old"}
    assert "RESEARCH_DATASET_gone" not in diff["after"]["roles"]
    assert diff["after"]["groups"] == {"FED1_DC_ADMIN": {"client_roles": ["DC_ADMIN"]}}
    assert diff["before"]["groups"] == {}


def test_role_mapper_is_recognised():
    assert has_role_mapper([role_mapper("fed1")], "fed1") is True
    assert has_role_mapper([], "fed1") is False
    other = role_mapper("fed1")
    other["config"]["claim.name"] = "roles"
    assert has_role_mapper([other], "fed1") is False


# Adapter ----------------------------------------------------------------------------------

class FakeResponse:
    def __init__(self, status_code, body=None):
        self.status_code = status_code
        self.text = "" if body is None else json.dumps(body)
        self.headers = {}

    def json(self):
        return json.loads(self.text)


class FakeConnection:
    """Answer raw_get from a queue of responses and record the calls."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.calls = []
        self.logins = 0
        self.token = {"access_token": "t"}

    def raw_get(self, relative, **params):
        self.calls.append((relative, params))
        return self.responses.pop(0)

    def get_token(self):
        self.logins += 1


def test_path_encodes_each_segment():
    assert path("clients", "u-1", "roles", "a b/c%d") == "clients/u-1/roles/a%20b%2Fc%25d"


def test_list_all_reads_past_short_pages():
    connection = FakeConnection([FakeResponse(200, [{"id": "1"}, {"id": "2"}]),
                                 FakeResponse(200, [{"id": "3"}]), FakeResponse(200, [])])
    api = AdminApi(connection, "MIP", "http://kc/")

    items = api.list_all(["groups"], 100)

    assert [item["id"] for item in items] == ["1", "2", "3"]
    assert [params["first"] for _relative, params in connection.calls] == [0, 2, 3]
    assert all(params["max"] == 100 for _relative, params in connection.calls)


def test_list_all_rejects_server_ignoring_first():
    connection = FakeConnection([FakeResponse(200, [{"id": "1"}]), FakeResponse(200, [{"id": "1"}])])
    api = AdminApi(connection, "MIP", "http://kc/")

    with pytest.raises(KeycloakApiError, match="ignores the first parameter"):
        api.list_all(["groups"], 1)


def test_request_logs_in_again_once_after_401():
    connection = FakeConnection([FakeResponse(401), FakeResponse(200, [])])
    api = AdminApi(connection, "MIP", "http://kc/")

    assert api.get(["groups"]) == []
    assert connection.logins == 1
    assert api.relogins == 1
    assert api.requests["GET"] == 2


def test_request_fails_after_second_401():
    connection = FakeConnection([FakeResponse(401), FakeResponse(401, {"error": "HTTP 401 Unauthorized"})])
    api = AdminApi(connection, "MIP", "http://kc/")

    with pytest.raises(KeycloakApiError, match=r"GET http://kc/admin/realms/MIP/groups returned HTTP 401"):
        api.get(["groups"])


def test_old_python_keycloak_is_rejected(monkeypatch):
    monkeypatch.setattr(_keycloak_api, "keycloak_version", lambda: (4, 1, 0))

    assert _keycloak_api.check_keycloak_library() == "python-keycloak >= 5.0 is required; found 4.1.0"


def test_installed_python_keycloak_is_accepted():
    assert _keycloak_api.check_keycloak_library() is None
