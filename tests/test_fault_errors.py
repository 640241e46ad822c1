"""One-line errors everywhere (issue 20): every command turns any failure into ``error:``
lines and exit 1 (a failure) or 2 (bad input), never a traceback, and never leaves run.json or
sweep.json saying ``running``. In-process through ``cowbench.cli.main``, as the console script
runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench.runner import _Run

from .clikit import assert_one_line, cli
from .conftest import small_dict


def _scenario(tmp_path: Path, **overrides: Any) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(small_dict(**overrides)))
    return p


@pytest.mark.parametrize("seed, needle", [
    ("1e23", "Invalid value for '--seed'"),
    ("-1", "greater than or equal to 0"),
    (str(2**63), "less than or equal to"),
])
def test_a_bad_seed_is_one_line_and_creates_nothing(tmp_path: Path, seed: str,
                                                    needle: str) -> None:
    out = tmp_path / "out"
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out),
            f"--seed={seed}")
    assert_one_line(r, 2, needle, "(see ")
    assert not out.exists()


def test_the_library_refuses_a_seed_that_would_not_load_again(tmp_path: Path) -> None:
    from cowbench.errors import UsageError
    from cowbench.runner import run_scenario
    from cowbench.scenario import parse_scenario

    with pytest.raises(UsageError, match="--seed must be a whole number from 0"):
        run_scenario(parse_scenario(small_dict()), tmp_path / "out", "sim", seed=-1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [3.7, "3", True, -1, 2**63])
def test_simulate_refuses_a_seed_the_scenario_would_not_take(seed: object) -> None:
    """``simulate(seed=3.7)`` ran as seed 3 and ``seed="3"`` was taken (a researcher's
    replications keyed by the seed they passed would not be the ones run)."""
    from cowbench import simulate
    from cowbench.errors import UsageError

    with pytest.raises(UsageError, match=f"seed must be a whole number from 0 to 2\\*\\*63 - 1, "
                                         f"not {seed!r}"):
        simulate(small_dict(), seed=seed)  # type: ignore[arg-type]


def test_out_under_proc_is_one_line(tmp_path: Path) -> None:
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out",
            "/proc/cowbench-no/run")
    assert_one_line(r, 2, "cannot create the run directory there")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Any:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only filesystem needs root")
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_out_on_a_read_only_filesystem_is_one_line(tmp_path: Path, read_only_dir: Path) -> None:
    for out in (read_only_dir, read_only_dir / "run"):  # the empty mount itself, or inside
        r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out))
        assert_one_line(r, 2, "cannot create the run directory there: Read-only file system")


@pytest.mark.parametrize("exc", [MemoryError(), ValueError("a bug"), RecursionError(),
                                 ZeroDivisionError("float floor division by zero")])
def test_any_error_during_a_run_is_recorded_and_one_line(tmp_path: Path, exc: BaseException,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cowbench.backends import get_backend

    def boom(*_a: Any, **_k: Any) -> None:
        raise exc

    monkeypatch.setattr(get_backend("sim"), "simulate", boom)
    out = tmp_path / "out"
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out))
    assert_one_line(r, 1, "run failed: ", type(exc).__name__, f"{out}/run.json")
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["reason"].startswith(type(exc).__name__)
    assert meta["end"] is not None


def test_manager_interval_zero_is_bad_input(tmp_path: Path) -> None:
    s = _scenario(tmp_path, nova={"image_cache": {"manager_interval_s": 0}})
    assert_one_line(cli("validate", str(s)), 2, "nova.image_cache.manager_interval_s")


def test_an_unexpected_error_in_any_command_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cowbench.cli

    def boom(*_a: Any, **_k: Any) -> None:
        raise KeyError("x")

    monkeypatch.setattr(cowbench.cli, "_load", boom)
    r = cli("validate", str(_scenario(tmp_path)))
    assert_one_line(r, 1, "internal error (KeyError)", "COWBENCH_DEBUG=1")


# -- sweeps ---------------------------------------------------------------------------------

def _sweep(tmp_path: Path) -> Path:
    _scenario(tmp_path)
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 2}))
    return p


@pytest.mark.parametrize("text", ['{"points": [', "[1, 2]", '{"points": 3}',
                                  '{"points": [1, 2]}', "\x00\xff"])
def test_a_damaged_sweep_json_is_one_line_and_left_alone(tmp_path: Path, text: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text(text, errors="surrogateescape")
    before = (out / "sweep.json").read_bytes()
    r = cli("sweep", str(_sweep(tmp_path)), "--out", str(out), "--scheduler", "inprocess")
    assert_one_line(r, 2, f"{out}")
    assert (out / "sweep.json").read_bytes() == before
    assert sorted(x.name for x in out.iterdir()) == ["sweep.json"]


@pytest.mark.slow  # a sweep: 1.5 s of CPU, 2.4-3.2 s wall
def test_a_sweep_that_fails_late_never_stays_running(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import cowbench.sweep

    def boom(*_a: Any, **_k: Any) -> pd.DataFrame:
        raise MemoryError

    monkeypatch.setattr(cowbench.sweep, "write_summary", boom)
    out = tmp_path / "out"
    r = cli("sweep", str(_sweep(tmp_path)), "--out", str(out), "--scheduler", "inprocess")
    assert_one_line(r, 1, "sweep failed: MemoryError")
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["status"] == "failed" and meta["reason"].startswith("MemoryError")


def test_an_os_error_anywhere_is_one_line(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. a storage_dir under a directory the user cannot traverse (EACCES from stat)."""
    import cowbench.cli

    def denied(*_a: Any, **_k: Any) -> None:
        raise PermissionError(13, "Permission denied", "/srv/locked/scratch")

    monkeypatch.setattr(cowbench.cli, "_load", denied)
    r = cli("validate", str(_scenario(tmp_path)))
    assert_one_line(r, 1, "Permission denied: /srv/locked/scratch")


def test_an_error_left_by_an_interrupt_ends_the_run_as_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal's exception is raised at whatever line runs, and can break what it cuts
    through (found: a SimPy resource's release half done, then "already triggered" in another
    process, the run recorded as failed). Once a signal has come, the error that ends the run
    is the interrupt's: run.json says ``interrupted``, the command exits 130."""
    def broken_by_the_signal(self: object, predicted: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here
        except BaseException:
            raise RuntimeError("<Release() object> has already been triggered") from None

    monkeypatch.setattr(_Run, "_backends", broken_by_the_signal)
    out = tmp_path / "out"
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out))
    assert r.code == 130, (r.err, r.out)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and "SIGINT" in meta["reason"]
    assert meta["signal"] == "SIGINT"

    def failing(self: object, predicted: object) -> None:
        raise RuntimeError("a bug")  # without a signal an error is a failure, as before

    monkeypatch.setattr(_Run, "_backends", failing)
    out2 = tmp_path / "out2"
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out2))
    assert r.code == 1, (r.err, r.out)
    assert json.loads((out2 / "run.json").read_text())["status"] == "failed"


def test_an_interrupted_run_names_its_signal_and_claims_no_integrity_it_did_not_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: run.json says ``interrupted`` and which signal: a field, ``signal`` (before:
    only within ``reason``'s words). A real run stopped before its checks checked nothing:
    its ``integrity`` says ``ok: null``, not ``ok: true`` over ``checks: {}`` (the SRE's
    Ctrl-C during the copy of the bases)."""
    from real.measure.integrity import Integrity

    def stopped_before_the_checks(self: _Run, predicted: object) -> None:
        self.integrity.add(Integrity())  # what the real backend's run starts with
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here

    monkeypatch.setattr(_Run, "_backends", stopped_before_the_checks)
    out = tmp_path / "out"
    r = cli("run", str(_scenario(tmp_path)), "--backend", "sim", "--out", str(out))
    assert r.code == 130, (r.err, r.out)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["signal"] == "SIGTERM"
    assert meta["reason"] == "interrupted by signal SIGTERM"
    assert meta["integrity"]["checks"] == {} and meta["integrity"]["ok"] is None


def test_integrity_is_ok_once_checked_and_found_sound() -> None:
    from cowbench.runner import _Checks
    from real.measure.integrity import Integrity

    done, bad, cut = Integrity(), Integrity(), Integrity()
    assert cut.report()["ok"] is None  # nothing checked yet
    done.compare()
    bad.problems.append("image:a: corrupt")
    assert done.report()["ok"] is True and bad.report()["ok"] is False
    runs = _Checks()
    runs.add(done)
    runs.add(cut)  # the second real run interrupted before its checks
    assert runs.report()["ok"] is None and [r["ok"] for r in runs.report()["runs"]] == [True, None]
    runs.add(bad)
    assert runs.report()["ok"] is False

