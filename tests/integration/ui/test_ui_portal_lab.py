"""The ui role deploys the portal on a lab node, idempotently and without leaking secrets.

Opt-in, because it takes minutes and installs Docker inside the node from the
Debian mirror: run with MIP_LAB_DOCKER_TESTS=1. It needs a Docker daemon and
the base image mip-lab/debian:13 (tests/lab/build-base-image.sh); the five
portal stand-in images are built from tests/lab/images/ when missing.

The module starts one systemd node from mip-lab/debian:13 and one fake
exareme on a bridge network of its own. It runs playbooks/ui.yml against the
node through the community.docker.docker connection. At the end it removes
both containers, the network and the node's Docker volume. Every
request goes to these containers; nothing is published on the host.
"""

import json
import re
import secrets
import time
import uuid
from pathlib import Path

import pytest

from lab_node import (
    BASE_IMAGE,
    REPOSITORY,
    SKIP_MARKS,
    PlaybookLab,
    changed_count,
    pipe_docker_save,
    run,
    start_systemd_node,
)

IMAGES_FOLDER = REPOSITORY / "tests" / "lab" / "images"
FAKE_EXAREME = Path(__file__).resolve().parent / "fake_exareme.py"
PORTAL_IMAGES = ("portal-frontend", "portal-gateway", "portal-backend", "portal-db", "create-databases")
PROJECT_DIR = "/opt/mip-deployment/Federation"
DATASETS = {"wk1": {"dementia": ["edsd", "ppmi"]}, "wk2": {"tbi": ["dummy_tbi"]}}

# The node's /proc/sys is read-only, so Docker 26 inside it cannot switch off
# IPv6 on container interfaces. It then fails to start containers unless
# DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE is set.
DOCKER_DROP_IN = "[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n"

pytestmark = SKIP_MARKS


def docker(*arguments, timeout=120):
    return run(["docker"] + list(arguments), timeout=timeout).stdout.strip()


class Lab(PlaybookLab):
    """The node, the fake exareme and the runs of playbooks/ui.yml made against them."""

    def __init__(self, prefix, folder):
        super().__init__(folder, "ui.yml")
        self.prefix = prefix
        self.network = prefix
        self.node = prefix + "-ui"
        self.master = prefix + "-master"
        self.volume = prefix + "-docker"
        self.node_address = None
        self.master_address = None
        self.secrets = {
            "keycloak": "kc-" + secrets.token_hex(12),
            "database_admin": "admin-" + secrets.token_hex(12),
            "database": "portal-" + secrets.token_hex(12),
        }

    def node_shell(self, script, timeout=120, check=True):
        return run(["docker", "exec", self.node, "bash", "-c", script], timeout=timeout, check=check)

    def address(self, container):
        return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container)

    def write_inventory(self):
        images = {}
        for variable, folder in (("frontend", "portal-frontend"), ("gateway", "portal-gateway"),
                                 ("backend", "portal-backend"), ("database", "portal-db"),
                                 ("create_databases", "create-databases")):
            images["ui_%s_image" % variable] = "mip-lab/" + folder
            images["ui_%s_tag" % variable] = "lab"
        inventory = {
            "federation": {
                "children": {
                    # The KeyCloak playbook sets the client secret as a fact
                    # on the pusher, and the role reads it from there by default.
                    "pusher": {"hosts": {"labpusher": {
                        "ansible_connection": "local",
                        "mip_keycloak_client_secret": self.secrets["keycloak"],
                    }}},
                    "master": {"hosts": {"labms": {"ansible_host": self.master_address}}},
                    # The inventory check wants a complete federation; the
                    # UI step never connects to the worker.
                    "workers": {"hosts": {"labwk1": {"ansible_connection": "local"}}},
                    "ui": {"hosts": {"labui": {
                        "ansible_connection": "community.docker.docker",
                        "ansible_host": self.node,
                        "ansible_python_interpreter": "/usr/bin/python3",
                    }}},
                },
                "vars": dict(images, **{
                    "mip_federation_name": "labfed",
                    "ui_public_host": self.node_address,
                    "ui_pull": "never",
                    "ui_keycloak_host": "keycloak.lab.invalid",
                    "ui_database_admin_password": self.secrets["database_admin"],
                    "ui_database_password": self.secrets["database"],
                }),
            }
        }
        path = self.folder / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=2))
        return path

    def service_containers(self):
        """Return {compose service: container id} of the portal project."""
        listing = self.node_shell("docker ps -a --filter label=com.docker.compose.project=mipfederation "
                                  "--format '{{.Label \"com.docker.compose.service\"}} {{.ID}}'").stdout
        return dict(line.split() for line in listing.splitlines() if line.strip())

    def get(self, url, extra="", attempts=30):
        """Return the body of a GET sent with curl inside the node, retrying while it fails."""
        for _attempt in range(attempts):
            result = self.node_shell("curl -sf --max-time 5 %s %s" % (extra, url), check=False)
            if result.returncode == 0:
                return result.stdout
            time.sleep(2)
        raise AssertionError("GET %s from the node kept failing: %s" % (url, result.stderr))


def build_missing_images():
    for folder in PORTAL_IMAGES:
        image = "mip-lab/%s:lab" % folder
        if run(["docker", "image", "inspect", image], check=False, timeout=30).returncode != 0:
            run(["docker", "build", "--pull=false", "-q", "-t", image, str(IMAGES_FOLDER / folder)], timeout=900)


def start_node(lab):
    start_systemd_node(lab.node, "ui", lab.network, lab.volume)

    drop_in = lab.folder / "lab-ipv6.conf"
    drop_in.write_text(DOCKER_DROP_IN)
    lab.node_shell("mkdir -p /etc/systemd/system/docker.service.d")
    docker("cp", str(drop_in), lab.node + ":/etc/systemd/system/docker.service.d/lab-ipv6.conf")
    lab.node_shell("export DEBIAN_FRONTEND=noninteractive && apt-get update -qq "
                   "&& apt-get install -y -qq docker.io docker-compose >/dev/null "
                   "&& systemctl daemon-reload && systemctl restart docker", timeout=900)

    images = ["mip-lab/%s:lab" % folder for folder in PORTAL_IMAGES]
    pipe_docker_save(images, ["docker", "exec", "-i", lab.node, "docker", "load"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab("mip-ui-test-%s" % uuid.uuid4().hex[:8], tmp_path_factory.mktemp("ui-lab"))
    build_missing_images()
    docker("network", "create", "--driver", "bridge", lab.network)
    try:
        docker("run", "-d", "--name", lab.master, "--network", lab.network,
               "-e", "FAKE_EXAREME_DATASETS=" + json.dumps(DATASETS),
               "-v", "%s:/fake_exareme.py:ro" % FAKE_EXAREME,
               "--entrypoint", "python3", BASE_IMAGE, "/fake_exareme.py")
        start_node(lab)
        lab.node_address = lab.address(lab.node)
        lab.master_address = lab.address(lab.master)
        lab.inventory = lab.write_inventory()

        # Check mode first, on the empty node, as a user would preview the deployment.
        lab.check_run_output = lab.playbook("--check", "--diff")[1]
        lab.project_dir_after_check = lab.node_shell("test -e " + PROJECT_DIR, check=False).returncode == 0
        lab.playbook("--diff")
        yield lab
    finally:
        for container in (lab.node, lab.master):
            run(["docker", "rm", "-f", "-v", container], check=False, timeout=120)
        run(["docker", "network", "rm", lab.network], check=False)
        run(["docker", "volume", "rm", lab.volume], check=False)


def test_check_mode_previews_first_deploy(lab):
    output = lab.check_run_output

    assert changed_count(output, "labui") > 0
    assert "+++ after: " in output
    assert lab.project_dir_after_check is False


def test_frontend_proxies_datasets_from_master(lab):
    body = lab.get("http://127.0.0.1/services/datasets")

    assert json.loads(body) == DATASETS


def test_https_uses_self_signed_certificate(lab):
    body = lab.get("https://127.0.0.1/services/datasets", extra="-k")
    verified = lab.node_shell("curl -s --max-time 5 https://127.0.0.1/", check=False)

    assert json.loads(body) == DATASETS
    # curl exits 60 when the peer's certificate is not signed by a trusted CA.
    assert verified.returncode == 60


def test_backend_reaches_database_and_exareme(lab):
    health = json.loads(lab.get("http://127.0.0.1/services/health"))

    assert health["status"] == "UP"
    assert health["database"] == {"status": "UP", "database": "portal", "user": "portal"}
    assert health["exareme"]["url"] == "http://%s:9090" % lab.master_address
    assert health["authentication"] == "1"
    assert health["keycloak"]["client_id"] == "labfed"
    assert health["keycloak"]["client_secret_set"] is True
    assert health["keycloak"]["ssl_required"] == "external"


def test_only_frontend_ports_are_published(lab):
    published = {}
    for service, container in lab.service_containers().items():
        bindings = lab.node_shell("docker inspect -f '{{json .HostConfig.PortBindings}}' " + container).stdout
        published[service] = sorted(json.loads(bindings) or {})

    assert published == {
        "frontend": ["443/tcp", "80/tcp"],
        "gateway": [],
        "portalbackend": [],
        "portalbackend_db": [],
    }


def test_environment_files_are_root_only(lab):
    listing = lab.node_shell("stat -c '%n %a %U' " + PROJECT_DIR + "/secrets/*.env").stdout.split("\n")
    modes = dict(line.split(" ", 1) for line in listing if line)

    assert sorted(modes) == [PROJECT_DIR + "/secrets/" + name
                             for name in ("create_dbs.env", "portalbackend.env", "portalbackend_db.env")]
    for path, mode in modes.items():
        assert mode == "600 root", path


def test_compose_file_holds_no_secret(lab):
    compose_file = lab.node_shell("cat " + PROJECT_DIR + "/docker-compose.yml").stdout

    assert "mipfederation" in compose_file
    for name, value in lab.secrets.items():
        assert value not in compose_file, name


def test_second_run_changes_nothing(lab):
    before = lab.service_containers()

    _code, output = lab.playbook("--diff")

    assert changed_count(output, "labui") == 0
    assert lab.service_containers() == before


def test_check_mode_reports_no_change(lab):
    before = lab.service_containers()

    _code, output = lab.playbook("--check", "--diff")

    assert changed_count(output, "labui") == 0
    assert lab.service_containers() == before


def test_check_mode_reports_pending_change(lab):
    before = lab.service_containers()

    _code, output = lab.playbook("--check", "--diff", "-e", "ui_keycloak_realm=LAB")

    assert changed_count(output, "labui") > 0
    assert lab.service_containers() == before


@pytest.mark.parametrize("variable, value, service", [
    ("ui_keycloak_realm", "LAB", "portalbackend"),
    ("ui_instance_name", "MIP lab", "frontend"),
])
def test_changed_variable_recreates_only_its_service(lab, variable, value, service):
    before = lab.service_containers()

    lab.playbook("--diff", "-e", "%s=%s" % (variable, value))
    after_change = lab.service_containers()
    lab.playbook("--diff")
    after_revert = lab.service_containers()

    assert sorted(name for name in before if before[name] != after_change[name]) == [service]
    assert sorted(name for name in before if after_change[name] != after_revert[name]) == [service]


def test_changed_database_password_reaches_backend(lab):
    new_password = "portal-" + secrets.token_hex(12)
    lab.secrets["database_changed"] = new_password
    before = lab.service_containers()

    lab.playbook("--diff", "-e", "ui_database_password=" + new_password)
    health = json.loads(lab.get("http://127.0.0.1/services/health"))
    lab.playbook("--diff")
    health_after_revert = json.loads(lab.get("http://127.0.0.1/services/health"))

    assert health["database"]["status"] == "UP"
    assert health_after_revert["database"]["status"] == "UP"
    assert lab.service_containers()["portalbackend_db"] == before["portalbackend_db"]


def test_database_survives_recreation(lab):
    psql = ("docker compose -p mipfederation --project-directory %s exec -T portalbackend_db "
            "psql --username=postgres --port=5433 --dbname=portal --tuples-only --no-align --command "
            % PROJECT_DIR)
    lab.node_shell(psql + "\"CREATE TABLE IF NOT EXISTS lab_marker (note text); "
                          "INSERT INTO lab_marker VALUES ('kept');\"")
    before = lab.service_containers()["portalbackend_db"]

    lab.node_shell("cd %s && docker compose -p mipfederation up -d --force-recreate --no-deps portalbackend_db"
                   % PROJECT_DIR)
    for _attempt in range(30):
        result = lab.node_shell(psql + "\"SELECT note FROM lab_marker;\"", check=False)
        if result.returncode == 0:
            break
        time.sleep(2)

    assert lab.service_containers()["portalbackend_db"] != before
    assert result.stdout.split() == ["kept"]


def test_supplied_certificate_is_served(lab):
    certificate = lab.folder / "cert.pem"
    key = lab.folder / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=" + lab.node_address, "-addext", "subjectAltName=IP:" + lab.node_address,
         "-keyout", str(key), "-out", str(certificate)])
    # A line from the middle of the key must not show up in any output either.
    lab.secrets["tls_key"] = key.read_text().splitlines()[5]
    docker("cp", str(certificate), lab.node + ":/root/lab-ca.pem")
    files_mode = ["-e", "ui_tls_mode=files", "-e", "ui_public_protocol=https",
                  "-e", "ui_tls_certificate_file=%s" % certificate, "-e", "ui_tls_key_file=%s" % key]

    lab.playbook("--diff", *files_mode)
    body = lab.get("https://%s/services/datasets" % lab.node_address, extra="--cacert /root/lab-ca.pem")
    key_mode = lab.node_shell("stat -c '%a %U' " + PROJECT_DIR + "/tls/key.pem").stdout.strip()
    _code, rerun_output = lab.playbook(*files_mode)
    lab.playbook("--diff")

    assert json.loads(body) == DATASETS
    assert key_mode == "600 root"
    assert changed_count(rerun_output, "labui") == 0


@pytest.mark.parametrize("extra_vars, variable", [
    ({"ui_public_host": "127.0.0.1"}, "ui_public_host"),
    ({"ui_public_host": "localhost:8080"}, "ui_public_host"),
    ({"ui_exareme_address": "master.lab.invalid"}, "ui_exareme_address"),
    ({"ui_keycloak_client_secret": ""}, "ui_keycloak_client_secret"),
    ({"ui_database_password": ""}, "ui_database_password"),
    ({"ui_tls_mode": "files"}, "ui_tls_mode"),
])
def test_invalid_setting_fails_before_any_change(lab, extra_vars, variable):
    compose_before = lab.node_shell("sha256sum %s/docker-compose.yml" % PROJECT_DIR).stdout

    code, output = lab.playbook("-e", json.dumps(extra_vars), expect_success=False)

    assert code != 0
    # A failed loop item prints "failed:", a failed task "fatal:".
    assert re.search(r"(fatal|failed): \[labui\].*%s" % variable, output, re.DOTALL)
    assert changed_count(output, "labui") == 0
    assert lab.node_shell("sha256sum %s/docker-compose.yml" % PROJECT_DIR).stdout == compose_before


def test_verbose_output_hides_secrets(lab):
    assert len(lab.logs) >= 3
    # -vvv output includes the module results, so the check below searches real output.
    assert any("mipfederation-portalbackend-1" in log for log in lab.logs)
    for log in lab.logs:
        for name, value in lab.secrets.items():
            assert value not in log, name
