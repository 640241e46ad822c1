"""``cowbench --help``, ``validate`` and ``import cowbench`` stay light: the heavy libraries
(pandas, numpy, simpy, matplotlib, dask) and the backends are imported by the commands that use
them, never at import time. (How long ``--help`` takes is a benchmark's business, not a test's:
this checks the behaviour that makes it fast.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "simpy", "matplotlib", "dask", "distributed", "pyarrow", "sim",
         "real")

PROBE = """
import contextlib, io, json, sys
heavy = {heavy!r}
loaded = lambda: sorted(m for m in heavy if m in sys.modules)
seen = {{}}
import cowbench
seen["import cowbench"] = loaded()
from cowbench import load_scenario, simulate, run, load_results
seen["from cowbench import the API"] = loaded()
import cowbench.cli
seen["import cowbench.cli"] = loaded()
for args in (["--help"], ["run", "--help"], ["show", "--help"], ["validate", {scenario!r}]):
    sys.argv = ["cowbench", *args]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            cowbench.cli.main()
        except SystemExit as e:
            assert e.code in (0, None), (args, e.code)
    assert out.getvalue(), args
    seen["cowbench " + " ".join(args)] = loaded()
print(json.dumps(seen))
"""


def test_help_validate_and_import_load_no_heavy_module() -> None:
    code = PROBE.format(heavy=HEAVY, scenario=str(ROOT / "scenarios" / "quickstart.yaml"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert len(seen) == 7
    assert seen == {step: [] for step in seen}, seen


@pytest.mark.slow
def test_the_api_loads_the_model_when_it_is_used() -> None:
    """The other side: the lazy names do resolve, and the model arrives with ``simulate``."""
    code = ("import sys, cowbench\n"
            "assert 'sim' not in sys.modules\n"
            f"records = cowbench.simulate({small_dict()!r})\n"
            "print(type(records).__name__, 'sim' in sys.modules, "
            "sorted(set(records.backend)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["DataFrame", "True", "['sim']"]
