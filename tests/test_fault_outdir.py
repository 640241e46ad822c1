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
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import cowbench
import cowbench.runner
from cowbench.lease import collect, dead_leases
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario

from .clirun import cowbench as cowbench_cli
from .conftest import needs_tools, small_dict
from .hostile import NOBODY, give, shared_dir

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


def test_the_held_directory_is_never_reached_through_a_symlink_at_its_name(
        tmp_path: Path) -> None:
    """A symlink planted at the name after ``--out`` was checked (the window before the
    ``mkdir``) is not followed: the run is refused and nothing is written where it leads; an
    existing directory others may write is refused too."""
    from cowbench.errors import UsageError
    from cowbench.fdtree import HeldDir

    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "planted").symlink_to(target)
    with pytest.raises(UsageError, match="planted: not a directory of its own"):
        HeldDir.hold(tmp_path / "planted", "run directory")
    assert os.listdir(target) == []
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UsageError, match="open: writable by others .mode 777."):
        HeldDir.hold(open_dir, "run directory")


def test_a_failure_names_the_run_directory_as_given_not_its_descriptor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run writes through ``/proc/<pid>/fd/<fd>``; an error naming a file there (a disk
    full) is told, and recorded in run.json, with the path the user gave."""
    from cowbench.errors import RunFailed

    def full(self: Any, name: str) -> None:
        raise OSError(28, "No space left on device", str(self.rd.path / "predicted.csv"))

    monkeypatch.setattr(cowbench.runner._Run, "step", full)
    with pytest.raises(RunFailed) as err:
        run_scenario(parse_scenario(small_dict()), tmp_path / "r", "sim")
    reason = json.loads((tmp_path / "r" / "run.json").read_text())["reason"]
    assert reason == f"No space left on device: {tmp_path / 'r' / 'predicted.csv'}"
    assert "/proc/" not in str(err.value) and str(tmp_path / "r" / "predicted.csv") in \
        str(err.value)


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


@pytest.mark.real
@needs_tools
def test_the_drift_block_names_the_run_directory_as_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    """The drift is measured in the held run directory (its ``/proc/<pid>/fd/<fd>``); run.json
    records it by the path the user gave."""
    import cowbench.drift

    seen: list[Path] = []

    def drift(_s: Any, run_dir: Path, *_a: Any) -> dict[str, Any]:
        seen.append(run_dir)
        return {"measured": True, "dir": str(run_dir),
                "profiles": [{"dir": str(run_dir / "x")}]}

    monkeypatch.setattr(cowbench.drift, "run_drift", drift)
    run_scenario(parse_scenario(small_dict()), tmp_path / "r", "both")
    assert [str(p).startswith("/proc/") for p in seen] == [True]
    block = json.loads((tmp_path / "r" / "run.json").read_text())["drift"]
    assert block == {"measured": True, "dir": str(tmp_path / "r"),
                     "profiles": [{"dir": str(tmp_path / "r" / "x")}]}


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


# -- finding 2: umask 000 ------------------------------------------------------------------------

def _writable_by_others(top: Path) -> list[str]:
    """Everything under ``top`` (and ``top``) that group or others may write (symlinks have no
    mode of their own)."""
    return [f"{p.stat(follow_symlinks=False).st_mode & 0o7777:o} {p}"
            for p in [top, *top.rglob("*")]
            if not p.is_symlink() and p.stat(follow_symlinks=False).st_mode & 0o022]


def _cli_under_umask_0(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cowbench", *args], umask=0, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(cowbench.__file__).parent
                                                               .parent)})


def _sweep_file(tmp_path: Path, backend: str) -> Path:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    sweep = {"scenario": "s.yaml", "grid": {"strategy.cluster_size": ["64KiB", "128KiB"]},
             "seeds": 1, "backend": backend}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return tmp_path / "sweep.yaml"


@pytest.mark.slow
def test_under_umask_000_nothing_a_run_or_sweep_creates_is_writable_by_others(
        tmp_path: Path) -> None:
    """Finding 2: ``umask 000; cowbench run`` made the run directory and raw/'s folders 0777 and
    its files 0666 (another user then swapped a raw/ folder for a symlink). Run and sweep, as
    the CLI, started with umask 000."""
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    run = _cli_under_umask_0("run", str(tmp_path / "s.yaml"), "--backend", "sim",
                             "--uncalibrated", "--out", str(tmp_path / "new" / "run"))
    assert run.returncode == 0, run.stderr
    assert any((tmp_path / "new" / "run" / "raw").iterdir())  # fio's null runs: raw/ records
    assert _writable_by_others(tmp_path / "new") == []
    sweep = _cli_under_umask_0("sweep", str(_sweep_file(tmp_path, "sim")), "--uncalibrated",
                               "--scheduler", "inprocess", "--out", str(tmp_path / "sw"))
    assert sweep.returncode == 0, sweep.stderr
    assert len(list((tmp_path / "sw" / "points").iterdir())) == 2
    assert _writable_by_others(tmp_path / "sw") == []


def test_run_scenario_called_under_umask_000_creates_nothing_writable_by_others(
        tmp_path: Path) -> None:
    """The API (a notebook's run_scenario) has no CLI entry to set the umask: the run does."""
    old = os.umask(0)
    try:
        run_scenario(parse_scenario(small_dict()), tmp_path / "run", "sim")
        assert os.umask(0) & 0o022 == 0o022  # kept for the rest of the process: see atomic.py
    finally:
        os.umask(old)
    assert _writable_by_others(tmp_path / "run") == []


@pytest.mark.real
@needs_tools
def test_under_umask_000_a_real_run_creates_nothing_writable_by_others(
        tmp_path: Path, no_leaks: None) -> None:
    """fio's JSON, logs and iologs, qemu's records, the parquet files: with the real backend."""
    d = small_dict()
    for wl in d["workloads"].values():
        wl["write_iolog"] = True
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    run = _cli_under_umask_0("run", str(tmp_path / "s.yaml"), "--backend", "both",
                             "--uncalibrated", "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    assert any((tmp_path / "run").glob("raw/*-fio-*/output.json"))
    assert _writable_by_others(tmp_path / "run") == []


# -- finding 3: a sweep's --out ------------------------------------------------------------------

def test_sweep_out_gets_the_checks_of_run_out(tmp_path: Path) -> None:
    """Finding 3: ``sweep --out`` took a symlink and a parent another user owns, that ``run
    --out`` refuses; now both refuse them alike (exit 2, one clear line, nothing written)."""
    sweep = _sweep_file(tmp_path, "sim")
    with shared_dir() as shared:
        target = tmp_path / "target"
        target.mkdir()
        (shared / "planted").symlink_to(target)
        theirs = shared / "theirs"
        theirs.mkdir()
        give(theirs)
        for out, why in ((shared / "planted", "is a symlink"),
                         (theirs / "sw", f"owned by uid {NOBODY}")):
            for command in (["run", str(tmp_path / "s.yaml"), "--backend", "sim"],
                            ["sweep", str(sweep), "--scheduler", "inprocess"]):
                r = cowbench_cli(*command, "--uncalibrated", "--out", str(out))
                assert r.code == 2 and why in r.stderr, (command, r.stderr)
                assert "Traceback" not in r.stderr
        assert os.listdir(target) == [] and os.listdir(theirs) == []


@pytest.mark.slow
def test_a_sweep_whose_parent_is_swapped_redirects_nothing(
        tmp_path: Path, decoy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 3's exploit, made deterministic: once the points have run, the sweep
    directory's parent is swapped for a symlink to a directory holding another sweep.json and
    summary.csv; the sweep writes its summary and final sweep.json into its own directory,
    warns where that is, and leaves the decoy as it was."""
    import cowbench.sweep

    for name in ("sweep.json", "summary.csv", "summary.parquet"):
        (decoy / name).write_text(f"someone else's {name}\n")
    before = _tree(decoy)
    q = tmp_path / "q"
    q.mkdir()
    original = cowbench.sweep.write_summary

    def swap_then_summarise(*args: Any, **kwargs: Any) -> Any:
        _swap_parent(q, decoy.parent)
        return original(*args, **kwargs)

    monkeypatch.setattr(cowbench.sweep, "write_summary", swap_then_summarise)
    r = cowbench_cli("sweep", str(_sweep_file(tmp_path, "sim")), "--scheduler", "inprocess",
                     "--uncalibrated", "--out", str(q / "r"))
    assert r.code == 0, r.stderr
    assert _tree(decoy) == before
    real = tmp_path / "q.real" / "r"
    meta = json.loads((real / "sweep.json").read_text())
    assert meta["status"] == "ok" and (real / "summary.csv").is_file()
    warning = " ".join(r.stderr.split())
    assert f"warning: {q / 'r'} no longer leads to this sweep's directory" in warning
    assert f"its files are in {real}" in warning
    assert f"sweep directory: {real}" in " ".join(r.stdout.split())  # read back from there
    assert "I/O figures are uncalibrated" in r.stdout  # its points' run.json, read there
