# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
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
row. A block of lines is split on line breaks and commas in one call, after a
byte-level test that every line has as many fields as the header
(csv.reader takes over from the first block with a quote). The values
are grouped into multi-row INSERT statements and bound as parameters by
``executemany``. SQLite does the checking, in C: a ``CASE`` expression per
value turns null markers into NULL, the column's type affinity converts
numeric text, and a temporary partial index whose WHERE clause is the
rules (``row_problem_sql``) receives every row that stores a value of the wrong
type, outside an enumeration or a range, or no dataset. SQLite evaluates
that clause on the converted values of each new row, so checking needs no
second pass over the table. The CHECK constraints, which test types at a
higher cost, are switched off while loading; ``PRAGMA integrity_check``
passes on the result. A malformed row stops the load at once, a bad value
at the end of its file; the file is then read again by ``validate_file``, a
Python validator applying the same rules, which reports every bad value with
its line, up to the error limit. The partial index is dropped before the
build commits.
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
import math
import operator
import os
import sqlite3
import sys
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
    list_pathologies_into,
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


# The temporary partial index that marks rejected rows while they are
# inserted (see row_problem_sql). It is dropped before the build commits.
PROBLEM_INDEX = "MIP_BUILD_PROBLEMS"
# Enumerations longer than this are tested by a binary search instead of
# one comparison per code.
ENUM_SCAN = 16
# The largest finite real, as an SQL literal. build_database checks that
# SQLite reads it exactly, since a real column's test relies on it.
REAL_MAX_SQL = repr(sys.float_info.max)


def _number_sql(value, kind):
    """Return the SQL literal of a number: exact for an int, round-trip for a real."""
    if kind == "int" and isinstance(value, int):
        return "%d" % value
    return repr(float(value))


def _bound_sql(value, side):
    """Return the SQL literal of a minValue (SIDE -1) or maxValue (SIDE 1).

    Returns None for a bound that rejects nothing: a missing bound, NaN
    (validate_file compares with it, which is never true) or an infinity
    on its own side.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == side * math.inf:
        return None
    if math.isinf(value):
        return "-9e999" if value < 0 else "9e999"
    return _number_sql(value, "int" if isinstance(value, int) else "real")


def _enumeration_sql(name, literals):
    """Return a condition true when NAME equals none of the sorted LITERALS, and
    NULL when NAME is NULL. A long list is split at a pivot so that a value
    meets about log2(n) + ENUM_SCAN comparisons."""
    if not literals:
        return "%s IS NOT NULL" % name
    if len(literals) <= ENUM_SCAN:
        return "(%s)" % " AND ".join("%s <> %s" % (name, literal) for literal in literals)
    middle = len(literals) // 2
    return "((%s < %s AND %s) OR (%s >= %s AND %s))" % (
        name, literals[middle], _enumeration_sql(name, literals[:middle]),
        name, literals[middle], _enumeration_sql(name, literals[middle:]))


def _enumeration_literals(column):
    codes = column["enumerations"] or []
    kind = column["type"]
    if kind == "text":
        # SQLite's BINARY collation compares UTF-8 bytes, which sort as code points do.
        return [quote_text(code) for code in sorted(set(codes))]
    numbers = sorted(set(parse_number(code, kind) for code in codes))
    return [_number_sql(number, kind) for number in numbers]


def row_problem_sql(columns):
    """Return an SQL condition over the stored values of a DATA row that is
    true when any of them breaks the rules that validate_file applies.

    The condition is the WHERE clause of the partial index PROBLEM_INDEX.
    SQLite evaluates it on each new row after the column affinity has
    converted numeric text, so it reads typed values from registers and
    costs no second pass over the table. SQLite sorts NULL < numbers < text,
    and affinity leaves text that is not a number as text and turns
    ``1e999`` into infinity. So a value is wrong when:

    - ``dataset`` is NULL (an empty cell or a null marker);
    - an int column stores a value other than its own integer cast;
    - a real column stores a value outside minValue and maxValue, or outside
      the finite reals where a bound is missing (text is above any bound);
    - an int column stores a value outside minValue or maxValue;
    - a categorical column stores a value outside its enumerations (compared
      as numbers for int and real columns).

    Comparisons with NULL give NULL, which leaves a row out of the index,
    so an empty cell passes every test but the first.
    """
    tests = []
    for column in columns:
        name = quote_ident(column["code"])
        kind = column["type"]
        categorical = column["categorical"]
        if column["code"] == DATASET_COLUMN:
            tests.append("%s IS NULL" % name)
        if kind == "int" and not categorical:
            # Integer enumerations already exclude reals and text.
            tests.append("%s IS NOT CAST(%s AS INTEGER)" % (name, name))
        if kind != "text":
            low = _bound_sql(column["min"], -1)
            high = _bound_sql(column["max"], 1)
            if kind == "real" and not categorical:
                # Real enumerations are finite; otherwise the finite reals bound the column.
                low = low or "-" + REAL_MAX_SQL
                high = high or REAL_MAX_SQL
            if low is not None and high is not None:
                # BETWEEN loads the column into a register once, where two comparisons load it twice.
                tests.append("%s NOT BETWEEN %s AND %s" % (name, low, high))
            elif low is not None:
                tests.append("%s < %s" % (name, low))
            elif high is not None:
                tests.append("%s > %s" % (name, high))
        if categorical:
            tests.append(_enumeration_sql(name, _enumeration_literals(column)))
    return " OR ".join(tests)


def insert_sql(header, null_markers, rows=1):
    """Return an INSERT of ROWS rows of a CSV with HEADER, one parameter per cell.

    Each value goes through a CASE that turns the empty cell and the null
    markers into NULL. CASE is cheaper than NULLIF(), a function call.
    """
    markers = [""] + [m for m in null_markers if m != ""]
    nulls = " ".join("WHEN %s THEN NULL" % quote_text(m) for m in markers)
    width = len(header)
    groups = []
    for row in range(rows):
        values = []
        for index in range(width):
            param = "?%d" % (row * width + index + 1)
            values.append("CASE %s %s ELSE %s END" % (param, nulls, param))
        groups.append("(%s)" % ", ".join(values))
    return "INSERT INTO DATA (%s) VALUES %s" % (", ".join(quote_ident(c) for c in header), ", ".join(groups))


# SQLite before 3.32 allows at most 999 parameters in a statement, later
# versions 32766 by default; Python 3.11 and later can ask the connection.
OLD_MAX_PARAMETERS = 999
MAX_BATCH = 32
READ_BLOCK = 1 << 18
# Rows from csv.reader are flattened this many at a time.
READER_ROWS = 1024


def max_parameters(con):
    """Return the number of parameters a statement on CON may hold."""
    if hasattr(con, "getlimit"):
        return con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else OLD_MAX_PARAMETERS


class _RowWidth(Exception):
    """A row has not as many fields as the header."""


class _BadType(Exception):
    """A file contains a value that the CDEs reject."""


# Every byte but those that shape a CSV text: the separators, and the quote,
# NUL and carriage return that can make csv.reader read it otherwise.
_NOT_SHAPE = bytes(byte for byte in range(256) if byte not in b',\n\r"\x00')


def _split_lines(text, width, dataset_index, counts):
    """Return the fields of TEXT, whole lines ending in a line break, as one
    flat list, or None when csv.reader must read TEXT (a quote, a NUL or a
    carriage return outside a CRLF pair).

    The common case is tested in C over bytes. Once every byte but the
    separators is removed, a text whose every line has WIDTH fields is
    WIDTH - 1 commas and a line break, repeated. (A UTF-8 continuation byte
    is never a separator.) Empty lines are skipped. Raises _RowWidth at a line of
    another width, and adds the rows of each dataset code to COUNTS.
    """
    shape = text.encode("utf-8").translate(None, _NOT_SHAPE)
    # The shape cannot tell a CRLF pair from a lone CR followed by text and a
    # line break ("4\r0\n"), which csv.reader reads as two rows: count in TEXT.
    lone_cr = text.count("\r") != text.count("\r\n")
    commas = b"," * (width - 1)
    if width > 1 and shape[width - 1:width] == b"\n" and shape == (commas + b"\n") * (len(shape) // width):
        values = text[:-1].replace("\n", ",").split(",")
    elif width > 1 and not lone_cr and shape == (commas + b"\r\n") * (len(shape) // (width + 1)):
        values = text[:-2].replace("\r\n", ",").split(",")
    else:
        # Empty lines, mixed line breaks, a width-1 file (whose empty line
        # has the shape of a row) or a wrong row: line by line.
        if b'"' in shape or b"\x00" in shape or lone_cr:
            return None
        lines = list(filter(None, text.replace("\r\n", "\n").split("\n")))
        if not lines:
            return []
        if set(map(str.count, lines, itertools.repeat(","))) != {width - 1}:
            raise _RowWidth()
        values = ",".join(lines).split(",")
    counts.update(values[dataset_index::width])
    return values


def _reader_values(lines, width, dataset_index, counts):
    """Yield the rows that csv.reader reads from LINES as flat lists, READER_ROWS at a time.

    Empty rows are skipped. Raises _RowWidth at a row of another width than
    WIDTH; adds the rows of each dataset code to COUNTS.
    """
    rows = filter(None, csv_reader(lines))
    wrong_width = width.__ne__
    dataset_code = operator.itemgetter(dataset_index)
    while True:
        group = list(itertools.islice(rows, READER_ROWS))
        if not group:
            return
        if any(map(wrong_width, map(len, group))):
            raise _RowWidth()
        counts.update(map(dataset_code, group))
        yield list(itertools.chain.from_iterable(group))


def value_blocks(handle, width, dataset_index, counts):
    """Yield the fields of the rows of an open CSV (after its header) as flat
    lists, each containing whole rows of WIDTH fields.

    While the text has no quote, no NUL and no carriage return outside a
    CRLF pair, each block of lines is split on line breaks and commas at
    once (see _split_lines). That gives what csv.reader returns for it, at a
    fraction of the cost. From the first block that has one, csv.reader
    reads the rest. Empty lines are skipped. Raises _RowWidth at a row of
    another width, and adds the rows of each dataset code to COUNTS.
    """
    tail = ""
    while True:
        block = handle.read(READ_BLOCK)
        if not block:
            break
        block = tail + block
        if block.endswith("\r"):
            # Keep a CRLF pair in one block, so that it does not look like a lone CR.
            block += handle.read(1)
        cut = block.rfind("\n") + 1
        if cut == 0:
            tail = block
            continue
        values = _split_lines(block[:cut], width, dataset_index, counts)
        if values is None:
            if not block.endswith("\n"):
                block += handle.readline()  # the rest of the block's last line
            yield from _reader_values(itertools.chain(io.StringIO(block, newline=""), handle),
                                      width, dataset_index, counts)
            return
        tail = block[cut:]
        yield values
    if tail:
        values = _split_lines(tail + "\n", width, dataset_index, counts)
        if values is None:
            values = list(itertools.chain.from_iterable(
                _reader_values(io.StringIO(tail, newline=""), width, dataset_index, counts)))
        yield values


def _statement_values(blocks, span, leftover):
    """Regroup the flat lists BLOCKS into lists of exactly SPAN values; the
    values of the last, shorter group go to LEFTOVER."""
    pending = []
    for values in blocks:
        start = 0
        if pending:
            start = span - len(pending)
            if start > len(values):
                pending = pending + values
                continue
            yield pending + values[:start]
        end = len(values) - (len(values) - start) % span
        yield from map(values.__getitem__, map(slice, range(start, end, span), range(start + span, end + 1, span)))
        pending = values[end:]
    leftover.extend(pending)


def load_file(con, handle, header, null_markers, counts, problem_condition):
    """Insert the rows of an open CSV (after its header) into DATA.

    Returns the number of rows and adds the rows of each dataset code to
    COUNTS. Raises csv.Error, UnicodeDecodeError or _RowWidth at the first
    malformed row, _BadType after loading a file that contains a value the
    CDEs reject, and sqlite3.Error if the database fails. Rows go in groups
    of up to MAX_BATCH per INSERT statement, bound by ``executemany``. The
    partial index PROBLEM_INDEX must exist with the WHERE clause
    PROBLEM_CONDITION, because it receives the rejected rows.
    """
    width = len(header)
    dataset_index = header.index(DATASET_COLUMN)
    size = max(1, min(MAX_BATCH, max_parameters(con) // width))
    found = collections.Counter()
    leftover = []
    blocks = value_blocks(handle, width, dataset_index, found)
    con.executemany(insert_sql(header, null_markers, size), _statement_values(blocks, size * width, leftover))
    if leftover:
        con.execute(insert_sql(header, null_markers, len(leftover) // width), leftover)
    # The same condition lets the planner use the partial index, which contains
    # only rejected rows. INDEXED BY makes it an error if it cannot.
    rejected = "SELECT 1 FROM DATA INDEXED BY %s WHERE %s LIMIT 1" % (PROBLEM_INDEX, problem_condition)
    if con.execute(rejected).fetchone():
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
    """Read what an existing database records of its build (``fingerprint``,
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
        if con.execute("SELECT %s = ?" % REAL_MAX_SQL, (sys.float_info.max,)).fetchone()[0] != 1:
            # NOTE: not seen on a tested system. SQLite 3.40.1 on x86-64 reads the literal exactly.
            raise sqlite3.DatabaseError("this SQLite does not read %s as the largest finite real, "
                                        "so it cannot tell infinite values apart" % REAL_MAX_SQL)
        problem_condition = row_problem_sql(columns)
        con.execute("CREATE INDEX %s ON DATA(%s) WHERE %s"
                    % (PROBLEM_INDEX, quote_ident(DATASET_COLUMN), problem_condition))
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
                    if len(header) > max_parameters(con):
                        errors.append(problem("the header has %d columns, more than the %d parameters that SQLite %s "
                                              "allows in a statement" % (len(header), max_parameters(con),
                                                                         sqlite3.sqlite_version), file=rel, line=1))
                        continue
                    if errors:
                        # The build has failed already: only collect problems.
                        raise _ValidateOnly()
                    rows = load_file(con, handle, header, null_markers, counts, problem_condition)
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
        con.execute("DROP INDEX %s" % PROBLEM_INDEX)
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


def _remove_leftovers(folder, name, leftovers, out, check_mode):
    """Remove the temporary databases an interrupted compile left in FOLDER,
    whether or not the pathology is compiled again, and list them in
    ``out["removed"]`` (in CHECK_MODE, those that would be removed)."""
    for leftover in leftovers:
        rel = "%s/%s" % (name, leftover)
        if check_mode:
            out["removed"].append(rel)
            continue
        try:
            os.unlink(os.path.join(folder, leftover))
        except FileNotFoundError:
            continue
        except OSError as exc:
            out["notes"].append("%s: left by an interrupted compile, cannot be removed: %s" % (rel, exc.strerror))
            continue
        out["removed"].append(rel)
        out["notes"].append("%s: removed, left by an interrupted compile" % rel)


class _ValidateOnly(Exception):
    pass


def compile_all(path, pathologies=None, force=False, null_markers=(), error_limit=DEFAULT_ERROR_LIMIT,
                fingerprint_mode="stat", check_mode=False):
    """Compile every pathology folder under PATH (or those in PATHOLOGIES).

    Returns ``{"compiled": [...], "unchanged": [...], "failed": [...],
    "removed": [...], "pathologies": {name: {...}}, "notes": [...],
    "errors": [...]}``. In CHECK_MODE nothing is written and ``compiled`` and
    ``removed`` list what would be.
    """
    out = {"compiled": [], "unchanged": [], "failed": [], "pathologies": {}, "notes": [], "errors": [],
           "removed": []}
    names = list_pathologies_into(path, out)
    if names is None:
        return out
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
        _remove_leftovers(folder, name, info["leftovers"], out, check_mode)
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
