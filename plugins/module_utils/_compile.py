# Copyright: mip.federation contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Compile a pathology's CDEs and CSVs into ``datasets.db`` for exareme.

The database has the two tables exareme 24.5.1's converter
(``convert-csv-dataset-to-db.py``) writes:

- ``METADATA(code PK, label, sql_type, isCategorical, enumerations, min, max)``,
  one row per CDE variable, the tree flattened through ``groups``;
- ``DATA`` with one column per CDE variable, in the same order, declared with
  the variable's ``sql_type`` and a ``CHECK (TYPEOF(...))`` constraint.

Unlike the converter, every value is bound as an SQL parameter, ``minValue``
and ``maxValue`` are stored and enforced, every CSV column is checked (the
first one too), and every value is validated: type, enumeration of
categorical variables, range, and a non-empty ``dataset``. A third table,
``MIP_BUILD(key, value)``, keeps the fingerprint of the inputs so that an
unchanged pathology is not rebuilt.

How a file is loaded (the hot loop): no Python code runs per value, nor per
row. Lines are split on commas by C iterators (csv.reader takes over from
the first block holding a quote), grouped into multi-row INSERT statements
and bound as parameters by ``executemany``. SQLite does the checking, in C:
a ``CASE`` expression per value turns null markers into NULL and a value
outside an enumeration or a range into a blob, the column's type affinity
converts numeric text, and one query per file finds any blob or any value
the affinity could not convert (the CHECK constraints, which test types at a
higher cost, are switched off while loading; ``PRAGMA integrity_check``
passes on the result). A malformed row stops the load at once, a bad value
at the end of its file; the file is then read again by ``validate_file``, a
Python validator applying the same rules, which reports every bad value with
its line, up to the error limit.
The database is built in a temporary file in the same folder, with the
journal and syncs off, then synced and renamed over ``datasets.db``: a failed
build leaves the previous database in place.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import itertools
import json
import operator
import os
import sqlite3
import tempfile

from ansible_collections.mip.federation.plugins.module_utils._cde import (
    check_schema,
    parse_number,
    read_cde_file,
)
from ansible_collections.mip.federation.plugins.module_utils._csv_data import (
    BUILD_PREFIX,
    BUILD_SUFFIX,
    CDE_FILE,
    DATASET_COLUMN,
    DB_FILE,
    DataError,
    classify_folder,
    csv_reader,
    file_sha256,
    header_problems,
    list_pathologies,
    open_csv,
    problem,
    read_header,
    utf8_problem,
)

# Bump when the layout of datasets.db or the validation rules change, so that
# every database is rebuilt once.
FORMAT_VERSION = 1
BUILD_TABLE = "MIP_BUILD"
TOOL = "mip.federation compile_datasets"
DEFAULT_ERROR_LIMIT = 100


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_text(value):
    return "'%s'" % value.replace("'", "''")


# The converter's METADATA table. min and max keep the INTEGER declaration but
# also accept a real: minValue/maxValue such as 1.54 exist in the CDEs, and
# the converter's CHECK (integer only) would reject them; it never hit that
# because it looked for "min"/"max", which the CDEs do not use.
METADATA_DDL = (
    "CREATE TABLE METADATA("
    " code TEXT PRIMARY KEY ASC CHECK (TYPEOF(code) = 'text')"
    ", label TEXT CHECK (TYPEOF(label) = 'text')"
    ", sql_type TEXT CHECK (TYPEOF(sql_type) = 'text')"
    ", isCategorical INTEGER CHECK (TYPEOF(isCategorical) = 'integer')"
    ", enumerations TEXT CHECK (TYPEOF(enumerations) = 'text' OR TYPEOF(enumerations) = 'null')"
    ", min INTEGER CHECK (TYPEOF(min) = 'integer' OR TYPEOF(min) = 'real' OR TYPEOF(min) = 'null')"
    ", max INTEGER CHECK (TYPEOF(max) = 'integer' OR TYPEOF(max) = 'real' OR TYPEOF(max) = 'null'))"
)
_TYPE_CHECK = {
    "int": "TYPEOF({c}) = 'integer' OR TYPEOF({c}) = 'null'",
    "real": "TYPEOF({c}) = 'real' OR TYPEOF({c}) = 'integer' OR TYPEOF({c}) = 'null'",
    "text": "TYPEOF({c}) = 'text' OR TYPEOF({c}) = 'null'",
}
_EXPECTED = {"int": "an integer", "real": "a real number", "text": "text"}

# Build-file settings: nothing to roll back to (a failed build is deleted),
# and the file is synced once before the rename.
BUILD_PRAGMAS = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -2048",
    "PRAGMA ignore_check_constraints = ON",
)


def data_ddl(columns):
    parts = []
    for column in columns:
        name = quote_ident(column["code"])
        parts.append("%s %s CHECK (%s)" % (name, column["sql_type"], _TYPE_CHECK[column["type"]].format(c=name)))
    return "CREATE TABLE DATA(%s)" % ", ".join(parts)


def metadata_rows(columns):
    for column in columns:
        enumerations = ",".join(column["enumerations"]) if column["enumerations"] else None
        yield (column["code"], column["label"], column["sql_type"], 1 if column["categorical"] else 0,
               enumerations, column["min"], column["max"])


def _literal(value, kind):
    if kind == "text":
        return quote_text(value)
    return repr(float(parse_number(value, kind)))


# What a rejected value becomes: a blob, which no DATA column may hold and
# which type_problem_sql() finds. (An expression raising an error would stop
# at once, but SQLite may evaluate a constant function ahead of its CASE
# branch, so a blob is the safe choice.)
REJECT = "x''"


def value_sql(column, param, null_markers):
    """The SQL expression that stores the CSV text bound to PARAM in COLUMN.

    A null marker (the empty cell, and the configured ones) becomes NULL,
    except for ``dataset``, which every row needs. A value outside the
    enumerations of a categorical variable, or outside ``minValue`` and
    ``maxValue``, becomes the blob REJECT. The column's affinity converts
    numeric text. ``type_problem_sql`` then finds a blob, or text that the
    affinity could not convert. All of it runs inside SQLite, not in Python.
    """
    kind = column["type"]
    reject = REJECT
    null = reject if column["code"] == DATASET_COLUMN else "NULL"
    nulls = " ".join("WHEN %s THEN %s" % (quote_text(m), null) for m in null_markers)
    if column["categorical"]:
        codes = column["enumerations"] or []
        if kind == "text":
            whens = " ".join("WHEN %s THEN %s" % (quote_text(c), param) for c in codes)
            return "CASE %s %s %s ELSE %s END" % (param, nulls, whens, reject)
        whens = " ".join("WHEN %s THEN %s" % (_literal(c, kind), param) for c in codes)
        return "CASE %s %s ELSE CASE CAST(%s AS REAL) %s ELSE %s END END" % (param, nulls, param, whens, reject)
    if kind != "text" and (column["min"] is not None or column["max"] is not None):
        low = column["min"] if column["min"] is not None else -_FINITE
        high = column["max"] if column["max"] is not None else _FINITE
        return ("CASE %s %s ELSE CASE WHEN CAST(%s AS REAL) BETWEEN %r AND %r THEN %s ELSE %s END END"
                % (param, nulls, param, low, high, param, reject))
    # CASE is cheaper than NULLIF(), a function call.
    return "CASE %s %s ELSE %s END" % (param, nulls, param)


_FINITE = 1.7976931348623157e308


def type_problem_sql(columns):
    """A condition true for a DATA row holding a rejected value or a value
    that its column's CHECK constraint would reject, or None.

    SQLite sorts NULL < numbers < text < blobs. Text the affinity could not
    convert stays text, a rejected value is a blob, and ``1e999`` becomes
    infinity. So a real column is wrong when its value is >= 9e999 or
    <= -9e999, an int column when its value is not its own integer cast, and
    a text column that can receive REJECT (categorical, or ``dataset``) when
    its value is >= x''. Other text columns only ever receive text or NULL.
    """
    tests = []
    for column in columns:
        name = quote_ident(column["code"])
        if column["type"] == "int":
            tests.append("%s IS NOT CAST(%s AS INTEGER)" % (name, name))
        elif column["type"] == "real":
            tests.append("%s >= 9e999 OR %s <= -9e999" % (name, name))
        elif column["categorical"] or column["code"] == DATASET_COLUMN:
            tests.append("%s >= x''" % name)
    return " OR ".join(tests) if tests else None


def insert_sql(header, columns, null_markers, rows=1):
    """INSERT of ROWS rows of a CSV with HEADER, one parameter per cell."""
    by_code = dict((c["code"], c) for c in columns)
    markers = [""] + [m for m in null_markers if m != ""]
    width = len(header)
    groups = []
    for row in range(rows):
        values = [value_sql(by_code[name], "?%d" % (row * width + index + 1), markers)
                  for index, name in enumerate(header)]
        groups.append("(%s)" % ", ".join(values))
    return "INSERT INTO DATA (%s) VALUES %s" % (", ".join(quote_ident(c) for c in header), ", ".join(groups))


# SQLite before 3.32 allows at most 999 parameters in a statement.
MAX_PARAMETERS = 999
MAX_BATCH = 32
READ_BLOCK = 1 << 20


class _RowWidth(Exception):
    """A row has not as many fields as the header."""


def fast_rows(handle):
    """An iterator over the rows of a CSV after its header, as lists of strings.

    While the text holds no quote, no NUL and no carriage return outside a
    CRLF pair, a row is its line split on commas, which is what csv.reader
    returns for it, at a fraction of the cost; from the first block that
    holds one, csv.reader reads the rest. Empty lines are skipped, as are
    csv.reader's empty rows. Rows are produced by C iterators chained block
    by block, so no Python code runs per row.
    """
    return itertools.chain.from_iterable(_row_blocks(handle))


def _plain(text):
    if '"' in text or "\x00" in text:
        return False
    return "\r" not in text or text.count("\r") == text.count("\r\n")


def _row_blocks(handle):
    tail = ""
    while True:
        block = handle.read(READ_BLOCK)
        if not block:
            if tail:
                if _plain(tail + "\n"):
                    line = tail.rstrip("\r")
                    if line:
                        yield [line.split(",")]
                else:
                    yield filter(None, csv_reader(io.StringIO(tail, newline="")))
            return
        block = tail + block
        if not _plain(block):
            if not block.endswith("\n"):
                block += handle.readline()  # the rest of the block's last line
            yield filter(None, csv_reader(itertools.chain(io.StringIO(block, newline=""), handle)))
            return
        cut = block.rfind("\n")
        if cut < 0:
            tail = block
            continue
        tail = block[cut + 1:]
        lines = block[:cut].split("\n")
        if "\r" in block:
            lines = map(str.rstrip, lines, itertools.repeat("\r"))
        yield map(str.split, filter(None, lines), itertools.repeat(","))


def batches(rows, width, size, leftover, counts, dataset_index):
    """Group ROWS by SIZE into flat parameter lists; the last, shorter group
    goes to LEFTOVER. Counts the rows of each dataset code into COUNTS.
    A row of another width raises _RowWidth."""
    wrong = width.__ne__
    code = operator.itemgetter(dataset_index)
    while True:
        group = list(itertools.islice(rows, size))
        if any(map(wrong, map(len, group))):
            raise _RowWidth()
        if len(group) < size:
            leftover.extend(group)
            return
        counts.update(map(code, group))
        yield list(itertools.chain.from_iterable(group))


class _BadType(Exception):
    """A value that its column's type rejects."""


def load_file(con, handle, header, columns, null_markers, counts):
    """Insert the rows of an open CSV (after its header) into DATA.

    Returns the number of rows and adds the rows of each dataset code to
    COUNTS. Raises csv.Error, UnicodeDecodeError or _RowWidth at the first
    malformed row, _BadType after loading a file holding a bad value, and
    sqlite3.Error if the database fails. CHECK constraints are off while loading
    (``PRAGMA ignore_check_constraints``): value_sql and type_problem_sql
    apply the same rules with less work, once per value and once per file.
    """
    width = len(header)
    dataset_index = header.index(DATASET_COLUMN)
    size = max(1, min(MAX_BATCH, MAX_PARAMETERS // width))
    rows = fast_rows(handle)
    first = con.execute("SELECT COALESCE(MAX(rowid), 0) FROM DATA").fetchone()[0]
    found = collections.Counter()
    leftover = []
    if size > 1:
        con.executemany(insert_sql(header, columns, null_markers, size),
                        batches(rows, width, size, leftover, found, dataset_index))
        rows = iter(leftover)
    con.executemany(insert_sql(header, columns, null_markers),
                    batches(rows, width, 1, [], found, dataset_index))
    wrong = type_problem_sql([c for c in columns if c["code"] in set(header)])
    if wrong and con.execute("SELECT 1 FROM DATA WHERE rowid > ? AND (%s) LIMIT 1" % wrong, (first,)).fetchone():
        raise _BadType()
    counts.update(found)
    return sum(found.values())


# --------------------------------------------------------------------------
# The validator: the same rules, in Python, with a message per bad value.


class _Rule(object):
    __slots__ = ("code", "kind", "enum", "enum_text", "low", "high", "required")

    def __init__(self, column):
        self.code = column["code"]
        self.kind = column["type"]
        self.required = column["code"] == DATASET_COLUMN
        self.enum = None
        self.enum_text = None
        if column["categorical"]:
            codes = column["enumerations"] or []
            if self.kind == "text":
                self.enum = set(codes)
            else:
                self.enum = set(parse_number(c, self.kind) for c in codes)
            shown = codes[:20]
            self.enum_text = ", ".join(shown) + (", ... (%d in all)" % len(codes) if len(codes) > 20 else "")
        self.low = column["min"]
        self.high = column["max"]

    def check(self, value, nulls):
        """Return None when VALUE is valid, else what was expected."""
        if value in nulls:
            if self.required:
                return "a dataset code (every row needs one)"
            return None
        number = None
        if self.kind != "text":
            number = parse_number(value, self.kind)
            if number is None:
                return "%s (sql_type %s)" % (_EXPECTED[self.kind], self.kind)
        if self.enum is not None:
            if (value if self.kind == "text" else number) not in self.enum:
                if not self.enum:
                    return "no value: the categorical variable %r has no enumerations" % self.code
                return "one of the enumerations of %r: %s" % (self.code, self.enum_text)
        if self.low is not None and number < self.low:
            return "a value of at least %r (minValue)" % self.low
        if self.high is not None and number > self.high:
            return "a value of at most %r (maxValue)" % self.high
        return None


def validate_file(path, rel, header, columns, null_markers, limit):
    """Read a CSV whole and return its problems (at most LIMIT), each naming
    the file, line, column, value and what was expected."""
    errors = []
    by_code = dict((c["code"], c) for c in columns)
    rules = [_Rule(by_code[name]) for name in header]
    nulls = set([""]) | set(null_markers)
    width = len(header)
    reader = None
    try:
        with open_csv(path) as handle:
            reader = csv_reader(handle)
            next(reader)
            line = reader.line_num
            for row in reader:
                start = line + 1
                line = reader.line_num
                if not row:
                    continue
                if len(row) != width:
                    errors.append(problem("expected %d fields as in the header, found %d" % (width, len(row)),
                                          file=rel, line=start))
                else:
                    for rule, value in zip(rules, row):
                        expected = rule.check(value, nulls)
                        if expected is not None:
                            errors.append(problem("expected %s" % expected, file=rel, line=start,
                                                  column=rule.code, value=value))
                            if len(errors) >= limit:
                                break
                if len(errors) >= limit:
                    break
    except UnicodeDecodeError:
        errors.append(utf8_problem(path, rel))
    except csv.Error as exc:
        errors.append(problem("malformed CSV: %s" % exc, file=rel, line=reader.line_num if reader else None))
    except OSError as exc:
        errors.append(problem("cannot read: %s" % (exc.strerror or exc), file=rel))
    return errors[:limit]


# --------------------------------------------------------------------------
# Fingerprint of the inputs


def fingerprint(folder, cde_path, csvs, null_markers, mode="stat"):
    """A digest of everything the database is built from.

    The CDE file is hashed (it is small and consolidation rewrites it). A CSV
    counts by name, size and modification time in nanoseconds in ``stat``
    mode, which costs no reading (make and rsync decide the same way), or by
    its SHA-256 in ``sha256`` mode, for copies that preserve times.
    """
    parts = {
        "format": FORMAT_VERSION,
        "null_markers": sorted(set(null_markers) - set([""])),
        "cde": file_sha256(cde_path) if cde_path else None,
        "csvs": [],
    }
    for name in csvs:
        full = os.path.join(folder, name)
        stat = os.stat(full)
        if mode == "sha256":
            parts["csvs"].append([name, stat.st_size, file_sha256(full)])
        else:
            parts["csvs"].append([name, stat.st_size, stat.st_mtime_ns])
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_build(db_path):
    """What an existing database says of its build (``fingerprint``,
    ``datasets``...), or {} for a database built otherwise or unreadable."""
    if not db_path or not os.path.isfile(db_path):
        return {}
    try:
        con = sqlite3.connect("file:%s?mode=ro" % _uri_path(db_path), uri=True)
        try:
            return dict(con.execute("SELECT key, value FROM %s" % BUILD_TABLE).fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def stored_fingerprint(db_path):
    """The fingerprint stored in an existing database, or None."""
    return stored_build(db_path).get("fingerprint")


def _uri_path(path):
    from urllib.parse import quote
    return quote(os.path.abspath(path))


# --------------------------------------------------------------------------
# Building


def _fsync_path(path, directory=False):
    flags = os.O_RDONLY
    if directory and hasattr(os, "O_DIRECTORY"):
        flags |= os.O_DIRECTORY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def build_database(folder, pathology, cde_path, csvs, null_markers=(), error_limit=DEFAULT_ERROR_LIMIT,
                   fingerprint_value=None, db_name=DB_FILE):
    """Build ``<folder>/datasets.db`` from the CDEs and CSVS (file names).

    Returns a dict with ``rows``, ``datasets`` ({code: rows}), ``files``
    ([{file, rows}]) and ``errors``. On any error the previous database is
    left untouched and ``errors`` lists the problems (at most ERROR_LIMIT).
    """
    result = {"rows": 0, "datasets": {}, "files": [], "errors": []}
    errors = result["errors"]
    rel_cde = "%s/%s" % (pathology, CDE_FILE)
    try:
        _text, doc = read_cde_file(cde_path, rel_cde)
    except DataError as exc:
        errors.append(problem(str(exc).split(": ", 1)[-1], file=rel_cde))
        return result
    columns, schema_errors = check_schema(doc, rel_cde)
    if schema_errors:
        errors.extend(schema_errors[:error_limit])
        return result
    known = dict((c["code"], c) for c in columns)
    null_markers = list(null_markers)

    fd, tmp = tempfile.mkstemp(prefix=BUILD_PREFIX, suffix=BUILD_SUFFIX, dir=folder)
    os.close(fd)
    con = None
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        for pragma in BUILD_PRAGMAS:
            con.execute(pragma)
        con.execute("BEGIN")
        con.execute(METADATA_DDL)
        con.executemany("INSERT INTO METADATA (code, label, sql_type, isCategorical, enumerations, min, max) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", metadata_rows(columns))
        con.execute(data_ddl(columns))
        counts = collections.Counter()
        for name in csvs:
            if len(errors) >= error_limit:
                break
            rel = "%s/%s" % (pathology, name)
            full = os.path.join(folder, name)
            header = None
            try:
                with open_csv(full) as handle:
                    reader = csv_reader(handle)
                    header = read_header(reader, rel)
                    bad_header = header_problems(header, rel, known=known)
                    if bad_header:
                        errors.extend(bad_header[:error_limit - len(errors)])
                        continue
                    if errors:
                        # The build has failed already: only collect problems.
                        raise _ValidateOnly()
                    rows = load_file(con, handle, header, columns, null_markers, counts)
                    result["files"].append({"file": rel, "rows": rows})
            except DataError as exc:
                errors.append(problem(str(exc).split(": ", 1)[-1], file=rel))
            except (_ValidateOnly, _RowWidth, _BadType, sqlite3.Error, csv.Error, UnicodeDecodeError, OSError) as exc:
                if header is None:
                    if isinstance(exc, UnicodeDecodeError):
                        errors.append(utf8_problem(full, rel))
                    elif isinstance(exc, csv.Error):
                        errors.append(problem("malformed CSV header: %s" % exc, file=rel, line=1))
                    else:
                        errors.append(problem("cannot read: %s" % (getattr(exc, "strerror", None) or exc), file=rel))
                    continue
                found = validate_file(full, rel, header, columns, null_markers, error_limit - len(errors))
                if not found and not isinstance(exc, _ValidateOnly):
                    # The database refused what the validator accepts: a bug
                    # to report, or a database problem (disk full...).
                    found = [problem("SQLite refused the file although every value looks valid: %s"
                                     % (exc or type(exc).__name__), file=rel)]
                errors.extend(found)
        if errors:
            return result
        con.execute("CREATE TABLE %s(key TEXT PRIMARY KEY, value TEXT)" % BUILD_TABLE)
        con.executemany("INSERT INTO %s (key, value) VALUES (?, ?)" % BUILD_TABLE, [
            ("fingerprint", fingerprint_value or ""),
            ("format", str(FORMAT_VERSION)),
            ("tool", TOOL),
            ("datasets", json.dumps(dict(sorted(counts.items())), sort_keys=True)),
        ])
        con.execute("COMMIT")
        result["datasets"] = dict(sorted(counts.items()))
        result["rows"] = sum(counts.values())
        con.close()
        con = None
        os.chmod(tmp, 0o644)
        _fsync_path(tmp)
        os.replace(tmp, os.path.join(folder, db_name))
        tmp = None
        _fsync_path(folder, directory=True)
        return result
    finally:
        if con is not None:
            con.close()
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


class _ValidateOnly(Exception):
    pass


def compile_all(path, pathologies=None, force=False, null_markers=(), error_limit=DEFAULT_ERROR_LIMIT,
                fingerprint_mode="stat", check_mode=False):
    """Compile every pathology folder under PATH (or those in PATHOLOGIES).

    Returns ``{"compiled": [...], "unchanged": [...], "failed": [...],
    "pathologies": {name: {...}}, "notes": [...], "errors": [...]}``. In
    CHECK_MODE nothing is written and ``compiled`` lists what would be.
    """
    out = {"compiled": [], "unchanged": [], "failed": [], "pathologies": {}, "notes": [], "errors": []}
    try:
        names, notes = list_pathologies(path)
    except DataError as exc:
        out["errors"].append(problem(str(exc).split(": ", 1)[-1], file=path))
        return out
    out["notes"].extend(notes)
    if pathologies:
        missing = sorted(set(pathologies) - set(names))
        for name in missing:
            out["errors"].append(problem("no such pathology folder", file=os.path.join(path, name)))
            out["failed"].append(name)
        names = [n for n in names if n in pathologies]
    null_markers = [m for m in null_markers if m is not None]
    for name in names:
        folder = os.path.join(path, name)
        info = classify_folder(folder, name)
        entry = {"status": None, "notes": info["notes"], "errors": [], "csvs": info["csvs"]}
        out["pathologies"][name] = entry
        out["notes"].extend(info["notes"])
        if info["cde"] is None:
            if info["csvs"]:
                entry["errors"].append(problem("no %s next to the CSVs: run consolidation first" % CDE_FILE, file=name))
                entry["status"] = "failed"
                out["failed"].append(name)
                out["errors"].extend(entry["errors"])
            else:
                entry["status"] = "skipped"
                out["notes"].append("%s: skipped, no %s and no CSV" % (name, CDE_FILE))
            continue
        digest = fingerprint(folder, info["cde"], info["csvs"], null_markers, fingerprint_mode)
        entry["fingerprint"] = digest
        stored = stored_build(info["db"])
        if not force and stored.get("fingerprint") == digest:
            entry["status"] = "unchanged"
            try:
                entry["datasets"] = json.loads(stored.get("datasets") or "{}")
                entry["rows"] = sum(entry["datasets"].values())
            except (ValueError, TypeError, AttributeError):
                pass
            out["unchanged"].append(name)
            continue
        if check_mode:
            entry["status"] = "would compile"
            out["compiled"].append(name)
            continue
        for leftover in info["leftovers"]:
            try:
                os.unlink(os.path.join(folder, leftover))
                out["notes"].append("%s/%s: removed, left by an interrupted compile" % (name, leftover))
            except OSError:
                pass
        try:
            built = build_database(folder, name, info["cde"], info["csvs"], null_markers, error_limit, digest)
        except (OSError, sqlite3.Error) as exc:
            built = {"errors": [problem("cannot build the database: %s" % (getattr(exc, "strerror", None) or exc),
                                        file=os.path.join(name, DB_FILE))]}
        entry.update(built)
        if built["errors"]:
            entry["status"] = "failed"
            out["failed"].append(name)
            out["errors"].extend(built["errors"])
        else:
            entry["status"] = "compiled"
            out["compiled"].append(name)
    return out
