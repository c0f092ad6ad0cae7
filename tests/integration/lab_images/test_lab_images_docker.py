"""The built images work together on a Docker bridge network: the worker's datasets reach the master.

Opt-in, because it needs a Docker daemon and the images from
tests/lab/images/build.sh: run with MIP_LAB_DOCKER_TESTS=1. The test creates
its own network and containers and removes them afterwards. Only the
master's port 9090 is published, on 127.0.0.1.
"""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from lab_support import http_json, wait_until

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "data" / "mip-data"
IMAGES = ("mip-lab/keystore:lab", "mip-lab/exareme:lab")

# The environment of exareme's compose files (exareme 24.5.1), as the collection deploys it.
EXAREME_ENV = {
    "CONSULURL": "exareme-keystore:8500",
    "TEMP_FILES_CLEANUP_TIME": "30",
    "NODE_COMMUNICATION_TIMEOUT": "30000",
    "ENVIRONMENT_TYPE": "PROD",
    "LOG_LEVEL": "INFO",
    "CONVERT_CSVS": "FALSE",
}


def docker(*arguments):
    result = subprocess.run(["docker"] + list(arguments), capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise AssertionError("docker %s failed: %s" % (" ".join(arguments), result.stderr.strip()))
    return result.stdout.strip()


def images_present():
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "image", "inspect"] + list(IMAGES), capture_output=True, timeout=30, check=False)
    return found.returncode == 0


pytestmark = [
    pytest.mark.skipif(os.environ.get("MIP_LAB_DOCKER_TESTS") != "1", reason="set MIP_LAB_DOCKER_TESTS=1 to run"),
    pytest.mark.skipif(
        os.environ.get("MIP_LAB_DOCKER_TESTS") == "1" and not images_present(),
        reason="build the images first: tests/lab/images/build.sh",
    ),
]


@pytest.fixture
def bridge_network():
    name = "mip-lab-images-%s" % uuid.uuid4().hex[:8]
    docker("network", "create", "--driver", "bridge", name)
    containers = []
    yield name, containers
    for container in containers:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, timeout=60, check=False)
    subprocess.run(["docker", "network", "rm", name], capture_output=True, timeout=60, check=False)


def run_container(network, containers, name, image, environment=(), volume=None, alias=None, publish=None):
    arguments = ["run", "--detach", "--name", name, "--network", network]
    if alias:
        arguments += ["--network-alias", alias]
    for variable, value in environment:
        arguments += ["--env", "%s=%s" % (variable, value)]
    if volume:
        arguments += ["--volume", "%s:/root/exareme/data/:ro" % volume]
    if publish:
        arguments += ["--publish", publish]
    container = docker(*(arguments + [image]))
    containers.append(container)
    return container


def node_data(root, name, pathologies):
    """Copy the sample CSVs named in pathologies ({pathology: [files]}) into root/name."""
    folder = root / name
    for pathology, files in pathologies.items():
        (folder / pathology).mkdir(parents=True)
        shutil.copy(SAMPLE_DATA / pathology / "CDEsMetadata.json", folder / pathology)
        for file_name in files:
            shutil.copy(SAMPLE_DATA / pathology / file_name, folder / pathology)
    return folder


def exareme_env(node_name, role):
    return sorted(dict(EXAREME_ENV, NODE_NAME=node_name, FEDERATION_ROLE=role).items())


def test_worker_datasets_reach_master(tmp_path, bridge_network):
    network, containers = bridge_network
    suffix = network.rsplit("-", 1)[1]
    ms_data = node_data(tmp_path, "ms", {"dementia": [], "tbi": []})
    wk1_data = node_data(tmp_path, "wk1", {"dementia": ["edsd.csv"]})
    wk10_data = node_data(tmp_path, "wk10", {"dementia": ["ppmi.csv"], "tbi": ["dummy_tbi.csv"]})

    run_container(
        network, containers, "keystore-" + suffix, "mip-lab/keystore:lab",
        environment=[("CONSUL_BIND_INTERFACE", "lo")], alias="exareme-keystore",
    )
    master = run_container(
        network, containers, "ms-" + suffix, "mip-lab/exareme:lab",
        environment=exareme_env("ms", "master"), volume=ms_data, publish="127.0.0.1::9090",
    )
    for name, data in (("wk1", wk1_data), ("wk10", wk10_data)):
        run_container(network, containers, name + "-" + suffix, "mip-lab/exareme:lab", environment=exareme_env(name, "worker"), volume=data)

    master_port = docker("port", master, "9090/tcp").splitlines()[0].rsplit(":", 1)[1]
    datasets_url = "http://127.0.0.1:%s/mining/datasets" % master_port
    expected = {
        "ms": {},
        "wk1": {"dementia": ["edsd"]},
        "wk10": {"dementia": ["ppmi"], "tbi": ["dummy_tbi"]},
    }

    def datasets_listed():
        try:
            return http_json("GET", datasets_url)[1] == expected
        except (OSError, ValueError):
            return False

    listed = wait_until(datasets_listed, timeout=60, interval=1)
    assert listed, "master lists %s; logs:\n%s" % (
        http_json("GET", datasets_url)[1],
        "\n".join(docker("logs", container) for container in containers),
    )

    master_ip = docker("inspect", "--format", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network, master)
    status, health = http_json("POST", "http://127.0.0.1:%s/mining/query/HEALTH_CHECK" % master_port)
    assert status == 200
    assert health == {"active_nodes": ["ms", "wk1", "wk10"]}
    assert "Master ms is at %s" % master_ip in docker("logs", containers[2])
