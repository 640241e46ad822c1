"""The README's fast loop, exactly as written, selects what it says (collected, not run: running
it is the loop itself)."""

import inspect
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import device, evenly, pytest_xdist_auto_num_workers, session_order

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


def test_the_serial_tests_keep_together_on_one_worker(request: pytest.FixtureRequest) -> None:
    """``-n N --dist loadgroup`` (scripts/test.sh): every ``quiet``, ``exact`` or ``serial``
    test of this session is ``real``; the ``serial`` ones are in the one group "serial" (one
    after another), no other test is; a test sharing a module-scoped fixture is in its
    module's group; the other real tests spread over the workers."""
    def group(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("xdist_group")
        return str(mark.args[0]) if mark is not None else None

    items = request.session.items
    xdist = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # the scheduler reads the node id
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if marks & {"quiet", "exact", "serial"}:
            assert "real" in marks, item.nodeid
        assert len(marks & {"quiet", "exact", "serial"}) <= 1, item.nodeid
        if "serial" in marks:
            assert group(item) == "serial", item.nodeid
            assert not xdist or item.nodeid.endswith("@serial"), item.nodeid
        else:
            assert group(item) != "serial", item.nodeid
    serial = ("tests/test_fault_interrupt.py", "tests/test_fault_sigkill.py",
              "tests/test_fio_watchdog.py", "tests/test_fault_sweep_leases.py")  # signals
    assert {i.nodeid.split("::")[0] for i in items if group(i) == "serial"} <= set(serial)
    for item in items:
        if item.nodeid.startswith(serial) and item.get_closest_marker("real") is not None:
            assert group(item) == "serial", item.nodeid
        if item.nodeid.startswith("tests/test_integration.py::"):  # real, spread
            assert group(item) is None, item.nodeid
    mine = [i for i in items if i.nodeid.startswith("tests/test_markers.py::")]
    assert mine and all(group(i) is None for i in mine)  # nothing shared: spread freely
    users = [i for i in items if i.get_closest_marker("real") is None
             and "fitted" in getattr(i, "fixturenames", ())]
    assert all(group(i) == "tests/test_perf.py" for i in users), [i.nodeid for i in users]
    oracles = [i for i in items if i.nodeid.startswith("tests/test_oracle.py::")]
    assert all(group(i) == "tests/test_oracle.py" for i in oracles)  # exact, its base shared


EXACT_MODULES = ("test_oracle.py", "test_oracle_qcow2.py", "test_oracle_discard.py",
                 "test_oracle_strategies.py", "test_ephemeral_base.py")


def test_the_exact_tests_run_qemu_io_and_qemu_img_alone() -> None:
    """What makes a real test ``exact`` (pyproject.toml): the modules marked so start no
    server, no fio and nothing timed; their outcome is the files qemu-io and qemu-img leave."""
    needle = "pytest.mark." + "exact"  # not this file
    exact = sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if needle in p.read_text())
    assert exact == sorted(EXACT_MODULES)
    for name in exact:
        text = (ROOT / "tests" / name).read_text()
        for word in ("qemu-nbd", "NbdExport", "fio", "run_scenario", "Popen", "sleep",
                     "monotonic", "timeout"):
            assert word not in text, (name, word)


def test_the_calibrations_orderings_are_measured_alone() -> None:
    """The README's calibration is not ``quiet``: nothing it asserts rests on its probes'
    rates. The orderings its probes must show (a first write slower than a rewrite, an L2 miss
    than a hit) are measured by a ``quiet`` test of their own, in rounds, each pair back to
    back: measured side by side beside another test they flipped (CI, 2026-12-03)."""
    from . import test_calibrate as c
    from . import test_probe_order as o

    def marks(test: object) -> set[str]:
        return {m.name for m in test.pytestmark}  # type: ignore[attr-defined]

    readme = c.test_calibrate_as_the_readme_writes_it
    assert "real" in marks(readme) and "quiet" not in marks(readme)
    alone = o.test_first_writes_and_l2_misses_are_slower_measured_alone
    assert {"real", "quiet"} <= marks(alone)
    assert "PAIR_ROUNDS" in inspect.getsource(alone) and "SLOWER_THAN" in inspect.getsource(alone)
    assert o.PAIR_ROUNDS >= 5


def test_a_quiet_test_waits_for_the_real_ones_running_and_goes_before_new_ones(
        tmp_path: Path) -> None:
    """The device lock (tests/conftest.py): the tests share it; a quiet one waits for those
    running, and a real test that comes while it waits starts only after it."""
    order: list[str] = []
    first = threading.Event()
    release = threading.Event()

    def hold(name: str, alone: bool, started: threading.Event | None = None,
             until: threading.Event | None = None) -> None:
        with device(tmp_path, alone=alone):
            order.append(name)
            if started is not None:
                started.set()
            if until is not None:
                until.wait(10)
            order.append(f"/{name}")

    reader = threading.Thread(target=hold, args=("real1", False, first, release))
    reader.start()
    assert first.wait(10)
    writer = threading.Thread(target=hold, args=("quiet", True))
    writer.start()
    time.sleep(0.3)  # the quiet one is waiting, its gate closed
    late = threading.Thread(target=hold, args=("real2", False))
    late.start()
    time.sleep(0.3)
    assert order == ["real1"]
    release.set()
    for t in (reader, writer, late):
        t.join(10)
    assert order == ["real1", "/real1", "quiet", "/quiet", "real2", "/real2"]


def test_a_quiet_test_that_shares_the_machine_lets_the_waiting_ones_start(
        tmp_path: Path) -> None:
    """A quiet test done with its measurements gives the machine back (``share_the_machine``):
    a real test waiting for the lock starts while the quiet one still runs, and a quiet one
    waiting still waits for both."""
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def quiet() -> None:
        with device(tmp_path, alone=True) as share:
            order.append("quiet")
            holding.set()
            time.sleep(0.3)  # the real one waits for the machine
            # said before, not after: the real thread may take the lock, run and finish
            # before share() returns here (CI, three workers on two cores: 2026-12-04)
            order.append("share")
            share()
            release.wait(10)
            order.append("/quiet")

    def real() -> None:
        with device(tmp_path, alone=False):
            order.append("real")

    first = threading.Thread(target=quiet)
    first.start()
    # the real one asks once the quiet one holds the machine (a fixed 0.1 s was not enough
    # for the quiet thread to take the lock with three workers on two cores: 2026-12-04)
    assert holding.wait(10)
    second = threading.Thread(target=real)
    second.start()
    second.join(10)
    assert not second.is_alive() and order == ["quiet", "share", "real"]
    release.set()
    first.join(10)
    assert order == ["quiet", "share", "real", "/quiet"]


def test_auto_starts_a_worker_a_core_and_one_more_for_real_tests(
        monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    cores = len(os.sched_getaffinity(0))
    for expr, workers in (("", cores + 1), ("real", cores + 1), ("not slow", cores + 1),
                          ("not real and not slow", cores), ("not (slow or real)", cores),
                          ("slow and not real", cores), ("real and quiet", cores + 1)):
        monkeypatch.setattr(pytestconfig.option, "markexpr", expr)
        assert pytest_xdist_auto_num_workers(pytestconfig) == workers, expr
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert pytest_xdist_auto_num_workers(pytestconfig) is None  # xdist's own hook reads it


def test_the_session_runs_slow_modules_first_real_ones_spread_among_the_others(
        request: pytest.FixtureRequest) -> None:
    """The session's order, which xdist keeps (``--no-loadscope-reorder``: by default it
    hands out the largest groups first): every module in one run of items, the real modules'
    and the others' items merged evenly, the slow modules first in each, then the quiet ones'
    modules (tests/conftest.py, ``session_order``)."""
    assert request.config.getoption("loadscopereorder") is False
    items = request.session.items
    assert session_order(items) == items  # already in that order
    marks: dict[str, set[str]] = {i.nodeid.split("::")[0]: set() for i in items}
    for item in items:
        marks[item.nodeid.split("::")[0]].update(m.name for m in item.iter_markers())
    order = [i.nodeid.split("::")[0] for i in items]
    quiet = [m for m in order if "quiet" in marks[m]]
    assert order[len(order) - len(quiet):] == quiet  # the quiet modules' tests, last
    for real in (True, False):
        stream = [m for m in order if "quiet" not in marks[m] and ("real" in marks[m]) == real]
        runs = [m for k, m in enumerate(stream) if k == 0 or stream[k - 1] != m]
        assert len(runs) == len(set(runs)), "a module split in two"
        slow = ["slow" in marks[m] for m in runs]
        assert slow == sorted(slow, reverse=True), runs
    # a module with a group (a module fixture, the serial tests) is one run of the session
    runs = [m for k, m in enumerate(order) if k == 0 or order[k - 1] != m]
    grouped = {m for m in marks if "xdist_group" in marks[m]}
    assert [m for m in runs if m in grouped] == sorted(grouped, key=runs.index)
    assert len([m for m in runs if m in grouped]) == len(grouped), "a grouped module split"


def test_the_order_merges_the_real_modules_evenly_with_the_others() -> None:
    class Item:
        def __init__(self, nodeid: str, *marks: str) -> None:
            self.nodeid, self.marks = nodeid, [getattr(pytest.mark, m).mark for m in marks]

        def iter_markers(self) -> list[pytest.Mark]:
            return self.marks

    items = [Item("a.py::x"), Item("a.py::y"), Item("b.py::x", "real"),
             Item("c.py::x", "slow"), Item("d.py::x", "real", "slow"), Item("d.py::y"),
             Item("e.py::x", "real", "quiet"), Item("f.py::x"), Item("f.py::y")]
    got = [i.nodeid for i in session_order(items)]  # type: ignore[arg-type]
    # the real d (slow), b at 1/6, 3/6, 5/6 among the others c (slow), a, f at 1/10, 3/10,
    # ... 9/10; e (quiet) last
    assert got == ["c.py::x", "d.py::x", "a.py::x", "d.py::y", "a.py::y",
                   "f.py::x", "b.py::x", "f.py::y", "e.py::x"]
    # a module with a group (here f: a module fixture) is one unit, kept whole
    items[7].marks.append(pytest.mark.xdist_group("f.py").mark)
    got = [i.nodeid for i in session_order(items)]  # type: ignore[arg-type]
    # the others are now c, a.x, a.y and f whole: at 1/8, 3/8, 5/8, 7/8
    assert got == ["c.py::x", "d.py::x", "a.py::x", "d.py::y", "a.py::y",
                   "b.py::x", "f.py::x", "f.py::y", "e.py::x"]
    assert evenly([], [1, 2]) == [1, 2] and evenly([1], []) == [1]  # type: ignore[list-item]
