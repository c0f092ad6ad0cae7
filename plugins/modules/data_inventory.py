#!/usr/bin/python
# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Describe the data of one node for consolidation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: data_inventory
short_description: Describe the pathologies, CSVs and CDEs of a node's data folder
version_added: "0.1.0"
description:
  - Reads the data folder of a MIP node (C(<mip_data_root>/<federation>)). Each first-level folder is a pathology.
  - Streams every C(*.csv) of each pathology and reports its columns, its row count, the rows of each value of
    its C(dataset) column (over all rows, not the first one only), its size and its SHA-256.
  - With O(read_cdes), also returns the text of each pathology's C(CDEsMetadata.json); invalid JSON is
    reported with the file, line and column.
  - Problems of the data are returned in RV(errors), not raised, so that C(mip.federation.cde_consolidate)
    can report the problems of every node at once. The module fails only on bad parameters.
  - Never changes anything.
author:
  - mip.federation developers (@mip-federation)
options:
  read_cdes:
    description: Return the text of each pathology's C(CDEsMetadata.json) (the master's are the CDE source).
    type: bool
    default: false
  checksums:
    description: Compute the SHA-256 of every CSV (one more read of each file).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mip.federation.data_folder
  - mip.federation.attributes
  - mip.federation.attributes.read_only
notes:
  - A file in a pathology folder that is not a C(.csv), C(CDEsMetadata.json) or C(datasets.db) is listed in
    RV(notes) and otherwise ignored.
"""

EXAMPLES = r"""
- name: Describe a worker's data
  mip.federation.data_inventory:
    path: /data/fed1
  register: mip_inventory

- name: Describe the master's CDEs
  mip.federation.data_inventory:
    path: /data/fed1
    read_cdes: true
"""

RETURN = r"""
path:
  description: The folder read.
  returned: always
  type: str
pathologies:
  description: >-
    One entry per pathology folder: C(files) (a list of C(name), C(file) (<pathology>/<name>), C(size),
    C(sha256), C(columns), C(rows), C(datasets) (code to rows) and C(errors)), C(datasets) (code to rows over
    the pathology's files), C(cde) (with O(read_cdes): C(file), C(text), C(size), C(sha256), or C(error))
    and C(notes).
  returned: always
  type: dict
  sample:
    dementia:
      datasets: {edsd: 474}
      files:
        - {name: edsd.csv, file: dementia/edsd.csv, size: 459568, rows: 474, datasets: {edsd: 474}}
errors:
  description: Problems found, each with C(msg) and, when known, C(file), C(line), C(column), C(value).
  returned: always
  type: list
  elements: dict
notes:
  description: Files and folders that were ignored.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mip.federation.plugins.module_utils._csv_data import inventory


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            read_cdes=dict(type="bool", default=False),
            checksums=dict(type="bool", default=True),
            pathologies=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = inventory(params["path"], read_cdes=params["read_cdes"], checksums=params["checksums"],
                       pathologies=params["pathologies"] or None)
    for note in result["notes"]:
        module.debug(note)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
