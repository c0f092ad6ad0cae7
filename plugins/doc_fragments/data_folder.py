# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that read a node's data folder."""

from __future__ import annotations


class ModuleDocFragment(object):
    # Used by data_inventory and compile_datasets, which read the same folder
    # layout: one folder per pathology.
    DOCUMENTATION = r"""
options:
  path:
    description: The node's data folder, for example C(/data/<federation>).
    type: path
    required: true
  pathologies:
    description: Only these pathologies (folder names). All when empty.
    type: list
    elements: str
    default: []
"""
