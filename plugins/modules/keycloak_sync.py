#!/usr/bin/python
# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: keycloak_sync
short_description: Synchronise a federation's KeyCloak client, client roles and groups
description:
  - Brings one client of a KeyCloak realm to the state that the federation's data structure defines,
    through the KeyCloak Admin REST API.
  - Creates the client when it is missing (confidential, standard flow and direct access grants) with a
    protocol mapper that puts the client's roles in the C(authorities) claim of the ID, access and
    userinfo tokens, which is where portal-backend reads them.
  - "Client roles: C(DC_ADMIN), C(RESEARCH_DATASET_ALL), C(RESEARCH_EXPERIMENT_ALL),
    C(RESEARCH_PATHOLOGY_ALL), C(WORKFLOW_ADMIN); C(RESEARCH_DATASET_<dataset>) per dataset with the
    description C(<pathology> - Worker <node>[, <node>...]); C(DC_CONTROL_<pathology>) and the composite
    C(RESEARCH_PATHOLOGY_<pathology>), which holds the dataset roles of that pathology;
    C(DC_HOSPITAL_<node>) per worker."
  - "Realm groups, named with the upper-cased client id as prefix: C(<ID>_DC_ADMIN) to C(DC_ADMIN),
    C(<ID>_PROCESSOR) to C(RESEARCH_DATASET_ALL), C(RESEARCH_EXPERIMENT_ALL) and C(RESEARCH_PATHOLOGY_ALL),
    C(<ID>_WORKFLOW_ADMIN) to C(WORKFLOW_ADMIN), C(<ID>_DC_HOSPITAL_<node>) to C(DC_HOSPITAL_<node>),
    C(<ID>_CONTROLLER_<pathology>) to C(DC_CONTROL_<pathology>) and C(RESEARCH_PATHOLOGY_<pathology>),
    C(<ID>_RESEARCHER_<pathology>) to C(RESEARCH_PATHOLOGY_<pathology>)."
  - Creates what is missing and updates what differs (descriptions, composites, group role mappings).
    Roles and groups are never deleted and recreated, so role ids and group memberships are kept.
version_added: 0.1.0
author:
  - mip.federation developers (@mip-federation)
requirements:
  - python-keycloak >= 5.0 (Debian 13 ships 5.3), which needs Python >= 3.9 on the node that runs the module
options:
  server_url:
    description:
      - URL of the KeyCloak server, with or without the C(/auth) path that KeyCloak 16 and older use.
    type: str
    required: true
  detect_auth_path:
    description:
      - When the realm is not found at O(server_url), try O(server_url) with C(/auth) appended.
    type: bool
    default: true
  realm:
    description: Realm that contains the client, its roles and the groups.
    type: str
    default: MIP
  auth_realm:
    description: Realm in which the admin user or service account logs in. Defaults to O(realm).
    type: str
  auth_client_id:
    description: Client used to log in (confidential, with direct access grants or a service account).
    type: str
    default: realm-management
  auth_client_secret:
    description:
      - Secret of O(auth_client_id).
      - Without O(auth_username), the module logs in with the client credentials grant, as the
        service account of O(auth_client_id).
    type: str
  auth_username:
    description: Admin user for the password grant. Needs O(auth_password).
    type: str
  auth_password:
    description: Password of O(auth_username).
    type: str
  client_id:
    description: Client id of the synchronised client, by convention the federation's name.
    type: str
    required: true
  redirect_uris:
    description:
      - Valid redirect URIs of the client, used only when the module creates it; the portal's
        C(https://<host>/*). An existing client keeps its own.
      - Required when the client does not exist.
    type: list
    elements: str
    default: []
  data_structure:
    description:
      - The federation's data structure, as the consolidation step returns it in C(mip_data_structure).
      - "A list of C({pathology, nodes: [{node, datasets: [{code, rows}]}]}). A dataset code must be unique
        across pathologies."
    type: list
    elements: dict
    required: true
  prune:
    description:
      - Delete client roles and groups that follow the naming patterns above and are no longer wanted.
      - Other roles of the client and other groups are never deleted.
    type: bool
    default: false
  return_client_secret:
    description:
      - Return the client secret in RV(client_secret). It is always returned when the module creates the
        client. Register the result with C(no_log) because the secret is in it.
    type: bool
    default: false
  page_size:
    description: Items requested per page when listing roles and groups. The server may return fewer.
    type: int
    default: 100
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Timeout of each HTTP request, in seconds.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return the changes it would make without making them.
    details: Reads the server and reports what would change, without sending any write request.
  diff_mode:
    support: full
    description: Returns details on what it changed, or would change in check mode, when run in diff mode.
    details: The diff lists every role (description, composites) and group (client role mappings) that changes,
      and the client when it is created or gets the role protocol mapper.
  idempotent:
    support: full
    description: >-
      A second run with the same arguments, on a target that nothing else changed in between, returns
      C(changed=false).
    details: A second run with the same input sends no write request and returns C(changed=false).
notes:
  - Composites and group role mappings are compared as sets of this client's roles, and set to the wanted
    set; realm roles and roles of other clients in them are left alone.
  - A role or group that another session creates at the same moment (HTTP 409) is taken as present and
    then brought to the wanted state.
  - After a 401 (token expired or revoked during the sync) the module logs in again and retries the request once.
  - The module never deletes a group or role that is still wanted, so memberships are never lost. Group
    members are not read or written.
  - The existing client's settings other than its role protocol mapper are not changed.
"""

EXAMPLES = r"""
- name: Synchronise the KeyCloak roles of the federation
  mip.federation.keycloak_sync:
    server_url: https://iam.example.org
    realm: MIP
    auth_client_id: realm-management
    auth_client_secret: "{{ vault_keycloak_admin_client_secret }}"
    auth_username: realmadmin
    auth_password: "{{ vault_keycloak_admin_password }}"
    client_id: "{{ mip_federation_name }}"
    redirect_uris: ["https://mip.example.org/*"]
    data_structure: "{{ mip_data_structure }}"
    return_client_secret: true
  register: keycloak_sync
  no_log: true

- name: Remove the roles and groups of datasets that left the federation
  mip.federation.keycloak_sync:
    server_url: https://iam.example.org/auth
    detect_auth_path: false
    auth_client_id: mip-sync
    auth_client_secret: "{{ vault_keycloak_sync_secret }}"
    client_id: fed1
    data_structure: "{{ mip_data_structure }}"
    prune: true
"""

RETURN = r"""
client_id:
  description: Client id of the synchronised client.
  returned: always
  type: str
  sample: fed1
client_created:
  description: Whether the client was created (or would be, in check mode).
  returned: always
  type: bool
mapper_created:
  description: Whether the role protocol mapper was added to an existing client.
  returned: always
  type: bool
client_secret:
  description: Secret of the client. Handle the registered result with C(no_log).
  returned: when the client was created or O(return_client_secret=true), not in check mode
  type: str
created_roles:
  description: Client roles created.
  returned: always
  type: list
  elements: str
  sample: [RESEARCH_DATASET_edsd, RESEARCH_PATHOLOGY_dementia]
updated_roles:
  description: Client roles whose description or composites changed.
  returned: always
  type: list
  elements: str
deleted_roles:
  description: Client roles deleted (only with O(prune=true)).
  returned: always
  type: list
  elements: str
unwanted_roles:
  description: Client roles that follow the naming patterns but are no longer wanted; O(prune=true) deletes them.
  returned: always
  type: list
  elements: str
created_groups:
  description: Realm groups created.
  returned: always
  type: list
  elements: str
updated_groups:
  description: Realm groups whose client role mappings changed.
  returned: always
  type: list
  elements: str
deleted_groups:
  description: Realm groups deleted (only with O(prune=true)).
  returned: always
  type: list
  elements: str
unwanted_groups:
  description: Realm groups that follow the naming patterns but are no longer wanted.
  returned: always
  type: list
  elements: str
conflicts:
  description: Roles that another session created between the read and the write (HTTP 409).
  returned: always
  type: list
  elements: str
counts:
  description: Length of each of the lists above.
  returned: always
  type: dict
  sample: {created_roles: 12, updated_roles: 0, deleted_roles: 0, unwanted_roles: 0,
           created_groups: 9, updated_groups: 0, deleted_groups: 0, unwanted_groups: 0}
requests:
  description: HTTP requests sent to the Admin REST API, per method (the login is not counted).
  returned: always
  type: dict
  sample: {GET: 7, POST: 0, PUT: 0, DELETE: 0}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mip.federation.plugins.module_utils._keycloak_api import (
    KeycloakApiError,
    check_keycloak_library,
    connect,
)
from ansible_collections.mip.federation.plugins.module_utils._keycloak_sync import SyncError, sync


ARGUMENT_SPEC = dict(
    server_url=dict(type="str", required=True),
    detect_auth_path=dict(type="bool", default=True),
    realm=dict(type="str", default="MIP"),
    auth_realm=dict(type="str"),
    auth_client_id=dict(type="str", default="realm-management"),
    auth_client_secret=dict(type="str", no_log=True),
    auth_username=dict(type="str"),
    auth_password=dict(type="str", no_log=True),
    client_id=dict(type="str", required=True),
    redirect_uris=dict(type="list", elements="str", default=[]),
    data_structure=dict(type="list", elements="dict", required=True),
    prune=dict(type="bool", default=False),
    return_client_secret=dict(type="bool", default=False, no_log=False),
    page_size=dict(type="int", default=100),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=30),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_together=[("auth_username", "auth_password")],
        required_one_of=[("auth_username", "auth_client_secret")],
        supports_check_mode=True,
    )
    params = module.params

    library_error = check_keycloak_library()
    if library_error:
        module.fail_json(msg=missing_required_lib("python-keycloak >= 5.0") + " " + library_error)
    if params["page_size"] < 1:
        module.fail_json(msg="page_size must be at least 1, got %d" % params["page_size"])

    api = None
    try:
        api = connect(params["server_url"], params["realm"], params["auth_realm"] or params["realm"],
                      params["auth_client_id"], client_secret=params["auth_client_secret"],
                      username=params["auth_username"], password=params["auth_password"],
                      validate_certs=params["validate_certs"], timeout=params["timeout"],
                      detect_auth_path=params["detect_auth_path"])
        result = sync(api, params["client_id"], params["data_structure"], redirect_uris=params["redirect_uris"],
                      prune=params["prune"], return_client_secret=params["return_client_secret"],
                      page_size=params["page_size"], check_mode=module.check_mode)
    except (KeycloakApiError, SyncError) as exc:
        module.fail_json(msg="KeyCloak sync of client %s in realm %s: %s" % (
            params["client_id"], params["realm"], exc), requests=api.requests if api else {})

    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    result["requests"] = api.requests
    module.exit_json(**result)


if __name__ == "__main__":
    main()
