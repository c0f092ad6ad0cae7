#!/usr/bin/env bash
# Install the host packages the lab needs and start a Docker daemon if none
# responds. Works without systemd, as on CI machines and containers.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v git >/dev/null 2>&1 || missing+=(git)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Missing host packages: ${missing[*]}. Install them as root, then run make again." >&2
    exit 1
  fi
  echo "Installing host packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "Starting dockerd (log: /var/log/mip-lab-dockerd.log)"
  nohup dockerd >/var/log/mip-lab-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/mip-lab-dockerd.log" >&2; exit 1; }
fi
