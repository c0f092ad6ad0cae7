"""Consolidation: reading a node's data (data_inventory) and aligning the CDEs
(cde_consolidate), on small files each test writes, and on the sample data."""

import copy
import hashlib
import json
import os
import shutil

import pytest

from ansible_collections.mip.federation.plugins.module_utils._cde import (
    DataError,
    check_schema,
    consolidate_document,
    consolidate_federation,
    parse_cde_text,
    serialise,
)
from ansible_collections.mip.federation.plugins.module_utils._csv_data import (
    classify_folder,
    inventory,
    list_pathologies,
    scan_csv,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SAMPLE = os.path.join(REPO, "tests", "data", "mip-data")
EDGE = os.path.join(REPO, "tests", "data", "mip-data-edge")


def cde_doc(code="dementia", datasets=(("edsd", "EDSD"),), extra=()):
    variables = [
        {"code": "dataset", "label": "Dataset", "sql_type": "text", "isCategorical": True,
         "enumerations": [{"code": c, "label": lab} for c, lab in datasets]},
    ]
    group = {"code": "g", "label": "G", "variables": [
        {"code": "subjectcode", "label": "Subject", "sql_type": "text", "isCategorical": False},
        {"code": "age", "label": "Age", "sql_type": "int", "isCategorical": False, "minValue": 0, "maxValue": 130},
    ] + list(extra)}
    return {"code": code, "label": code.title(), "variables": variables, "groups": [group]}


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(text, bytes):
        with open(path, "wb") as handle:
            handle.write(text)
    else:
        with open(path, mode, encoding="utf-8", newline="") as handle:
            handle.write(text)
    return path


def node_inventory(tmp_path, node, files, cdes=None):
    """Lay out a node's data folder: FILES maps 'pathology/name.csv' to text."""
    root = tmp_path / node
    for rel, text in files.items():
        write(str(root / rel), text)
    for pathology, doc in (cdes or {}).items():
        write(str(root / pathology / "CDEsMetadata.json"), serialise(doc))
    os.makedirs(str(root), exist_ok=True)
    return inventory(str(root), read_cdes=True)


# ---------------------------------------------------------------- data_inventory


def test_scan_counts_every_row_not_only_the_first(tmp_path):
    path = write(str(tmp_path / "a.csv"), "subjectcode,dataset\ns1,edsd\ns2,ppmi\ns3,ppmi\n")
    result = scan_csv(path, "dementia/a.csv")
    assert result == {"columns": ["subjectcode", "dataset"], "rows": 3, "datasets": {"edsd": 1, "ppmi": 2},
                      "errors": []}


def test_scan_reads_bom_crlf_and_quoted_fields(tmp_path):
    text = '\ufeff"subjectcode","dataset","note"\r\n"s1","edsd","a, b"\r\n"s2","edsd","two\r\nlines"\r\n\r\n'
    path = write(str(tmp_path / "a.csv"), text)
    result = scan_csv(path, "p/a.csv")
    assert result["columns"] == ["subjectcode", "dataset", "note"]
    assert result["rows"] == 2
    assert result["datasets"] == {"edsd": 2}
    assert result["errors"] == []


def test_scan_reports_missing_dataset_column(tmp_path):
    path = write(str(tmp_path / "a.csv"), "subjectcode,age\ns1,3\n")
    result = scan_csv(path, "dementia/a.csv", node="wk1")
    assert [e["msg"] for e in result["errors"]] == ["wk1: dementia/a.csv, line 1: the header has no 'dataset' column"]
    assert result["rows"] == 1


def test_scan_reports_empty_dataset_value_and_short_row(tmp_path):
    path = write(str(tmp_path / "a.csv"), "subjectcode,dataset\ns1,\ns2\ns3,edsd\n")
    result = scan_csv(path, "p/a.csv")
    assert [e["msg"] for e in result["errors"]] == [
        "p/a.csv, line 2, column 'dataset': the row has no dataset value",
        "p/a.csv, line 3: expected 2 fields, found 1",
    ]
    assert result["datasets"] == {"edsd": 1}


def test_scan_reports_invalid_utf8_with_its_line(tmp_path):
    path = write(str(tmp_path / "a.csv"), b"subjectcode,dataset\ns1,edsd\ns2,caf\xe9\n")
    result = scan_csv(path, "p/a.csv")
    assert [e["msg"] for e in result["errors"]] == [
        "p/a.csv, line 3: not valid UTF-8 (byte 0xe9 at offset 34): save the file as UTF-8"]


def test_scan_reports_malformed_quotes(tmp_path):
    path = write(str(tmp_path / "a.csv"), 'subjectcode,dataset\ns1,"ed"sd\n')
    result = scan_csv(path, "p/a.csv")
    assert [e["msg"] for e in result["errors"]] == [
        "p/a.csv, line 2: malformed CSV: ',' expected after '\"'"]


def test_scan_reports_an_empty_file(tmp_path):
    path = write(str(tmp_path / "a.csv"), "")
    assert [e["msg"] for e in scan_csv(path, "p/a.csv")["errors"]] == [
        "p/a.csv: the file is empty, it has no header line"]


def test_inventory_lists_sizes_checksums_and_notes(tmp_path):
    text = "subjectcode,dataset\ns1,edsd\n"
    write(str(tmp_path / "dementia" / "edsd.csv"), text)
    write(str(tmp_path / "dementia" / "notes.txt"), "hello")
    write(str(tmp_path / "dementia" / "old.CSV"), "x")
    write(str(tmp_path / "dementia" / ".draft.csv"), "x")
    os.symlink(str(tmp_path / "missing.csv"), str(tmp_path / "dementia" / "moved.csv"))
    os.makedirs(str(tmp_path / "dementia" / "archive"))
    write(str(tmp_path / "README"), "top")
    write(str(tmp_path / ".hidden" / "x.csv"), "x")
    result = inventory(str(tmp_path))
    assert sorted(result["pathologies"]) == ["dementia"]
    entry = result["pathologies"]["dementia"]
    assert entry["files"] == [{
        "name": "edsd.csv", "file": "dementia/edsd.csv", "size": len(text),
        "sha256": hashlib.sha256(text.encode()).hexdigest(), "columns": ["subjectcode", "dataset"],
        "rows": 1, "datasets": {"edsd": 1}, "errors": [],
    }]
    assert entry["datasets"] == {"edsd": 1}
    assert entry["cde"] is None
    assert result["notes"] == [
        "README: ignored, not a pathology folder",
        "dementia/.draft.csv: ignored, a hidden file",
        "dementia/archive: ignored, a folder inside a pathology folder",
        "dementia/moved.csv: ignored, not a regular file (a broken link?)",
        "dementia/notes.txt: ignored, not a .csv file, CDEsMetadata.json or datasets.db",
        "dementia/old.CSV: ignored, exareme reads only names ending in lower-case .csv: rename it",
    ]
    assert result["errors"] == []


def test_inventory_reads_cdes_and_reports_invalid_json_with_line_and_column(tmp_path):
    write(str(tmp_path / "tbi" / "CDEsMetadata.json"), '{\n  "code": "tbi",\n  "variables": [,]\n}\n')
    good = serialise(cde_doc())
    write(str(tmp_path / "dementia" / "CDEsMetadata.json"), good)
    result = inventory(str(tmp_path), read_cdes=True)
    assert result["pathologies"]["dementia"]["cde"]["text"] == good
    assert result["pathologies"]["dementia"]["cde"]["sha256"] == hashlib.sha256(good.encode()).hexdigest()
    assert [e["msg"] for e in result["errors"]] == [
        "tbi/CDEsMetadata.json: invalid JSON at line 3, column 17: Expecting value"]


def test_inventory_of_a_missing_folder_is_an_error(tmp_path):
    result = inventory(str(tmp_path / "nope"))
    assert [e["msg"] for e in result["errors"]] == [
        "%s: the data folder does not exist or is not a folder" % (tmp_path / "nope")]


def test_list_pathologies_and_classify(tmp_path):
    write(str(tmp_path / "p" / "CDEsMetadata.json"), "{}")
    write(str(tmp_path / "p" / "datasets.db"), "")
    write(str(tmp_path / "p" / ".datasets.db.abc.tmp"), "")
    assert list_pathologies(str(tmp_path)) == (["p"], [])
    info = classify_folder(str(tmp_path / "p"), "p")
    assert info["cde"].endswith("CDEsMetadata.json") and info["db"].endswith("datasets.db")
    assert info["leftovers"] == [".datasets.db.abc.tmp"]
    assert info["notes"] == []


# ---------------------------------------------------------------- CDE documents


def test_invalid_json_names_file_line_and_column():
    with pytest.raises(DataError) as err:
        parse_cde_text('{"code": "x",\n "label": }', "ms:tbi/CDEsMetadata.json")
    assert str(err.value) == "ms:tbi/CDEsMetadata.json: invalid JSON at line 2, column 11: Expecting value"


def test_duplicate_json_key_names_key_and_object():
    text = '{"code": "tbi", "variables": [{"code": "age", "maxValue": 130, "maxValue": 5}]}'
    with pytest.raises(DataError) as err:
        parse_cde_text(text, "ms:tbi/CDEsMetadata.json")
    assert str(err.value) == ("ms:tbi/CDEsMetadata.json: key 'maxValue' appears twice in one object "
                              "(the object with code 'age')")


@pytest.mark.parametrize("variable, message", [
    ({"code": "x", "label": "X", "isCategorical": False}, "variable 'x': sql_type None is not one of int, real, text"),
    ({"code": "x", "label": "X", "sql_type": "float", "isCategorical": False},
     "variable 'x': sql_type 'float' is not one of int, real, text"),
    ({"code": "x", "label": "X", "sql_type": "text", "isCategorical": True},
     "variable 'x': categorical but has no enumerations"),
    ({"code": "x", "label": "X", "sql_type": "text"}, "variable 'x': isCategorical must be true or false, found None"),
    ({"code": "x", "sql_type": "text", "isCategorical": False}, "variable 'x': no label (a string is required)"),
    ({"code": "x", "label": "X", "sql_type": "int", "isCategorical": False, "minValue": 5, "maxValue": 1},
     "variable 'x': minValue 5 is greater than maxValue 1"),
    ({"code": "x", "label": "X", "sql_type": "real", "isCategorical": False, "minValue": "0"},
     "variable 'x': minValue must be a number, found '0'"),
    ({"code": "x", "label": "X", "sql_type": "text", "isCategorical": True,
      "enumerations": [{"code": "a,b", "label": "AB"}]}, "variable 'x': enumeration code 'a,b' contains a comma"),
    ({"code": "x", "label": "X", "sql_type": "int", "isCategorical": True,
      "enumerations": [{"code": "one", "label": "1"}]}, "variable 'x': enumeration code 'one' is not a valid int"),
    ({"code": "age", "label": "Again", "sql_type": "int", "isCategorical": False},
     "variable 'age': defined twice (variable codes are compared without case)"),
    ({"code": "AGE", "label": "Again", "sql_type": "int", "isCategorical": False},
     "variable 'AGE': defined twice (variable codes are compared without case)"),
    ({"code": "x", "label": "X", "sql_type": "text", "isCategorical": True, "enumerations": []},
     "variable 'x': categorical but has no enumerations"),
    ({"code": "x", "label": "X", "sql_type": "int", "isCategorical": False, "maxValue": 2 ** 70},
     "variable 'x': maxValue must fit in a 64-bit integer (-9223372036854775808 to 9223372036854775807)"),
    ({"code": "x", "label": "X", "sql_type": "real", "isCategorical": False, "minValue": -(2 ** 63) - 1},
     "variable 'x': minValue must fit in a 64-bit integer (-9223372036854775808 to 9223372036854775807)"),
])
def test_check_schema_reports_each_bad_variable(variable, message):
    _columns, errors = check_schema(cde_doc(extra=[variable]), "p/CDEsMetadata.json")
    assert [e["msg"] for e in errors] == ["p/CDEsMetadata.json: " + message]


def test_check_schema_rejects_too_many_columns():
    many = [{"code": "v%d" % i, "label": "V", "sql_type": "int", "isCategorical": False} for i in range(2000)]
    _columns, errors = check_schema(cde_doc(extra=many), "p/CDEsMetadata.json")
    assert [e["msg"] for e in errors] == [
        "p/CDEsMetadata.json: 2003 variables: a SQLite table holds at most 2000 columns"]


@pytest.mark.parametrize("bounds, message", [
    ('"minValue": NaN', "variable 'x': minValue must be a finite number, found NaN"),
    ('"maxValue": Infinity', "variable 'x': maxValue must be a finite number, found Infinity"),
    ('"minValue": -Infinity, "maxValue": 3', "variable 'x': minValue must be a finite number, found -Infinity"),
    ('"minValue": 0, "maxValue": NaN', "variable 'x': maxValue must be a finite number, found NaN"),
    ('"maxValue": 1e400', "variable 'x': maxValue must be a finite number, found Infinity"),
    ('"min": NaN', "variable 'x': min must be a finite number, found NaN"),
])
def test_check_schema_rejects_non_finite_bounds(bounds, message):
    # The bounds are spliced in as text because json.dumps would not write 1e400.
    variable = '{"code": "x", "label": "X", "sql_type": "real", "isCategorical": false, %s}' % bounds
    text = json.dumps(cde_doc(extra=["PLACEHOLDER"])).replace('"PLACEHOLDER"', variable)
    doc = parse_cde_text(text, "p/CDEsMetadata.json")

    columns, errors = check_schema(doc, "p/CDEsMetadata.json")

    assert [e["msg"] for e in errors] == ["p/CDEsMetadata.json: " + message]
    assert "x" not in [c["code"] for c in columns]


def test_check_schema_needs_a_text_dataset_variable():
    doc = cde_doc()
    doc["variables"] = []
    assert [e["msg"] for e in check_schema(doc, "f")[1]] == [
        "f: no 'dataset' variable: exareme needs it to tell datasets apart"]
    doc = cde_doc()
    doc["variables"][0]["sql_type"] = "int"
    doc["variables"][0]["enumerations"] = [{"code": "1", "label": "one"}]
    assert [e["msg"] for e in check_schema(doc, "f")[1]] == ["f: variable 'dataset' must have sql_type text"]


def test_check_schema_flattens_in_the_converters_order():
    columns, errors = check_schema(cde_doc(), "f")
    assert errors == []
    assert [(c["code"], c["type"], c["min"], c["max"]) for c in columns] == [
        ("dataset", "text", None, None), ("subjectcode", "text", None, None), ("age", "int", 0, 130)]


# ---------------------------------------------------------------- consolidation rules


def test_consolidate_adds_with_labels_drops_absent_and_keeps_existing_labels():
    doc = cde_doc(datasets=[("ppmi", "PPMI data"), ("edsd", "Old EDSD"), ("gone", "Gone")])
    new, changes = consolidate_document(doc, {"edsd", "ppmi", "newds", "adni"}, labels={"adni": "ADNI cohort"})
    assert new["variables"][0]["enumerations"] == [
        {"code": "ppmi", "label": "PPMI data"},
        {"code": "edsd", "label": "Old EDSD"},
        {"code": "adni", "label": "ADNI cohort"},
        {"code": "newds", "label": "NEWDS"},
    ]
    assert changes == {"added": ["adni", "newds"], "removed": ["gone"], "relabelled": []}
    assert doc["variables"][0]["enumerations"][2]["code"] == "gone"  # the input is not modified


def test_consolidate_keeps_absent_when_told_and_relabels_from_the_mapping():
    doc = cde_doc(datasets=[("edsd", "Old"), ("gone", "Gone")])
    new, changes = consolidate_document(doc, {"edsd"}, keep_absent=True, labels={"edsd": "EDSD"})
    assert new["variables"][0]["enumerations"] == [{"code": "edsd", "label": "EDSD"}, {"code": "gone", "label": "Gone"}]
    assert changes == {"added": [], "removed": [], "relabelled": ["edsd"]}


def test_consolidate_without_dataset_variable_is_an_error():
    doc = cde_doc()
    doc["variables"] = []
    with pytest.raises(DataError, match="no 'dataset' variable"):
        consolidate_document(doc, {"edsd"})


@pytest.mark.parametrize("pathology", ["dementia", "tbi", "mentalhealth"])
def test_serialise_keeps_sample_files_byte_identical(pathology):
    with open(os.path.join(SAMPLE, pathology, "CDEsMetadata.json"), encoding="utf-8") as handle:
        text = handle.read()
    assert serialise(parse_cde_text(text, "f", keep_literals=True), like=text) == text


def test_a_consolidated_file_stays_byte_identical_on_rerun(tmp_path):
    with open(os.path.join(SAMPLE, "tbi", "CDEsMetadata.json"), encoding="utf-8") as handle:
        source = handle.read()
    inventories = {"wk1": {"pathologies": {"tbi": {"files": [
        {"name": "a.csv", "file": "tbi/a.csv", "columns": ["dataset"], "datasets": {"dummy_tbi": 3, "x2": 1}}]}}}}
    first = consolidate_federation(inventories, {"tbi": {"text": source, "file": "ms:tbi"}})
    assert first["errors"] == []
    written = first["pathologies"][0]["content"]
    assert first["pathologies"][0]["changed"] is True
    assert first["pathologies"][0]["added"] == ["x2"]
    assert '"maxValue": 36.00,' in written  # numbers stay as they were written
    diff = first["pathologies"][0]["diff"].splitlines()
    assert diff[:2] == ["--- ms:tbi", "+++ ms:tbi (consolidated)"]
    assert [line for line in diff if line.startswith("+") and "x2" in line] == ['+          "code": "x2",']
    second = consolidate_federation(inventories, {"tbi": {"text": written, "file": "ms:tbi"}})
    assert second["pathologies"][0]["changed"] is False
    assert second["pathologies"][0]["diff"] == ""
    assert second["pathologies"][0]["content"] == written


def test_consolidate_keeps_tab_indentation():
    with open(os.path.join(SAMPLE, "tbi", "CDEsMetadata.json"), encoding="utf-8") as handle:
        spaced = handle.read()
    tabbed = json.dumps(json.loads(spaced), indent="\t", ensure_ascii=False) + "\n"
    inventories = {"wk1": {"pathologies": {"tbi": {"files": [
        {"name": "a.csv", "file": "tbi/a.csv", "columns": ["dataset"], "datasets": {"dummy_tbi": 3, "x2": 1}}]}}}}
    result = consolidate_federation(inventories, {"tbi": {"text": tabbed, "file": "ms:tbi"}})
    assert result["errors"] == []
    written = result["pathologies"][0]["content"]
    assert result["pathologies"][0]["changed"] is True
    # Only the added enumeration's lines differ: every other line is kept.
    old_lines, new_lines = tabbed.splitlines(), written.splitlines()
    assert all(line in new_lines for line in old_lines if '"dummy_tbi"' not in line)
    assert not any(line.startswith(" ") for line in new_lines)
    assert len(new_lines) - len(old_lines) == 4  # one enumeration object: {, code, label, }


def test_consolidate_keeps_crlf_line_endings():
    with open(os.path.join(SAMPLE, "tbi", "CDEsMetadata.json"), encoding="utf-8") as handle:
        crlf = handle.read().replace("\n", "\r\n")
    inventories = {"wk1": {"pathologies": {"tbi": {"files": [
        {"name": "a.csv", "file": "tbi/a.csv", "columns": ["dataset"], "datasets": {"dummy_tbi": 3, "x2": 1}}]}}}}
    result = consolidate_federation(inventories, {"tbi": {"text": crlf, "file": "ms:tbi"}})
    written = result["pathologies"][0]["content"]
    assert written.count("\n") == written.count("\r\n")
    assert len(written.splitlines()) - len(crlf.splitlines()) == 4  # one enumeration object


def test_removed_codes_are_warned_about(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": "dataset\nedsd\n"}},
                            {"dementia": cde_doc(datasets=[("edsd", "EDSD"), ("ppmi", "PPMI")])})
    result = consolidate_federation(inventories, cdes)
    assert result["pathologies"][0]["removed"] == ["ppmi"]
    assert ("ms:dementia/CDEsMetadata.json: dataset code(s) ppmi found on no node are removed with their "
            "labels; set mip_consolidate_keep_absent_datasets to keep them") in result["warnings"]


def test_an_up_to_date_source_is_returned_as_read():
    text = "\n" + json.dumps(cde_doc(), indent=4)  # not our style: kept as it is
    inventories = {"wk1": {"pathologies": {"dementia": {"files": [
        {"name": "a.csv", "columns": ["dataset"], "datasets": {"edsd": 1}}]}}}}
    result = consolidate_federation(inventories, {"dementia": {"text": text}})
    assert result["pathologies"][0]["content"] == text
    assert result["pathologies"][0]["changed"] is False


# ---------------------------------------------------------------- federation-wide checks


def fed(tmp_path, layout, master_cdes):
    inventories = {}
    for node, files in layout.items():
        inventories[node] = node_inventory(tmp_path, node, files)
    inventories["ms"] = node_inventory(tmp_path, "ms", {}, cdes=master_cdes)
    cdes = dict((name, {"text": info["cde"]["text"], "file": "ms:" + info["cde"]["file"]})
                for name, info in inventories["ms"]["pathologies"].items() if info["cde"])
    return inventories, cdes


def test_federation_data_structure_and_enumerations(tmp_path):
    inventories, cdes = fed(tmp_path, {
        "wk1": {"dementia/edsd.csv": "subjectcode,dataset,age\ns1,edsd,70\ns2,edsd,71\n"},
        "wk2": {"dementia/ppmi.csv": "dataset,subjectcode\nppmi,s3\n", "dementia/more.csv": "dataset\nadni\nadni\n"},
    }, {"dementia": cde_doc(datasets=[("edsd", "EDSD"), ("old", "Old")])})
    result = consolidate_federation(inventories, cdes)
    assert result["errors"] == []
    assert result["data_structure"] == [{"pathology": "dementia", "nodes": [
        {"node": "wk1", "datasets": [{"code": "edsd", "rows": 2}]},
        {"node": "wk2", "datasets": [{"code": "adni", "rows": 2}, {"code": "ppmi", "rows": 1}]},
    ]}]
    entry = result["pathologies"][0]
    assert entry["nodes"] == ["wk1", "wk2"]
    assert (entry["added"], entry["removed"]) == (["adni", "ppmi"], ["old"])
    assert json.loads(entry["content"])["variables"][0]["enumerations"] == [
        {"code": "edsd", "label": "EDSD"}, {"code": "adni", "label": "ADNI"}, {"code": "ppmi", "label": "PPMI"}]


def test_two_workers_with_files_of_the_same_name_lose_nothing(tmp_path):
    inventories, cdes = fed(tmp_path, {
        "wk1": {"dementia/data.csv": "dataset\nedsd\nedsd\n"},
        "wk2": {"dementia/data.csv": "dataset\nppmi\n"},
    }, {"dementia": cde_doc()})
    result = consolidate_federation(inventories, cdes)
    assert result["data_structure"][0]["nodes"] == [
        {"node": "wk1", "datasets": [{"code": "edsd", "rows": 2}]},
        {"node": "wk2", "datasets": [{"code": "ppmi", "rows": 1}]},
    ]


def test_errors_name_node_file_and_column(tmp_path):
    inventories, cdes = fed(tmp_path, {
        "wk1": {"dementia/a.csv": "subjectcode,dataset,mystery\ns1,edsd,1\n", "dementia/b.csv": "subjectcode\ns2\n"},
    }, {"dementia": cde_doc()})
    result = consolidate_federation(inventories, cdes)
    assert [e["msg"] for e in result["errors"]] == [
        "wk1: dementia/b.csv, line 1: the header has no 'dataset' column",
        "wk1: dementia/a.csv, column 'mystery': no CDE variable of pathology 'dementia' defines this column",
    ]
    assert result["errors"][1]["node"] == "wk1" and result["errors"][1]["column"] == "mystery"


def test_consolidate_rejects_invalid_cde_schema(tmp_path):
    bad = [{"code": "score", "label": "Score", "sql_type": "real", "isCategorical": False,
            "minValue": 10.5, "maxValue": 2.25},
           {"code": "kind", "label": "Kind", "sql_type": "varchar", "isCategorical": False}]
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": "dataset,age\nppmi,3\n"}},
                            {"dementia": cde_doc(extra=bad)})
    result = consolidate_federation(inventories, cdes)
    messages = [e["msg"] for e in result["errors"]]
    assert any("variable 'score': minValue 10.5 is greater than maxValue 2.25" in m for m in messages), messages
    assert any("variable 'kind': sql_type 'varchar' is not one of int, real, text" in m for m in messages), messages
    assert all(e["file"] == cdes["dementia"]["file"] for e in result["errors"])
    assert result["pathologies"] == []  # ppmi is not added: nothing is written


def test_a_dataset_on_two_workers_is_an_error_unless_allowed(tmp_path):
    inventories, cdes = fed(tmp_path, {
        "wk1": {"dementia/a.csv": "dataset\nedsd\n"},
        "wk2": {"dementia/b.csv": "dataset\nedsd\n"},
    }, {"dementia": cde_doc()})
    result = consolidate_federation(inventories, cdes)
    assert [e["msg"] for e in result["errors"]] == [
        "column 'dataset': dataset 'edsd' of pathology 'dementia' is found on 2 nodes: wk1 (dementia/a.csv); "
        "wk2 (dementia/b.csv). A dataset code must belong to one node; rename it, or allow it in "
        "mip_consolidate_allow_shared_datasets"]
    assert consolidate_federation(inventories, cdes, allow_shared=["edsd"])["errors"] == []
    assert consolidate_federation(inventories, cdes, allow_shared=["*"])["errors"] == []


def test_a_pathology_with_data_but_no_cdes_anywhere_is_an_error(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"tbi/a.csv": "dataset\nx\n"}}, {"dementia": cde_doc()})
    result = consolidate_federation(inventories, cdes)
    assert [e["msg"] for e in result["errors"]] == [
        "pathology 'tbi' has data on wk1 but no CDEsMetadata.json anywhere: put its CDEs on the master"]
    assert [p["pathology"] for p in result["pathologies"]] == ["dementia"]
    assert result["warnings"] == ["pathology 'dementia': no node holds data for it; its CDE is left as it is"]


def test_cdes_missing_on_the_master_are_taken_from_workers_that_agree(tmp_path):
    doc = cde_doc(code="tbi", datasets=[("x", "X")])
    inventories, cdes = fed(tmp_path, {"wk1": {"tbi/a.csv": "dataset\nx\n"}}, {})
    write(str(tmp_path / "wk1" / "tbi" / "CDEsMetadata.json"), serialise(doc))
    inventories["wk1"] = inventory(str(tmp_path / "wk1"), read_cdes=True)
    result = consolidate_federation(inventories, cdes)
    assert result["errors"] == []
    assert result["warnings"] == ["pathology 'tbi': the CDE source has no CDEsMetadata.json; using the one on wk1"]
    assert result["pathologies"][0]["changed"] is False


def test_node_problems_are_reported_with_the_node(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": b"dataset\n\xff\n"}}, {"dementia": cde_doc()})
    result = consolidate_federation(inventories, cdes)
    assert [e["msg"] for e in result["errors"]] == [
        "wk1: dementia/a.csv, line 2: not valid UTF-8 (byte 0xff at offset 8): save the file as UTF-8"]


def test_a_dataset_code_in_two_pathologies_is_an_error(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": "dataset\nshared\n", "tbi/b.csv": "dataset\nshared\n"}},
                            {"dementia": cde_doc(), "tbi": cde_doc(code="tbi")})
    assert [e["msg"] for e in consolidate_federation(inventories, cdes, allow_shared=["*"])["errors"]] == [
        "column 'dataset': dataset 'shared' appears in pathologies dementia, tbi: a dataset code must be unique "
        "in the federation, because the KeyCloak role RESEARCH_DATASET_shared grants it"]


def test_a_dataset_code_with_a_comma_is_an_error(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": 'dataset\n"a,b"\n'}}, {"dementia": cde_doc()})
    assert [e["msg"] for e in consolidate_federation(inventories, cdes)["errors"]] == [
        "wk1: dementia/a.csv, column 'dataset': dataset code 'a,b' contains a comma "
        "(exareme joins enumeration codes with commas)"]


def test_dataset_code_with_line_break_is_an_error(tmp_path):
    inventories, cdes = fed(tmp_path, {"wk1": {"dementia/a.csv": 'dataset\n"x\ny"\n"t\tab"\n'}},
                            {"dementia": cde_doc()})
    assert [e["msg"] for e in consolidate_federation(inventories, cdes)["errors"]] == [
        "wk1: dementia/a.csv, column 'dataset': dataset code 't\\tab' contains a control character such as a line "
        "break or a tab",
        "wk1: dementia/a.csv, column 'dataset': dataset code 'x\\ny' contains a control character such as a line "
        "break or a tab"]


# ---------------------------------------------------------------- sample data


def test_sample_federation(tmp_path):
    """The sample data split over two workers, CDEs on the master."""
    for node, pathologies in (("wk1", {"dementia": ["edsd.csv", "ppmi.csv"], "tbi": ["dummy_tbi.csv"]}),
                              ("wk2", {"dementia": ["desd-synthdata.csv", "fake_longitudinal.csv"],
                                       "mentalhealth": ["demo.csv"]})):
        for pathology, names in pathologies.items():
            os.makedirs(str(tmp_path / node / pathology))
            for name in names:
                shutil.copy(os.path.join(SAMPLE, pathology, name), str(tmp_path / node / pathology / name))
    for pathology in ("dementia", "tbi", "mentalhealth"):
        os.makedirs(str(tmp_path / "ms" / pathology))
        shutil.copy(os.path.join(SAMPLE, pathology, "CDEsMetadata.json"), str(tmp_path / "ms" / pathology))
    inventories = dict((n, inventory(str(tmp_path / n), read_cdes=True)) for n in ("wk1", "wk2", "ms"))
    cdes = dict((name, {"text": info["cde"]["text"]}) for name, info in inventories["ms"]["pathologies"].items())
    result = consolidate_federation(inventories, cdes)
    assert result["errors"] == []
    assert result["data_structure"] == [
        {"pathology": "dementia", "nodes": [
            {"node": "wk1", "datasets": [{"code": "edsd", "rows": 474}, {"code": "ppmi", "rows": 714}]},
            {"node": "wk2", "datasets": [{"code": "desd-synthdata", "rows": 1000},
                                         {"code": "fake_longitudinal", "rows": 18038}]}]},
        {"pathology": "mentalhealth", "nodes": [{"node": "wk2", "datasets": [{"code": "demo", "rows": 104}]}]},
        {"pathology": "tbi", "nodes": [{"node": "wk1", "datasets": [{"code": "dummy_tbi", "rows": 99}]}]},
    ]
    # The sample CDEs already list exactly these datasets: nothing to write.
    assert [(p["pathology"], p["changed"]) for p in result["pathologies"]] == [
        ("dementia", False), ("mentalhealth", False), ("tbi", False)]
    for entry in result["pathologies"]:
        assert entry["content"] == inventories["ms"]["pathologies"][entry["pathology"]]["cde"]["text"]


def test_edge_longitudinal_dementia_consolidates_with_a_warning(tmp_path):
    """The edge folder: its CDE code differs from the folder name (a warning:
    exareme uses the folder name), its quoted CSV is read whole, and the
    enumerations of absent datasets are dropped, nothing else."""
    shutil.copytree(os.path.join(EDGE, "longitudinal_dementia"), str(tmp_path / "wk1" / "longitudinal_dementia"))
    inv = inventory(str(tmp_path / "wk1"), read_cdes=True)
    assert inv["pathologies"]["longitudinal_dementia"]["datasets"] == {"desd-synthdata": 315}
    cde = inv["pathologies"]["longitudinal_dementia"]["cde"]
    result = consolidate_federation({"wk1": inv}, {"longitudinal_dementia": {"text": cde["text"], "file": "ms:x"}})
    assert result["errors"] == []
    assert result["warnings"] == [
        "ms:x: the CDE code 'dementia_longitudinal' differs from its folder name 'longitudinal_dementia'; "
        "exareme names the pathology after the folder",
        "ms:x: dataset code(s) edsd, fake_longitudinal, ppmi found on no node are removed with their labels; "
        "set mip_consolidate_keep_absent_datasets to keep them"]
    entry = result["pathologies"][0]
    assert (entry["added"], entry["removed"]) == ([], ["edsd", "fake_longitudinal", "ppmi"])
    before = parse_cde_text(cde["text"], "x")
    after = parse_cde_text(entry["content"], "x")
    assert after["variables"][0]["enumerations"] == [{"code": "desd-synthdata", "label": "DESD-SYNTHDATA"}]
    after["variables"][0]["enumerations"] = before["variables"][0]["enumerations"]
    assert after == before  # nothing else changed
    assert copy.deepcopy(after) == before
