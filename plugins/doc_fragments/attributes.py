# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module attributes that several modules of mip.federation share."""

from __future__ import annotations


class ModuleDocFragment(object):
    # The idempotent attribute's description and the platform of the data
    # modules. Extend ansible.builtin.action_common_attributes too, because it
    # describes check_mode, diff_mode and platform. Keys that a module's own
    # attributes set take precedence over these.
    DOCUMENTATION = r"""
attributes:
  idempotent:
    description: >-
      A second run with the same arguments, on a target that nothing else changed in between, returns
      C(changed=false).
  platform:
    platforms: posix
"""

    # The attributes of a module that only reads: full check mode, no diff and
    # changed=false on every run. Extend it as mip.federation.attributes.read_only
    # together with mip.federation.attributes, which describes idempotent.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The module writes nothing and always returns C(changed=false).
"""
