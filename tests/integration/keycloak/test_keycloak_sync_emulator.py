"""keycloak_sync against the KeyCloak emulator: resulting server state, changed, diff, request counts."""

import time

import pytest

from ansible_collections.mip.federation.plugins.module_utils._keycloak_api import KeycloakApiError, connect
from ansible_collections.mip.federation.plugins.module_utils._keycloak_sync import SyncError, sync

CLIENT = "fed1"
REDIRECTS = ["https://portal.fed1.test/*"]


def federation(*pathologies):
    """Build a data structure from (pathology, {node: [codes]}) pairs."""
    return [{"pathology": pathology,
             "nodes": [{"node": node, "datasets": [{"code": code, "rows": 10} for code in codes]}
                       for node, codes in nodes.items()]}
            for pathology, nodes in pathologies]


def small_federation():
    return federation(("dementia", {"wk1": ["edsd", "ppmi"], "wk2": ["edsd", "desd-synthdata"]}),
                      ("tbi", {"wk2": ["dummy_tbi"]}))


def run_sync(emulator, data, page_size=100, service_account=False, **options):
    if service_account:
        api = connect(emulator.url, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret)
    else:
        api = connect(emulator.url, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                      emulator.admin_user, emulator.admin_password)
    options.setdefault("redirect_uris", REDIRECTS)
    return sync(api, CLIENT, data, page_size=page_size, **options)


def wanted_role_names(*extra):
    return {"DC_ADMIN", "RESEARCH_DATASET_ALL", "RESEARCH_EXPERIMENT_ALL", "RESEARCH_PATHOLOGY_ALL",
            "WORKFLOW_ADMIN"} | set(extra)


SMALL_ROLES = wanted_role_names(
    "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi", "RESEARCH_DATASET_desd-synthdata",
    "RESEARCH_DATASET_dummy_tbi", "DC_CONTROL_dementia", "DC_CONTROL_tbi", "RESEARCH_PATHOLOGY_dementia",
    "RESEARCH_PATHOLOGY_tbi", "DC_HOSPITAL_wk1", "DC_HOSPITAL_wk2")

SMALL_GROUPS = {
    "FED1_DC_ADMIN": {"DC_ADMIN"},
    "FED1_PROCESSOR": {"RESEARCH_DATASET_ALL", "RESEARCH_EXPERIMENT_ALL", "RESEARCH_PATHOLOGY_ALL"},
    "FED1_WORKFLOW_ADMIN": {"WORKFLOW_ADMIN"},
    "FED1_DC_HOSPITAL_wk1": {"DC_HOSPITAL_wk1"},
    "FED1_DC_HOSPITAL_wk2": {"DC_HOSPITAL_wk2"},
    "FED1_CONTROLLER_dementia": {"DC_CONTROL_dementia", "RESEARCH_PATHOLOGY_dementia"},
    "FED1_RESEARCHER_dementia": {"RESEARCH_PATHOLOGY_dementia"},
    "FED1_CONTROLLER_tbi": {"DC_CONTROL_tbi", "RESEARCH_PATHOLOGY_tbi"},
    "FED1_RESEARCHER_tbi": {"RESEARCH_PATHOLOGY_tbi"},
}


def group_mappings(emulator):
    return dict((name, group["roles"]) for name, group in emulator.groups(CLIENT).items())


def test_first_sync_creates_client_with_role_mapper(emulator):
    result = run_sync(emulator, small_federation())

    client = emulator.client(CLIENT)
    assert result["changed"] is True
    assert result["client_created"] is True
    assert client["publicClient"] is False
    assert client["standardFlowEnabled"] is True
    assert client["directAccessGrantsEnabled"] is True
    assert client["redirectUris"] == REDIRECTS
    mappers = [mapper for mapper in client["protocolMappers"]
               if mapper["protocolMapper"] == "oidc-usermodel-client-role-mapper"]
    assert len(mappers) == 1
    config = mappers[0]["config"]
    assert config["claim.name"] == "authorities"
    assert config["multivalued"] == "true"
    assert config["usermodel.clientRoleMapping.clientId"] == CLIENT
    for claim in ("id.token.claim", "access.token.claim", "userinfo.token.claim"):
        assert config[claim] == "true"
    secret = emulator.admin("GET", "clients/%s/client-secret" % client["id"]).json()["value"]
    assert result["client_secret"] == secret


def test_first_sync_creates_role_model(emulator):
    result = run_sync(emulator, small_federation())

    roles = emulator.roles(CLIENT)
    assert set(roles) == SMALL_ROLES
    assert sorted(result["created_roles"]) == sorted(SMALL_ROLES)
    assert roles["RESEARCH_DATASET_edsd"]["description"] == "dementia - Worker wk1, wk2"
    assert roles["RESEARCH_DATASET_ppmi"]["description"] == "dementia - Worker wk1"
    assert roles["RESEARCH_DATASET_dummy_tbi"]["description"] == "tbi - Worker wk2"
    assert roles["RESEARCH_PATHOLOGY_dementia"]["composites"] == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi", "RESEARCH_DATASET_desd-synthdata"}
    assert roles["RESEARCH_PATHOLOGY_tbi"]["composites"] == {"RESEARCH_DATASET_dummy_tbi"}
    others = [name for name, role in roles.items() if role["composites"] and not name.startswith("RESEARCH_PATHOLOGY_")]
    assert others == []


def test_first_sync_creates_groups_and_mappings(emulator):
    result = run_sync(emulator, small_federation())

    assert group_mappings(emulator) == SMALL_GROUPS
    assert sorted(result["created_groups"]) == sorted(SMALL_GROUPS)
    assert result["counts"]["created_groups"] == len(SMALL_GROUPS)


def test_second_sync_is_unchanged_and_sends_no_write(emulator):
    run_sync(emulator, small_federation())
    emulator.reset_stats()

    result = run_sync(emulator, small_federation())

    stats = emulator.stats()
    assert result["changed"] is False
    assert stats["writes"] == 0
    assert result["diff"] == {"before": {"roles": {}, "groups": {}}, "after": {"roles": {}, "groups": {}}}
    # realm probe, client lookup, 1 page + 1 empty page of roles, 2 composites,
    # 1 page + 1 empty page of groups
    assert stats["reads"] == 8
    assert "client_secret" not in result


def test_check_mode_on_empty_realm_writes_nothing(emulator):
    emulator.reset_stats()

    result = run_sync(emulator, small_federation(), check_mode=True)

    assert result["changed"] is True
    assert result["client_created"] is True
    assert result["diff"]["after"]["client"] == {"client_id": CLIENT, "redirect_uris": REDIRECTS,
                                                 "authorities_mapper": True}
    assert sorted(result["created_roles"]) == sorted(SMALL_ROLES)
    assert sorted(result["created_groups"]) == sorted(SMALL_GROUPS)
    assert emulator.stats()["writes"] == 0
    assert emulator.client_uuid(CLIENT) is None
    assert "client_secret" not in result


def test_check_mode_diff_lists_every_change(emulator):
    run_sync(emulator, small_federation())
    client_uuid = emulator.client_uuid(CLIENT)
    emulator.admin("PUT", "clients/%s/roles/DC_ADMIN" % client_uuid, json={"description": "edited by hand"})
    changed = federation(("dementia", {"wk1": ["edsd", "ppmi"], "wk2": ["edsd", "desd-synthdata", "adni"]}),
                         ("tbi", {"wk2": ["dummy_tbi"]}))
    emulator.reset_stats()

    result = run_sync(emulator, changed, check_mode=True)

    diff = result["diff"]
    assert emulator.stats()["writes"] == 0
    assert result["changed"] is True
    assert result["created_roles"] == ["RESEARCH_DATASET_adni"]
    assert sorted(result["updated_roles"]) == ["DC_ADMIN", "RESEARCH_PATHOLOGY_dementia"]
    assert diff["after"]["roles"]["RESEARCH_DATASET_adni"] == {"description": "dementia - Worker wk2"}
    assert "RESEARCH_DATASET_adni" not in diff["before"]["roles"]
    assert diff["before"]["roles"]["DC_ADMIN"]["description"] == "edited by hand"
    assert diff["after"]["roles"]["DC_ADMIN"]["description"] == "Administration of the data catalogue"
    assert "RESEARCH_DATASET_adni" not in diff["before"]["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"]
    assert "RESEARCH_DATASET_adni" in diff["after"]["roles"]["RESEARCH_PATHOLOGY_dementia"]["composites"]
    assert diff["before"]["groups"] == {}
    assert diff["after"]["groups"] == {}
    assert "RESEARCH_DATASET_adni" not in emulator.roles(CLIENT)


def test_sync_applies_what_check_mode_reported(emulator):
    run_sync(emulator, small_federation())
    changed = federation(("dementia", {"wk1": ["edsd", "ppmi"], "wk2": ["edsd", "desd-synthdata", "adni"]}),
                         ("tbi", {"wk2": ["dummy_tbi"]}))
    planned = run_sync(emulator, changed, check_mode=True)

    applied = run_sync(emulator, changed)

    for key in ("created_roles", "updated_roles", "created_groups", "updated_groups"):
        assert applied[key] == planned[key]
    assert applied["diff"] == planned["diff"]
    assert "RESEARCH_DATASET_adni" in emulator.roles(CLIENT)["RESEARCH_PATHOLOGY_dementia"]["composites"]
    assert run_sync(emulator, changed)["changed"] is False


def test_memberships_and_ids_survive_sync(emulator):
    run_sync(emulator, small_federation())
    groups_before = emulator.groups(CLIENT)
    roles_before = emulator.roles(CLIENT)
    emulator.create_user_in_group("alice", groups_before["FED1_RESEARCHER_dementia"]["id"])
    emulator.create_user_in_group("bob", groups_before["FED1_PROCESSOR"]["id"])
    emulator.create_user_in_group("carol", groups_before["FED1_RESEARCHER_tbi"]["id"])
    grown = federation(("dementia", {"wk1": ["edsd", "ppmi", "adni"], "wk3": ["edsd"]}),
                       ("tbi", {"wk2": ["dummy_tbi"]}))

    run_sync(emulator, grown)
    run_sync(emulator, grown, prune=True)

    groups_after = emulator.groups(CLIENT)
    roles_after = emulator.roles(CLIENT)
    assert emulator.members(groups_after["FED1_RESEARCHER_dementia"]["id"]) == {"alice"}
    assert emulator.members(groups_after["FED1_PROCESSOR"]["id"]) == {"bob"}
    assert emulator.members(groups_after["FED1_RESEARCHER_tbi"]["id"]) == {"carol"}
    for name in SMALL_GROUPS:
        if name in groups_after:
            assert groups_after[name]["id"] == groups_before[name]["id"]
    for name in roles_after:
        if name in roles_before:
            assert roles_after[name]["id"] == roles_before[name]["id"]


def test_sync_without_prune_deletes_nothing(emulator):
    run_sync(emulator, small_federation())
    shrunk = federation(("dementia", {"wk1": ["edsd", "ppmi"]}))

    result = run_sync(emulator, shrunk)

    assert set(emulator.roles(CLIENT)) == SMALL_ROLES
    assert set(emulator.groups(CLIENT)) == set(SMALL_GROUPS)
    assert result["deleted_roles"] == []
    assert result["deleted_groups"] == []
    assert sorted(result["unwanted_roles"]) == sorted([
        "DC_CONTROL_tbi", "DC_HOSPITAL_wk2", "RESEARCH_DATASET_desd-synthdata", "RESEARCH_DATASET_dummy_tbi",
        "RESEARCH_PATHOLOGY_tbi"])
    assert sorted(result["unwanted_groups"]) == sorted([
        "FED1_CONTROLLER_tbi", "FED1_DC_HOSPITAL_wk2", "FED1_RESEARCHER_tbi"])
    # The pathology composite drops the dataset that left, even without prune.
    assert emulator.roles(CLIENT)["RESEARCH_PATHOLOGY_dementia"]["composites"] == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi"}


def test_prune_deletes_only_our_patterns(emulator):
    run_sync(emulator, small_federation())
    emulator.create_role(CLIENT, "CUSTOM_ROLE", "made by hand")
    emulator.create_role(CLIENT, "RESEARCH_DATASET", "no suffix, so not ours")
    for name in ("FED1_EXTRA", "OTHER_RESEARCHER_tbi", "FED1_RESEARCHER", "fed1_processor"):
        emulator.create_group(name)
    shrunk = federation(("dementia", {"wk1": ["edsd", "ppmi"]}))

    result = run_sync(emulator, shrunk, prune=True)

    roles = emulator.roles(CLIENT)
    groups = emulator.groups(CLIENT)
    assert sorted(result["deleted_roles"]) == sorted([
        "DC_CONTROL_tbi", "DC_HOSPITAL_wk2", "RESEARCH_DATASET_desd-synthdata", "RESEARCH_DATASET_dummy_tbi",
        "RESEARCH_PATHOLOGY_tbi"])
    assert sorted(result["deleted_groups"]) == sorted(["FED1_CONTROLLER_tbi", "FED1_DC_HOSPITAL_wk2",
                                                       "FED1_RESEARCHER_tbi"])
    assert set(roles) == wanted_role_names("RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi",
                                           "DC_CONTROL_dementia", "RESEARCH_PATHOLOGY_dementia",
                                           "DC_HOSPITAL_wk1", "CUSTOM_ROLE", "RESEARCH_DATASET")
    assert {"FED1_EXTRA", "OTHER_RESEARCHER_tbi", "FED1_RESEARCHER", "fed1_processor"} <= set(groups)
    assert "FED1_CONTROLLER_tbi" not in groups
    assert run_sync(emulator, shrunk, prune=True)["changed"] is False


def pages_of_three(count):
    """Return the list requests for count items at 3 per page: full pages, a partial one, an empty one."""
    return count // 3 + (1 if count % 3 else 0) + 1


def test_paging_with_page_size_three(start_emulator):
    emulator = start_emulator(max_page_size=3)

    first = run_sync(emulator, small_federation())
    emulator.reset_stats()
    second = run_sync(emulator, small_federation())

    stats = emulator.stats()
    assert len(first["created_roles"]) == len(SMALL_ROLES)
    assert set(emulator.roles(CLIENT)) == SMALL_ROLES
    assert group_mappings(emulator) == SMALL_GROUPS
    assert second["changed"] is False
    assert stats["writes"] == 0
    role_pages = [count for key, count in stats["by_path"].items() if key.startswith("GET ") and key.endswith("/roles")]
    assert role_pages == [pages_of_three(len(SMALL_ROLES))]
    assert stats["by_path"]["GET /admin/realms/MIP/groups"] == pages_of_three(len(SMALL_GROUPS))


def test_token_expiry_mid_sync_is_retried(emulator):
    emulator.expire_tokens(after_requests=4)

    result = run_sync(emulator, small_federation())

    stats = emulator.stats()
    assert stats["unauthorized"] >= 1
    assert stats["token_requests"] >= 2
    assert result["changed"] is True
    assert set(emulator.roles(CLIENT)) == SMALL_ROLES
    assert group_mappings(emulator) == SMALL_GROUPS


def test_short_token_lifetime_refreshes(start_emulator):
    emulator = start_emulator(token_lifetime=1)
    api = connect(emulator.url, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                  emulator.admin_user, emulator.admin_password)
    time.sleep(1.2)

    result = sync(api, CLIENT, small_federation(), redirect_uris=REDIRECTS)

    assert result["changed"] is True
    assert set(emulator.roles(CLIENT)) == SMALL_ROLES


def test_conflict_on_create_is_taken_as_present(emulator):
    run_sync(emulator, federation(("dementia", {"wk1": ["ppmi"]})))
    emulator.conflict_on_create(roles=["RESEARCH_DATASET_edsd"], groups=["FED1_RESEARCHER_tbi"])

    result = run_sync(emulator, small_federation())

    roles = emulator.roles(CLIENT)
    assert result["conflicts"] == ["RESEARCH_DATASET_edsd"]
    assert roles["RESEARCH_DATASET_edsd"]["description"] == "dementia - Worker wk1, wk2"
    assert "RESEARCH_DATASET_edsd" in roles["RESEARCH_PATHOLOGY_dementia"]["composites"]
    assert group_mappings(emulator) == SMALL_GROUPS
    assert run_sync(emulator, small_federation())["changed"] is False


@pytest.mark.parametrize("code", ["with space", "with/slash", "100%", "a%2Fb", "plus+and?"])
def test_names_needing_url_encoding(emulator, code):
    data = federation(("dementia", {"wk1": ["edsd", code]}))

    run_sync(emulator, data)
    emulator.reset_stats()
    second = run_sync(emulator, data)

    roles = emulator.roles(CLIENT)
    assert "RESEARCH_DATASET_" + code in roles
    assert "RESEARCH_DATASET_" + code in roles["RESEARCH_PATHOLOGY_dementia"]["composites"]
    assert second["changed"] is False
    assert emulator.stats()["writes"] == 0


def test_description_and_composite_drift_is_repaired(emulator):
    run_sync(emulator, small_federation())
    client_uuid = emulator.client_uuid(CLIENT)
    roles = emulator.roles(CLIENT)
    emulator.admin("PUT", "clients/%s/roles/RESEARCH_DATASET_edsd" % client_uuid, json={"description": "stale"})
    emulator.admin("DELETE", "clients/%s/roles/RESEARCH_PATHOLOGY_dementia/composites" % client_uuid,
                   json=[{"id": roles["RESEARCH_DATASET_ppmi"]["id"]}])
    emulator.admin("POST", "clients/%s/roles/RESEARCH_PATHOLOGY_dementia/composites" % client_uuid,
                   json=[{"id": roles["RESEARCH_DATASET_dummy_tbi"]["id"]}])
    emulator.admin("POST", "clients/%s/roles/DC_ADMIN/composites" % client_uuid,
                   json=[{"id": roles["WORKFLOW_ADMIN"]["id"]}])

    result = run_sync(emulator, small_federation())

    roles = emulator.roles(CLIENT)
    assert sorted(result["updated_roles"]) == ["DC_ADMIN", "RESEARCH_DATASET_edsd", "RESEARCH_PATHOLOGY_dementia"]
    assert roles["RESEARCH_DATASET_edsd"]["description"] == "dementia - Worker wk1, wk2"
    assert roles["RESEARCH_PATHOLOGY_dementia"]["composites"] == {
        "RESEARCH_DATASET_edsd", "RESEARCH_DATASET_ppmi", "RESEARCH_DATASET_desd-synthdata"}
    assert roles["DC_ADMIN"]["composites"] == set()


def test_group_mapping_drift_is_repaired(emulator):
    run_sync(emulator, small_federation())
    client_uuid = emulator.client_uuid(CLIENT)
    roles = emulator.roles(CLIENT)
    group_id = emulator.groups(CLIENT)["FED1_RESEARCHER_dementia"]["id"]
    segments = "groups/%s/role-mappings/clients/%s" % (group_id, client_uuid)
    emulator.admin("DELETE", segments, json=[{"id": roles["RESEARCH_PATHOLOGY_dementia"]["id"]}])
    emulator.admin("POST", segments, json=[{"id": roles["DC_ADMIN"]["id"]}])

    result = run_sync(emulator, small_federation())

    assert result["updated_groups"] == ["FED1_RESEARCHER_dementia"]
    assert result["diff"]["before"]["groups"]["FED1_RESEARCHER_dementia"] == {"client_roles": ["DC_ADMIN"]}
    assert group_mappings(emulator) == SMALL_GROUPS


def test_existing_client_gets_role_mapper(emulator):
    emulator.admin("POST", "clients", json={"clientId": CLIENT, "redirectUris": ["https://kept/*"]})

    result = run_sync(emulator, small_federation(), redirect_uris=[])

    client = emulator.client(CLIENT)
    assert result["client_created"] is False
    assert result["mapper_created"] is True
    assert result["diff"]["before"]["client"] == {"client_id": CLIENT, "authorities_mapper": False}
    assert result["diff"]["after"]["client"] == {"client_id": CLIENT, "authorities_mapper": True}
    assert client["redirectUris"] == ["https://kept/*"]
    assert [mapper["config"]["claim.name"] for mapper in client["protocolMappers"]] == ["authorities"]
    assert "client_secret" not in result
    assert run_sync(emulator, small_federation())["mapper_created"] is False


def test_return_client_secret_on_request(emulator):
    run_sync(emulator, small_federation())

    result = run_sync(emulator, small_federation(), return_client_secret=True)

    client_uuid = emulator.client_uuid(CLIENT)
    assert result["changed"] is False
    assert result["client_secret"] == emulator.admin("GET", "clients/%s/client-secret" % client_uuid).json()["value"]


def test_check_mode_returns_secret_of_existing_client(emulator):
    run_sync(emulator, small_federation())
    emulator.reset_stats()

    result = run_sync(emulator, small_federation(), return_client_secret=True, check_mode=True)

    client_uuid = emulator.client_uuid(CLIENT)
    assert result["client_secret"] == emulator.admin("GET", "clients/%s/client-secret" % client_uuid).json()["value"]
    assert emulator.stats()["writes"] == 0


def test_check_mode_for_new_client_returns_no_secret(emulator):
    result = run_sync(emulator, small_federation(), return_client_secret=True, check_mode=True)

    assert result["client_created"] is True
    assert "client_secret" not in result
    assert emulator.stats()["writes"] == 0


def test_missing_client_without_redirect_uris_fails(emulator):
    with pytest.raises(SyncError, match="client fed1 does not exist and redirect_uris is empty"):
        run_sync(emulator, small_federation(), redirect_uris=[])


def test_service_account_login(emulator):
    result = run_sync(emulator, small_federation(), service_account=True)

    assert result["changed"] is True
    assert set(emulator.roles(CLIENT)) == SMALL_ROLES


def test_wrong_password_fails_with_login_error(emulator):
    with pytest.raises(KeycloakApiError, match="login at .* failed"):
        connect(emulator.url, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                emulator.admin_user, "wrong")


@pytest.mark.parametrize("suffix", ["", "/", "/auth", "/auth/"])
def test_legacy_auth_path_is_detected(start_emulator, suffix):
    emulator = start_emulator(legacy_auth_path=True)

    api = connect(emulator.root + suffix, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                  emulator.admin_user, emulator.admin_password)

    assert api.base_url == emulator.root + "/auth/"
    assert sync(api, CLIENT, small_federation(), redirect_uris=REDIRECTS)["changed"] is True


def test_auth_path_detection_can_be_disabled(start_emulator):
    emulator = start_emulator(legacy_auth_path=True)

    with pytest.raises(KeycloakApiError, match="realm MIP not found at"):
        connect(emulator.root, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                emulator.admin_user, emulator.admin_password, detect_auth_path=False)


def test_unreachable_server_fails_clearly(emulator):
    emulator.stop()

    with pytest.raises(KeycloakApiError, match="cannot reach"):
        connect(emulator.url, "MIP", "MIP", emulator.admin_client_id, emulator.admin_client_secret,
                emulator.admin_user, emulator.admin_password, timeout=5)


def test_description_change_sends_one_write(emulator):
    run_sync(emulator, small_federation())
    client_uuid = emulator.client_uuid(CLIENT)
    emulator.admin("PUT", "clients/%s/roles/DC_CONTROL_tbi" % client_uuid, json={"description": "stale"})
    emulator.reset_stats()

    result = run_sync(emulator, small_federation())

    stats = emulator.stats()
    assert result["updated_roles"] == ["DC_CONTROL_tbi"]
    assert stats["writes"] == 1
    assert stats["by_method"]["PUT"] == 1
    # The same reads as a no-op sync: nothing is read again after the write.
    assert stats["reads"] == 8
