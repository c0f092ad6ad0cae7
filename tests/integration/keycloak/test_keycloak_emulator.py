"""The KeyCloak emulator itself: the Keycloak behaviour that keycloak_sync relies on."""

import requests


def token(emulator, **form):
    return requests.post(emulator.url + "/realms/MIP/protocol/openid-connect/token", data=form)


def test_emulator_rejects_admin_call_without_token(emulator):
    response = requests.get(emulator.url + "/admin/realms/MIP/clients")

    assert response.status_code == 401


def test_emulator_rejects_wrong_client_secret(emulator):
    response = token(emulator, grant_type="client_credentials", client_id="realm-management", client_secret="wrong")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized_client"


def test_emulator_refresh_grant_fails_after_expiry(emulator):
    issued = token(emulator, grant_type="client_credentials", client_id="realm-management",
                   client_secret=emulator.admin_client_secret).json()
    emulator.expire_tokens()

    response = token(emulator, grant_type="refresh_token", client_id="realm-management",
                     client_secret=emulator.admin_client_secret, refresh_token=issued["refresh_token"])

    assert response.status_code == 400
    assert response.json()["error_description"] == "Token is not active"


def test_emulator_caps_page_size(start_emulator):
    emulator = start_emulator(max_page_size=3)
    for index in range(5):
        emulator.create_group("group%d" % index)

    first = emulator.admin("GET", "groups", params={"first": 0, "max": 100}).json()
    rest = emulator.admin("GET", "groups", params={"first": 3, "max": 100}).json()

    assert [group["name"] for group in first] == ["group0", "group1", "group2"]
    assert [group["name"] for group in rest] == ["group3", "group4"]


def test_emulator_returns_409_on_duplicates(emulator):
    emulator.admin("POST", "clients", json={"clientId": "fed1"})
    client_uuid = emulator.client_uuid("fed1")
    emulator.create_role("fed1", "A")
    emulator.create_group("G")

    assert emulator.admin("POST", "clients", json={"clientId": "fed1"}, expect=(409,)).status_code == 409
    assert emulator.admin("POST", "clients/%s/roles" % client_uuid, json={"name": "A"},
                          expect=(409,)).status_code == 409
    assert emulator.admin("POST", "groups", json={"name": "G"}, expect=(409,)).status_code == 409


def test_emulator_role_delete_clears_composites_and_mappings(emulator):
    emulator.admin("POST", "clients", json={"clientId": "fed1"})
    client_uuid = emulator.client_uuid("fed1")
    emulator.create_role("fed1", "PARENT")
    emulator.create_role("fed1", "CHILD")
    child_id = emulator.roles("fed1")["CHILD"]["id"]
    group_id = emulator.create_group("G")
    emulator.admin("POST", "clients/%s/roles/PARENT/composites" % client_uuid, json=[{"id": child_id}])
    emulator.admin("POST", "groups/%s/role-mappings/clients/%s" % (group_id, client_uuid), json=[{"id": child_id}])

    emulator.admin("DELETE", "clients/%s/roles/CHILD" % client_uuid)

    assert emulator.roles("fed1")["PARENT"]["composites"] == set()
    assert emulator.groups("fed1")["G"]["roles"] == set()


def test_emulator_serves_only_under_auth_in_legacy_mode(start_emulator):
    emulator = start_emulator(legacy_auth_path=True)

    assert requests.get(emulator.root + "/realms/MIP").status_code == 404
    assert requests.get(emulator.root + "/auth/realms/MIP").status_code == 200


def test_emulator_counts_reads_and_writes(emulator):
    emulator.reset_stats()

    emulator.admin("GET", "groups")
    emulator.create_group("G")

    stats = emulator.stats()
    assert stats["reads"] == 1
    assert stats["writes"] == 1
    assert stats["by_path"]["POST /admin/realms/MIP/groups"] == 1
