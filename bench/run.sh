#!/usr/bin/env bash
# Run every benchmark and print their ratios; docs/benchmarks.md records
# what they printed and on which machine.
set -euo pipefail
cd "$(dirname "$0")"
echo "== compile_datasets against sqlite3 .import"
bash compile.sh
echo
echo "== KeyCloak sync requests against delete-and-recreate"
bash keycloak.sh
echo
echo "== Deployment of the lab federation"
bash deploy.sh
