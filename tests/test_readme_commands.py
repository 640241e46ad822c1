"""Every command the README shows is run by a test exactly as written (the house rule), and
every command of the pages under docs/ too.

:func:`readme_commands` finds every command line of README.md: in fenced code blocks (plain,
``sh`` or ``console``: the ``$ `` lines of a block that has them, else every line, a trailing
``\\`` joining the next), in indented code blocks, and in inline code that invokes something
(``cowbench``, ``.venv/bin/...``, ``./scripts/...``, ``dask``) with a path. A block that is
not commands is fenced ``text``, ``yaml`` or ``python``; a command with a placeholder in capitals
(``cowbench show RUN_DIR``) is syntax, not a command. :data:`RUN_BY` names, for each command,
the test that runs it as written; a README command it does not name fails here, and so does a
name that is no longer in the README or a test that does not exist. Commands that take minutes
(the accuracy and speed benchmarks) are in benchmarks/README.md, not here.

Two tests at the end run the commands that no other test did: the run shown under "What a run
looks like" and the fleet year.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from cowbench.profile_cache import fingerprint, store

from .clirun import cowbench_line
from .conftest import needs_tools
from .test_repeat_real import a_profile, just_made

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = ".ci/run"

#: each README command -> the test that runs it exactly as written (``file::function``), or
#: CI's script for the two that are the suite and the clean-root check themselves
RUN_BY = {
    "./scripts/quickstart.sh":
        "test_quickstart.py::test_quickstart_exactly_as_the_readme_writes_it",
    "./scripts/test.sh": CI,
    "./scripts/fresh-check.sh": CI,
    # collected with --collect-only: running it is the fast loop itself
    '.venv/bin/python -m pytest -n auto -m "not real and not slow"':
        "test_markers.py::test_the_readme_fast_loop_leaves_out_real_and_slow_tests",
    "cowbench run scenarios/quickstart.yaml --backend both --out results/qs":
        "test_readme_commands.py::test_the_run_shown_as_the_readme_writes_it",
    "cowbench fio-check scenarios/jobs/db.fio":
        "test_jobfile.py::test_fio_check_as_the_readme_writes_it",
    ".venv/bin/cowbench calibrate --dir results --out results/profile.json --runtime 0.3 "
    "--rounds 2 --exports 2":
        "test_calibrate.py::test_calibrate_as_the_readme_writes_it",
    ".venv/bin/cowbench run scenarios/io-holdout.yaml --backend sim --profile "
    "results/profile.json": "test_calibrate.py::test_calibrate_as_the_readme_writes_it",
    "cowbench run scenarios/quickstart.yaml --repeat 3 --out results/qs-3":
        "test_repeat_real.py::test_repeat_as_the_readme_writes_it",
    "cowbench calibrate --check results/profile.json":
        "test_repeat_real.py::test_check_as_the_readme_writes_it",
    "cowbench sweep sweeps/capacity.yaml --out results/capacity":
        "test_readme_reports.py::test_the_readme_sweep_and_report_commands_run_as_written",
    "cowbench report results/capacity":
        "test_readme_reports.py::test_the_readme_sweep_and_report_commands_run_as_written",
    "cowbench validate sweeps/strategies.yaml":
        "test_readme_reports.py::test_the_readme_sweep_and_report_commands_run_as_written",
    "cowbench sweep sweeps/strategies.yaml --dry-run":
        "test_readme_reports.py::test_the_readme_sweep_and_report_commands_run_as_written",
    "cowbench validate sweeps/capacity.yaml":
        "test_readme_reports.py::test_the_readme_sweep_and_report_commands_run_as_written",
    "cowbench run scenarios/fleet-year.yaml --backend sim":
        "test_readme_commands.py::test_the_fleet_year_as_the_readme_writes_it",
    "cowbench run scenarios/fleet-small.yaml --out results/fleet-small":
        "test_api.py::test_the_readme_fleet_commands_run_as_written",
    "cowbench show results/fleet-small":
        "test_api.py::test_the_readme_fleet_commands_run_as_written",
    "dask scheduler --host 127.0.0.1 --port 8786 --no-dashboard":
        "test_sweep_cluster.py::test_a_sweep_on_workers_that_cannot_see_the_client_directory",
    "dask worker tcp://127.0.0.1:8786 --nthreads 1 --no-dashboard":
        "test_sweep_cluster.py::test_a_sweep_on_workers_that_cannot_see_the_client_directory",
    "cowbench sweep sweeps/quickstart-strategies.yaml --scheduler tcp://127.0.0.1:8786 --out "
    "results/qs-cluster":
        "test_sweep_cluster.py::test_a_sweep_on_workers_that_cannot_see_the_client_directory",
}

COMMAND_BLOCKS = ("", "sh", "console", "bash")
STARTS = ("cowbench ", ".venv/bin/", "./scripts/", "dask ", "python")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]+\b")


def _block_commands(lines: list[str]) -> list[str]:
    if any(ln.startswith("$ ") for ln in lines):
        return [ln[2:].strip() for ln in lines if ln.startswith("$ ")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [" ".join(ln.split()) for ln in joined.splitlines() if ln.strip()]


def _fenced(text: str) -> tuple[list[str], str]:
    """The commands of the fenced blocks, and the text with the blocks left out."""
    found: list[str] = []
    rest: list[str] = []
    block: list[str] | None = None
    lang = ""
    for line in text.splitlines():
        if line.startswith("```"):
            if block is None:
                block, lang = [], line[3:].strip()
            else:
                if lang in COMMAND_BLOCKS:
                    found += _block_commands(block)
                block = None
        elif block is not None:
            block.append(line)
        else:
            rest.append(line)
    assert block is None, "an unclosed code fence"
    return found, "\n".join(rest)


def readme_commands(text: str = README) -> list[str]:
    """Every command line the README shows (placeholders in capitals are syntax, left out)."""
    found, prose = _fenced(text)
    lines = prose.splitlines()
    for i, line in enumerate(lines):  # indented code blocks: four spaces after a blank line
        if line.startswith("    ") and line.strip().startswith(STARTS) and (
                i == 0 or not lines[i - 1].strip() or lines[i - 1].startswith("    ")):
            found.append(" ".join(line.split()))
    for span in re.findall(r"`([^`\n]+)`", prose):
        words = span.split()
        if span.startswith(STARTS) and not span.endswith("/") and (
                len(words) == 1 and "/" in span or any(
                    "/" in w or w.endswith((".yaml", ".py", ".sh")) for w in words[1:])):
            found.append(span)
    return [c for c in dict.fromkeys(found) if not PLACEHOLDER.search(c)]


def test_every_readme_command_names_the_test_that_runs_it() -> None:
    """The README's commands, and those of the pages under docs/ it sends readers to."""
    shown = list(dict.fromkeys(readme_commands() + [
        c for page in sorted((ROOT / "docs").glob("*.md"))
        for c in readme_commands(page.read_text())]))
    assert [c for c in shown if c not in RUN_BY] == [], "README commands no test runs"
    assert [c for c in RUN_BY if c not in shown] == [], "no longer in the README"


def test_every_yaml_example_of_the_readme_and_docs_is_yaml() -> None:
    """A reader copies them: each ```yaml block parses (the sweep section's zip example, its
    flow list of unquoted key paths holding '[', did not)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [(page.name, block) for page in pages
              for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)]
    assert len(blocks) >= 6
    for name, block in blocks:
        try:
            yaml.safe_load(block)
        except yaml.YAMLError as err:
            raise AssertionError(f"{name}: a YAML example that is not YAML: {err}") from None


@pytest.mark.parametrize("where", sorted(set(RUN_BY.values())))
def test_each_named_test_exists(where: str) -> None:
    if where == CI:
        ci = (ROOT / CI).read_text().splitlines()
        assert [c for c, w in RUN_BY.items() if w == CI and c not in ci] == []
        return
    file, function = where.split("::")
    tree = ast.parse((ROOT / "tests" / file).read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert function in names, where


def test_the_finder_reads_every_form_the_readme_uses() -> None:
    text = ("x\n\n```\n$ cowbench run a.yaml\nprinted\n```\n\n```sh\n.venv/bin/python b.py \\\n"
            "    --x 1\n```\n\n```text\ncowbench/  not a command\n```\n\n    cowbench show r/x\n\n"
            "`cowbench calibrate --matrix quick` `cowbench run s/f.yaml --backend sim` "
            "`./scripts/t.sh` `.venv/bin/` `cowbench show RUN_DIR`\n")
    assert readme_commands(text) == ["cowbench run a.yaml", ".venv/bin/python b.py --x 1",
                                     "cowbench show r/x", "cowbench run s/f.yaml --backend sim",
                                     "./scripts/t.sh"]


@pytest.fixture
def in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the repository's scenarios, as a user's checkout has."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _shown(heading: str) -> list[str]:
    """The first plain fenced block under ``heading``, as lines."""
    block = re.search(r"```\n(.*?)```", README[README.index(heading):], re.S)
    assert block, heading
    return block.group(1).splitlines()


@needs_tools
@pytest.mark.real
@pytest.mark.slow
def test_the_run_shown_as_the_readme_writes_it(in_a_checkout: Path, no_leaks: None) -> None:
    """With a cached profile of this storage, so no calibration runs first."""
    block = _shown("## What a run looks like")
    line = block[0].removeprefix("$ ")
    assert line in RUN_BY
    out = in_a_checkout / "results" / "qs"
    store(just_made(a_profile(in_a_checkout, fingerprint(out / "work"))))
    ran = cowbench_line(line)
    assert ran.code == 0, ran.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "ok" and meta["backends"] == ["sim", "real"]
    printed = ran.stdout.splitlines()
    fixed = [s for s in block[1:] if s.startswith((  # lines that do not depend on the machine
        "    predicted vs measured", "comparison from one real run", "backend:"))]
    assert len(fixed) == 3
    words = " ".join(ran.stdout.split())  # the table's title wraps to the table's width
    for shown in fixed:
        assert " ".join(shown.split()) in words, shown
    for start in ("I/O figures rest on the quick calibration profile ",  # then this machine's
                  "drift since the calibration: "):
        assert any(s.startswith(start) for s in block), start
        assert any(p.startswith(start) for p in printed), (start, printed)
    assert f"run directory: {out}" in printed
    assert f"comparison:    {out / 'comparison.csv'}" in printed


@pytest.mark.slow
def test_the_fleet_year_as_the_readme_writes_it(in_a_checkout: Path) -> None:
    line = "cowbench run scenarios/fleet-year.yaml --backend sim"
    assert f"`{line}`" in README
    ran = cowbench_line(line)
    assert ran.code == 0, ran.stderr
    (run,) = (in_a_checkout / "results").iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok" and meta["backends"] == ["sim"]
    assert re.search(r"^fleet: \d+ VMs arrived, \d+ rejected \(NoValidHost\) on 100 host\(s\)",
                     ran.stdout, re.M), ran.stdout
