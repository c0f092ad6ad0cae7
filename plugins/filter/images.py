# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that returns the image reference a federation node pulls."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

IMAGE_SOURCES = ("registry", "pusher")
DEFAULT_REGISTRY_PORT = 5000

# Docker's grammar for a repository path (lower-case components separated by
# "/") and for a tag (at most 128 word characters, dots and dashes).
REPOSITORY_PATTERN = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# A registry host: a DNS name or IPv4 address with an optional port, or an
# IPv6 address in brackets with an optional port.
REGISTRY_PATTERN = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def pusher_registry(pusher):
    """Return "<address>:<port>" of the registry that runs on the pusher.

    PUSHER is the pusher's host variables. The address is its
    registry_address, else its mip_advertise_address, else its ansible_host,
    else its inventory name, the same order the registry role uses. The port is its registry_port, else
    5000, the role's default. An IPv6 address is put in brackets, as image
    references require.
    """
    if not hasattr(pusher, "get"):
        raise AnsibleFilterError(
            "image_ref: source 'pusher' needs pusher=hostvars[groups['pusher'][0]], got %r" % (pusher,))
    address = None
    for variable in ("registry_address", "mip_advertise_address", "ansible_host", "inventory_hostname"):
        address = pusher.get(variable)
        if address:
            break
    if not address:
        raise AnsibleFilterError(
            "image_ref: the pusher has no registry_address, mip_advertise_address, ansible_host "
            "or inventory_hostname")
    address = str(address)
    if ":" in address and not address.startswith("["):
        address = "[%s]" % address
    port = pusher.get("registry_port") or DEFAULT_REGISTRY_PORT
    return "%s:%s" % (address, port)


def image_ref(name, tag, source="registry", registry="", pusher=None):
    """Return the reference of image NAME:TAG that a node pulls.

    SOURCE is ``mip_image_source``. With "pusher" the result is
    ``<pusher address>:<port>/NAME:TAG``, where PUSHER is the pusher's host
    variables (``hostvars[groups['pusher'][0]]``). With "registry" it is
    ``REGISTRY/NAME:TAG`` when REGISTRY (``mip_image_registry``, a host with an
    optional port) is given, else ``NAME:TAG``, which Docker resolves on
    Docker Hub. Raises AnsibleFilterError on an invalid name, tag, registry or
    source.

    Example::

        {{ 'hbpmip/exareme' | mip.federation.image_ref('24.5.1',
             source=mip_image_source, registry=mip_image_registry | default(''),
             pusher=hostvars[groups['pusher'][0]]) }}
    """
    if not isinstance(name, str) or not REPOSITORY_PATTERN.match(name):
        raise AnsibleFilterError(
            "image_ref: image name %r is invalid: expected a lower-case repository path such as "
            "'hbpmip/exareme', without a registry or tag" % (name,))
    tag = str(tag) if isinstance(tag, (int, float)) else tag
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise AnsibleFilterError(
            "image_ref: tag %r of image %r is invalid: expected up to 128 letters, digits, "
            "'_', '.' and '-', not starting with '.' or '-'" % (tag, name))

    if source == "pusher":
        return "%s/%s:%s" % (pusher_registry(pusher), name, tag)
    if source != "registry":
        raise AnsibleFilterError(
            "image_ref: mip_image_source %r is unknown: expected one of %s"
            % (source, ", ".join(repr(value) for value in IMAGE_SOURCES)))

    registry = (registry or "").strip().rstrip("/")
    if not registry:
        return "%s:%s" % (name, tag)
    if not REGISTRY_PATTERN.match(registry):
        raise AnsibleFilterError(
            "image_ref: mip_image_registry %r is invalid: expected a host name or address with an "
            "optional port, such as 'registry.example.org:5000', without a scheme or path" % (registry,))
    return "%s/%s:%s" % (registry, name, tag)


class FilterModule:
    """Image filters of mip.federation."""

    def filters(self):
        return {"image_ref": image_ref}
