"""The commands that come back to a finished run directory (``show``, ``report``,
``repredict``, ``fio-json``) hold it by its descriptor, as ``run`` does (SRE follow-up).

Under sudo the run directory's owner is the invoking user, who may put a symlink or a
hardlink where cowbench's own file was, or swap ``report/`` or ``fio-json/`` for a symlink
between cowbench's check and its write. Nothing of it may make root read for them a file
they could not read (the marker of a root-only file never printed), nor write anywhere but
the directory named. A directory another user may write into is refused by the commands that
write in it, as ``--out`` refuses one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import cowbench.report as report_module

from .clirun import Ran, cowbench
from .conftest import small_dict
from .hostile import give, shared_dir
from .test_fault_readable import MARKER, SUDO, _secret


@pytest.fixture
def shared() -> Iterator[Path]:
    with shared_dir() as d:
        yield d


def _run(where: Path) -> Path:
    """A finished model run in ``where/r``, made as root under sudo (the user's results)."""
    s = where / "s.yaml"
    s.write_text(yaml.safe_dump(small_dict()))
    out = where / "r"
    ran = cowbench("run", str(s), "--backend", "sim", "--out", str(out), env=SUDO)
    assert ran.code == 0, ran
    return out


def _root_only(where: Path) -> Path:
    d = where / "rootonly"
    d.mkdir(mode=0o700)
    return _secret(d)


def _refused(ran: Ran, *why: str) -> None:
    assert ran.code == 2, ran
    for w in why:
        assert w in ran.stderr, ran.stderr
    assert MARKER not in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("command", ["show", "repredict", "fio-json"])
def test_a_symlink_planted_for_the_scenario_is_refused_unread(shared: Path,
                                                              command: str) -> None:
    run = _run(shared)
    (run / "scenario.yaml").unlink()
    (run / "scenario.yaml").symlink_to(_root_only(shared))
    _refused(cowbench(command, str(run), env=SUDO), f"{run}/scenario.yaml", "symlink")


@pytest.mark.parametrize("command", ["show", "repredict", "fio-json"])
def test_a_symlink_planted_for_run_json_is_refused_unread(shared: Path, command: str) -> None:
    run = _run(shared)
    secret = _root_only(shared)
    secret.write_text('{"status": "' + MARKER + '"}\n')
    (run / "run.json").unlink()
    (run / "run.json").symlink_to(secret)
    _refused(cowbench(command, str(run), env=SUDO), f"{run}/run.json", "symlink")


def test_a_hardlink_to_a_file_the_user_cannot_read_is_refused_unread(shared: Path) -> None:
    run = _run(shared)
    secret = _root_only(shared)
    secret.write_text('{"status": "' + MARKER + '"}\n')
    (run / "run.json").unlink()
    os.link(secret, run / "run.json")  # root may; a user may where protected_hardlinks is off
    _refused(cowbench("show", str(run), env=SUDO), f"{run}/run.json",
             "not readable by the invoking user (uid 65534)")


def test_a_symlink_planted_for_the_records_is_refused(shared: Path) -> None:
    run = _run(shared)
    decoy = shared / "other.parquet"
    (run / "predicted.parquet").rename(decoy)
    (run / "predicted.parquet").symlink_to(decoy)
    _refused(cowbench("show", str(run), env=SUDO), f"{run}/predicted.parquet", "symlink")


@pytest.mark.parametrize("command", ["report", "fio-json", "repredict"])
def test_a_run_directory_others_may_write_is_refused_by_what_writes_in_it(
        shared: Path, command: str) -> None:
    run = _run(shared)
    run.chmod(0o777)
    before = _files(run)
    _refused(cowbench(command, str(run), env=SUDO), f"{run}: {run} is writable by every user",
             "refused")
    assert _files(run) == before


def test_show_reads_a_run_directory_others_may_write(shared: Path) -> None:
    run = _run(shared)
    run.chmod(0o777)
    ran = cowbench("show", str(run), env=SUDO)
    assert ran.code == 0, ran
    assert f"{run}: " in ran.stdout and "/proc/" not in ran.stdout


def test_fio_json_never_writes_through_a_symlink_at_its_folder(shared: Path) -> None:
    run = _run(shared)
    decoy = shared / "decoy"
    decoy.mkdir()
    (run / "fio-json").symlink_to(decoy)
    _refused(cowbench("fio-json", str(run), env=SUDO), f"{run}/fio-json", "refused")
    assert _files(decoy) == []


def test_fio_json_writes_into_the_run_as_before(shared: Path) -> None:
    run = _run(shared)
    ran = cowbench("fio-json", str(run), env=SUDO)
    assert ran.code == 0, ran
    assert f"in {run}/fio-json" in ran.stdout
    assert (run / "fio-json").is_dir() and not (run / "fio-json").is_symlink()
    assert sorted(p.name for p in (run / "fio-json").iterdir()) == \
        sorted(f"{vm['name']}.json" for vm in small_dict()["vms"])


#: a user neither root nor the invoking one (``SUDO``'s nobody)
OTHER = 4321


def test_a_symlink_another_user_could_have_placed_is_refused(shared: Path) -> None:
    """A link as the run directory is followed only if no other user could have put it there
    or swapped it (``HeldDir.open_existing``): another user's, or one in a directory others
    may write in (not sticky), or a loop, is refused, naming why."""
    run = _run(shared)
    theirs = shared / "theirs"
    theirs.symlink_to(run)
    os.chown(theirs, OTHER, OTHER, follow_symlinks=False)  # neither the user's nor root's
    _refused(cowbench("report", str(theirs), env=SUDO),
             f"{theirs}: is a symlink of uid {OTHER}, which another user could have put there")
    assert not (run / "report").exists()
    open_dir = shared / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # everyone may rename or replace names here: no sticky bit
    (open_dir / "link").symlink_to(run)
    _refused(cowbench("show", str(open_dir / "link"), env=SUDO),
             "in a directory another user could swap it in", "writable by every user")
    (shared / "a").symlink_to("b")
    (shared / "b").symlink_to("a")
    _refused(cowbench("show", str(shared / "a"), env=SUDO), "followed after 8 others")


def test_the_users_own_symlink_to_a_run_is_followed(shared: Path) -> None:
    """``results/latest -> quickstart-...``, the user's (under sudo: the invoking user's,
    nobody's here) in a directory only root writes in, and root's link to it: ``show`` and
    ``report`` read the run it points to, and ``report`` writes into that run."""
    run = _run(shared)
    (shared / "latest").symlink_to("r")
    give(shared / "latest")
    (shared / "again").symlink_to(shared / "latest")
    shown = cowbench("show", str(shared / "again"), env=SUDO)
    assert shown.code == 0 and "status ok" in shown.stdout, shown
    made = cowbench("report", str(shared / "latest"), env=SUDO)
    assert made.code == 0, made
    assert (run / "report").is_dir() and (shared / "latest").resolve() == run


def _quick_notebook(monkeypatch: pytest.MonkeyPatch, during: Any = None) -> None:
    """``cowbench report`` without a kernel: the executed notebook is an empty one, written
    where the report asked; ``during()`` runs while it "executes" (a swap)."""
    import nbformat

    def execute(_source: Path, out: Path, _params: dict[str, Any], _work: Path,
                _progress: Any = None) -> Any:
        nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
        nbformat.write(nb, out)  # type: ignore[no-untyped-call]
        if during is not None:
            during()
        return nb

    monkeypatch.setattr(report_module, "execute_notebook", execute)


def _reported_with_decoy(shared: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> tuple[Path, Path, list[str]]:
    """A run reported once, and a decoy directory that looks like a report (its files)."""
    run = _run(shared)
    _quick_notebook(monkeypatch)
    assert cowbench("report", str(run), env=SUDO).code == 0
    decoy = shared / "decoy"
    decoy.mkdir()
    (decoy / report_module.MARKER).write_text("looks like a report\n")
    before = _files(decoy)
    return run, decoy, before


@pytest.mark.slow
def test_report_refuses_a_report_folder_swapped_for_a_symlink(
        shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, decoy, before = _reported_with_decoy(shared, monkeypatch)
    (run / "report").rename(shared / "old-report")
    (run / "report").symlink_to(decoy)
    _refused(cowbench("report", str(run), env=SUDO), f"{run}/report")
    assert _files(decoy) == before
    assert (run / "report").is_symlink()  # not the report's to remove


@pytest.mark.slow
def test_report_swapped_mid_report_is_put_back_and_nothing_written_there(
        shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, decoy, before = _reported_with_decoy(shared, monkeypatch)

    def swap() -> None:
        (run / "report").rename(shared / "old-report")
        (run / "report").symlink_to(decoy)

    _quick_notebook(monkeypatch, swap)
    _refused(cowbench("report", str(run), env=SUDO), f"{run}/report")
    assert _files(decoy) == before
    assert (run / "report").is_symlink()


def test_a_run_directory_swapped_mid_report_redirects_nothing(
        shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(shared)
    decoy = shared / "decoy"
    decoy.mkdir()
    (decoy / "run.json").write_text("someone else's\n")
    before = _files(decoy)

    def swap() -> None:
        run.rename(shared / "r.real")
        run.symlink_to(decoy)

    _quick_notebook(monkeypatch, swap)
    ran = cowbench("report", str(run), env=SUDO)
    assert ran.code == 0, ran
    assert _files(decoy) == before
    assert (shared / "r.real" / "report" / "report.html").is_file()
    assert (shared / "r.real" / "report.html").is_file()
    assert "/proc/" not in ran.stdout + ran.stderr


def _sweep(where: Path) -> Path:
    """A finished model sweep of one point in ``where/sw``, made as root under sudo."""
    (where / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    sweep = {"scenario": "s.yaml", "grid": {"strategy.cluster_size": ["64KiB"]},
             "seeds": 1, "backend": "sim"}
    (where / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    out = where / "sw"
    ran = cowbench("sweep", str(where / "sweep.yaml"), "--out", str(out), env=SUDO)
    assert ran.code == 0, ran
    return out


@pytest.mark.slow
def test_a_symlink_planted_for_a_sweeps_summary_is_refused_unread(shared: Path) -> None:
    sweep = _sweep(shared)
    secret = _root_only(shared)
    secret.write_text(f"point,status\n{MARKER},ok\n")
    (sweep / "summary.csv").unlink()
    (sweep / "summary.csv").symlink_to(secret)
    _refused(cowbench("show", str(sweep), env=SUDO), f"{sweep}/summary.csv")


@pytest.mark.slow
def test_a_sweep_point_leading_out_of_the_sweep_is_refused(shared: Path) -> None:
    sweep = _sweep(shared)
    (shared / "elsewhere").mkdir()
    other = _run(shared / "elsewhere")  # a run of root's the user could not have read
    meta = json.loads((sweep / "sweep.json").read_text())
    meta["points"][0]["dir"] = f"../elsewhere/{other.name}"
    (sweep / "sweep.json").write_text(json.dumps(meta))
    _refused(cowbench("show", str(sweep), env=SUDO), "leads out of the sweep directory")
