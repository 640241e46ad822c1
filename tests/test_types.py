"""mypy --strict over the three packages (pyproject.toml's [tool.mypy]: cowbench, sim, real).

A test, so that ``./scripts/test.sh`` runs it beside the other tests (pytest-xdist) instead
of alone before them: from a fresh clone (no .mypy_cache) it takes about 18 s of CPU on this
project's 2-core machine, which a worker spends while the other runs a fit or waits on fio.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_packages_type_check_strictly() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Success: no issues found"), out.stdout
