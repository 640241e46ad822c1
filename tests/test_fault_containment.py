"""Containment: the real backend writes only under its work directory and the storage_dirs it
was given; nothing in a scenario (``..``, absolute paths, symlinks) can steer a write elsewhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.errors import ScenarioError, UsageError
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from real.world.containment import WorkTrees, check_storage_dirs

from .clirun import cowbench
from .conftest import needs_tools, small_dict


def _with_storage(storage: str) -> dict[str, Any]:
    return small_dict(hosts=[{"name": "host1", "storage_dir": storage}])


@pytest.mark.parametrize("storage,reason", [
    ("scratch", "absolute"),
    ("./scratch", "absolute"),
    ("/srv/../etc", "'..'"),
    ("/tmp/x/../../etc", "'..'"),
    ("/", "system directory"),
    ("/etc", "system directory"),
    ("/proc/self", "system directory"),
    ("/usr/lib/cowbench", "system directory"),
])
def test_storage_dir_must_be_a_plain_absolute_path(storage: str, reason: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(_with_storage(storage))
    assert err.value.problems[0][0] == "hosts[0].storage_dir"
    assert reason in err.value.problems[0][1]


@pytest.mark.parametrize("section,name", [
    ("hosts", "../up"), ("hosts", "/abs"), ("hosts", ".."), ("hosts", "."),
    ("images", "a/b"), ("images", "..hidden"), ("vms", "x/../../y"), ("vms", ".vm"),
])
def test_names_cannot_be_paths(section: str, name: str) -> None:
    d = small_dict(hosts=[{"name": "host1"}])
    d[section][0]["name"] = name
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert f"{section}[0].name" in [p for p, _ in err.value.problems]


def test_storage_dir_on_this_machine(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    to_etc = tmp_path / "to-etc"
    to_etc.symlink_to("/etc")
    for storage, reason in ((tmp_path / "missing", "does not exist"),
                            (a_file, "is not a directory"),
                            (to_etc, "resolves to /etc, inside a system directory")):
        with pytest.raises(UsageError, match=reason):
            check_storage_dirs(parse_scenario(_with_storage(str(storage))))


def test_a_planted_entry_is_never_followed_nor_removed(tmp_path: Path) -> None:
    """An entry already where the backend would create its tree (here a symlink to a victim
    directory) is refused; the victim is untouched and the planted symlink stays."""
    storage, victim = tmp_path / "storage", tmp_path / "victim"
    storage.mkdir()
    victim.mkdir()
    (victim / "precious").write_text("keep")
    planted = storage / "cowbench-RUN"
    planted.symlink_to(victim)
    trees = WorkTrees(tmp_path / "work", "RUN")
    with pytest.raises(UsageError, match="already exists"):
        trees.create(parse_scenario(_with_storage(str(storage))))
    trees.remove()
    assert planted.is_symlink() and sorted(os.listdir(victim)) == ["precious"]
    assert not (tmp_path / "work" / "glance").exists()


def test_a_run_through_the_cli_refuses_a_missing_storage_dir(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_with_storage(str(tmp_path / "nope"))))
    out = tmp_path / "run"
    proc = cowbench("run", str(scenario), "--backend", "real", "--out", str(out))
    assert proc.code == 2 and "Traceback" not in proc.stderr
    assert "hosts[0].storage_dir" in proc.stderr and "does not exist" in proc.stderr
    assert not out.exists()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.real
@needs_tools
def test_a_real_run_writes_only_where_it_may(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             no_leaks: None, private_tmp: Path) -> None:
    """A symlinked storage_dir is followed to its target once, checked, and used; the run
    writes there and in its run directory only (the working directory and $TMPDIR stay empty);
    every overlay's backing file is the base inside the run's own tree, named relative to the
    overlay (``../_base/<sha1>``: it cannot lead out of the tree whatever path opens it)."""
    target = tmp_path / "data"
    target.mkdir()
    link = tmp_path / "srv"
    link.symlink_to(target)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    d = _with_storage(str(link))
    d["real"] = {"keep_images": True}
    # fio saves verify state files (local-<job>-<n>-verify.state) in its working directory
    d["workloads"]["s"].update(verify="crc32c", do_verify=False)
    out = tmp_path / "run"
    run_scenario(parse_scenario(d), out, "real")
    assert _tree(cwd) == set() and _tree(private_tmp) == set()
    (top,) = target.iterdir()
    assert top.name.startswith("cowbench-") and [p.name for p in top.iterdir()] == ["host1"]
    disks = sorted(top.glob("host1/instances/*/disk"))
    assert len(disks) == 3
    for disk in disks:
        info = subprocess.run(["qemu-img", "info", "--output=json", str(disk)],
                              capture_output=True, text=True, check=True).stdout
        meta = yaml.safe_load(info)
        assert Path(meta["backing-filename"]).parent == Path("../_base")
        backing = Path(meta["full-backing-filename"]).resolve()
        assert backing.parent == top / "host1" / "instances" / "_base" and backing.is_file()
    assert {p.name for p in out.iterdir()} == {"run.json", "scenario.yaml", "measured.parquet",
                                               "measured.csv", "raw", "work"}
    assert _tree(out / "work") == {"glance", "glance/img.qcow2"}
