"""Root may not be redirected out of its run or sweep directory (a user-tester's findings 1-3).

A run directory is made with ``mkdir(dir_fd=<its parent>)`` and held by its descriptor
(``cowbench.fdtree.HeldDir``): its parent renamed and replaced by a symlink mid-run (by the
sudo invoker who owns it, or by another admin's tooling) must not let root write into, or delete
from, the directory the symlink leads to. The swaps here are made deterministically, between
two phases of the run, through a wrapped method, not by a sleeping race.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cowbench.runner
from cowbench.lease import collect, dead_leases
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario

from .clirun import cowbench as cowbench_cli
from .conftest import needs_tools, small_dict

#: what the decoy run directory holds: another run's files, that no swap may change or remove
DECOY_FILES = ("run.json", "lease.json", "comparison.csv", "measured.parquet",
               "scenario.yaml", "predicted.parquet")


def _tree(d: Path) -> dict[str, str]:
    """Every entry under ``d`` (symlinks not followed): its kind and, for a file, its hash."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        out[rel] = "dir" if p.is_dir() and not p.is_symlink() else \
            hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def decoy(tmp_path: Path) -> Iterator[Path]:
    """``decoy/r``: a run directory of someone else's, as the tester's ``decoy2/r2``."""
    d = tmp_path / "decoy" / "r"
    d.mkdir(parents=True)
    for name in DECOY_FILES:
        (d / name).write_text(f"someone else's {name}\n")
    yield d


def _swap_parent(parent: Path, decoy_parent: Path) -> None:
    """``mv parent parent.real; ln -s decoy_parent parent`` (swap_once.sh)."""
    parent.rename(parent.with_name(parent.name + ".real"))
    parent.symlink_to(decoy_parent)


def _swap_at(monkeypatch: pytest.MonkeyPatch, method: str, swap: Callable[[], None]) -> list[str]:
    """Make ``swap`` happen once, as the run enters ``_Run.<method>`` for the first time."""
    done: list[str] = []
    original = getattr(cowbench.runner._Run, method)

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not done:
            swap()
            done.append(method)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cowbench.runner._Run, method, wrapped)
    return done


def test_a_parent_swapped_mid_run_redirects_nothing(tmp_path: Path, decoy: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 1b: once the model has run, ``q`` is renamed ``q.real`` and a symlink to the
    decoy's parent put in its place. Root goes on in its own directory: the decoy's files are
    unchanged and its lease.json is not deleted; the warning and the outcome name where the
    run's files really are."""
    q = tmp_path / "q"
    q.mkdir()
    before = _tree(decoy)
    swapped = _swap_at(monkeypatch, "step", lambda: _swap_parent(q, decoy.parent))
    outcome = run_scenario(parse_scenario(small_dict()), q / "r", "sim")
    assert swapped == ["step"]
    assert _tree(decoy) == before, "root wrote or deleted through the swapped name"
    real = tmp_path / "q.real" / "r"
    assert outcome.run_dir == real
    assert outcome.moved is not None and str(real) in outcome.moved \
        and str(q / "r") in outcome.moved
    meta = json.loads((real / "run.json").read_text())
    assert meta["status"] == "ok" and meta["completed"] == ["sim"]
    assert not (real / "lease.json").exists()  # released in its own directory
    assert (real / "predicted.parquet").is_file()


def test_the_cli_warns_where_a_moved_run_really_is(tmp_path: Path, decoy: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    q = tmp_path / "q"
    q.mkdir()
    scenario = tmp_path / "s.yaml"
    scenario.write_text(json.dumps(small_dict()))
    before = _tree(decoy)
    _swap_at(monkeypatch, "step", lambda: _swap_parent(q, decoy.parent))
    r = cowbench_cli("run", str(scenario), "--backend", "sim", "--out", str(q / "r"))
    assert r.code == 0, r.stderr
    real = tmp_path / "q.real" / "r"
    assert f"run directory: {real}" in " ".join(r.stdout.split())
    warning = " ".join(r.stderr.split())
    assert f"warning: {q / 'r'} no longer leads to this run's directory" in warning
    assert f"its files are in {real}" in warning
    assert _tree(decoy) == before


def test_a_failed_run_whose_parent_was_swapped_names_its_real_directory(
        tmp_path: Path, decoy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure's message names where run.json is, not the name that leads elsewhere."""
    from cowbench.errors import RunFailed

    q = tmp_path / "q"
    q.mkdir()
    before = _tree(decoy)

    def swap_then_fail() -> None:
        _swap_parent(q, decoy.parent)
        raise OSError(28, "No space left on device")

    _swap_at(monkeypatch, "step", swap_then_fail)
    with pytest.raises(RunFailed) as err:
        run_scenario(parse_scenario(small_dict()), q / "r", "sim")
    real = tmp_path / "q.real" / "r"
    assert f"details in {real}/run.json" in str(err.value)
    assert "no longer leads to this run's directory" in str(err.value)
    assert json.loads((real / "run.json").read_text())["status"] == "failed"
    assert _tree(decoy) == before


@pytest.mark.real
@needs_tools
def test_a_parent_swapped_during_the_real_run_redirects_nothing(
        tmp_path: Path, decoy: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    """The swap after the real run's first step (its images built): fio's records under raw/,
    its partial JSON, the comparison and the lease all stay in the run's own directory."""
    q = tmp_path / "q"
    q.mkdir()
    before = _tree(decoy)
    swapped = _swap_at(monkeypatch, "real_step", lambda: _swap_parent(q, decoy.parent))
    outcome = run_scenario(parse_scenario(small_dict()), q / "r", "both")
    assert swapped == ["real_step"]
    assert _tree(decoy) == before
    real = tmp_path / "q.real" / "r"
    assert outcome.run_dir == real and outcome.moved is not None
    assert (real / "comparison.csv").is_file() and not (real / "lease.json").exists()
    assert any(real.glob("raw/*-fio-*/output.json"))


def test_gc_leaves_a_swapped_run_directory_alone(tmp_path: Path, decoy: Path) -> None:
    """A run killed outright whose directory's name was swapped since: gc removes what the
    lease recorded, but neither marks the decoy's run.json nor deletes its lease.json."""
    q = tmp_path / "q"
    q.mkdir()
    run = q / "r"
    run.mkdir()
    st = os.stat(run)
    (decoy / "run.json").write_text(json.dumps({"status": "running"}))
    before = _tree(decoy)
    record = {"pid": 1, "start_ticks": 0, "boot_id": "another boot", "kind": "run",
              "run_dir": str(run), "run_dir_id": {"dev": st.st_dev, "ino": st.st_ino},
              "token": "t-swapped", "trees": [], "mounts": [], "files": []}
    _swap_parent(q, decoy.parent)
    done = collect(record)
    assert _tree(decoy) == before
    assert any("no longer the run's directory" in line for line in done), done
    assert dead_leases() == []
