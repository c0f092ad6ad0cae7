# Copyright: mip.federation contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Time compile_datasets' logic against sqlite3's .import, and its memory.

    python3 run.py WORKDIR [ROWS] [REPEAT]

Generates a pathology of ROWS rows (default 1,000,000) and one of 100,000
rows under WORKDIR, then, REPEAT times (default 5) and interleaved:

- the sqlite3 command-line shell imports the CSV into a new database
  (``.import --csv``: every column TEXT, nothing validated), after the
  PRAGMAs compile_datasets sets on its build file (BUILD_PRAGMAS: no
  journal, no syncs, exclusive locking, the same page cache);
- compile_all() from plugins/module_utils/_compile.py, the code the module
  runs, compiles the same CSV with its CDEs (force=True), validating every
  value, into datasets.db.

Each run is a separate process; wall time and CPU time (user + system, from
getrusage of the children) are taken around it, and the medians compared.
Peak memory is the maximum resident set size that compile_all's process
reports for itself, for 100,000 and for ROWS rows.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import gen  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.mip.federation.plugins.module_utils._compile import compile_all
start = time.perf_counter()
result = compile_all(sys.argv[2], force=True)
wall = time.perf_counter() - start
entry = result["pathologies"]["bench"]
print(json.dumps({"wall": wall, "rows": entry.get("rows"), "errors": result["errors"][:3],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def collections_path(workdir):
    """An ansible_collections tree whose mip/federation is this checkout."""
    root = os.path.join(workdir, "collections")
    link = os.path.join(root, "ansible_collections", "mip", "federation")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return root


def timed(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(argv), done.stdout, done.stderr))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def build_pragmas(collections):
    """Return the PRAGMAs compile_datasets sets on its build file."""
    sys.path.insert(0, collections)
    from ansible_collections.mip.federation.plugins.module_utils._compile import BUILD_PRAGMAS
    return list(BUILD_PRAGMAS)


def run_import(csv_path, db_path, pragmas):
    if os.path.exists(db_path):
        os.unlink(db_path)
    wall, cpu, _out = timed(["sqlite3", db_path] + pragmas + [".import --csv %s DATA" % csv_path])
    rows = subprocess.run(["sqlite3", db_path, "SELECT COUNT(*) FROM DATA"], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()
    os.unlink(db_path)
    return wall, cpu, int(rows)


def run_compile(collections, folder):
    wall, cpu, out = timed([sys.executable, "-c", CHILD, collections, folder])
    report = json.loads(out.strip().splitlines()[-1])
    if report["errors"]:
        sys.exit("compile failed: %s" % report["errors"])
    return wall, cpu, report


def main():
    workdir = os.path.abspath(sys.argv[1])
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    collections = collections_path(workdir)
    big = os.path.join(workdir, "p%d" % rows)
    small = os.path.join(workdir, "p100000")
    for folder, count in ((big, rows), (small, 100000)):
        csv_path = os.path.join(folder, "bench", "bench.csv")
        if not os.path.exists(csv_path):
            print("generating %d rows in %s" % (count, csv_path), flush=True)
            gen.generate(os.path.join(folder, "bench"), count)
    csv_path = os.path.join(big, "bench", "bench.csv")
    size_mb = os.path.getsize(csv_path) / 1e6
    print("CSV: %d rows, %d columns, %.0f MB; %s" % (rows, len(gen.HEADER), size_mb, csv_path))
    pragmas = build_pragmas(collections)
    print("PRAGMAs for both: %s" % "; ".join(p.replace("PRAGMA ", "") for p in pragmas))

    imports, compiles = [], []
    for index in range(repeat):
        wall, cpu, count = run_import(csv_path, os.path.join(workdir, "import.db"), pragmas)
        assert count == rows, count
        imports.append((wall, cpu))
        wall, cpu, report = run_compile(collections, big)
        assert report["rows"] == rows, report
        compiles.append((wall, cpu))
        print("run %d: sqlite3 .import wall %.2f s cpu %.2f s | compile_datasets wall %.2f s cpu %.2f s"
              % (index + 1, imports[-1][0], imports[-1][1], wall, cpu), flush=True)
    import_wall = statistics.median(w for w, _c in imports)
    import_cpu = statistics.median(c for _w, c in imports)
    compile_wall = statistics.median(w for w, _c in compiles)
    compile_cpu = statistics.median(c for _w, c in compiles)
    print("median: sqlite3 .import wall %.2f s cpu %.2f s | compile_datasets wall %.2f s cpu %.2f s"
          % (import_wall, import_cpu, compile_wall, compile_cpu))
    print("RATIO compile_datasets / sqlite3 .import: wall %.2fx, cpu %.2fx (aim: at most 1.50x)"
          % (compile_wall / import_wall, compile_cpu / import_cpu))

    memory = []
    for folder, count in ((small, 100000), (big, rows)):
        _wall, _cpu, report = run_compile(collections, folder)
        memory.append((count, report["maxrss_kb"] / 1024.0))
    print("PEAK MEMORY of compile_datasets (max RSS): " + ", ".join("%d rows %.0f MB" % m for m in memory))


if __name__ == "__main__":
    main()
