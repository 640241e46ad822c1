"""The README's fast loop, exactly as written, selects what it says (collected, not run: running
it is the loop itself)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_readme_fast_loop_leaves_out_real_and_slow_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    line = re.search(r'^\.venv/bin/python -m pytest -m "not real and not slow"$', readme, re.M)
    assert line, "the README shows the fast loop"
    argv = shlex.split(line.group(0))
    assert argv[:3] == [".venv/bin/python", "-m", "pytest"]
    out = subprocess.run([sys.executable, *argv[1:], "--collect-only", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = {x for x in out.stdout.splitlines() if "::" in x}
    assert "tests/test_units.py::test_helpers" in ids
    assert not any(x.startswith("tests/test_cli.py::test_quickstart_end_to_end") for x in ids)
    assert not any(x.startswith("tests/test_perf.py::test_fit_recovers") for x in ids)
    assert len(ids) > 300
