"""The README's sweep and report commands ("Reading a report", "Running a sweep"), run exactly
as written from a fresh directory holding the repository's scenarios/ and sweeps/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from .clirun import cowbench_line
from .test_cli import ROOT

README = (ROOT / "README.md").read_text()


def blocks(section: str) -> list[tuple[str, list[str]]]:
    """The fenced code blocks of ``section``: (language, lines)."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in section.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
                out.append((line[3:].strip(), current))
            else:
                current = None
        elif current is not None:
            current.append(line)
    return out


def commands(heading: str) -> tuple[list[str], list[str]]:
    """The ``$ `` command lines of the plain code blocks under ``heading``, and the other
    lines of those blocks (what the README says they print)."""
    section = README[README.index(heading):].split("\n## ", 1)[0]
    lines = [ln for lang, block in blocks(section) if not lang and any(
        x.startswith("$ ") for x in block) for ln in block]
    return ([ln[2:] for ln in lines if ln.startswith("$ ")],
            [ln for ln in lines if not ln.startswith("$ ")])


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("scenarios", "sweeps"):
        shutil.copytree(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_the_readme_sweep_and_report_commands_run_as_written(fresh: Path) -> None:
    sweep_cmds, _ = commands("## Running a sweep")
    report_cmds, shown = commands("## Reading a report")
    assert "cowbench sweep sweeps/strategies.yaml --dry-run" in sweep_cmds
    assert report_cmds[-1] == "cowbench report results/capacity"
    printed: dict[str, str] = {}
    for line in dict.fromkeys([*sweep_cmds, *report_cmds]):
        ran = cowbench_line(line)
        assert ran.code == 0, (line, ran.stderr)
        printed[line] = ran.stdout
    # the dry run lists every cell: 15 of the grid and 9 explicit points, and runs nothing
    dry = printed["cowbench sweep sweeps/strategies.yaml --dry-run"]
    assert "24 point(s) in 24 cell(s); nothing run" in dry
    # a chain of one layer would be qcow2_overlay again: the chains are four deep
    assert "snapshot_chain, chain depth 4, cluster 64 KiB, extended L2 off; seeds 1" in dry
    assert "cell  21: full_copy; seeds 1" in dry and "internal_snapshot, cluster 16 KiB, " \
        "extended L2 off" in dry and "internal_snapshot, cluster 16 KiB, extended L2 on" not in dry
    assert not (fresh / "results" / "strategies").exists()
    for line in shown:  # what the README says report prints, it prints
        assert line in printed["cowbench report results/capacity"].splitlines(), line
    ttf = pd.read_csv(fresh / "results" / "capacity" / "time_to_full.csv")
    assert list(ttf["label"]) == ["capacity 8 GiB, ratio 1.5", "capacity 8 GiB, ratio 3",
                                  "capacity 12 GiB, ratio 1.5", "capacity 12 GiB, ratio 3"]
    assert (ttf["replications"] == 10).all() and "median_d" in ttf.columns
    report = fresh / "results" / "capacity" / "report"
    assert (report / "report.html").is_file() and (report / "figures" /
                                                   "first-host-full.png").is_file()
