# Copyright: mip.federation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CDE documents (``CDEsMetadata.json``): reading, checking, consolidating.

A CDE document is a tree: a pathology node with ``variables`` and nested
``groups``, each group again with ``variables`` and ``groups``. A variable has
``code``, ``label``, ``sql_type`` (int, real or text), ``isCategorical``,
``enumerations`` (a list of ``{code, label}``) for categorical variables and
optionally ``minValue``/``maxValue``. The variable ``dataset`` tells the
datasets apart; its enumerations must list the datasets of the federation.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re

from ansible_collections.mip.federation.plugins.module_utils._csv_data import (
    DATASET_COLUMN,
    DataError,
    problem,
)

SQL_TYPES = ("int", "real", "text")
# SQLite's INTEGER range, and its maximum number of columns in a table
# (SQLITE_MAX_COLUMN, 2000 unless SQLite was built with another value).
MIN_INTEGER = -(2 ** 63)
MAX_INTEGER = 2 ** 63 - 1
MAX_COLUMNS = 2000


# --------------------------------------------------------------------------
# Reading and writing


# Consolidation keeps real numbers as written ("36.00" stays "36.00"): they
# are parsed into marked strings, compared as such, and put back verbatim by
# serialise(), so that rewriting a CDE changes only its dataset enumerations.
_REAL_MARK = "\x00real:"
_REAL_PATTERN = re.compile(r'"\\u0000real:([-+0-9.eE]+)"')


def _keep_real(literal):
    return _REAL_MARK + literal


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicate_keys(pairs):
    """Build a JSON object, raising _DuplicateKey when a key appears twice:
    json.loads would keep the last value silently."""
    result = {}
    for key, value in pairs:
        if key in result:
            where = dict(pairs).get("code")
            raise _DuplicateKey("key %r appears twice in one object%s" % (
                key, " (the object with code %r)" % where if isinstance(where, str) else ""))
        result[key] = value
    return result


def parse_cde_text(text, rel, keep_literals=False):
    """Parse a CDE document; invalid JSON raises DataError naming the file,
    line and column. With KEEP_LITERALS, real numbers are kept as written
    (for consolidation, which only rewrites enumerations)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        doc = json.loads(text, parse_float=_keep_real if keep_literals else None,
                         object_pairs_hook=_object_without_duplicate_keys)
    except _DuplicateKey as exc:
        raise DataError("%s: %s" % (rel, exc))
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        msg = getattr(exc, "msg", str(exc))
        if line is not None:
            raise DataError("%s: invalid JSON at line %s, column %s: %s" % (rel, line, col, msg))
        raise DataError("%s: invalid JSON: %s" % (rel, msg))
    if not isinstance(doc, dict):
        raise DataError("%s: the CDE document must be a JSON object, found %s" % (rel, type(doc).__name__))
    return doc


def read_cde_file(path, rel):
    """Return (text, doc) of a CDE file; DataError for unreadable or invalid files."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DataError("%s: cannot read: %s" % (rel, exc.strerror or exc))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError("%s: not valid UTF-8 at line %d (byte offset %d)" % (rel, line, exc.start))
    return text, parse_cde_text(text, rel)


def text_style(text):
    """The indentation and final newline of a JSON text, to write a changed
    CDE the way its source was written: (indent, newline)."""
    match = re.search(r"\n([ \t]+)\S", text or "")
    indent = match.group(1) if match else "  "
    if indent.startswith("\t"):
        indent = "\t"
    return indent, (text or "\n").endswith("\n")


def serialise(doc, like=None):
    """The text of a CDE document written by consolidation.

    Keys keep their order, UTF-8 characters are written as they are, real
    numbers as they were written (see parse_cde_text), and the indentation,
    leading white space and final newline are those of LIKE, the source text (two spaces and a newline,
    as the reference's generator writes, without one). Serialising the parsed
    result again gives the same bytes, so a consolidated file stays
    byte-identical on every later run.
    """
    indent, newline = text_style(like) if like is not None else ("  ", True)
    lead = like[:len(like) - len(like.lstrip())] if like else ""
    text = lead + json.dumps(doc, indent=indent, ensure_ascii=False) + ("\n" if newline else "")
    text = _REAL_PATTERN.sub(lambda m: m.group(1), text)
    if like and "\r\n" in like:
        # json.dumps escapes line breaks inside strings, so every one left
        # separates lines.
        text = text.replace("\n", "\r\n")
    return text


# --------------------------------------------------------------------------
# Walking the tree


def walk_variables(node):
    """Yield every variable dict, in the order exareme's converter uses:
    a node's own variables first, then its groups depth-first."""
    variables = node.get("variables") if isinstance(node, dict) else None
    if isinstance(variables, list):
        yield from variables
    groups = node.get("groups") if isinstance(node, dict) else None
    if isinstance(groups, list):
        for group in groups:
            if isinstance(group, dict):
                yield from walk_variables(group)


def variable_codes(doc):
    return set(v.get("code") for v in walk_variables(doc) if isinstance(v, dict) and isinstance(v.get("code"), str))


def find_dataset_variable(doc):
    for variable in walk_variables(doc):
        if isinstance(variable, dict) and variable.get("code") == DATASET_COLUMN:
            return variable
    return None


# --------------------------------------------------------------------------
# Checking a document for compilation


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bound(variable, primary, fallback):
    if primary in variable:
        return primary, variable[primary]
    if fallback in variable:
        return fallback, variable[fallback]
    return None, None


def _bound_problem(key, value):
    """Describe why VALUE cannot be the bound KEY, or return None.

    Python's JSON reader accepts NaN, Infinity and -Infinity (and reads a
    literal such as 1e400 as infinity), but a bound must be a finite number.
    """
    if value is None:
        return None
    if not _number(value):
        return "%s must be a number, found %r" % (key, value)
    if isinstance(value, float) and not math.isfinite(value):
        # json.dumps spells the value as the CDE file does: NaN, Infinity, -Infinity.
        return "%s must be a finite number, found %s" % (key, json.dumps(value))
    return None


def check_schema(doc, rel):
    """Check a CDE document for compilation and describe its columns.

    Returns (columns, errors). Each column is a dict with ``code``, ``label``,
    ``sql_type`` (as written), ``type`` (int|real|text), ``categorical``,
    ``enumerations`` (codes, or None), ``min`` and ``max`` (numbers or None).
    Errors name the file and the variable.
    """
    columns = []
    errors = []
    seen = set()
    seen_folded = set()
    for index, variable in enumerate(walk_variables(doc), 1):
        if not isinstance(variable, dict):
            errors.append(problem("variable #%d is not a JSON object" % index, file=rel))
            continue
        code = variable.get("code")
        if not isinstance(code, str) or code == "":
            errors.append(problem("variable #%d has no code" % index, file=rel))
            continue

        def bad(message, code=code):
            errors.append(problem("variable %r: %s" % (code, message), file=rel))

        if code.lower() in seen_folded:
            # SQLite column names ignore case, so "age" and "AGE" clash too.
            bad("defined twice (variable codes are compared without case)")
            continue
        seen.add(code)
        seen_folded.add(code.lower())
        label = variable.get("label")
        if not isinstance(label, str):
            bad("no label (a string is required)")
        sql_type = variable.get("sql_type")
        kind = sql_type.lower() if isinstance(sql_type, str) else None
        if kind not in SQL_TYPES:
            bad("sql_type %r is not one of %s" % (sql_type, ", ".join(SQL_TYPES)))
            continue
        categorical = variable.get("isCategorical")
        if categorical in (0, 1) and not isinstance(categorical, float):
            categorical = bool(categorical)
        else:
            bad("isCategorical must be true or false, found %r" % (categorical,))
            continue
        enumerations = None
        if "enumerations" in variable:
            raw = variable["enumerations"]
            if not isinstance(raw, list):
                bad("enumerations must be a list")
                continue
            enumerations = []
            for entry in raw:
                value = entry.get("code") if isinstance(entry, dict) else None
                if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
                    bad("an enumeration has no code: %r" % (entry,))
                    continue
                value = str(value)
                if "," in value:
                    # METADATA stores the codes joined with commas.
                    bad("enumeration code %r contains a comma" % value)
                    continue
                if kind in ("int", "real") and _parse_number(value, kind) is None:
                    bad("enumeration code %r is not a valid %s" % (value, kind))
                    continue
                enumerations.append(value)
        if categorical and (enumerations is None or variable["enumerations"] == []):
            bad("categorical but has no enumerations")
            continue
        low_key, low = _bound(variable, "minValue", "min")
        high_key, high = _bound(variable, "maxValue", "max")
        if kind == "text":
            low = high = None
        else:
            bound_problem = _bound_problem(low_key, low) or _bound_problem(high_key, high)
            if bound_problem:
                bad(bound_problem)
                continue
            too_large = [key for key, value in ((low_key, low), (high_key, high))
                         if isinstance(value, int) and not MIN_INTEGER <= value <= MAX_INTEGER]
            if too_large:
                bad("%s must fit in a 64-bit integer (%d to %d)" % (too_large[0], MIN_INTEGER, MAX_INTEGER))
                continue
            if low is not None and high is not None and low > high:
                bad("%s %r is greater than %s %r" % (low_key, low, high_key, high))
                continue
        columns.append({
            "code": code,
            "label": label if isinstance(label, str) else "",
            "sql_type": sql_type,
            "type": kind,
            "categorical": categorical,
            "enumerations": enumerations,
            "min": low,
            "max": high,
        })
    if len(columns) > MAX_COLUMNS:
        errors.append(problem("%d variables: a SQLite table holds at most %d columns" % (len(columns), MAX_COLUMNS),
                              file=rel))
    dataset = [c for c in columns if c["code"] == DATASET_COLUMN]
    if DATASET_COLUMN not in seen:
        errors.append(problem("no %r variable: exareme needs it to tell datasets apart" % DATASET_COLUMN, file=rel))
    elif dataset and dataset[0]["type"] != "text":
        errors.append(problem("variable %r must have sql_type text" % DATASET_COLUMN, file=rel))

    return columns, errors


def _parse_number(text, kind):
    """Parse TEXT as SQLite's type affinity does for an int or real column.

    Returns the number or None. ASCII only, no ``_`` separators, finite;
    an int may be written as an integral real (``12.0``, ``1e3``) within
    64 bits, which SQLite stores as an integer too.
    """
    if not text.isascii() or "_" in text:
        return None
    # SQLite skips these around a number; Python would also skip \x1c-\x1f.
    text = text.strip(_SQLITE_SPACE)
    if text != text.strip():
        return None
    if kind == "int":
        try:
            number = int(text)
        except ValueError:
            try:
                real = float(text)
            except ValueError:
                return None
            if not math.isfinite(real) or not real.is_integer():
                return None
            number = int(real)
        if -_INT64 <= number < _INT64:
            return number
        return None
    try:
        real = float(text)
    except ValueError:
        return None
    if not math.isfinite(real):
        return None
    return real


_SQLITE_SPACE = " \t\n\x0b\x0c\r"
_INT64 = 1 << 63


def parse_number(text, kind):
    return _parse_number(text, kind)


# --------------------------------------------------------------------------
# Consolidation


def default_label(code):
    """The label given to a new dataset code when none is configured: the
    code upper-cased, as the reference's generator does."""
    return code.upper()


def dataset_code_problem(code):
    """Why CODE cannot be a dataset code, or None."""
    if code != code.strip():
        return "has leading or trailing spaces"
    if "," in code:
        return "contains a comma (exareme joins enumeration codes with commas)"
    if any(ord(char) < 32 or ord(char) == 127 for char in code):
        return "contains a control character such as a line break or a tab"
    return None


def consolidate_document(doc, present, keep_absent=False, labels=None):
    """Bring the ``dataset`` enumerations of DOC in line with PRESENT.

    PRESENT is the collection of dataset codes found in the federation's
    CSVs. Returns (new_doc, changes) where ``changes`` has ``added``,
    ``removed`` and ``relabelled`` code lists. DOC is not modified. Existing
    entries keep their order and label (unless LABELS, a code -> label
    mapping, says otherwise); new codes are appended in sorted order, labelled
    from LABELS or ``default_label``. Absent codes are removed unless
    KEEP_ABSENT. Raises DataError when DOC has no usable ``dataset`` variable.
    """
    labels = labels or {}
    new_doc = copy.deepcopy(doc)
    variable = find_dataset_variable(new_doc)
    if variable is None:
        raise DataError("no %r variable" % DATASET_COLUMN)
    enumerations = variable.get("enumerations")
    if enumerations is None:
        enumerations = []
    if not isinstance(enumerations, list) or not all(isinstance(e, dict) for e in enumerations):
        raise DataError("the %r variable's enumerations are not a list of {code, label} objects" % DATASET_COLUMN)
    present = set(present)
    kept = []
    seen = set()
    changes = {"added": [], "removed": [], "relabelled": []}
    for entry in enumerations:
        code = entry.get("code")
        code = str(code) if code is not None else code
        if code in seen:
            changes["removed"].append(code)
            continue
        if code not in present and not keep_absent:
            changes["removed"].append(code)
            continue
        seen.add(code)
        if code in labels and entry.get("label") != labels[code]:
            entry["label"] = labels[code]
            changes["relabelled"].append(code)
        kept.append(entry)
    for code in sorted(present - seen):
        kept.append({"code": code, "label": labels.get(code, default_label(code))})
        changes["added"].append(code)
    if kept or "enumerations" in variable:
        variable["enumerations"] = kept
    return new_doc, changes


def consolidate_federation(inventories, cdes, keep_absent=False, allow_shared=(), labels=None):
    """Consolidate the CDEs of a federation from its nodes' inventories.

    INVENTORIES maps a node name to what ``data_inventory`` returned for it
    (``pathologies`` -> name -> ``files``, and ``errors``). CDES maps a
    pathology to ``{"text": ..., "file": <where it was read>}`` (or
    ``{"error": ...}``); it comes from the master's inventory or a folder on
    the pusher. ALLOW_SHARED lists dataset codes that may be found on more
    than one node (``*`` allows any). LABELS maps dataset codes to labels.

    Returns a dict with ``pathologies`` (one entry per pathology with a CDE:
    ``pathology``, ``content`` (the text to write), ``changed``, ``added``,
    ``removed``, ``relabelled``, ``nodes`` hosting its data), the federation's
    ``data_structure`` (docs/design.md), ``errors`` and ``warnings``.
    """
    labels = dict(labels or {})
    allow_any = "*" in allow_shared
    allow_shared = set(allow_shared)
    errors = []
    warnings = []
    # pathology -> node -> {"datasets": {code: rows}, "files": {code: [file]}}
    hosted = {}
    columns = {}  # pathology -> [(node, rel, [columns])]
    for node in sorted(inventories):
        inventory = inventories[node] or {}
        for entry in inventory.get("errors") or []:
            errors.append(_with_node(entry, node))
        for name, info in sorted((inventory.get("pathologies") or {}).items()):
            for file_info in info.get("files") or []:
                rel = file_info.get("file") or "%s/%s" % (name, file_info.get("name"))
                for entry in file_info.get("errors") or []:
                    errors.append(_with_node(entry, node))
                columns.setdefault(name, []).append((node, rel, file_info.get("columns") or []))
                place = hosted.setdefault(name, {}).setdefault(node, {"datasets": {}, "files": {}})
                for code, rows in (file_info.get("datasets") or {}).items():
                    place["datasets"][code] = place["datasets"].get(code, 0) + int(rows)
                    place["files"].setdefault(code, []).append(rel)

    result = {"pathologies": [], "data_structure": [], "errors": errors, "warnings": warnings}
    for name in sorted(set(hosted) | set(cdes)):
        source = cdes.get(name)
        nodes = hosted.get(name, {})
        if source is None and nodes:
            source = _cde_from_nodes(name, inventories, errors, warnings)
        if source is None or "text" not in source:
            if source is not None and source.get("error") and not source.get("reported"):
                errors.append(problem(source["error"], file=source.get("file")))
            if nodes:
                if source is None:
                    errors.append(problem(
                        "pathology %r has data on %s but no CDEsMetadata.json anywhere: put its CDEs on the master"
                        % (name, ", ".join(sorted(nodes)))))
            continue
        rel = source.get("file") or "%s/CDEsMetadata.json" % name
        try:
            doc = parse_cde_text(source["text"], rel, keep_literals=True)
        except DataError as exc:
            errors.append(problem(str(exc)))
            continue
        # Apply compile's schema rules, on numbers parsed as numbers, so that a
        # CDE that compile would reject is reported before any node gets it.
        schema_errors = check_schema(parse_cde_text(source["text"], rel), rel)[1]
        if schema_errors:
            errors.extend(schema_errors)
            continue
        if doc.get("code") != name:
            warnings.append("%s: the CDE code %r differs from its folder name %r; exareme names the "
                            "pathology after the folder" % (rel, doc.get("code"), name))
        known = variable_codes(doc)
        for node, file_rel, header in columns.get(name, []):
            for column in header:
                if column and column not in known:
                    errors.append(problem("no CDE variable of pathology %r defines this column" % name,
                                          node=node, file=file_rel, column=column))
        if not nodes:
            warnings.append("pathology %r: no node holds data for it; its CDE is left as it is" % name)
            result["pathologies"].append({
                "pathology": name, "content": source["text"], "changed": False, "diff": "", "source": rel,
                "added": [], "removed": [], "relabelled": [], "nodes": [],
            })
            continue
        where = {}
        for node in sorted(nodes):
            for code in nodes[node]["datasets"]:
                where.setdefault(code, []).append(node)
        for code in sorted(where):
            reason = dataset_code_problem(code)
            if reason:
                errors.append(problem("dataset code %r %s" % (code, reason), node=where[code][0],
                                      file=nodes[where[code][0]]["files"][code][0], column=DATASET_COLUMN))
            if len(where[code]) > 1 and not (allow_any or code in allow_shared):
                found = "; ".join("%s (%s)" % (node, ", ".join(nodes[node]["files"][code])) for node in where[code])
                errors.append(problem(
                    "dataset %r of pathology %r is found on %d nodes: %s. A dataset code must belong to "
                    "one node; rename it, or allow it in mip_consolidate_allow_shared_datasets"
                    % (code, name, len(where[code]), found), column=DATASET_COLUMN))
        try:
            new_doc, changes = consolidate_document(doc, where, keep_absent=keep_absent, labels=labels)
        except DataError as exc:
            errors.append(problem(str(exc), file=rel))
            continue
        if changes["removed"]:
            # A node whose data disk is not mounted looks like a node without
            # data, and the labels are dropped with the codes, so warn.
            warnings.append("%s: dataset code(s) %s found on no node are removed with their labels; set "
                            "mip_consolidate_keep_absent_datasets to keep them"
                            % (rel, ", ".join(changes["removed"])))
        changed = new_doc != doc
        content = serialise(new_doc, like=source["text"]) if changed else source["text"]
        result["pathologies"].append({
            "pathology": name,
            "content": content,
            "changed": changed,
            # Ansible skips the diff of a file over 100 KiB, which the sample
            # CDEs are, so the playbook shows this one under --diff.
            "diff": "".join(difflib.unified_diff(source["text"].splitlines(True), content.splitlines(True),
                                                 rel, rel + " (consolidated)")) if changed else "",
            "source": rel,
            "added": changes["added"],
            "removed": changes["removed"],
            "relabelled": changes["relabelled"],
            "nodes": sorted(nodes),
        })
        result["data_structure"].append({
            "pathology": name,
            "nodes": [
                {"node": node,
                 "datasets": [{"code": code, "rows": rows} for code, rows in sorted(nodes[node]["datasets"].items())]}
                for node in sorted(nodes)
            ],
        })
    # A dataset role (RESEARCH_DATASET_<code>) is unique across pathologies;
    # the KeyCloak step refuses a code found in two.
    owners = {}
    for entry in result["data_structure"]:
        for node in entry["nodes"]:
            for dataset in node["datasets"]:
                owners.setdefault(dataset["code"], set()).add(entry["pathology"])
    for code, names in sorted(owners.items()):
        if len(names) > 1:
            errors.append(problem(
                "dataset %r appears in pathologies %s: a dataset code must be unique in the federation, "
                "because the KeyCloak role RESEARCH_DATASET_%s grants it" % (code, ", ".join(sorted(names)), code),
                column=DATASET_COLUMN))
    return result


def _cde_from_nodes(name, inventories, errors, warnings):
    """The CDE of a pathology that the CDE source lacks, taken from the nodes
    that hold one, when they agree."""
    found = {}
    for node in sorted(inventories):
        info = ((inventories[node] or {}).get("pathologies") or {}).get(name) or {}
        cde = info.get("cde") or {}
        if cde.get("text") is not None:
            found.setdefault(cde["text"], []).append(node)
    if not found:
        return None
    if len(found) > 1:
        errors.append(problem(
            "pathology %r: the CDE source has no CDEsMetadata.json and the nodes hold %d different ones (%s); "
            "put the right one on the master" % (name, len(found), "; ".join(", ".join(n) for n in found.values()))))
        return {"error": None}
    text, nodes = next(iter(found.items()))
    warnings.append("pathology %r: the CDE source has no CDEsMetadata.json; using the one on %s"
                    % (name, ", ".join(nodes)))
    return {"text": text, "file": "%s:%s/CDEsMetadata.json" % (nodes[0], name)}


def _with_node(entry, node):
    """Prefix a problem reported by a node's inventory with the node name."""
    if not isinstance(entry, dict):
        return problem(str(entry), node=node)
    fields = dict((k, v) for k, v in entry.items() if k not in ("msg", "node"))
    if "message" in fields:
        message = fields.pop("message")
    else:
        message = entry.get("msg", "")
    return problem(message, node=node, **fields)
