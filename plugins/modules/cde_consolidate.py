#!/usr/bin/python
# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consolidate a federation's CDEs with the datasets its nodes hold."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cde_consolidate
short_description: Align each pathology's dataset enumerations with the datasets of the federation
version_added: "0.1.0"
description:
  - Runs on the pusher over the results of M(mip.federation.data_inventory) gathered from every node.
  - For each pathology, brings the enumerations of the C(dataset) CDE variable in line with the datasets found in
    the CSVs across the federation. Missing codes are added (label from O(dataset_labels), else the code
    upper-cased), absent codes are dropped unless O(keep_absent_datasets), existing labels are kept.
  - Fails, listing every problem with its node, file and column, when a CSV column is defined by no CDE, a CSV
    has no C(dataset) column, a dataset code is found on two nodes (unless allowed), a pathology has data but
    no CDEs anywhere, or a node reported a problem of its own (unreadable CSV, invalid JSON).
  - Returns the consolidated CDE text of each pathology and the federation's data structure. It writes nothing;
    the playbook copies the texts to the nodes.
  - The text of a CDE that needs no change is returned exactly as read, so an up-to-date file is never rewritten.
    A changed CDE keeps the source's indentation (detected from the file) and key order, with UTF-8 characters
    unescaped and a final newline, which is stable when read and written again.
author:
  - mip.federation developers (@mip-federation)
options:
  inventories:
    description: Node name to the result of M(mip.federation.data_inventory) on that node.
    type: dict
    required: true
  cde_node:
    description:
      - The node whose inventory (run with O(mip.federation.data_inventory#module:read_cdes)) holds the CDEs,
        normally the master.
      - Required unless O(cde_path) is given.
    type: str
  cde_path:
    description: A folder on the host running this module with C(<pathology>/CDEsMetadata.json) files, used as
      the CDE source instead of O(cde_node).
    type: path
  keep_absent_datasets:
    description: Keep enumerations of datasets that no node holds.
    type: bool
    default: false
  allow_shared_datasets:
    description: Dataset codes that may be found on more than one node; C(*) allows any.
    type: list
    elements: str
    default: []
  dataset_labels:
    description: Dataset code to label. Applies to new codes and relabels existing ones.
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mip.federation.attributes
  - mip.federation.attributes.read_only
"""

EXAMPLES = r"""
# Each worker and the master ran mip.federation.data_inventory (the master with
# read_cdes: true) and registered the result as mip_inventory.
- name: Consolidate the CDEs
  mip.federation.cde_consolidate:
    inventories: >-
      {{ dict((groups['workers'] + groups['master'])
              | zip((groups['workers'] + groups['master']) | map('extract', hostvars, 'mip_inventory'))) }}
    cde_node: "{{ groups['master'][0] }}"
    dataset_labels:
      edsd: EDSD
  register: mip_consolidated
"""

RETURN = r"""
consolidated:
  description: >-
    One entry per pathology that has CDEs: C(pathology), C(content) (the CDE text to write), C(changed) (the
    content differs from the source), C(diff) (a unified diff from the source to the content, empty when
    unchanged), C(added), C(removed), C(relabelled) (dataset codes), C(nodes) (the nodes holding its data) and
    C(source) (where the CDE was read).
  returned: success
  type: list
  elements: dict
data_structure:
  description: The federation's data (pathology, then node, then datasets with row counts), as in docs/design.md.
  returned: always
  type: list
  elements: dict
  sample:
    - pathology: dementia
      nodes:
        - node: wk1
          datasets:
            - {code: edsd, rows: 474}
errors:
  description: Every problem found, each with C(msg) and the C(node), C(file), C(column) that are known.
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mip.federation.plugins.module_utils._cde import consolidate_federation, read_cde_file
from ansible_collections.mip.federation.plugins.module_utils._csv_data import (
    CDE_FILE,
    DataError,
    count_and_list_problems,
    list_pathologies,
)


def cdes_from_folder(path):
    cdes = {}
    names, _notes = list_pathologies(path)
    for name in names:
        full = os.path.join(path, name, CDE_FILE)
        if not os.path.isfile(full):
            continue
        rel = os.path.join(path, name, CDE_FILE)
        try:
            text, _doc = read_cde_file(full, rel)
            cdes[name] = {"text": text, "file": rel}
        except DataError as exc:
            cdes[name] = {"error": str(exc).split(": ", 1)[-1], "file": rel}
    return cdes


def cdes_from_inventory(node, inventory):
    cdes = {}
    for name, info in (inventory.get("pathologies") or {}).items():
        cde = info.get("cde")
        if not cde:
            continue
        if cde.get("text") is not None:
            cdes[name] = {"text": cde["text"], "file": "%s:%s" % (node, cde.get("file"))}
        else:
            # The node's inventory has reported the error already.
            cdes[name] = {"error": cde.get("error"), "file": "%s:%s" % (node, cde.get("file")), "reported": True}
    return cdes


def main():
    module = AnsibleModule(
        argument_spec=dict(
            inventories=dict(type="dict", required=True),
            cde_node=dict(type="str"),
            cde_path=dict(type="path"),
            keep_absent_datasets=dict(type="bool", default=False),
            allow_shared_datasets=dict(type="list", elements="str", default=[]),
            dataset_labels=dict(type="dict", default={}),
        ),
        required_one_of=[("cde_node", "cde_path")],
        supports_check_mode=True,
    )
    params = module.params
    inventories = params["inventories"]
    if params["cde_path"]:
        try:
            cdes = cdes_from_folder(params["cde_path"])
        except DataError as exc:
            module.fail_json(msg=str(exc), errors=[], data_structure=[])
    else:
        node = params["cde_node"]
        if node not in inventories:
            module.fail_json(msg="cde_node %r has no inventory among %s" % (node, ", ".join(sorted(inventories))),
                             errors=[], data_structure=[])
        cdes = cdes_from_inventory(node, inventories[node])
    labels = dict((str(k), str(v)) for k, v in (params["dataset_labels"] or {}).items())
    result = consolidate_federation(inventories, cdes, keep_absent=params["keep_absent_datasets"],
                                    allow_shared=params["allow_shared_datasets"], labels=labels)
    for warning in result["warnings"]:
        module.warn(warning)
    if result["errors"]:
        module.fail_json(msg="consolidation found %s" % count_and_list_problems(result["errors"]),
                         errors=result["errors"], data_structure=result["data_structure"])
    module.exit_json(changed=False, consolidated=result["pathologies"], data_structure=result["data_structure"],
                     errors=[])


if __name__ == "__main__":
    main()
