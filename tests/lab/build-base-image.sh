#!/usr/bin/env bash
# Build the lab's node image, a Debian 13 (trixie) root file system made with
# debootstrap and loaded with `docker import`, because no image can be pulled
# here. The image boots systemd and runs sshd; Docker is left for the
# collection to install. Containers must be started with stop signal
# SIGRTMIN+3 so that systemd shuts down cleanly. Skipped when the image already exists unless
# MIP_LAB_REBUILD=1.
set -euo pipefail

image=${MIP_LAB_BASE_IMAGE:-mip-lab/debian:13}
mirror=${MIP_LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,iputils-ping,ca-certificates,procps,less,curl

if docker image inspect "$image" >/dev/null 2>&1 && [[ "${MIP_LAB_REBUILD:-0}" != 1 ]]; then
  echo "Lab base image $image exists; set MIP_LAB_REBUILD=1 to rebuild it."
  exit 0
fi

rootfs=$(mktemp -d /var/tmp/mip-lab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "Bootstrapping Debian 13 into $rootfs from $mirror"
debootstrap --variant=minbase --include="$packages" trixie "$rootfs" "$mirror" >/var/tmp/mip-lab-debootstrap.log 2>&1 || {
  tail -n 30 /var/tmp/mip-lab-debootstrap.log >&2
  echo "debootstrap failed; the full log is /var/tmp/mip-lab-debootstrap.log" >&2
  exit 1
}

# Units that fail or make no sense inside a container.
for unit in systemd-modules-load.service systemd-udevd.service systemd-udev-trigger.service \
            getty@tty1.service console-getty.service systemd-networkd-wait-online.service \
            systemd-firstboot.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
chroot "$rootfs" systemctl enable ssh.service >/dev/null 2>&1 || true

# sshd: keys only. Host keys are generated at first boot of each node, so
# two nodes never share one.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat >"$rootfs/etc/ssh/sshd_config.d/10-lab.conf" <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CONF
cat >"$rootfs/etc/systemd/system/lab-ssh-host-keys.service" <<'UNIT'
[Unit]
Description=Generate this node's SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$rootfs" systemctl enable lab-ssh-host-keys.service >/dev/null 2>&1

echo "deb $mirror trixie main" >"$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/var/lib/apt/lists/debootstrap.invalid_*
# The host's resolv.conf serves this one update only, because Docker gives
# each container its own.
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" apt-get update -qq >>/var/tmp/mip-lab-debootstrap.log 2>&1 || {
  echo "apt-get update failed inside the image: read /var/tmp/mip-lab-debootstrap.log" >&2
  exit 1
}
rm -f "$rootfs/etc/resolv.conf"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/periodic/update-success-stamp
: >"$rootfs/etc/machine-id"
# The package lists are kept, as on an installed server, so that a check-mode
# run (which never updates them) can resolve packages. An old time stamp makes
# apt modules that honour a cache age fetch them again on a real run.
touch -d @0 "$rootfs/var/lib/apt/lists"

tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
echo "Built lab base image $image"
