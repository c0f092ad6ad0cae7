#!/usr/bin/env bash
# Benchmark of compile_datasets: its logic against the sqlite3 shell's raw
# .import of the same one-million-row CSV (ratio), and its peak memory for
# 100,000 and 1,000,000 rows. See bench/compile/run.py.
#
#   bash bench/compile.sh [ROWS] [REPEAT]
#
# BENCH_DIR (default /tmp/mip-bench-compile) keeps the generated data between
# runs; delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "installing Debian's sqlite3 package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
BENCH_DIR=${BENCH_DIR:-/tmp/mip-bench-compile}
mkdir -p "$BENCH_DIR"
echo "sqlite3 $(sqlite3 --version | cut -d' ' -f1), $($PYTHON -V), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$PYTHON" bench/compile/run.py "$BENCH_DIR" "${1:-1000000}" "${2:-5}"
