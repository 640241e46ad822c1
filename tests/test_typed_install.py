"""A user's script, outside the repository, type-checks against the installed cowbench.

The README promises that the package is typed (PEP 561: ``py.typed``), so mypy checks a
notebook's or a script's calls. That holds only if mypy finds the installed package: it reads
``.pth`` files that name a directory, but it runs no import hook, and setuptools' default
editable install of this flat layout is one (a ``__editable___cowbench_*_finder`` module).
scripts/bootstrap.sh therefore installs cowbench as a path (``editable_mode=compat``); before,
mypy said ``Cannot find implementation or library stub for module named "cowbench"`` for any
script outside the tree unless MYPYPATH named it.

Each check runs the venv's mypy (the one bootstrap installs) from a temporary directory outside
the repository, with neither MYPYPATH nor PYTHONPATH set, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The README's Python example, with the calls a notebook makes (typed, as mypy --strict wants).
GOOD = '''\
from __future__ import annotations

from pathlib import Path

import pandas as pd

from cowbench import (CowbenchError, RunResults, SweepResults, load_results, load_scenario,
                      make_report, run, run_sweep, simulate)


def study(out: Path) -> pd.DataFrame:
    scenario = load_scenario("study.yaml")
    records: pd.DataFrame = simulate(scenario, seed=2)
    outcome = run(scenario, out / "one", backend="sim")
    results = load_results(outcome.run_dir)
    if isinstance(results, RunResults):
        print(results.meta["status"], results.predicted.shape)
    sweep: SweepResults = run_sweep("sweep.yaml", out=out / "sweep", scheduler="inprocess")
    print(sweep.knobs, sweep.skipped, make_report(out / "sweep").figures)
    return records


try:
    study(Path("out"))
except CowbenchError as err:
    print(err)
'''

#: A wrong argument type on a correctly spelled name, and misspelled names: mypy must name
#: each (a module ``__getattr__`` typed ``Any`` had let every name pass).
BAD = '''\
import cowbench
from cowbench import load_scenario, simulat, simulate

simulate(load_scenario("study.yaml"), seed="3")
cowbench.rnu("study.yaml", "out")
'''


def _mypy(where: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                           "--cache-dir", str(where / ".mypy_cache"), script],
                          cwd=where, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.mark.slow
def test_a_script_outside_the_tree_type_checks_against_the_installed_package(
        tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    (tmp_path / "study.py").write_text(GOOD)
    (tmp_path / "wrong.py").write_text(BAD)
    good = _mypy(tmp_path, "study.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _mypy(tmp_path, "wrong.py")  # the cache of the first run makes this one quick
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout.splitlines() == [
        'wrong.py:2: error: Module "cowbench" has no attribute "simulat"; maybe "simulate"?  '
        '[attr-defined]',
        'wrong.py:4: error: Argument "seed" to "simulate" has incompatible type "str"; '
        'expected "int | None"  [arg-type]',
        'wrong.py:5: error: Module has no attribute "rnu"  [attr-defined]'],\
        bad.stdout + bad.stderr
