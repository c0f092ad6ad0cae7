"""playbooks/images.yml serves images from the pusher's registry to a node, idempotently and without leaking the password.

Opt-in, because it takes minutes and installs packages inside the nodes from
the Debian mirror: run with MIP_LAB_DOCKER_TESTS=1. It needs a Docker daemon
and the base image mip-lab/debian:13 (tests/lab/build-base-image.sh); the
image mip-lab/keystore:lab is built from tests/lab/images/ when missing.

The module starts two systemd nodes from mip-lab/debian:13 on the bridge
network mip-reg-test (172.30.200.0/24): the pusher at 172.30.200.10 and a
master node with Docker at 172.30.200.11. It loads a `docker save` archive of
mip-lab/keystore:lab into the pusher's registry and has the node pull it.
Ansible reaches the nodes through the community.docker.docker connection.
At the end it removes both containers, their volumes and the network. Every
request goes to these containers; nothing is published on the host.
"""

import base64
import json
import os
import re

import pytest

from lab_node import REPOSITORY, SKIP_MARKS, PlaybookLab, changed_count, pipe_docker_save, run, start_systemd_node

LAB_IMAGE = "mip-lab/keystore:lab"
NETWORK = "mip-reg-test"
SUBNET = "172.30.200.0/24"
PUSHER_ADDRESS = "172.30.200.10"
NODE_ADDRESS = "172.30.200.11"
ENDPOINT = PUSHER_ADDRESS + ":5000"
ARCHIVE = "/var/lib/mip-images/keystore.tar"
CONFIG_DIR = "/etc/mip-federation/regtest/registry"

pytestmark = SKIP_MARKS


class Lab(PlaybookLab):
    """The two nodes and the runs of playbooks/images.yml made against them."""

    def __init__(self, folder):
        super().__init__(folder, "images.yml")
        self.pusher = NETWORK + "-pusher"
        self.node = NETWORK + "-node"
        self.passwords = set()

    def shell(self, container, script, timeout=120, check=True):
        return run(["docker", "exec", container, "bash", "-c", script], timeout=timeout, check=check)

    def write_inventory(self, images):
        container_vars = {"ansible_connection": "community.docker.docker",
                          "ansible_python_interpreter": "/usr/bin/python3"}
        inventory = {
            "federation": {
                "children": {
                    "pusher": {"hosts": {"regpusher": dict(container_vars, ansible_host=self.pusher,
                                                           mip_advertise_address=PUSHER_ADDRESS)}},
                    "master": {"hosts": {"regms": dict(container_vars, ansible_host=self.node)}},
                    "workers": {"hosts": {}},
                },
                "vars": {
                    "mip_federation_name": "regtest",
                    "mip_image_source": "pusher",
                    "registry_images": images,
                },
            }
        }
        path = self.folder / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=2))
        return path

    def playbook(self, *arguments, expect_success=True):
        """Run the playbook as PlaybookLab does and remember the registry password it leaves, even on failure."""
        try:
            return super().playbook(*arguments, expect_success=expect_success)
        finally:
            self.remember_password()

    def remember_password(self):
        result = self.shell(self.pusher, "cat %s/password" % CONFIG_DIR, check=False)
        if result.returncode == 0 and result.stdout.strip():
            self.passwords.add(result.stdout.strip())


def start_node(lab, container, address):
    start_systemd_node(container, container.rsplit("-", 1)[1], NETWORK, container + "-docker", address)
    # The base image's apt lists are stale; an old time stamp makes the
    # role's cache_valid_time refresh them.
    lab.shell(container, "touch -d @0 /var/lib/apt/lists")


def copy_archive_into_pusher(lab):
    lab.shell(lab.pusher, "install -d -m 0755 " + os.path.dirname(ARCHIVE))
    pipe_docker_save([LAB_IMAGE], ["docker", "exec", "-i", lab.pusher, "bash", "-c", "cat > " + ARCHIVE])


def remove_lab(lab):
    for container in (lab.pusher, lab.node):
        run(["docker", "rm", "-f", "-v", container], check=False, timeout=120)
        run(["docker", "volume", "rm", container + "-docker"], check=False)
    run(["docker", "network", "rm", NETWORK], check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("registry-lab"))
    if run(["docker", "image", "inspect", LAB_IMAGE], check=False, timeout=30).returncode != 0:
        run(["bash", str(REPOSITORY / "tests" / "lab" / "images" / "build.sh"), "keystore"], timeout=900)
    if run(["docker", "network", "inspect", NETWORK], check=False).returncode == 0:
        pytest.fail("the Docker network %s exists already: another run is active, or remove its leftovers "
                    "(containers %s, %s)" % (NETWORK, lab.pusher, lab.node))

    run(["docker", "network", "create", "--driver", "bridge", "--subnet", SUBNET, NETWORK])
    try:
        start_node(lab, lab.pusher, PUSHER_ADDRESS)
        start_node(lab, lab.node, NODE_ADDRESS)
        lab.shell(lab.node, "export DEBIAN_FRONTEND=noninteractive && apt-get update -qq "
                            "&& apt-get install -y -qq docker.io python3-docker >/dev/null", timeout=900)
        copy_archive_into_pusher(lab)
        lab.inventory = lab.write_inventory([{"name": "mip-lab/keystore", "tag": "lab", "archive": ARCHIVE}])

        _status, lab.fresh_check_output = lab.playbook("--check", "--diff")
        lab.fresh_check_registry_installed = lab.shell(
            lab.pusher, "dpkg -s docker-registry", check=False).returncode == 0
        _status, lab.first_output = lab.playbook("--diff")
        yield lab
    finally:
        remove_lab(lab)


def test_fresh_check_installs_nothing(lab):
    assert changed_count(lab.fresh_check_output, "regpusher") > 0
    assert "is not set up yet, so check mode stops here" in lab.fresh_check_output
    assert lab.fresh_check_registry_installed is False


def test_first_run_copies_and_logs_in(lab):
    assert "changed: [regpusher] => (item=docker-archive:%s -> %s/mip-lab/keystore:lab)" % (ARCHIVE, ENDPOINT) \
        in lab.first_output
    assert changed_count(lab.first_output, "regpusher") > 0
    assert changed_count(lab.first_output, "regms") > 0


def test_node_pulls_image_from_pusher(lab):
    reference = "%s/mip-lab/keystore:lab" % ENDPOINT

    lab.shell(lab.node, "docker pull " + reference, timeout=300)
    pulled_id = lab.shell(lab.node, "docker image inspect -f '{{.Id}}' " + reference).stdout.strip()
    host_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", LAB_IMAGE]).stdout.strip()

    assert pulled_id == host_id


def test_anonymous_pull_is_rejected(lab):
    result = lab.shell(lab.node, "docker --config /root/no-login pull %s/mip-lab/keystore:lab" % ENDPOINT,
                       check=False, timeout=300)

    assert result.returncode != 0
    assert "no basic auth credentials" in result.stderr


def test_second_run_changes_nothing(lab):
    _status, output = lab.playbook("--diff")

    assert changed_count(output, "regpusher") == 0
    assert changed_count(output, "regms") == 0


def test_check_after_setup_changes_nothing(lab):
    _status, output = lab.playbook("--check", "--diff")

    assert changed_count(output, "regpusher") == 0
    assert changed_count(output, "regms") == 0


def test_check_lists_pending_copy(lab):
    images = [{"name": "mip-lab/keystore", "tag": "lab", "archive": ARCHIVE},
              {"name": "mip-lab/keystore", "tag": "second", "archive": ARCHIVE}]

    _status, output = lab.playbook("--check", "--diff", "-e", json.dumps({"registry_images": images}))
    stored = lab.shell(lab.pusher, "skopeo inspect --authfile %s/auth.json --cert-dir %s/trust "
                                   "docker://%s/mip-lab/keystore:second" % (CONFIG_DIR, CONFIG_DIR, ENDPOINT),
                       check=False)

    assert changed_count(output, "regpusher") == 1
    assert re.findall(r'"msg": "(Would copy [^"]+)"', output) == [
        "Would copy docker-archive:%s to %s/mip-lab/keystore:second" % (ARCHIVE, ENDPOINT)]
    assert stored.returncode != 0


def test_registry_source_is_no_op(lab):
    _status, output = lab.playbook("-e", "mip_image_source=registry")

    assert 'there is no registry to set up on the pusher' in output
    assert changed_count(output, "regpusher") == 0
    assert changed_count(output, "regms") == 0


def test_unknown_image_source_fails(lab):
    code, output = lab.playbook("-e", "mip_image_source=dockerhub", expect_success=False)

    assert code != 0
    assert 'mip_image_source is "dockerhub": expected "pusher"' in output


def test_missing_archive_fails_early(lab):
    images = [{"name": "mip-lab/keystore", "tag": "gone", "archive": "/var/lib/mip-images/gone.tar"}]

    code, output = lab.playbook("-e", json.dumps({"registry_images": images}), expect_success=False)

    assert code != 0
    assert re.search(r"^regpusher\s*:.*failed=1", output, re.MULTILINE)
    assert "archive /var/lib/mip-images/gone.tar not found on regpusher" in output
    assert "Copy the missing or different images into the registry" not in output


def test_secret_files_are_root_only(lab):
    listing = lab.shell(lab.pusher, "stat -c '%%n %%a %%U %%G' %s/password %s/ca.key %s/auth.json "
                                    "/etc/docker/registry/registry.key /etc/docker/registry/htpasswd"
                        % (CONFIG_DIR, CONFIG_DIR, CONFIG_DIR)).stdout
    modes = dict(line.split(" ", 1) for line in listing.splitlines())

    assert modes[CONFIG_DIR + "/password"] == "600 root root"
    assert modes[CONFIG_DIR + "/ca.key"] == "600 root root"
    assert modes[CONFIG_DIR + "/auth.json"] == "600 root root"
    assert modes["/etc/docker/registry/registry.key"] == "640 root docker-registry"
    assert modes["/etc/docker/registry/htpasswd"] == "640 root docker-registry"


def test_certificate_names_pusher(lab):
    script = ("from cryptography import x509; "
              "c = x509.load_pem_x509_certificate(open('/etc/docker/registry/registry.crt', 'rb').read()); "
              "s = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value; "
              "print(' '.join(str(v) for v in s.get_values_for_type(x509.IPAddress))); "
              "print(' '.join(s.get_values_for_type(x509.DNSName)))")
    ip_names, dns_names = lab.shell(lab.pusher, "python3 -c \"%s\"" % script).stdout.splitlines()

    assert ip_names.split() == [PUSHER_ADDRESS]
    assert dns_names.split() == ["regpusher"]


def test_node_trusts_ca_for_registry_only(lab):
    listing = lab.shell(lab.node, "find /etc/docker/certs.d -type f").stdout.split()
    system_bundle = lab.shell(lab.node, "cat /etc/ssl/certs/ca-certificates.crt", check=False).stdout
    federation_ca = lab.shell(lab.pusher, "cat %s/ca.crt" % CONFIG_DIR).stdout.strip()

    assert listing == ["/etc/docker/certs.d/%s/ca.crt" % ENDPOINT]
    assert federation_ca not in system_bundle


def test_new_password_logs_node_in(lab):
    old_password = lab.shell(lab.pusher, "cat %s/password" % CONFIG_DIR).stdout.strip()
    lab.shell(lab.pusher, "rm %s/password" % CONFIG_DIR)

    _status, output = lab.playbook("--diff")
    new_password = lab.shell(lab.pusher, "cat %s/password" % CONFIG_DIR).stdout.strip()
    lab.shell(lab.node, "docker rmi %s/mip-lab/keystore:lab" % ENDPOINT)
    pulled = lab.shell(lab.node, "docker pull %s/mip-lab/keystore:lab" % ENDPOINT, check=False, timeout=300)

    assert new_password != old_password
    assert changed_count(output, "regms") == 1
    assert pulled.returncode == 0, pulled.stderr


def test_logs_hold_no_password(lab):
    assert lab.passwords
    assert len(lab.logs) >= 5
    for password in lab.passwords:
        encoded = base64.b64encode(("mip:" + password).encode()).decode()
        for index, output in enumerate(lab.logs):
            assert password not in output, "password in playbook log %d" % (index + 1)
            assert encoded not in output, "encoded credentials in playbook log %d" % (index + 1)
