"""The README's fast loop, exactly as written, selects what it says (collected, not run: running
it is the loop itself)."""

import os
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
    line = re.search(r'^\.venv/bin/python -m pytest -n auto -m "not real and not slow"$', readme,
                     re.M)
    assert line, "the README shows the fast loop"
    argv = shlex.split(line.group(0))
    assert argv[:5] == [".venv/bin/python", "-m", "pytest", "-n", "auto"]
    out = subprocess.run([sys.executable, *argv[1:], "--collect-only", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = {x for x in out.stdout.splitlines() if "::" in x}
    assert "tests/test_units.py::test_helpers" in ids
    assert not any(x.startswith("tests/test_quickstart.py::test_quickstart_exactly") for x in ids)
    assert not any(x.startswith("tests/test_perf.py::test_fit_recovers") for x in ids)
    assert len(ids) > 300


def test_real_tests_and_module_fixture_users_keep_together_under_xdist(
        request: pytest.FixtureRequest) -> None:
    """``-n N --dist loadgroup`` (scripts/test.sh): every ``real`` test of this session is in
    the one group "real"; a test sharing a module-scoped fixture is in its module's group."""
    def group(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("xdist_group")
        return str(mark.args[0]) if mark is not None else None

    items = request.session.items
    xdist = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # the scheduler reads the node id
    for item in items:
        if item.get_closest_marker("real") is not None:
            assert group(item) == "real", item.nodeid
            assert not xdist or item.nodeid.endswith("@real"), item.nodeid
    mine = [i for i in items if i.nodeid.startswith("tests/test_markers.py::")]
    assert mine and all(group(i) is None for i in mine)  # nothing shared: spread freely
    users = [i for i in items if i.get_closest_marker("real") is None
             and "fitted" in getattr(i, "fixturenames", ())]
    assert all(group(i) == "tests/test_perf.py" for i in users), [i.nodeid for i in users]
