"""compile_datasets' logic: datasets.db as exareme's converter lays it out,
every value validated, atomic and incremental builds. Small files are written
by each test; the last tests compile the sample data."""

import collections
import csv
import io
import json
import os
import random
import shutil
import sqlite3

import pytest

from ansible_collections.mip.federation.plugins.module_utils import _compile
from ansible_collections.mip.federation.plugins.module_utils._cde import check_schema, parse_cde_text
from ansible_collections.mip.federation.plugins.module_utils._compile import (
    compile_all,
    stored_fingerprint,
    validate_file,
    value_blocks,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SAMPLE = os.path.join(REPO, "tests", "data", "mip-data")
EDGE = os.path.join(REPO, "tests", "data", "mip-data-edge")


def variable(code, sql_type="text", categorical=False, enums=None, low=None, high=None, label=None):
    entry = {"code": code, "label": label or code.title(), "sql_type": sql_type, "isCategorical": categorical}
    if enums is not None:
        entry["enumerations"] = [{"code": e, "label": e.upper()} for e in enums]
    if low is not None:
        entry["minValue"] = low
    if high is not None:
        entry["maxValue"] = high
    return entry


def cdes(*extra, datasets=("edsd", "ppmi")):
    return {"code": "dementia", "label": "Dementia",
            "variables": [variable("dataset", "text", True, list(datasets))],
            "groups": [{"code": "g", "label": "G", "variables": [
                variable("subjectcode"),
                variable("gender", "text", True, ["F", "M"]),
                variable("age", "int", low=0, high=130),
                variable("volume", "real"),
                variable("glucose", "real", low=1.54, high=36.0),
                variable("apoe4", "int", True, ["0", "1", "2"]),
            ] + list(extra)}]}


def pathology(root, csvs, doc=None, name="dementia"):
    folder = os.path.join(str(root), name)
    os.makedirs(folder, exist_ok=True)
    if doc is not False:
        with open(os.path.join(folder, "CDEsMetadata.json"), "w", encoding="utf-8") as handle:
            json.dump(doc or cdes(), handle)
    for file_name, text in csvs.items():
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(os.path.join(folder, file_name), mode, **({} if mode == "wb" else {"newline": ""})) as handle:
            handle.write(text)
    return folder


def rows(db, sql="SELECT dataset, subjectcode, gender, age, volume, glucose, apoe4 FROM DATA ORDER BY rowid"):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def messages(result):
    return [e["msg"] for e in result["errors"]]


GOOD = "dataset,subjectcode,gender,age,volume,glucose,apoe4\nedsd,s1,F,70,1.5,5.2,1\nppmi,s2,M,,2,,0\n"


# ---------------------------------------------------------------- layout


def test_tables_are_laid_out_as_exareme_converter_does(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    result = compile_all(str(tmp_path))
    assert result["compiled"] == ["dementia"] and result["errors"] == []
    con = sqlite3.connect(os.path.join(folder, "datasets.db"))
    info = [r[1:3] for r in con.execute("PRAGMA table_info(METADATA)")]
    assert info == [("code", "TEXT"), ("label", "TEXT"), ("sql_type", "TEXT"), ("isCategorical", "INTEGER"),
                    ("enumerations", "TEXT"), ("min", "INTEGER"), ("max", "INTEGER")]
    assert [r[5] for r in con.execute("PRAGMA table_info(METADATA)")] == [1, 0, 0, 0, 0, 0, 0]  # code is the key
    assert [r[1:3] for r in con.execute("PRAGMA table_info(DATA)")] == [
        ("dataset", "TEXT"), ("subjectcode", "TEXT"), ("gender", "TEXT"), ("age", "INT"), ("volume", "REAL"),
        ("glucose", "REAL"), ("apoe4", "INT")]
    ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'DATA'").fetchone()[0]
    assert "\"age\" int CHECK (TYPEOF(\"age\") = 'integer' OR TYPEOF(\"age\") = 'null')" in ddl
    assert ("\"volume\" real CHECK (TYPEOF(\"volume\") = 'real' OR TYPEOF(\"volume\") = 'integer' "
            "OR TYPEOF(\"volume\") = 'null')") in ddl
    assert con.execute("SELECT * FROM METADATA ORDER BY rowid").fetchall() == [
        ("dataset", "Dataset", "text", 1, "edsd,ppmi", None, None),
        ("subjectcode", "Subjectcode", "text", 0, None, None, None),
        ("gender", "Gender", "text", 1, "F,M", None, None),
        ("age", "Age", "int", 0, None, 0, 130),
        ("volume", "Volume", "real", 0, None, None, None),
        ("glucose", "Glucose", "real", 0, None, 1.54, 36),
        ("apoe4", "Apoe4", "int", 1, "0,1,2", None, None),
    ]
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]  # CHECK constraints hold
    con.close()
    assert rows(os.path.join(folder, "datasets.db")) == [
        ("edsd", "s1", "F", 70, 1.5, 5.2, 1), ("ppmi", "s2", "M", None, 2.0, None, 0)]
    assert result["pathologies"]["dementia"]["datasets"] == {"edsd": 1, "ppmi": 1}
    assert result["pathologies"]["dementia"]["files"] == [{"file": "dementia/a.csv", "rows": 2}]


def test_apostrophes_and_quotes_are_data(tmp_path):
    doc = cdes(variable("note", label="Patient's \"note\""))
    text = 'dataset,subjectcode,note\nedsd,"O\'Brien","say ""hi"", then; DROP TABLE DATA"\n'
    folder = pathology(tmp_path, {"a.csv": text}, doc)
    assert compile_all(str(tmp_path))["errors"] == []
    db = os.path.join(folder, "datasets.db")
    assert rows(db, "SELECT subjectcode, note FROM DATA") == [("O'Brien", 'say "hi", then; DROP TABLE DATA')]
    assert rows(db, "SELECT label FROM METADATA WHERE code = 'note'") == [("Patient's \"note\"",)]


def test_master_with_cdes_only_gets_an_empty_data_table(tmp_path):
    folder = pathology(tmp_path, {})
    result = compile_all(str(tmp_path))
    assert result["compiled"] == ["dementia"]
    assert rows(os.path.join(folder, "datasets.db"), "SELECT COUNT(*) FROM DATA") == [(0,)]
    assert rows(os.path.join(folder, "datasets.db"), "SELECT COUNT(*) FROM METADATA") == [(7,)]


def test_bom_crlf_quoted_commas_and_newlines(tmp_path):
    text = ('\ufeff"dataset","subjectcode","gender"\r\n"edsd","a, b","F"\r\n'
            '"edsd","line\r\nbreak","M"\r\n\r\nppmi,plain,F\r\n')
    folder = pathology(tmp_path, {"a.csv": text})
    assert messages(compile_all(str(tmp_path))) == []
    assert rows(os.path.join(folder, "datasets.db"), "SELECT dataset, subjectcode, gender FROM DATA") == [
        ("edsd", "a, b", "F"), ("edsd", "line\r\nbreak", "M"), ("ppmi", "plain", "F")]


def test_columns_missing_from_a_csv_are_null_and_files_add_up(tmp_path):
    folder = pathology(tmp_path, {"a.csv": "subjectcode,dataset\ns1,edsd\n", "b.csv": "dataset,age\nppmi,3\nppmi,4\n"})
    result = compile_all(str(tmp_path))
    assert result["pathologies"]["dementia"]["datasets"] == {"edsd": 1, "ppmi": 2}
    assert rows(os.path.join(folder, "datasets.db"), "SELECT dataset, subjectcode, age FROM DATA") == [
        ("edsd", "s1", None), ("ppmi", None, 3), ("ppmi", None, 4)]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("header, message", [
    ("subject,dataset", "dementia/a.csv, line 1, column 'subject': no CDE variable defines this column"),
    ("subjectcode,age", "dementia/a.csv, line 1: the header has no 'dataset' column"),
    ("dataset,age,age", "dementia/a.csv, line 1, column 'age': the column appears twice in the header"),
    ("dataset,,age", "dementia/a.csv, line 1: column 2 of the header has no name"),
])
def test_header_problems_first_column_included(tmp_path, header, message):
    pathology(tmp_path, {"a.csv": header + "\n"})
    result = compile_all(str(tmp_path))
    assert result["failed"] == ["dementia"]
    assert messages(result) == [message]


@pytest.mark.parametrize("line, message", [
    ("edsd,s1,F,seventy,,,", "line 2, column 'age', value 'seventy': expected an integer (sql_type int)"),
    ("edsd,s1,F,70.5,,,", "line 2, column 'age', value '70.5': expected an integer (sql_type int)"),
    ("edsd,s1,F,131,,,", "line 2, column 'age', value '131': expected a value of at most 130 (maxValue)"),
    ("edsd,s1,F,-1,,,", "line 2, column 'age', value '-1': expected a value of at least 0 (minValue)"),
    ("edsd,s1,F,,big,,", "line 2, column 'volume', value 'big': expected a real number (sql_type real)"),
    ("edsd,s1,F,,1e999,,", "line 2, column 'volume', value '1e999': expected a real number (sql_type real)"),
    ("edsd,s1,F,,nan,,", "line 2, column 'volume', value 'nan': expected a real number (sql_type real)"),
    ("edsd,s1,F,,,1.5,", "line 2, column 'glucose', value '1.5': expected a value of at least 1.54 (minValue)"),
    ("edsd,s1,X,,,,", "line 2, column 'gender', value 'X': expected one of the enumerations of 'gender': F, M"),
    ("edsd,s1,f,,,,", "line 2, column 'gender', value 'f': expected one of the enumerations of 'gender': F, M"),
    ("edsd,s1,F,,,,3", "line 2, column 'apoe4', value '3': expected one of the enumerations of 'apoe4': 0, 1, 2"),
    ("edsd,s1,F,,,,1x", "line 2, column 'apoe4', value '1x': expected an integer (sql_type int)"),
    ("adni,s1,F,,,,", "line 2, column 'dataset', value 'adni': expected one of the enumerations of 'dataset': "
                      "edsd, ppmi"),
    (",s1,F,,,,", "line 2, column 'dataset', value '': expected a dataset code (every row needs one)"),
    ("edsd,s1,F,,,", "line 2: expected 7 fields as in the header, found 6"),
    ("edsd,s1,F,,,,,", "line 2: expected 7 fields as in the header, found 8"),
    ('edsd,"s1"x,F,,,,', "line 2: malformed CSV: ',' expected after '\"'"),
])
def test_each_bad_value_is_reported_and_the_build_fails(tmp_path, line, message):
    header = "dataset,subjectcode,gender,age,volume,glucose,apoe4\n"
    pathology(tmp_path, {"a.csv": header + line + "\n"})
    result = compile_all(str(tmp_path))
    assert result["failed"] == ["dementia"] and result["compiled"] == []
    assert messages(result) == ["dementia/a.csv, " + message]
    assert not os.path.exists(os.path.join(str(tmp_path), "dementia", "datasets.db"))
    assert os.listdir(os.path.join(str(tmp_path), "dementia")) == ["CDEsMetadata.json", "a.csv"] or \
        sorted(os.listdir(os.path.join(str(tmp_path), "dementia"))) == ["CDEsMetadata.json", "a.csv"]


@pytest.mark.parametrize("value, stored", [
    ("12", 12), (" 12 ", 12), ("+12", 12), ("12.0", 12), ("1e1", 10), ("012", 12), ("-0", 0),
    ("12.5", None), ("0x10", None), ("1_0", None), ("\u0661\u0662", None), ("12abc", None),
    ("9223372036854775807", 9223372036854775807), ("9223372036854775808", None), ("1e20", None), ("inf", None),
])
def test_int_values_accepted_exactly_as_sqlite_stores_them(tmp_path, value, stored):
    """The fast path (SQLite) and the validator agree on every value: what one
    accepts the other accepts, and a rejected value is reported by name."""
    doc = cdes(variable("count", "int"))
    folder = pathology(tmp_path, {"a.csv": 'dataset,count\nedsd,"%s"\n' % value}, doc)
    result = compile_all(str(tmp_path))
    if stored is None:
        assert messages(result) == ["dementia/a.csv, line 2, column 'count', value %r: expected an integer "
                                    "(sql_type int)" % value]
    else:
        assert messages(result) == []
        assert rows(os.path.join(folder, "datasets.db"), "SELECT count, typeof(count) FROM DATA") == [
            (stored, "integer")]


@pytest.mark.parametrize("value, stored", [
    ("1.5", 1.5), ("2", 2.0), (".5", 0.5), ("1.", 1.0), ("-1e-3", -0.001), ("1e-400", 0.0), (" 3 ", 3.0),
    ("1e999", None), ("-1e999", None), ("Infinity", None), ("NaN", None), ("1,5", None), ("1.5.1", None),
    ("\x1c5", None),
])
def test_real_values_accepted_exactly_as_sqlite_stores_them(tmp_path, value, stored):
    folder = pathology(tmp_path, {"a.csv": 'dataset,volume\nedsd,"%s"\n' % value})
    result = compile_all(str(tmp_path))
    if stored is None:
        assert messages(result) == ["dementia/a.csv, line 2, column 'volume', value %r: expected a real number "
                                    "(sql_type real)" % value]
    else:
        assert messages(result) == []
        assert rows(os.path.join(folder, "datasets.db"), "SELECT volume, typeof(volume) FROM DATA") == [
            (stored, "real")]


def test_errors_are_collected_across_rows_and_files_up_to_the_limit(tmp_path):
    header = "dataset,subjectcode,gender,age\n"
    pathology(tmp_path, {
        "a.csv": header + "edsd,s1,F,1\nedsd,s2,Q,2\nedsd,s3,F,x\nedsd,s4,F,4\n",
        "b.csv": header + "adni,s5,F,5\nedsd,s6,M,6\n",
    })
    result = compile_all(str(tmp_path), error_limit=10)
    assert messages(result) == [
        "dementia/a.csv, line 3, column 'gender', value 'Q': expected one of the enumerations of 'gender': F, M",
        "dementia/a.csv, line 4, column 'age', value 'x': expected an integer (sql_type int)",
        "dementia/b.csv, line 2, column 'dataset', value 'adni': expected one of the enumerations of 'dataset': "
        "edsd, ppmi",
    ]
    assert result["errors"][0] == {
        "msg": messages(result)[0], "message": "expected one of the enumerations of 'gender': F, M",
        "file": "dementia/a.csv", "line": 3, "column": "gender", "value": "Q"}
    limited = compile_all(str(tmp_path), error_limit=2)
    assert len(limited["errors"]) == 2


def test_lines_are_counted_in_physical_lines(tmp_path):
    pathology(tmp_path, {"a.csv": 'dataset,subjectcode,age\nedsd,"two\nlines",1\n\nedsd,s2,x\n'})
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 5, column 'age', value 'x': expected an integer (sql_type int)"]


def test_null_markers_only_when_configured(tmp_path):
    folder = pathology(tmp_path, {"a.csv": "dataset,gender,age,volume\nedsd,NA,NA,NA\nedsd,F,,\n"})
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 2, column 'gender', value 'NA': expected one of the enumerations of 'gender': F, M",
        "dementia/a.csv, line 2, column 'age', value 'NA': expected an integer (sql_type int)",
        "dementia/a.csv, line 2, column 'volume', value 'NA': expected a real number (sql_type real)",
    ]
    result = compile_all(str(tmp_path), null_markers=["NA"])
    assert messages(result) == []
    assert rows(os.path.join(folder, "datasets.db"), "SELECT gender, age, volume FROM DATA") == [
        (None, None, None), ("F", None, None)]


def test_a_null_marker_is_not_a_dataset(tmp_path):
    pathology(tmp_path, {"a.csv": "dataset,age\nNA,1\n"})
    assert messages(compile_all(str(tmp_path), null_markers=["NA"])) == [
        "dementia/a.csv, line 2, column 'dataset', value 'NA': expected a dataset code (every row needs one)"]


def test_a_non_categorical_dataset_still_needs_a_value(tmp_path):
    doc = cdes()
    doc["variables"][0] = variable("dataset")
    folder = pathology(tmp_path, {"a.csv": "dataset,age\nanything,1\n"}, doc)
    assert messages(compile_all(str(tmp_path))) == []
    assert rows(os.path.join(folder, "datasets.db"), "SELECT dataset FROM DATA") == [("anything",)]
    with open(os.path.join(folder, "a.csv"), "a") as handle:
        handle.write(",2\n")
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 3, column 'dataset', value '': expected a dataset code (every row needs one)"]


def test_invalid_utf8_names_the_line(tmp_path):
    pathology(tmp_path, {"a.csv": b"dataset,subjectcode\nedsd,ok\nedsd,caf\xe9\n"})
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 3: not valid UTF-8 (byte 0xe9 at offset 36): save the file as UTF-8"]


def test_cde_problems_fail_the_pathology(tmp_path):
    doc = cdes()
    doc["groups"][0]["variables"][0]["sql_type"] = "varchar"
    pathology(tmp_path, {"a.csv": GOOD}, doc)
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/CDEsMetadata.json: variable 'subjectcode': sql_type 'varchar' is not one of int, real, text"]


def test_invalid_cde_json_names_line_and_column(tmp_path):
    folder = pathology(tmp_path, {}, False)
    with open(os.path.join(folder, "CDEsMetadata.json"), "w") as handle:
        handle.write('{"code": "dementia",\n "variables": [}\n')
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/CDEsMetadata.json: invalid JSON at line 2, column 16: Expecting value"]


def test_csvs_without_cdes_fail_and_empty_folders_are_skipped(tmp_path):
    pathology(tmp_path, {"a.csv": GOOD}, False)
    os.makedirs(str(tmp_path / "empty"))
    result = compile_all(str(tmp_path))
    assert messages(result) == ["dementia: no CDEsMetadata.json next to the CSVs: run consolidation first"]
    assert result["pathologies"]["empty"]["status"] == "skipped"
    assert "empty: skipped, no CDEsMetadata.json and no CSV" in result["notes"]


# Columns whose rules the partial index and the validator must apply alike.
RULE_COLUMNS = [
    variable("count", "int"),
    variable("score", "int", low=0, high=30),
    variable("lowonly", "int", low=5),
    variable("level", "int", True, ["1", "2", "3"]),
    variable("mass", "real"),
    variable("ratio", "real", low=-1.5, high=1.5),
    variable("highonly", "real", high=10),
    variable("dose", "real", True, ["0.5", "1", "2.25"]),
    variable("site", "text", True, ["a", "B", "c d", "\u00e9t\u00e9"]),
    variable("icd", "text", True, ["c%02d" % i for i in range(40)]),
    variable("stage", "int", True, [str(i) for i in range(0, 60, 3)]),
]
RULE_VALUES = ["", "0", "1", "2", "3", "1.0", "1e0", "2.25", "0.5", "-1.5", "1.5", "1.50001", "-2", "4", "5",
               "10", "10.0", "10.5", "30", "31", "-0", " 7 ", "1e999", "-1e999", "1e308", "-1e308",
               "1.7976931348623157e308", "9223372036854775807", "9223372036854775808", "abc", "nan", "a",
               "b", "B", "c d", "\u00e9t\u00e9", "c00", "c39", "c40", "c1", "57", "58", "0x10"]


@pytest.mark.parametrize("code", [c["code"] for c in RULE_COLUMNS])
def test_database_rules_agree_with_validator(tmp_path, code):
    """Each value, alone in its file, fails the build with the validator's
    message or is stored: the partial index that checks values during the
    insert neither lets a bad value through nor rejects a good one."""
    doc = cdes(*RULE_COLUMNS)
    columns, _errors = check_schema(doc, "x")
    names = ["v%02d" % i for i in range(len(RULE_VALUES))]
    for name, value in zip(names, RULE_VALUES):
        pathology(tmp_path, {"a.csv": 'dataset,%s\nedsd,"%s"\n' % (code, value)}, doc, name=name)
    result = compile_all(str(tmp_path))
    rejected = 0
    for name, value in zip(names, RULE_VALUES):
        folder = os.path.join(str(tmp_path), name)
        found = validate_file(os.path.join(folder, "a.csv"), name + "/a.csv", ["dataset", code], columns, [], 10)
        expected = [e["msg"] for e in found]
        assert [e["msg"] for e in result["pathologies"][name]["errors"]] == expected, value
        if expected:
            rejected += 1
        else:
            assert len(rows(os.path.join(folder, "datasets.db"), "SELECT %s FROM DATA" % code)) == 1
    assert 0 < rejected < len(RULE_VALUES)


def test_range_of_large_integers_is_exact(tmp_path):
    doc = cdes(variable("big", "int", high=9007199254740992))
    pathology(tmp_path, {"a.csv": "dataset,big\nedsd,9007199254740992\nedsd,9007199254740993\n"}, doc)
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 3, column 'big', value '9007199254740993': expected a value of at most "
        "9007199254740992 (maxValue)"]


def test_long_enumeration_accepts_each_code_only(tmp_path):
    codes = ["v%03d" % i for i in range(0, 300, 3)]
    doc = cdes(variable("visit", "text", True, codes))
    lines = "".join("edsd,%s\n" % c for c in reversed(codes))
    folder = pathology(tmp_path, {"a.csv": "dataset,visit\n" + lines}, doc)
    assert messages(compile_all(str(tmp_path))) == []
    assert rows(os.path.join(folder, "datasets.db"), "SELECT COUNT(DISTINCT visit) FROM DATA") == [(100,)]
    with open(os.path.join(folder, "a.csv"), "a") as handle:
        handle.write("edsd,v001\nedsd,v297\nedsd,v299\nedsd,v\n")
    assert [e["line"] for e in compile_all(str(tmp_path))["errors"]] == [102, 104, 105]


@pytest.mark.parametrize("bounds, message", [
    ('"minValue": NaN, "maxValue": 10', "minValue must be a finite number, found NaN"),
    ('"minValue": 0, "maxValue": Infinity', "maxValue must be a finite number, found Infinity"),
])
def test_non_finite_bounds_fail_the_pathology(tmp_path, bounds, message):
    """Python's json module reads NaN and Infinity, which are not valid bounds."""
    text = ('{"code": "d", "label": "D", "variables": ['
            '{"code": "dataset", "label": "D", "sql_type": "text", "isCategorical": false},'
            '{"code": "x", "label": "X", "sql_type": "real", "isCategorical": false, %s}]}' % bounds)
    folder = pathology(tmp_path, {"a.csv": "dataset,x\nedsd,-5\nedsd,1e300\n"}, False)
    with open(os.path.join(folder, "CDEsMetadata.json"), "w") as handle:
        handle.write(text)

    result = compile_all(str(tmp_path))

    assert messages(result) == ["dementia/CDEsMetadata.json: variable 'x': " + message]
    assert result["failed"] == ["dementia"]
    assert not os.path.exists(os.path.join(folder, "datasets.db"))


def test_header_wider_than_parameter_limit_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(_compile, "max_parameters", lambda _con: 3)
    pathology(tmp_path, {"a.csv": "dataset,age,gender\nedsd,1,F\n", "b.csv": "dataset,age,gender,volume\nedsd,1,F,2\n"})
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/b.csv, line 1: the header has 4 columns, more than the 3 parameters that SQLite %s allows in a "
        "statement" % sqlite3.sqlite_version]


def test_problem_index_is_gone_after_build(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    compile_all(str(tmp_path))
    db = os.path.join(folder, "datasets.db")
    assert rows(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL") == []
    assert rows(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") == [
        ("DATA",), ("METADATA",), ("MIP_BUILD",)]


# ---------------------------------------------------------------- atomic and incremental


def test_a_failed_compile_keeps_the_previous_database(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    assert compile_all(str(tmp_path))["compiled"] == ["dementia"]
    db = os.path.join(folder, "datasets.db")
    with open(db, "rb") as handle:
        before = handle.read()
    with open(os.path.join(folder, "b.csv"), "w") as handle:
        handle.write("dataset,age\nedsd,999\n")
    result = compile_all(str(tmp_path))
    assert result["failed"] == ["dementia"]
    with open(db, "rb") as handle:
        assert handle.read() == before
    assert sorted(os.listdir(folder)) == ["CDEsMetadata.json", "a.csv", "b.csv", "datasets.db"]


def test_unchanged_inputs_are_skipped_and_changes_rebuild(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    first = compile_all(str(tmp_path))
    assert first["compiled"] == ["dementia"]
    db = os.path.join(folder, "datasets.db")
    assert stored_fingerprint(db) == first["pathologies"]["dementia"]["fingerprint"]
    mtime = os.stat(db).st_mtime_ns
    assert compile_all(str(tmp_path))["unchanged"] == ["dementia"]
    assert os.stat(db).st_mtime_ns == mtime
    assert compile_all(str(tmp_path), force=True)["compiled"] == ["dementia"]
    # A new CSV, a changed CSV, changed CDEs and other null markers each rebuild.
    with open(os.path.join(folder, "b.csv"), "w") as handle:
        handle.write("dataset\nedsd\n")
    assert compile_all(str(tmp_path))["compiled"] == ["dementia"]
    with open(os.path.join(folder, "b.csv"), "a") as handle:
        handle.write("ppmi\n")
    result = compile_all(str(tmp_path))
    assert result["compiled"] == ["dementia"] and result["pathologies"]["dementia"]["datasets"] == {"edsd": 2, "ppmi": 2}
    with open(os.path.join(folder, "CDEsMetadata.json"), "w") as handle:
        json.dump(cdes(datasets=("edsd", "ppmi", "adni")), handle)
    assert compile_all(str(tmp_path))["compiled"] == ["dementia"]
    assert compile_all(str(tmp_path), null_markers=["NA"])["compiled"] == ["dementia"]
    assert compile_all(str(tmp_path), null_markers=["NA"])["unchanged"] == ["dementia"]


def test_sha256_fingerprint_sees_content_behind_preserved_times(tmp_path):
    folder = pathology(tmp_path, {"a.csv": "dataset\nedsd\n"})
    csv_path = os.path.join(folder, "a.csv")
    compile_all(str(tmp_path), fingerprint_mode="sha256")
    stat = os.stat(csv_path)
    with open(csv_path, "w") as handle:
        handle.write("dataset\nppmi\n")  # same size
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert compile_all(str(tmp_path), fingerprint_mode="stat")["compiled"] == ["dementia"]  # mode changed
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with open(csv_path, "w") as handle:
        handle.write("dataset\nedsd\n")
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert compile_all(str(tmp_path), fingerprint_mode="stat")["unchanged"] == ["dementia"]  # stat cannot tell
    assert compile_all(str(tmp_path), fingerprint_mode="sha256")["compiled"] == ["dementia"]


def test_leftovers_of_an_interrupted_compile_are_removed(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    with open(os.path.join(folder, ".datasets.db.x1.tmp"), "w") as handle:
        handle.write("half a database")
    result = compile_all(str(tmp_path))
    assert result["compiled"] == ["dementia"]
    assert "dementia/.datasets.db.x1.tmp: removed, left by an interrupted compile" in result["notes"]
    assert sorted(os.listdir(folder)) == ["CDEsMetadata.json", "a.csv", "datasets.db"]


def test_leftovers_removed_when_up_to_date(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    assert compile_all(str(tmp_path))["removed"] == []
    leftover = os.path.join(folder, ".datasets.db.k2.tmp")
    with open(leftover, "w") as handle:
        handle.write("half a database")
    checked = compile_all(str(tmp_path), check_mode=True)
    assert checked["removed"] == ["dementia/.datasets.db.k2.tmp"]
    assert os.path.exists(leftover)
    result = compile_all(str(tmp_path))
    assert result["unchanged"] == ["dementia"]
    assert result["compiled"] == []
    assert result["removed"] == ["dementia/.datasets.db.k2.tmp"]
    assert not os.path.exists(leftover)
    assert compile_all(str(tmp_path))["removed"] == []


def test_an_unwritable_folder_is_reported(tmp_path, monkeypatch):
    pathology(tmp_path, {"a.csv": GOOD})

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_compile.tempfile, "mkstemp", refuse)
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/datasets.db: cannot build the database: Permission denied"]


def test_a_database_without_fingerprint_is_rebuilt(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    sqlite3.connect(os.path.join(folder, "datasets.db")).execute("CREATE TABLE DATA(x)").connection.close()
    assert compile_all(str(tmp_path))["compiled"] == ["dementia"]


def test_check_mode_reports_and_writes_nothing(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD})
    result = compile_all(str(tmp_path), check_mode=True)
    assert result["compiled"] == ["dementia"]
    assert result["pathologies"]["dementia"]["status"] == "would compile"
    assert sorted(os.listdir(folder)) == ["CDEsMetadata.json", "a.csv"]
    compile_all(str(tmp_path))
    assert compile_all(str(tmp_path), check_mode=True)["compiled"] == []


def test_other_files_are_ignored_with_a_note(tmp_path):
    folder = pathology(tmp_path, {"a.csv": GOOD, "readme.txt": "hello", "data.xlsx": b"PK\x03\x04"})
    os.makedirs(os.path.join(folder, "old"))
    result = compile_all(str(tmp_path))
    assert result["compiled"] == ["dementia"]
    assert result["pathologies"]["dementia"]["notes"] == [
        "dementia/data.xlsx: ignored, not a .csv file, CDEsMetadata.json or datasets.db",
        "dementia/old: ignored, a folder inside a pathology folder",
        "dementia/readme.txt: ignored, not a .csv file, CDEsMetadata.json or datasets.db",
    ]


def test_a_subset_of_pathologies(tmp_path):
    pathology(tmp_path, {"a.csv": GOOD})
    pathology(tmp_path, {}, name="tbi")
    result = compile_all(str(tmp_path), pathologies=["tbi", "nope"])
    assert result["compiled"] == ["tbi"]
    assert messages(result) == ["%s: no such pathology folder" % os.path.join(str(tmp_path), "nope")]


# ---------------------------------------------------------------- the fast row reader


def read_value_blocks(text, width=2):
    """Return the flat values and dataset counts value_blocks reads from TEXT."""
    handle = io.StringIO(text, newline="")
    next(csv.reader(handle))
    counts = collections.Counter()
    values = [v for block in value_blocks(handle, width, 0, counts) for v in block]
    return values, counts


@pytest.mark.parametrize("text", [
    "a,b\n1,2\n3,4\n",
    "a,b\r\n1,2\r\n\r\n3,4",
    "a,b\n1,2\n\n\n3,4\n\n",
    'a,b\n1,2\n"x\ny",3\n5,6\n',
    'a,b\n1,2\n3,"q"\n',
    "a,b\n1,2\r3,4\n",
    "a,b\n1,2\r\n3,4\r5,6\r\n7,8",
    'a,b\n1,2\n3,"4\r\n5",6\r\n7,"8\r"\r\n',
    "a,b\n" + "".join("%d,%d\n" % (i, i) for i in range(200)) + '"late, quote",1\n7,8',
    "a,b\r\n" + "".join("%d,\u00e9%d\r\n" % (i, i) for i in range(200)),
    "a,b\n , \n\n,\n",
    "a,b\n1,2\r\n3,4\n\r\n5,6\r\n7,8\n",
    "a,b\n1,2\n3,4\x00\n5,6\n",
    "a,b\n1,2\n3,4\r",
    'a,b\n1,2\n3,"4"',
    # A lone CR followed by text and a line break has the shape of a CRLF pair.
    "a,b\n1,2\r3\n",
    "a,b\n1,a\rb\n",
    "a,b\n1,a\rb\n2,c\n",
    "a,b\r\n1,4\r0\r\n",
    "a,b\n,\rx",
])
@pytest.mark.parametrize("block", [1, 3, 7, 64, 1 << 20])
def test_value_blocks_equal_csv_reader(monkeypatch, text, block):
    monkeypatch.setattr(_compile, "READ_BLOCK", block)
    expected = [r for r in list(csv.reader(io.StringIO(text, newline=""), strict=True))[1:] if r]
    if any(len(r) != 2 for r in expected):
        with pytest.raises(_compile._RowWidth):
            read_value_blocks(text)
        return
    values, counts = read_value_blocks(text)
    assert values == [v for r in expected for v in r]
    assert counts == collections.Counter(r[0] for r in expected)


@pytest.mark.parametrize("lines", [
    ["1,2", "3"],
    ["1,2", "3,4,5"],
    ["1", "2,3,4"],  # as many fields as two good rows
    ["1,2", ""] + ["5,6"] * 50 + ["7,8,9,10", "11"],
])
@pytest.mark.parametrize("block", [1, 5, 1 << 20])
def test_value_blocks_reject_rows_of_another_width(monkeypatch, lines, block):
    monkeypatch.setattr(_compile, "READ_BLOCK", block)
    with pytest.raises(_compile._RowWidth):
        read_value_blocks("a,b\n" + "\n".join(lines) + "\n")


@pytest.mark.parametrize("text", ["x\n1\n\n2\r\n\r\n3", "x\r\n\r\n1\r\n", "x\n\n"])
@pytest.mark.parametrize("block", [1, 2, 1 << 20])
def test_value_blocks_skip_empty_lines_of_one_column(monkeypatch, text, block):
    """In a one-column file an empty line has the shape of a row, yet csv.reader skips it."""
    monkeypatch.setattr(_compile, "READ_BLOCK", block)
    expected = [r[0] for r in csv.reader(io.StringIO(text, newline="")) if r][1:]
    assert read_value_blocks(text, width=1)[0] == expected


def test_value_blocks_crlf_across_block_boundary(monkeypatch):
    """A block ending between CR and LF is completed, so csv.reader, which
    is slower, never takes over a file that holds no quote."""
    monkeypatch.setattr(_compile, "READ_BLOCK", 4)
    monkeypatch.setattr(_compile, "_reader_values", None)  # calling it would fail
    values, _counts = read_value_blocks("a,b\r\n1,2\r\n3,4\r\n56,7\r\n")
    assert values == ["1", "2", "3", "4", "56", "7"]


@pytest.mark.parametrize("seed", range(40))
def test_value_blocks_match_csv_reader_on_random_text(monkeypatch, seed):
    rnd = random.Random(seed)
    monkeypatch.setattr(_compile, "READ_BLOCK", rnd.choice([1, 2, 5, 16, 1 << 20]))
    pieces = ["a", "bc", ",", ",", "\n", "\n", "\r\n", "\u00e9", " "] + rnd.choice([[], ['"'], ["\r"], ["\x00"]])
    text = "h1,h2\n" + "".join(rnd.choices(pieces, k=rnd.randint(0, 60)))
    try:
        expected = [r for r in list(csv.reader(io.StringIO(text, newline=""), strict=True))[1:] if r]
    except csv.Error:
        with pytest.raises((csv.Error, _compile._RowWidth)):
            read_value_blocks(text)
        return
    if any(len(r) != 2 for r in expected):
        with pytest.raises(_compile._RowWidth):
            read_value_blocks(text)
        return
    assert read_value_blocks(text)[0] == [v for r in expected for v in r]


def test_batches_of_many_rows_hold_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(_compile, "READ_BLOCK", 50)
    lines = "".join("edsd,s%d,%d\n" % (i, i % 100) for i in range(1000))
    folder = pathology(tmp_path, {"a.csv": "dataset,subjectcode,age\n" + lines})
    result = compile_all(str(tmp_path))
    assert result["pathologies"]["dementia"]["rows"] == 1000
    assert rows(os.path.join(folder, "datasets.db"), "SELECT COUNT(*), SUM(age) FROM DATA") == [
        (1000, sum(i % 100 for i in range(1000)))]


def test_a_short_row_inside_a_batch_is_caught(tmp_path):
    lines = ["edsd,s%d,%d" % (i, i) for i in range(100)]
    lines[40] = "edsd,s40"
    lines[41] = "edsd,s41,41,41"  # together as many fields as two good rows
    pathology(tmp_path, {"a.csv": "dataset,subjectcode,age\n" + "\n".join(lines) + "\n"})
    assert messages(compile_all(str(tmp_path))) == [
        "dementia/a.csv, line 42: expected 3 fields as in the header, found 2",
        "dementia/a.csv, line 43: expected 3 fields as in the header, found 4"]


def test_validator_agrees_with_the_database_on_the_samples():
    for name in ("dementia", "tbi", "mentalhealth"):
        with open(os.path.join(SAMPLE, name, "CDEsMetadata.json"), encoding="utf-8") as handle:
            columns, errors = check_schema(parse_cde_text(handle.read(), "x"), "x")
        assert errors == []
        for file_name in sorted(os.listdir(os.path.join(SAMPLE, name))):
            if file_name.endswith(".csv"):
                path = os.path.join(SAMPLE, name, file_name)
                with open(path, encoding="utf-8-sig", newline="") as handle:
                    header = next(csv.reader(handle))
                assert validate_file(path, file_name, header, columns, [], 100) == []


# ---------------------------------------------------------------- sample data


def test_sample_data_row_counts(tmp_path):
    shutil.copytree(SAMPLE, str(tmp_path / "fed"))
    result = compile_all(str(tmp_path / "fed"))
    assert result["errors"] == []
    assert result["compiled"] == ["dementia", "mentalhealth", "tbi"]
    assert result["notes"] == ["README.md: ignored, not a pathology folder"]
    expected = {
        "dementia": {"edsd": 474, "ppmi": 714, "desd-synthdata": 1000, "fake_longitudinal": 18038},
        "tbi": {"dummy_tbi": 99},
        "mentalhealth": {"demo": 104},
    }
    for name, counts in expected.items():
        db = str(tmp_path / "fed" / name / "datasets.db")
        assert dict(rows(db, "SELECT dataset, COUNT(*) FROM DATA GROUP BY dataset")) == counts
        assert result["pathologies"][name]["datasets"] == dict(sorted(counts.items()))
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    again = compile_all(str(tmp_path / "fed"))
    assert again["unchanged"] == ["dementia", "mentalhealth", "tbi"]
    assert again["pathologies"]["dementia"]["datasets"] == dict(sorted(expected["dementia"].items()))
    assert again["pathologies"]["dementia"]["rows"] == 20226


def test_sample_values_match_the_converter_except_empty_text(tmp_path):
    """Spot-check values against the CSV: numbers are typed, '' is NULL."""
    shutil.copytree(os.path.join(SAMPLE, "tbi"), str(tmp_path / "fed" / "tbi"))
    compile_all(str(tmp_path / "fed"))
    db = str(tmp_path / "fed" / "tbi" / "datasets.db")
    with open(os.path.join(SAMPLE, "tbi", "dummy_tbi.csv"), encoding="utf-8", newline="") as handle:
        first = next(csv.DictReader(handle))
    got = rows(db, "SELECT age_value, gender_type, gcs_eye_response_scale, mortality_core FROM DATA LIMIT 1")[0]
    assert got == (int(first["age_value"]), first["gender_type"], None, float(first["mortality_core"]))


def test_edge_longitudinal_dementia_compiles_every_row(tmp_path):
    """The edge folder compiles whole: every field quoted, CDE code unlike the
    folder name, enumerations naming absent datasets. No row is lost."""
    shutil.copytree(os.path.join(EDGE, "longitudinal_dementia"), str(tmp_path / "fed" / "longitudinal_dementia"))
    result = compile_all(str(tmp_path / "fed"))
    assert result["errors"] == []
    entry = result["pathologies"]["longitudinal_dementia"]
    with open(os.path.join(EDGE, "longitudinal_dementia", "desd-synthdata.csv"), encoding="utf-8", newline="") as handle:
        source = list(csv.reader(handle))
    assert entry["rows"] == len(source) - 1 == 315
    assert entry["datasets"] == {"desd-synthdata": 315}
    db = str(tmp_path / "fed" / "longitudinal_dementia" / "datasets.db")
    header = source[0]
    index = header.index("subjectid")
    assert [r[0] for r in rows(db, "SELECT subjectid FROM DATA ORDER BY rowid")] == [r[index] or None for r in source[1:]]
