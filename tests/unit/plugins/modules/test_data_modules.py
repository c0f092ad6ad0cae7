"""The three data modules under AnsibleModule, and the two playbooks run by
ansible-playbook against a lab of local hosts (one folder per node)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.mip.federation.plugins.modules import cde_consolidate, compile_datasets, data_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SAMPLE = os.path.join(REPO, "tests", "data", "mip-data")


def run_module(module, args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as done:
            module.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = done.value.code
    return out


def sample_copy(tmp_path, *names):
    root = tmp_path / "fed"
    for name in names or ("dementia", "tbi", "mentalhealth"):
        shutil.copytree(os.path.join(SAMPLE, name), str(root / name))
    return str(root)


def test_compile_datasets_twice_then_unchanged_and_check_mode(tmp_path, capsys):
    root = sample_copy(tmp_path, "tbi", "mentalhealth")
    checked = run_module(compile_datasets, {"path": root}, capsys, check_mode=True)
    assert (checked["rc"], checked["changed"], checked["compiled"]) == (0, True, ["mentalhealth", "tbi"])
    assert not os.path.exists(os.path.join(root, "tbi", "datasets.db"))
    first = run_module(compile_datasets, {"path": root, "mode": "0640"}, capsys)
    assert (first["rc"], first["changed"], first["compiled"]) == (0, True, ["mentalhealth", "tbi"])
    assert first["pathologies"]["tbi"]["datasets"] == {"dummy_tbi": 99}
    assert oct(os.stat(os.path.join(root, "tbi", "datasets.db")).st_mode & 0o777) == "0o640"
    second = run_module(compile_datasets, {"path": root, "mode": "0640"}, capsys)
    assert (second["changed"], second["compiled"], second["unchanged"]) == (False, [], ["mentalhealth", "tbi"])
    # An owner/group/mode change alone is a change, with nothing compiled.
    third = run_module(compile_datasets, {"path": root, "mode": "0644"}, capsys)
    assert (third["changed"], third["compiled"]) == (True, [])


def test_leftover_removal_is_a_change(tmp_path, capsys):
    root = sample_copy(tmp_path, "tbi")
    run_module(compile_datasets, {"path": root}, capsys)
    with open(os.path.join(root, "tbi", ".datasets.db.zz.tmp"), "w") as handle:
        handle.write("half a database")
    checked = run_module(compile_datasets, {"path": root}, capsys, check_mode=True)
    assert (checked["changed"], checked["compiled"], checked["removed"]) == (True, [], ["tbi/.datasets.db.zz.tmp"])
    out = run_module(compile_datasets, {"path": root}, capsys)
    assert (out["changed"], out["compiled"], out["removed"]) == (True, [], ["tbi/.datasets.db.zz.tmp"])
    again = run_module(compile_datasets, {"path": root}, capsys)
    assert (again["changed"], again["removed"]) == (False, [])


def test_compile_datasets_fails_with_every_problem(tmp_path, capsys):
    root = sample_copy(tmp_path, "tbi")
    with open(os.path.join(root, "tbi", "bad.csv"), "w") as handle:
        handle.write("dataset,age_value\ndummy_tbi,200\nother,x\n")
    out = run_module(compile_datasets, {"path": root, "error_limit": 5}, capsys)
    assert out["rc"] == 1 and out["failed"] is True and out["failed_pathologies"] == ["tbi"]
    assert out["msg"] == (
        "compiling failed for tbi: 3 problem(s):\n"
        "tbi/bad.csv, line 2, column 'age_value', value '200': expected a value of at most 130 (maxValue)\n"
        "tbi/bad.csv, line 3, column 'dataset', value 'other': expected one of the enumerations of 'dataset': "
        "dummy_tbi\n"
        "tbi/bad.csv, line 3, column 'age_value', value 'x': expected an integer (sql_type int)")
    assert not os.path.exists(os.path.join(root, "tbi", "datasets.db"))
    limited = run_module(compile_datasets, {"path": root, "error_limit": 2}, capsys)
    assert limited["msg"].startswith("compiling failed for tbi: 2 problem(s):\n")
    assert limited["msg"].endswith(
        "\nChecking stopped at error_limit (2) for tbi: later rows and files were not checked.")


def test_data_inventory_module(tmp_path, capsys):
    root = sample_copy(tmp_path, "tbi")
    out = run_module(data_inventory, {"path": root, "read_cdes": True}, capsys)
    assert out["rc"] == 0 and out["changed"] is False
    assert out["pathologies"]["tbi"]["datasets"] == {"dummy_tbi": 99}
    assert out["pathologies"]["tbi"]["cde"]["file"] == "tbi/CDEsMetadata.json"


def test_cde_consolidate_module(tmp_path, capsys):
    wk = sample_copy(tmp_path, "tbi")
    os.remove(os.path.join(wk, "tbi", "CDEsMetadata.json"))
    with open(os.path.join(wk, "tbi", "more.csv"), "w") as handle:
        handle.write("dataset,age_value\nnew_tbi,3\n")
    ms = str(tmp_path / "ms")
    os.makedirs(os.path.join(ms, "tbi"))
    shutil.copy(os.path.join(SAMPLE, "tbi", "CDEsMetadata.json"), os.path.join(ms, "tbi"))
    inventories = {
        "wk1": run_module(data_inventory, {"path": wk}, capsys),
        "ms": run_module(data_inventory, {"path": ms, "read_cdes": True}, capsys),
    }
    out = run_module(cde_consolidate, {"inventories": inventories, "cde_node": "ms",
                                       "dataset_labels": {"new_tbi": "New TBI"}}, capsys)
    assert out["rc"] == 0, out["msg"]
    assert out["changed"] is False
    assert out["data_structure"] == [{"pathology": "tbi", "nodes": [
        {"node": "wk1", "datasets": [{"code": "dummy_tbi", "rows": 99}, {"code": "new_tbi", "rows": 1}]}]}]
    entry = out["consolidated"][0]
    assert (entry["pathology"], entry["changed"], entry["added"], entry["nodes"]) == ("tbi", True, ["new_tbi"], ["wk1"])
    assert json.loads(entry["content"])["variables"][0]["enumerations"][-1] == {"code": "new_tbi", "label": "New TBI"}
    # The same from a CDE folder on the pusher.
    out = run_module(cde_consolidate, {"inventories": inventories, "cde_path": ms}, capsys)
    assert out["consolidated"][0]["added"] == ["new_tbi"]
    assert out["consolidated"][0]["source"] == os.path.join(ms, "tbi", "CDEsMetadata.json")


def test_cde_consolidate_module_fails_listing_problems(tmp_path, capsys):
    inventories = {
        "wk1": {"pathologies": {"tbi": {"files": [{"name": "a.csv", "file": "tbi/a.csv", "columns": ["dataset"],
                                                  "datasets": {"x": 1}}]}}, "errors": []},
        "ms": {"pathologies": {}, "errors": []},
    }
    out = run_module(cde_consolidate, {"inventories": inventories, "cde_node": "ms"}, capsys)
    assert out["rc"] == 1
    assert out["msg"] == ("consolidation found 1 problem(s):\n"
                          "pathology 'tbi' has data on wk1 but no CDEsMetadata.json anywhere: put its CDEs on the master")
    out = run_module(cde_consolidate, {"inventories": inventories, "cde_node": "nope"}, capsys)
    assert out["msg"] == "cde_node 'nope' has no inventory among ms, wk1"


# ---------------------------------------------------------------- playbooks

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def lab(tmp_path):
    """Two workers, a master and a pusher, all local, each with its own data root."""
    data = {"wk1": {"dementia": ["edsd.csv", "ppmi.csv"], "tbi": ["dummy_tbi.csv"]},
            "wk2": {"dementia": ["desd-synthdata.csv", "fake_longitudinal.csv"], "mentalhealth": ["demo.csv"]}}
    for node, pathologies in data.items():
        for name, files in pathologies.items():
            os.makedirs(str(tmp_path / node / "fed" / name))
            for file_name in files:
                shutil.copy(os.path.join(SAMPLE, name, file_name), str(tmp_path / node / "fed" / name))
    for name in ("dementia", "tbi", "mentalhealth"):
        os.makedirs(str(tmp_path / "ms" / "fed" / name))
        shutil.copy(os.path.join(SAMPLE, name, "CDEsMetadata.json"), str(tmp_path / "ms" / "fed" / name))
    # A dataset that the CDEs do not list yet.
    with open(str(tmp_path / "wk1" / "fed" / "tbi" / "extra.csv"), "w") as handle:
        handle.write("dataset,age_value\nextra_tbi,40\nextra_tbi,41\n")
    hosts = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "mip_federation_name": "fed", "mip_admin_user": _user()},
        "children": {"federation": {"children": {
            "pusher": {"hosts": {"pusher": {}}},
            "master": {"hosts": {"ms": {"mip_data_root": str(tmp_path / "ms")}}},
            "workers": {"hosts": {"wk1": {"mip_data_root": str(tmp_path / "wk1")},
                                  "wk2": {"mip_data_root": str(tmp_path / "wk2")}}},
        }}}}}
    inventory = str(tmp_path / "hosts.json")
    with open(inventory, "w") as handle:
        json.dump(hosts, handle)
    return inventory


def _user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def collections_path():
    if REPO.endswith(os.path.join("ansible_collections", "mip", "federation")):
        return os.path.dirname(os.path.dirname(os.path.dirname(REPO)))
    return os.path.join(REPO, "build", "collections")


def playbook(inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(REPO, "playbooks", name)] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(done.stdout)


def results(report, name):
    """Host -> result of the task called NAME."""
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                return task["hosts"]
    raise AssertionError("no task %r" % name)


def changed(report, name):
    return dict((host, res.get("changed", False)) for host, res in results(report, name).items())


@pytest.mark.skipif(not os.path.exists(ANSIBLE_PLAYBOOK), reason="ansible-playbook is not installed")
@pytest.mark.skipif(not os.path.isdir(os.path.join(collections_path(), "ansible_collections", "mip", "federation")),
                    reason="the collection is not installed at build/collections (make collection)")
def test_consolidate_then_compile_playbooks(tmp_path):
    inventory = lab(tmp_path)
    checked = playbook(inventory, "consolidate.yml", "--check", "--diff")
    diffs = dict((r["item"]["pathology"], r["msg"])
                 for r in results(checked, "Show the changes of the consolidated CDEs")["pusher"]["results"])
    assert sorted(diffs) == ["tbi"]
    assert [line for line in diffs["tbi"] if line.startswith("+") and "extra_tbi" in line] == [
        '+          "code": "extra_tbi",']
    report = playbook(inventory, "consolidate.yml")
    structure = results(report, "Publish the federation's data structure")["pusher"]["ansible_facts"]
    assert structure["mip_data_structure"][2] == {"pathology": "tbi", "nodes": [
        {"node": "wk1", "datasets": [{"code": "dummy_tbi", "rows": 99}, {"code": "extra_tbi", "rows": 2}]}]}
    writes = changed(report, "Write CDEsMetadata.json where it differs")
    assert writes == {"wk1": True, "wk2": True, "ms": True}  # tbi gained extra_tbi; workers got their CDEs
    tbi = json.load(open(str(tmp_path / "ms" / "fed" / "tbi" / "CDEsMetadata.json")))
    assert tbi["variables"][0]["enumerations"] == [{"code": "dummy_tbi", "label": "Dummy TBI"},
                                                   {"code": "extra_tbi", "label": "EXTRA_TBI"}]
    # The master's untouched CDEs kept their bytes; workers hold only their pathologies.
    with open(os.path.join(SAMPLE, "dementia", "CDEsMetadata.json"), "rb") as a, \
            open(str(tmp_path / "ms" / "fed" / "dementia" / "CDEsMetadata.json"), "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(str(tmp_path / "wk1" / "fed" / "mentalhealth"))
    assert os.path.exists(str(tmp_path / "wk2" / "fed" / "mentalhealth" / "CDEsMetadata.json"))
    again = playbook(inventory, "consolidate.yml")
    assert set(changed(again, "Write CDEsMetadata.json where it differs").values()) == {False}

    report = playbook(inventory, "compile.yml")
    assert changed(report, "Compile each pathology into datasets.db") == {"ms": True, "wk1": True, "wk2": True}
    facts = results(report, "Record the pathologies compiled on this node")
    assert dict((h, r["ansible_facts"]["mip_compiled_pathologies"]) for h, r in facts.items()) == {
        "ms": ["dementia", "mentalhealth", "tbi"], "wk1": ["dementia", "tbi"], "wk2": ["dementia", "mentalhealth"]}
    again = playbook(inventory, "compile.yml")
    assert set(changed(again, "Compile each pathology into datasets.db").values()) == {False}
    facts = results(again, "Record the pathologies compiled on this node")
    assert set(tuple(r["ansible_facts"]["mip_compiled_pathologies"]) for r in facts.values()) == {()}
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "wk1" / "fed" / "tbi" / "datasets.db"))
    assert dict(con.execute("SELECT dataset, COUNT(*) FROM DATA GROUP BY 1").fetchall()) == {
        "dummy_tbi": 99, "extra_tbi": 2}
    con.close()
    con = sqlite3.connect(str(tmp_path / "ms" / "fed" / "dementia" / "datasets.db"))
    assert con.execute("SELECT COUNT(*) FROM DATA").fetchone() == (0,)
    con.close()


def test_compile_datasets_unknown_owner_fails_before_building(tmp_path, capsys):
    root = sample_copy(tmp_path, "tbi")
    out = run_module(compile_datasets, {"path": root, "owner": "nosuchuser"}, capsys)
    assert out["rc"] == 1
    assert out["msg"] == ("owner 'nosuchuser' does not exist on this node: create it first (the base role "
                          "creates the admin user) or set owner to an existing one")
    assert not os.path.exists(os.path.join(root, "tbi", "datasets.db"))


@pytest.mark.skipif(not os.path.exists(ANSIBLE_PLAYBOOK), reason="ansible-playbook is not installed")
@pytest.mark.skipif(not os.path.isdir(os.path.join(collections_path(), "ansible_collections", "mip", "federation")),
                    reason="the collection is not installed at build/collections (make collection)")
def test_consolidate_stops_on_unreachable_node(tmp_path):
    inventory = lab(tmp_path)
    with open(inventory) as handle:
        hosts = json.load(handle)
    # Nothing listens on port 1 of the loopback address: wk2 is unreachable.
    hosts["all"]["children"]["federation"]["children"]["workers"]["hosts"]["wk2"].update(
        {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1})
    with open(inventory, "w") as handle:
        json.dump(hosts, handle)
    before = open(str(tmp_path / "ms" / "fed" / "dementia" / "CDEsMetadata.json"), "rb").read()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="0")
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(REPO, "playbooks", "consolidate.yml")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                          check=False)
    assert done.returncode != 0
    assert "No inventory from wk2" in done.stdout
    assert "TASK [Consolidate the dataset enumerations]" not in done.stdout
    assert open(str(tmp_path / "ms" / "fed" / "dementia" / "CDEsMetadata.json"), "rb").read() == before
