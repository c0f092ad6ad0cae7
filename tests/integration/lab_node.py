"""Helpers for the lab tests that run a playbook against systemd nodes in Docker.

The nodes are containers of the base image mip-lab/debian:13 (built by
tests/lab/build-base-image.sh) with systemd as PID 1 and a Docker volume at
/var/lib/docker, so that Docker can run inside them. Ansible reaches them
through the community.docker.docker connection. tests/integration/conftest.py
puts this folder on sys.path, so the test modules import it as ``lab_node``.

NOTE: pytest started inside tests/integration/registry or ui does not load
that conftest.py, and the import fails. Start it from the repository root.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
BASE_IMAGE = "mip-lab/debian:13"

# Every capability but CAP_SYS_RESOURCE, which the lab host does not grant,
# so --privileged fails there.
CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_TIME SYS_TTY_CONFIG MKNOD "
    "LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM "
    "BLOCK_SUSPEND AUDIT_READ"
).split()


def docker_available():
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


def base_image_present():
    return subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True,
                          timeout=30, check=False).returncode == 0


# The pytestmark of a lab test module. The lab tests are opt-in, because they
# take minutes and install packages inside the nodes from the Debian mirror.
# Docker is queried only when they are enabled.
SKIP_MARKS = [
    pytest.mark.skipif(os.environ.get("MIP_LAB_DOCKER_TESTS") != "1", reason="set MIP_LAB_DOCKER_TESTS=1 to run"),
    pytest.mark.skipif(os.environ.get("MIP_LAB_DOCKER_TESTS") == "1" and not docker_available(),
                       reason="no Docker daemon answers"),
    pytest.mark.skipif(os.environ.get("MIP_LAB_DOCKER_TESTS") == "1" and docker_available()
                       and not base_image_present(),
                       reason="build the base image first: tests/lab/build-base-image.sh"),
]


def run(command, timeout=120, check=True, stdin=None):
    """Run COMMAND and return its CompletedProcess, with text output unless STDIN is given.

    With CHECK, a non-zero exit code raises AssertionError with the command's stderr.
    """
    result = subprocess.run(command, capture_output=True, text=stdin is None, timeout=timeout, stdin=stdin,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError("%s failed with exit code %d: %s"
                             % (" ".join(command), result.returncode, result.stderr))
    return result


def start_systemd_node(container, hostname, network, docker_volume, address=None):
    """Start CONTAINER from BASE_IMAGE on NETWORK and wait until systemd has booted.

    DOCKER_VOLUME is mounted at /var/lib/docker. ADDRESS is the container's
    fixed IP address on NETWORK; without it, Docker assigns one.
    """
    arguments = ["docker", "run", "-d", "--name", container, "--hostname", hostname, "--network", network]
    if address:
        arguments += ["--ip", address]
    arguments += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                  "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns=host",
                  "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", docker_volume + ":/var/lib/docker",
                  "--stop-signal", "SIGRTMIN+3"]
    for capability in CAPABILITIES:
        arguments += ["--cap-add", capability]
    run(arguments + [BASE_IMAGE, "/sbin/init"])

    for _attempt in range(60):
        state = run(["docker", "exec", container, "bash", "-c", "systemctl is-system-running"],
                    check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise AssertionError("systemd in %s did not finish booting: %s" % (container, state))


def pipe_docker_save(images, command, timeout=600):
    """Stream the ``docker save`` archive of IMAGES into the standard input of COMMAND."""
    save = subprocess.Popen(["docker", "save"] + list(images), stdout=subprocess.PIPE)
    try:
        run(command, stdin=save.stdout, timeout=timeout)
    finally:
        save.stdout.close()
        save.wait(timeout=60)


def changed_count(output, host):
    """Return the changed= count of HOST in the play recap of OUTPUT."""
    match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)" % re.escape(host), output, re.MULTILINE)
    assert match, "no play recap for host %s in the output" % host
    return int(match.group(1))


class PlaybookLab:
    """A lab's work folder and the runs of one playbook against its inventory.

    Each run's output is kept in ``logs`` and written to
    ``playbook-NN.log`` in the folder, so that a test can check every output
    for leaked secrets and a failure points to the whole log.
    """

    def __init__(self, folder, playbook_name):
        self.folder = folder
        self.playbook_path = REPOSITORY / "playbooks" / playbook_name
        self.inventory = None
        self.logs = []

    def playbook(self, *arguments, expect_success=True):
        """Run the playbook with -vvv, keep its output and return (exit code, output)."""
        environment = dict(os.environ,
                           ANSIBLE_COLLECTIONS_PATH=str(REPOSITORY / "build" / "collections"),
                           ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        command = [str(REPOSITORY / ".venv" / "bin" / "ansible-playbook"), "-i", str(self.inventory),
                   str(self.playbook_path), "-vvv"] + list(arguments)
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment,
                                check=False)
        output = result.stdout + result.stderr
        self.logs.append(output)
        log_path = self.folder / ("playbook-%02d.log" % len(self.logs))
        log_path.write_text(output)
        if expect_success:
            assert result.returncode == 0, "playbook failed, see %s:\n%s" % (log_path, output[-3000:])
        return result.returncode, output
