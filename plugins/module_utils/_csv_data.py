# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a node's data folder: pathology folders, their files and CSVs.

Shared by ``data_inventory`` (consolidation) and ``compile_datasets``. Plain
Python (3.8+) and the standard library only, so unit tests call it without
Ansible.

A node's data folder is ``<mip_data_root>/<federation>/``; each first-level
folder is a pathology holding ``CDEsMetadata.json``, ``*.csv`` files and the
compiled ``datasets.db``.
"""

from __future__ import annotations

import csv
import hashlib
import os

CDE_FILE = "CDEsMetadata.json"
DB_FILE = "datasets.db"
DATASET_COLUMN = "dataset"
# Files that compile_datasets leaves while it builds (and removes after).
BUILD_PREFIX = ".datasets.db."
BUILD_SUFFIX = ".tmp"

# A CSV is read as UTF-8; "utf-8-sig" drops a leading byte order mark.
CSV_ENCODING = "utf-8-sig"
# The inventory reports at most this many row problems per file.
MAX_SCAN_ERRORS = 20


class DataError(Exception):
    """A problem with an input file, formatted for a person."""


def problem(message, file=None, line=None, column=None, value=None, node=None, **extra):
    """Return one reported problem: a dict with a readable ``msg``.

    ``msg`` reads "node: file, line L, column 'c', value 'v': message" with the
    parts that are known, so a single string names where the problem is.
    """
    where = []
    if node:
        where.append(str(node))
    place = []
    if file:
        place.append(str(file))
    if line is not None:
        place.append("line %d" % line)
    if column is not None:
        place.append("column %r" % column)
    if value is not None:
        place.append("value %r" % value)
    if place:
        where.append(", ".join(place))
    text = ": ".join(where + [message]) if where else message
    entry = {"msg": text, "message": message}
    for key, val in (("node", node), ("file", file), ("line", line), ("column", column), ("value", value)):
        if val is not None:
            entry[key] = val
    entry.update(extra)
    return entry


def count_and_list_problems(errors):
    """Return "N problem(s):" and the ``msg`` of each of ERRORS on its own line.

    The modules end their fail_json message with it, so that every problem
    of a run is in one readable message.
    """
    lines = [entry["msg"] for entry in errors]
    return "%d problem(s):\n%s" % (len(lines), "\n".join(lines))


def is_csv_name(name):
    """A data file is a ``*.csv`` (lower case, as exareme's converter reads)."""
    return name.endswith(".csv") and not name.startswith(".")


def list_pathologies(path):
    """Return (sorted pathology folder names, notes) for a node's data folder.

    Hidden folders are skipped; a plain file at the top level is noted.
    Raises DataError when PATH is not a readable folder.
    """
    if not os.path.isdir(path):
        raise DataError("%s: the data folder does not exist or is not a folder" % path)
    names = []
    notes = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise DataError("%s: cannot list the data folder: %s" % (path, exc.strerror or exc))
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            names.append(entry.name)
        else:
            notes.append("%s: ignored, not a pathology folder" % entry.name)
    return names, notes


def classify_folder(folder, pathology):
    """Sort the entries of one pathology folder.

    Returns a dict with ``cde`` (path or None), ``csvs`` (sorted file names),
    ``db`` (path or None), ``leftovers`` (temporary files of an interrupted
    compile, which the next compile removes) and ``notes`` for every other
    entry, which is ignored, never an error.
    """
    info = {"cde": None, "csvs": [], "db": None, "notes": [], "leftovers": []}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        rel = "%s/%s" % (pathology, name)
        if entry.is_dir():
            info["notes"].append("%s: ignored, a folder inside a pathology folder" % rel)
        elif name == CDE_FILE:
            info["cde"] = entry.path
        elif name == DB_FILE:
            info["db"] = entry.path
        elif name.startswith(BUILD_PREFIX) and name.endswith(BUILD_SUFFIX):
            info["leftovers"].append(name)
        elif is_csv_name(name) and entry.is_file():
            info["csvs"].append(name)
        elif is_csv_name(name):
            info["notes"].append("%s: ignored, not a regular file (a broken link?)" % rel)
        elif name.startswith(".") and name.endswith(".csv"):
            info["notes"].append("%s: ignored, a hidden file" % rel)
        elif name.lower().endswith(".csv"):
            info["notes"].append("%s: ignored, exareme reads only names ending in lower-case .csv: rename it"
                                 % rel)
        else:
            info["notes"].append("%s: ignored, not a .csv file, %s or %s" % (rel, CDE_FILE, DB_FILE))
    return info


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def open_csv(path):
    """Open a CSV for csv.reader: UTF-8 with or without BOM, any line ending."""
    return open(path, "r", encoding=CSV_ENCODING, newline="")


def csv_reader(handle):
    """A reader for RFC 4180 CSV: quoted fields may hold commas, quotes and
    line breaks; a stray quote is an error rather than silently kept."""
    return csv.reader(handle, strict=True)


def read_header(reader, rel):
    """Return the header row or raise DataError naming the file."""
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("%s: the file is empty, it has no header line" % rel)
    if not any(header):
        raise DataError("%s: line 1 is empty, it must be the header" % rel)
    return header


def header_problems(header, rel, known=None, node=None):
    """Problems of a CSV header: empty or repeated names, no ``dataset``
    column, and (when KNOWN, the set of CDE codes, is given) every column no
    CDE defines, the first column included."""
    problems = []
    seen = set()
    for index, name in enumerate(header, 1):
        if name == "":
            problems.append(problem("column %d of the header has no name" % index, file=rel, line=1, node=node))
            continue
        if name in seen:
            problems.append(problem("the column appears twice in the header", file=rel, line=1, column=name, node=node))
        seen.add(name)
        if known is not None and name not in known:
            problems.append(problem("no CDE variable defines this column", file=rel, line=1, column=name, node=node))
    if DATASET_COLUMN not in seen:
        problems.append(problem("the header has no %r column" % DATASET_COLUMN, file=rel, line=1, node=node))
    return problems


def scan_csv(path, rel, node=None):
    """Stream one CSV and count its rows per dataset.

    Returns ``{"columns", "rows", "datasets": {code: rows}, "errors"}``.
    Every row is read (not only the first), so a file holding several
    datasets is reported whole. Memory stays constant: only the counters grow.
    """
    result = {"columns": [], "rows": 0, "datasets": {}, "errors": []}
    errors = result["errors"]
    reader = None
    try:
        with open_csv(path) as handle:
            reader = csv_reader(handle)
            header = read_header(reader, rel)
            result["columns"] = header
            errors.extend(header_problems(header, rel, node=node))
            if DATASET_COLUMN not in header:
                # Count rows anyway so that the inventory says how much data
                # the file holds.
                result["rows"] = sum(1 for row in reader if row)
                return result
            index = header.index(DATASET_COLUMN)
            width = len(header)
            counts = {}
            rows = 0
            line = reader.line_num
            for row in reader:
                start = line + 1
                line = reader.line_num
                if not row:
                    continue
                rows += 1
                if len(row) != width:
                    if len(errors) < MAX_SCAN_ERRORS:
                        errors.append(problem("expected %d fields, found %d" % (width, len(row)), file=rel, line=start, node=node))
                    continue
                code = row[index]
                if code == "":
                    if len(errors) < MAX_SCAN_ERRORS:
                        errors.append(problem("the row has no dataset value", file=rel, line=start,
                                              column=DATASET_COLUMN, node=node))
                    continue
                counts[code] = counts.get(code, 0) + 1
            result["rows"] = rows
            result["datasets"] = dict(sorted(counts.items()))
    except DataError as exc:
        errors.append(problem(str(exc).split(": ", 1)[-1], file=rel, node=node))
    except UnicodeDecodeError:
        errors.append(utf8_problem(path, rel, node=node))
    except csv.Error as exc:
        errors.append(problem("malformed CSV: %s" % exc, file=rel, line=reader.line_num if reader else None, node=node))
    except OSError as exc:
        errors.append(problem("cannot read: %s" % (exc.strerror or exc), file=rel, node=node))
    return result


def utf8_problem(path, rel, node=None):
    """Locate the first byte that is not UTF-8 and report its line.

    The text layer decodes ahead in blocks, so the line is found again from
    the raw bytes; this runs only once an error is known.
    """
    line = 1
    offset = 0
    tail = b""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(1 << 20)
            if not block:
                break
            data = tail + block
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                    good = exc.start
                else:
                    line += data.count(b"\n", 0, exc.start)
                    byte = data[exc.start:exc.start + 1]
                    return problem("not valid UTF-8 (byte 0x%s at offset %d): save the file as UTF-8"
                                   % (byte.hex(), offset + exc.start), file=rel, line=line, node=node)
            line += data.count(b"\n", 0, good)
            offset += good
            tail = data[good:]
    return problem("not valid UTF-8 (truncated character at the end of the file)", file=rel, line=line, node=node)


def list_pathologies_into(path, result):
    """List the pathology folders of PATH, adding the ignored entries to RESULT's notes.

    Returns the folder names, or None after adding the problem to RESULT's errors
    when PATH cannot be listed.
    """
    try:
        names, notes = list_pathologies(path)
    except DataError as exc:
        result["errors"].append(problem(str(exc).split(": ", 1)[-1], file=path))
        return None
    result["notes"].extend(notes)
    return names


def inventory(path, read_cdes=False, checksums=True, pathologies=None):
    """Describe a node's data folder for consolidation.

    Returns ``{"path", "pathologies": {name: {"files": [...], "datasets":
    {code: rows}, "cde": {...} | None, "notes": [...]}}, "errors", "notes"}``.
    Each file entry has ``name``, ``file`` (``<pathology>/<name>``),
    ``size``, ``sha256``, ``columns``, ``rows``, ``datasets`` and ``errors``.
    With READ_CDES, ``cde`` holds the text of ``CDEsMetadata.json`` (``text``,
    ``size``, ``sha256``, ``file``) or an ``error`` naming the line and column
    of invalid JSON. Problems are reported, not raised, so that one run shows
    every problem of every node.
    """
    # Imported here: _cde imports this module.
    from ansible_collections.mip.federation.plugins.module_utils._cde import read_cde_file

    result = {"path": path, "pathologies": {}, "errors": [], "notes": []}
    names = list_pathologies_into(path, result)
    if names is None:
        return result
    if pathologies:
        names = [n for n in names if n in pathologies]
    for name in names:
        folder = os.path.join(path, name)
        try:
            info = classify_folder(folder, name)
        except OSError as exc:
            result["errors"].append(problem("cannot list: %s" % (exc.strerror or exc), file=name))
            continue
        entry = {"files": [], "datasets": {}, "cde": None, "notes": info["notes"]}
        result["notes"].extend(info["notes"])
        for csv_name in info["csvs"]:
            full = os.path.join(folder, csv_name)
            rel = "%s/%s" % (name, csv_name)
            scanned = scan_csv(full, rel)
            stat = os.stat(full)
            file_entry = {
                "name": csv_name,
                "file": rel,
                "size": stat.st_size,
                "sha256": file_sha256(full) if checksums else None,
            }
            file_entry.update(scanned)
            entry["files"].append(file_entry)
            for code, rows in scanned["datasets"].items():
                entry["datasets"][code] = entry["datasets"].get(code, 0) + rows
        entry["datasets"] = dict(sorted(entry["datasets"].items()))
        if read_cdes and info["cde"]:
            rel = "%s/%s" % (name, CDE_FILE)
            try:
                text, _doc = read_cde_file(info["cde"], rel)
                raw = text.encode("utf-8")
                entry["cde"] = {"file": rel, "text": text, "size": len(raw),
                                "sha256": hashlib.sha256(raw).hexdigest()}
            except DataError as exc:
                entry["cde"] = {"file": rel, "error": str(exc).split(": ", 1)[-1]}
                result["errors"].append(problem(entry["cde"]["error"], file=rel))
        result["pathologies"][name] = entry
    return result
