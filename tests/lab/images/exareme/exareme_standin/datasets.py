"""Dataset codes of the pathologies in a node's data folder.

exareme 24.5.1's set-local-datasets.sh publishes, for every
<data folder>/<pathology>/datasets.db, the result of
`select distinct dataset from data`. The stand-in does the same and, for a
pathology that has no datasets.db yet, reads the `dataset` column of its
CSVs instead, so that a lab node works before `compile` has run.
"""

import csv
import logging
import os
import sqlite3
from urllib.parse import quote

LOG = logging.getLogger("exareme")

DATABASE_NAME = "datasets.db"


class DatasetReadError(Exception):
    """A datasets.db or CSV could not be read; the message names the file."""


def _append_new(codes, seen, value):
    if value is None:
        return
    code = str(value)
    if code and code not in seen:
        seen.add(code)
        codes.append(code)


def read_database_datasets(path):
    """Return the distinct dataset codes of the DATA table in the SQLite file at path."""
    uri = "file:%s?mode=ro" % quote(os.path.abspath(path))
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise DatasetReadError("%s: opening the SQLite file failed: %s" % (path, error))
    try:
        rows = connection.execute("SELECT DISTINCT dataset FROM data").fetchall()
    except sqlite3.Error as error:
        raise DatasetReadError("%s: select distinct dataset from data failed: %s" % (path, error))
    finally:
        connection.close()

    codes = []
    seen = set()
    for (value,) in rows:
        _append_new(codes, seen, value)
    return codes


def read_csv_datasets(paths):
    """Return the distinct non-empty `dataset` values over the CSV files, in order of first appearance.

    A file without a `dataset` column is logged and skipped.
    """
    codes = []
    seen = set()
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "dataset" not in reader.fieldnames:
                    LOG.warning("%s has no dataset column; skipping it", path)
                    continue
                for row in reader:
                    _append_new(codes, seen, row.get("dataset"))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DatasetReadError("%s: reading it as a UTF-8 CSV failed: %s" % (path, error))
    return codes


def read_pathology_datasets(folder):
    """Return (dataset codes, source) for one pathology folder, or None when it has neither db nor CSV."""
    database = os.path.join(folder, DATABASE_NAME)
    if os.path.isfile(database):
        return read_database_datasets(database), DATABASE_NAME

    csv_paths = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(".csv") and os.path.isfile(os.path.join(folder, name))
    )
    if not csv_paths:
        return None
    names = ", ".join(os.path.basename(path) for path in csv_paths)
    return read_csv_datasets(csv_paths), "CSV (%s)" % names


def discover_local_datasets(data_folder):
    """Return [(pathology, dataset codes, source)] for every pathology folder that can be read.

    A pathology whose files cannot be read is logged and left out, so that
    the node still publishes the others.
    """
    if not os.path.isdir(data_folder):
        LOG.warning("Data folder %s does not exist; this node has no datasets to publish", data_folder)
        return []

    found = []
    for pathology in sorted(os.listdir(data_folder)):
        folder = os.path.join(data_folder, pathology)
        if pathology.startswith(".") or not os.path.isdir(folder):
            continue
        try:
            result = read_pathology_datasets(folder)
        except DatasetReadError as error:
            LOG.error("Pathology %s left out: %s", pathology, error)
            continue
        if result is None:
            LOG.info("Pathology %s has no %s and no CSV; nothing to publish", pathology, DATABASE_NAME)
            continue
        codes, source = result
        found.append((pathology, codes, source))
    return found
