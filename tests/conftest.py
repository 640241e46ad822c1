"""Shared fixtures. Tests that need qemu-img, qemu-io, qemu-nbd or fio are marked ``real``
and skipped, with the reason, on a machine that lacks them; CI installs them
(scripts/bootstrap.sh), so in CI nothing is skipped."""

from __future__ import annotations

import copy
import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _pytest.mark.expression import Expression  # pytest's own parser of -m
from hypothesis import settings

from cowbench.scenario import Scenario, parse_scenario
from cowbench.tools import REAL_TOOLS

from . import cputime

# CI (CI=true) draws the same examples every run, so a submission's result does not depend on
# the luck of the draw; a developer's run draws new ones each time and explores further.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: The directory of the lock that keeps ``real`` tests off the storage while a ``quiet`` one runs.
DEVICE_ENV = "COWBENCH_TEST_DEVICE_LOCK"
_OWN_DEVICE_DIR = pytest.StashKey[str]()
_SHARE = pytest.StashKey[Callable[[], None]]()  # what gives a quiet test's machine back

MISSING = [t for t in REAL_TOOLS if shutil.which(t) is None]
needs_tools = pytest.mark.skipif(
    bool(MISSING), reason=f"needs {', '.join(MISSING)} (run scripts/bootstrap.sh as root)")

SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 3,
    "images": [{"name": "img", "virtual_size": "64MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "24MiB"},
                                       {"offset": "40MiB", "length": "4MiB"}]}}],
    "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
    "workloads": {
        "w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "4MiB"},
        "r": {"rw": "randread", "bs": "4k", "iodepth": 2, "io_size": "2MiB"},
        "s": {"rw": "write", "bs": "16k", "iodepth": 2, "offset": "1MiB", "io_size": "6MiB"},
    },
    "vms": [
        {"name": "a", "image": "img", "root_size": "96MiB", "workload": "w"},
        {"name": "b", "image": "img", "workload": "r"},
        {"name": "c", "image": "img", "workload": "s"},
    ],
}


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/NAME.py`` as a module (benchmarks are scripts, not a package),
    registered under ``NAME`` (a dataclass of its own looks its module up there)."""
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def small_dict(**overrides: Any) -> dict[str, Any]:
    d = copy.deepcopy(SMALL)
    d.update(overrides)
    return d


def small_scenario(**overrides: Any) -> Scenario:
    return parse_scenario(small_dict(**overrides))


TOOL_NAMES = ("qemu-nbd", "qemu-img", "qemu-io", "fio", "cp")


def processes_mentioning(*paths: Path | str, names: tuple[str, ...] = TOOL_NAMES
                         ) -> list[tuple[int, str]]:
    """Tool processes (``names``) whose command line mentions one of ``paths``, or whose
    working directory is under one: a test's own processes, never those of the other
    engineers' tests running on the same machine. A run hands its tools paths through the
    descriptors it holds (``/proc/<pid>/fd/<fd>/...``, ``cowbench.fdtree``): those are read as
    the directory they lead to, and fio, started in its raw/ folder, is found by its working
    directory too (once the run's process is gone, its descriptors' paths lead nowhere)."""
    needles = [str(p).encode() for p in paths]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        name = Path(argv.split(b"\0")[0].decode(errors="replace")).name
        if name not in names or state in ("Z", "X"):
            continue
        try:
            cwd = os.readlink(entry / "cwd").encode() + b"/"
        except OSError:
            cwd = b""
        seen = _held_paths(argv) + b"\0" + cwd
        if any(n in argv or n in seen for n in needles):
            found.append((int(entry.name), argv.replace(b"\0", b" ").decode(errors="replace")))
    return found


def _held_paths(argv: bytes) -> bytes:
    """``argv`` with each ``/proc/<pid>/fd/<fd>`` read as the path it leads to now."""
    def real(m: re.Match[bytes]) -> bytes:
        try:
            return os.readlink(m.group(0).decode()).encode()
        except OSError:
            return m.group(0)

    return re.sub(rb"/proc/\d+/fd/\d+", real, argv)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or under ``path`` (/proc/mounts): a test's own, never the mounts of
    the real tests running beside it or of other engineers' tests on this machine."""
    root = os.path.realpath(path)
    points = [line.split()[1].encode().decode("unicode_escape")
              for line in Path("/proc/mounts").read_text().splitlines() if line.strip()]
    return [m for m in points if m == root or m.startswith(os.path.join(root, ""))]


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config,
                                  items: list[pytest.Item]) -> Iterator[None]:
    """Groups for ``pytest -n N`` (pytest-xdist, ``--dist loadgroup`` in pyproject.toml): the
    tests of a module that share a module-scoped fixture (a fit, a report, a run) run on one
    worker, which builds it once; the ``serial`` ones (a signal answered or a process gone
    within a deadline) one after another on one worker. The other ``real`` tests spread over
    the workers like the rest: what they assert (bytes, files, processes, errors) does not
    depend on what runs beside them, and a ``quiet`` one (rates measured) has the machine to
    itself through the lock below."""
    for item in items:
        for mark in ("quiet", "exact", "serial"):
            if item.get_closest_marker(mark) is not None:
                assert item.get_closest_marker("real") is not None, f"{mark} but not real: {item}"
        _exact(item)
        if item.get_closest_marker("serial") is not None:
            item.add_marker(pytest.mark.xdist_group("serial"))
        elif _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    yield  # the other hooks, xdist's among them (it names each item's group)
    items[:] = session_order(items)
    if getattr(config.option, "loadgroup", False):
        _name_the_groups(items)


def session_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """The order xdist hands work out in (``--no-loadscope-reorder`` in pyproject.toml keeps
    it): two streams merged evenly, the modules with ``real`` tests and the others, each
    module in its own order, the slow modules first in each; then the modules with a ``quiet``
    test. Last, a quiet test waits for a short test on the other worker before it takes the
    machine; first, it raced the other worker's first test, the README's calibration or
    quickstart, and waited 98 s for it to end (2026-12-04). A module with a
    group (a module-scoped fixture, the serial tests) stays whole, so that a run without xdist
    (``-n 0``) builds its fixture once too; the other modules' tests are merged one by one.
    Slow first: the longest tests (the README's runs, the fits) start at once and cannot end
    the session; short ones fill the end on every worker. Two streams merged: a worker that
    finishes takes the next item, so a real test (fio and qemu, partly waiting on the
    storage) mostly runs beside one that computes, rather than two real tests sharing the
    storage, then two fits side by side."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    marks = {m: {k.name for i in its for k in i.iter_markers()} for m, its in modules.items()}

    def stream(real: bool) -> list[list[pytest.Item]]:
        chosen = [m for m in modules if "quiet" not in marks[m] and ("real" in marks[m]) == real]
        return [unit for m in sorted(chosen, key=lambda m: "slow" not in marks[m])
                for unit in ([modules[m]] if "xdist_group" in marks[m] else
                             [[i] for i in modules[m]])]

    last = [i for m, its in modules.items() if "quiet" in marks[m] for i in its]
    return [i for unit in evenly(stream(True), stream(False)) for i in unit] + last


def evenly(a: list[Any], b: list[Any]) -> list[Any]:
    """``a`` and ``b`` merged, each in its order, each spread evenly over the whole: the k-th
    of n at (k + 1/2) / n, ``a``'s first on a tie."""
    keyed = [((k + 0.5) / len(s), n, x) for n, s in enumerate((a, b)) for k, x in enumerate(s)]
    return [x for *_, x in sorted(keyed, key=lambda t: (t[0], t[1]))]


@pytest.hookimpl(optionalhook=True)  # xdist's hook
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per core this process may run on, and one more when the session
    may run ``real`` tests (``-m`` does not leave them out); ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still decides when set. A real test waits on the disk and on its processes' wake-ups for
    much of its time (nothing in its process tree was runnable for 37% of its wall), and the
    extra worker computes meanwhile: the whole suite on this 2-core machine, back to back,
    took 549 s of pytest with two workers and 453 s with three (467 s in another run; 2026-12-04,
    at 31c2f31). Two a core (four here) made timing-bound tests fail; the fast loop, all
    computation, keeps one a core."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = max(1, len(os.sched_getaffinity(0)))
    return cores + 1 if may_run_real(config.getoption("markexpr", "") or "") else cores


def may_run_real(markexpr: str) -> bool:
    """Whether a ``-m`` expression selects a ``real`` test with any of the other marks this
    project gives (pyproject.toml's markers; pytest's own parser of ``-m``)."""
    if not markexpr.strip():
        return True
    expr = Expression.compile(markexpr)
    others = ("quiet", "exact", "serial", "slow")
    marks = [{"real", *chosen} for k in range(len(others) + 1)
             for chosen in combinations(others, k)]
    return any(expr.evaluate(lambda name, m=m, **_: name in m) for m in marks)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-times", dest="cpu_times", metavar="FILE", default=None,
                     help="append each test's CPU seconds (user and system, of the worker and "
                          "its reaped children) to FILE as JSON lines, and print the costliest "
                          "at the end (tests/cputime.py)")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    cputime.summary(terminalreporter, config)


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a run without xdist) makes the directory of the device lock; its
    workers inherit its path through the environment. ``--cpu-times``: each process that runs
    tests records their CPU."""
    cputime.configure(config)
    if not hasattr(config, "workerinput") and DEVICE_ENV not in os.environ:
        where = tempfile.mkdtemp(prefix="cowbench-device-")
        os.environ[DEVICE_ENV] = where
        config.stash[_OWN_DEVICE_DIR] = where


def pytest_unconfigure(config: pytest.Config) -> None:
    where = config.stash.get(_OWN_DEVICE_DIR, None)
    if where is not None:
        os.environ.pop(DEVICE_ENV, None)
        shutil.rmtree(where, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A ``quiet`` test has the machine to itself: no other test of this session runs beside
    it (setup and teardown included: a module fixture's run is work too). Not only the real
    ones: its rates are CPU-bound too (qemu-nbd and fio on this 2-core machine), and beside
    a worker running fits its qcow2 hits came out slower than its L2 misses in one full run
    (load 6 to 9). Until it gives the machine back (``share_the_machine``: its rates are
    measured, what is left is a fit or a model run)."""
    if DEVICE_ENV not in os.environ:
        return (yield)
    alone = item.get_closest_marker("quiet") is not None
    with device(Path(os.environ[DEVICE_ENV]), alone=alone) as share:
        item.stash[_SHARE] = share
        return (yield)


@pytest.fixture
def share_the_machine(request: pytest.FixtureRequest) -> Callable[[], None]:
    """For a ``quiet`` test: gives the machine back once its rates are measured (what is
    left, a fit or a model run, runs beside the other tests like any test). A no-op without
    the lock (a run without the controller's lock directory)."""
    return request.node.stash.get(_SHARE, lambda: None)


@contextmanager
def device(where: Path, alone: bool) -> Iterator[Callable[[], None]]:
    """A readers-writer lock over flock(2): the tests share it, a ``quiet`` test holds it
    alone. The gate gives the writer precedence: a quiet test that waits closes it, so no new
    real test starts until the ones running have finished and the quiet one has run. Yields
    what turns a writer into a reader (flock converts the lock: those waiting to share it
    start)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    gate, lock = os.open(where / "gate", flags, 0o600), os.open(where / "device", flags, 0o600)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield lambda: fcntl.flock(lock, fcntl.LOCK_SH)
    finally:
        os.close(lock)  # closing releases the lock
        os.close(gate)


def _name_the_groups(items: list[pytest.Item]) -> None:
    """pytest-xdist 3.8 tells its loadgroup scheduler an item's group by appending ``@group``
    to ``item._nodeid``, which pytest 9.2's structured node ids no longer read (xdist issue
    1386; pull request 1388 proposes the fix): without this the groups are silently ignored.
    Appends it to the structured id the same way; a no-op once xdist does it itself."""
    for item in items:
        groups = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        ident = getattr(item, "_id", None)
        if groups and ident is not None and "@" not in item.nodeid.rpartition("]")[2]:
            item._id = type(ident).parse(f"{item.nodeid}@{'_'.join(groups)}")


def _exact(item: pytest.Item) -> bool:
    exact = item.get_closest_marker("exact") is not None
    assert not (exact and item.get_closest_marker("quiet")), f"exact and quiet: {item}"
    assert not (exact and item.get_closest_marker("serial")), f"exact and serial: {item}"
    return exact


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty ``$XDG_CACHE_HOME`` (subprocesses inherit it): no test
    reads or writes the real ``~/.cache``, where `cowbench run` keeps calibration profiles."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture(autouse=True)
def lease_registry(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test registers its runs' leases (cowbench.lease) in a registry of its own, never
    in the machine's /run/cowbench (tests of others run in parallel on this machine)."""
    where = tmp_path_factory.mktemp("leases")
    monkeypatch.setenv("COWBENCH_RUNTIME_DIR", str(where))
    return where


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private, short ``$TMPDIR`` for this test (unix socket paths are limited to 108 bytes)."""
    tmp = Path(tempfile.mkdtemp(prefix="cbt-"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def _can_loop_mount() -> str | None:
    if os.geteuid() != 0:
        return "needs root to loop-mount a small filesystem"
    if not Path("/dev/loop-control").exists():
        return "needs loop devices (/dev/loop-control)"
    if shutil.which("mkfs.ext4") is None:
        return "needs mkfs.ext4 (e2fsprogs)"
    return None


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_fs(mib)`` mounts a fresh ext4 filesystem of that size (a sparse file under the
    test's directory, loop-mounted) and returns its root; the finalizer unmounts and detaches
    it whatever happens. Skipped with the reason where loop mounts are not possible."""
    why = _can_loop_mount()
    if why:
        pytest.skip(why)
    mounts: list[tuple[Path, Path]] = []

    def make(mib: int) -> Path:
        image, mnt = tmp_path / f"fs{len(mounts)}.img", tmp_path / f"mnt{len(mounts)}"
        subprocess.run(["truncate", "-s", f"{mib}M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        mnt.mkdir()
        proc = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            pytest.skip(f"cannot loop-mount here: {proc.stderr.strip()}")
        mounts.append((image, mnt))
        return mnt

    yield make
    for image, mnt in mounts:
        if subprocess.run(["umount", str(mnt)], check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        loops = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                               check=False).stdout
        for line in loops.splitlines():  # mount -o loop autoclears; this is belt and braces
            subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)


@pytest.fixture
def no_leaks(tmp_path: Path, private_tmp: Path) -> Iterator[None]:
    """Fails the test if it leaves a qemu-nbd or fio process, or a socket directory, behind:
    only its own, found by its paths (tests of others run in parallel on this machine)."""
    yield
    left = processes_mentioning(tmp_path, private_tmp)
    assert not left, f"processes left behind: {left}"
    assert not list(private_tmp.iterdir()), "temporary files left behind"
