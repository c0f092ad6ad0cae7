import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mip.federation.plugins.filter.images import FilterModule, image_ref

PUSHER = {"inventory_hostname": "labpusher", "ansible_host": "172.30.100.10"}


def test_pusher_defaults_to_ansible_host():
    reference = image_ref("hbpmip/exareme", "24.5.1", source="pusher", pusher=PUSHER)

    assert reference == "172.30.100.10:5000/hbpmip/exareme:24.5.1"


def test_pusher_prefers_advertise_address():
    pusher = dict(PUSHER, mip_advertise_address="10.8.0.1")

    assert image_ref("bitnami/consul", "1.8.3", source="pusher", pusher=pusher) == "10.8.0.1:5000/bitnami/consul:1.8.3"


def test_pusher_prefers_registry_address():
    pusher = dict(PUSHER, mip_advertise_address="10.8.0.1", registry_address="images.lab", registry_port=5443)

    assert image_ref("hbpmip/exareme", "24.5.1", source="pusher", pusher=pusher) == "images.lab:5443/hbpmip/exareme:24.5.1"


def test_pusher_falls_back_to_inventory_name():
    reference = image_ref("hbpmip/exareme", "24.5.1", source="pusher", pusher={"inventory_hostname": "pusher"})

    assert reference == "pusher:5000/hbpmip/exareme:24.5.1"


def test_pusher_brackets_ipv6_address():
    pusher = dict(PUSHER, ansible_host="fd00::10")

    assert image_ref("hbpmip/exareme", "24.5.1", source="pusher", pusher=pusher) == "[fd00::10]:5000/hbpmip/exareme:24.5.1"


def test_pusher_without_variables_raises():
    with pytest.raises(AnsibleFilterError, match=r"needs pusher=hostvars\[groups\['pusher'\]\[0\]\]"):
        image_ref("hbpmip/exareme", "24.5.1", source="pusher")


def test_registry_prefixes_reference():
    reference = image_ref("hbpmip/exareme", "24.5.1", source="registry", registry="registry.example.org:5000")

    assert reference == "registry.example.org:5000/hbpmip/exareme:24.5.1"


def test_registry_drops_trailing_slash():
    reference = image_ref("hbpmip/exareme", "24.5.1", registry="registry.example.org/")

    assert reference == "registry.example.org/hbpmip/exareme:24.5.1"


def test_no_registry_leaves_name_bare():
    assert image_ref("hbpmip/exareme", "24.5.1") == "hbpmip/exareme:24.5.1"
    assert image_ref("postgres", "11.3-alpine", source="registry", registry="") == "postgres:11.3-alpine"
    assert image_ref("postgres", "11.3-alpine", source="registry", registry=None) == "postgres:11.3-alpine"


def test_registry_ignores_pusher_variables():
    reference = image_ref("hbpmip/exareme", "24.5.1", source="registry", registry="", pusher=PUSHER)

    assert reference == "hbpmip/exareme:24.5.1"


def test_numeric_tag_becomes_text():
    assert image_ref("hbpmip/create-databases", 7, source="pusher", pusher=PUSHER) == \
        "172.30.100.10:5000/hbpmip/create-databases:7"


def test_unknown_source_raises_with_choices():
    with pytest.raises(AnsibleFilterError) as error:
        image_ref("hbpmip/exareme", "24.5.1", source="dockerhub")

    assert "mip_image_source 'dockerhub' is unknown" in str(error.value)
    assert "'registry', 'pusher'" in str(error.value)


@pytest.mark.parametrize("registry", ["https://registry.example.org", "registry.example.org/mirror", "reg istry"])
def test_invalid_registry_raises(registry):
    with pytest.raises(AnsibleFilterError, match="mip_image_registry .* is invalid"):
        image_ref("hbpmip/exareme", "24.5.1", registry=registry)


@pytest.mark.parametrize("name", ["HBPMIP/exareme", "hbpmip/exareme:24.5.1", "", "/exareme", None])
def test_invalid_image_name_raises(name):
    with pytest.raises(AnsibleFilterError, match="image name .* is invalid"):
        image_ref(name, "24.5.1")


@pytest.mark.parametrize("tag", ["", "-rc1", "a" * 129, "24.5.1 beta", None])
def test_invalid_tag_raises(tag):
    with pytest.raises(AnsibleFilterError, match="tag .* is invalid"):
        image_ref("hbpmip/exareme", tag)


def test_filter_module_exposes_image_ref():
    assert FilterModule().filters() == {"image_ref": image_ref}
