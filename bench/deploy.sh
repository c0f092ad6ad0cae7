#!/usr/bin/env bash
# Deployment benchmark on the lab: the time of a first run of the site
# playbook with two and with four workers, and of a no-op re-run, printed as
# ratios. Each configuration gets a lab of its own (containers mip-bench-*,
# network 172.30.110.0/24), so it can run beside the Molecule lab. It runs
# ansible-playbook on this host, over SSH, like the Molecule scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bin=$top/${VENV:-.venv}/bin
export ANSIBLE_COLLECTIONS_PATH=$top/build/collections ANSIBLE_FORCE_COLOR=0

write_lab() {
  local workers=$1 dir=$2
  mkdir -p "$dir/inventory/group_vars"
  python3 - "$workers" "$dir" <<'PY'
import json, sys
workers, folder = int(sys.argv[1]), sys.argv[2]
nodes = [("labpusher", 10), ("labms", 11), ("labui", 12)] + [("labwk%d" % n, 20 + n) for n in range(1, workers + 1)]
# The same sample data in both configurations, spread over the workers.
files = ["dementia/edsd.csv", "dementia/ppmi.csv", "dementia/desd-synthdata.csv",
         "dementia/fake_longitudinal.csv", "tbi/dummy_tbi.csv", "mentalhealth/demo.csv"]
data = {"labms": ["dementia/CDEsMetadata.json", "tbi/CDEsMetadata.json", "mentalhealth/CDEsMetadata.json"]}
for index, name in enumerate(files):
    data.setdefault("labwk%d" % (index % workers + 1), []).append(name)
lab = {
    "lab_prefix": "mip-bench", "lab_network": "mip-bench", "lab_subnet": "172.30.110.0/24",
    "lab_nodes": [{"id": name, "address": "172.30.110.%d" % last} for name, last in nodes],
    "lab_keycloak": {"id": "keycloak", "address": "172.30.110.30", "port": 8080},
    "lab_data": data, "lab_secrets_dir": folder,
}
json.dump(lab, open(folder + "/lab.json", "w"), indent=2)
inventory = {"federation": {"children": {
    "pusher": {"hosts": {"labpusher": {"ansible_host": "172.30.110.10"}}},
    "master": {"hosts": {"labms": {"ansible_host": "172.30.110.11"}}},
    "ui": {"hosts": {"labui": {"ansible_host": "172.30.110.12"}}},
    "workers": {"hosts": {name: {"ansible_host": "172.30.110.%d" % last} for name, last in nodes[3:]}},
}}}
json.dump(inventory, open(folder + "/inventory/hosts.json", "w"), indent=2)
PY
  sed 's/172\.30\.100\./172.30.110./g' inventories/lab/group_vars/federation.yml >"$dir/inventory/group_vars/federation.yml"
}

seconds_of() {
  local start end
  start=$(date +%s.%N)
  "$@" >>"$log" 2>&1
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 1))"
}

run_configuration() {
  local workers=$1 dir=$top/build/bench/deploy-$workers
  write_lab "$workers" "$dir"
  "$bin/ansible-playbook" tests/lab/destroy.yml -e "@$dir/lab.json" >>"$log" 2>&1
  "$bin/ansible-playbook" tests/lab/create.yml -e "@$dir/lab.json" >>"$log" 2>&1
  export MIP_LAB_DIR=$dir
  local site=("$bin/ansible-playbook" -i "$dir/inventory/hosts.json" --private-key "$top/build/lab/id_ed25519" mip.federation.site)
  first[$workers]=$(seconds_of "${site[@]}")
  again[$workers]=$(seconds_of "${site[@]}")
  "$bin/ansible-playbook" tests/lab/destroy.yml -e "@$dir/lab.json" >>"$log" 2>&1
}

log=$top/build/bench/deploy.log
mkdir -p "$top/build/bench"
: >"$log"
declare -A first again
for workers in 2 4; do
  echo "Deploying a lab federation with $workers workers (log: $log)"
  run_configuration "$workers"
done

python3 - "${first[2]}" "${again[2]}" "${first[4]}" "${again[4]}" <<'PY'
import sys
first2, again2, first4, again4 = map(float, sys.argv[1:])
print("site.yml, lab federation, ansible-playbook on this host over SSH:")
print("  2 workers: first run %6.1f s, no-op re-run %6.1f s, ratio re-run/first %.2f" % (first2, again2, again2 / first2))
print("  4 workers: first run %6.1f s, no-op re-run %6.1f s, ratio re-run/first %.2f" % (first4, again4, again4 / first4))
print("  first run with 4 workers / with 2 workers: %.2f" % (first4 / first2))
PY
