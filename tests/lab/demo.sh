#!/usr/bin/env bash
# The lab federation, driven as an engineer would drive a real one: the lab's
# nodes are created on this host, then Ansible and the collection are
# installed on the pusher, and the site playbook runs there, reaching the
# other nodes over SSH.
#   demo.sh up      create the lab and deploy the federation (re-runnable)
#   demo.sh status  print the federation's status from the pusher
#   demo.sh down    remove the lab
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
bin=$top/${VENV:-.venv}/bin
export ANSIBLE_COLLECTIONS_PATH=$top/build/collections
pusher=mip-lab-labpusher
inventory=/root/mip-lab/inventory/hosts.yml

on_pusher() {
  docker exec -e ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}" -e ANSIBLE_CALLBACK_RESULT_FORMAT=yaml \
    -w /root/mip-lab "$pusher" "$@"
}

install_on_pusher() {
  echo "== Installing Ansible and the collection on the pusher"
  if ! on_pusher sh -c 'command -v ansible-playbook >/dev/null'; then
    on_pusher sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ansible tmux >/dev/null'
  fi
  rm -rf build/dist
  "$bin/ansible-galaxy" collection build --force --output-path build/dist . >/dev/null
  archive=$(ls build/dist/mip-federation-*.tar.gz)
  on_pusher mkdir -p /root/mip-lab
  docker cp "$archive" "$pusher:/root/mip-lab/mip-federation.tar.gz"
  docker cp inventories/lab/. "$pusher:/root/mip-lab/inventory"
  on_pusher ansible-galaxy collection install --offline --no-deps --force mip-federation.tar.gz >/dev/null
}

case "${1:-up}" in
  up)
    echo "== Building the lab's images and creating its nodes"
    "$bin/ansible-playbook" tests/lab/create.yml
    install_on_pusher
    echo "== Deploying the federation from the pusher: ansible-playbook mip.federation.site"
    on_pusher ansible-playbook -i "$inventory" mip.federation.site
    echo "== Federation status"
    on_pusher ansible-playbook -i "$inventory" mip.federation.status
    echo "== Datasets the portal's backend (lab stand-in) got from the master, through http://172.30.100.12/"
    on_pusher sh -c 'curl -fsS http://172.30.100.12/services/datasets | python3 -m json.tool'
    ;;
  status)
    on_pusher ansible-playbook -i "$inventory" mip.federation.status
    ;;
  down)
    "$bin/ansible-playbook" tests/lab/destroy.yml
    ;;
  *)
    echo "usage: $0 up|status|down" >&2
    exit 2
    ;;
esac
