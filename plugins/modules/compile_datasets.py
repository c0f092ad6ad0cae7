#!/usr/bin/python
# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile each pathology's CDEs and CSVs into datasets.db for exareme."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compile_datasets
short_description: Compile each pathology's CDEs and CSVs into the datasets.db that exareme reads
version_added: "0.1.0"
description:
  - For each pathology folder under O(path), builds C(datasets.db) with the tables C(METADATA) and C(DATA) as
    exareme 24.5.1's C(convert-csv-dataset-to-db.py) lays them out, from C(CDEsMetadata.json) and every C(*.csv).
  - Every value is validated (type from C(sql_type), enumerations of categorical variables, C(minValue) and
    C(maxValue), a C(dataset) in every row) and every CSV column must be a CDE variable. Errors name the file,
    line, column, value and what was expected; up to O(error_limit) are collected.
  - The database is built in a temporary file in the same folder and renamed over C(datasets.db) only on
    success, so a failed compile keeps the previous database.
  - A pathology whose inputs have not changed since its database was built is skipped unless O(force). The
    inputs' fingerprint (see O(fingerprint)) is stored in the table C(MIP_BUILD) of the database.
  - A folder holding only C(CDEsMetadata.json) (the master) gets a database with an empty C(DATA) table.
  - Files other than C(*.csv), C(CDEsMetadata.json) and C(datasets.db) are ignored and listed in RV(notes).
author:
  - mip.federation developers (@mip-federation)
options:
  force:
    description: Rebuild even when the inputs have not changed.
    type: bool
    default: false
  null_markers:
    description: Cell values read as NULL besides the empty cell, for example C(NA). None by default.
    type: list
    elements: str
    default: []
  error_limit:
    description: Stop collecting problems of a pathology after this many.
    type: int
    default: 100
  fingerprint:
    description:
      - How a CSV counts in the inputs' fingerprint. C(stat) uses its name, size and modification time in
        nanoseconds and reads nothing; C(sha256) hashes its content, for copies that preserve modification
        times. The CDE file is always hashed.
    type: str
    choices: [stat, sha256]
    default: stat
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
  - mip.federation.attributes
  - mip.federation.data_folder
attributes:
  check_mode:
    support: full
    details: Reports the pathologies that would be compiled; validates nothing and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: A second run skips every pathology whose inputs have not changed and returns C(changed=false),
      unless O(force=true), which rebuilds every C(datasets.db) and returns C(changed=true) on each run.
notes:
  - O(owner), O(group) and O(mode) apply to each C(datasets.db) (compiled or not).
"""

EXAMPLES = r"""
- name: Compile the node's data
  mip.federation.compile_datasets:
    path: /data/fed1
    owner: mipadmin
    group: mipadmin
  register: mip_compile

- name: Rebuild dementia, reading NA as NULL
  mip.federation.compile_datasets:
    path: /data/fed1
    pathologies: [dementia]
    null_markers: [NA]
    force: true
"""

RETURN = r"""
compiled:
  description: Pathologies compiled by this run (in check mode, those that would be). Restart exareme when not empty.
  returned: always
  type: list
  elements: str
  sample: [dementia, tbi]
unchanged:
  description: Pathologies whose database is up to date.
  returned: always
  type: list
  elements: str
removed:
  description: >-
    Temporary databases (C(<pathology>/.datasets.db.*.tmp)) left by an interrupted compile and removed by this
    run, whether or not their pathology was compiled again (in check mode, those that would be removed).
  returned: always
  type: list
  elements: str
  sample: [dementia/.datasets.db.k2x9q1.tmp]
failed_pathologies:
  description: Pathologies that could not be compiled; their previous database is kept.
  returned: always
  type: list
  elements: str
pathologies:
  description: >-
    Per pathology: C(status) (compiled, unchanged, would compile, failed or skipped), C(rows), C(datasets)
    (code to rows), C(files) (C(file), C(rows)), C(csvs), C(fingerprint), C(notes) and C(errors).
  returned: always
  type: dict
errors:
  description: Every problem, each with C(msg) and C(file), C(line), C(column), C(value) when known.
  returned: always
  type: list
  elements: dict
notes:
  description: Files and folders that were ignored, and temporary databases removed.
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mip.federation.plugins.module_utils._compile import compile_all
from ansible_collections.mip.federation.plugins.module_utils._csv_data import DB_FILE, count_and_list_problems


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            pathologies=dict(type="list", elements="str", default=[]),
            force=dict(type="bool", default=False),
            null_markers=dict(type="list", elements="str", default=[]),
            error_limit=dict(type="int", default=100),
            fingerprint=dict(type="str", choices=["stat", "sha256"], default="stat"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params

    if params["error_limit"] < 1:
        module.fail_json(msg="error_limit must be at least 1")
    # A database renamed into place and then refused by chown would be kept
    # with a fingerprint that hides it from the next run, so check first.
    for option, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
        name = params.get(option)
        if name and not str(name).isdigit():
            try:
                lookup(name)
            except KeyError:
                module.fail_json(msg="%s %r does not exist on this node: create it first (the base role creates "
                                     "the admin user) or set %s to an existing one" % (option, name, option))

    result = compile_all(
        params["path"],
        pathologies=params["pathologies"] or None,
        force=params["force"],
        null_markers=params["null_markers"],
        error_limit=params["error_limit"],
        fingerprint_mode=params["fingerprint"],
        check_mode=module.check_mode,
    )
    # "failed" is Ansible's own flag: the list is returned as failed_pathologies.
    result["failed_pathologies"] = result.pop("failed")

    changed = bool(result["compiled"] or result["removed"])
    for name, entry in result["pathologies"].items():
        db = os.path.join(params["path"], name, DB_FILE)
        if entry["status"] in ("compiled", "unchanged") and os.path.exists(db):
            file_args = module.load_file_common_arguments(params, path=db)
            changed = module.set_fs_attributes_if_different(file_args, changed)

    if result["errors"]:
        which = " for %s" % ", ".join(result["failed_pathologies"]) if result["failed_pathologies"] else ""
        msg = "compiling failed%s: %s" % (which, count_and_list_problems(result["errors"]))
        stopped = sorted(name for name, entry in result["pathologies"].items()
                         if len(entry.get("errors") or []) >= params["error_limit"])
        if stopped:
            msg += ("\nChecking stopped at error_limit (%d) for %s: later rows and files were not checked."
                    % (params["error_limit"], ", ".join(stopped)))
        module.fail_json(msg=msg, changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
