#!/usr/bin/env bash
# Requests keycloak_sync sends for a first and a no-op sync of a federation of
# 500 datasets over 20 workers, against a delete-and-recreate baseline, on the
# KeyCloak emulator (loopback only). Extra arguments go to bench/keycloak/bench.py,
# e.g. --page-size 3 or --datasets 50.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${repo}/.venv/bin/python"
[ -x "${python}" ] || python=python3
make -s -C "${repo}" collection >/dev/null
export PYTHONPATH="${repo}/build/collections"
exec "${python}" "${repo}/bench/keycloak/bench.py" "$@"
