"""Shared fixtures. Tests that need qemu-img, qemu-io, qemu-nbd or fio are marked ``real``
and skipped, with the reason, on a machine that lacks them; CI installs them
(scripts/bootstrap.sh), so in CI nothing is skipped."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from cowbench.scenario import Scenario, parse_scenario
from cowbench.tools import REAL_TOOLS

# CI (CI=true) draws the same examples every run, so a submission's result does not depend on
# the luck of the draw; a developer's run draws new ones each time and explores further.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

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


def small_dict(**overrides: Any) -> dict[str, Any]:
    d = copy.deepcopy(SMALL)
    d.update(overrides)
    return d


def small_scenario(**overrides: Any) -> Scenario:
    return parse_scenario(small_dict(**overrides))


TOOL_NAMES = ("qemu-nbd", "qemu-img", "qemu-io", "fio", "cp")


def processes_mentioning(*paths: Path | str) -> list[tuple[int, str]]:
    """Tool processes whose command line mentions one of ``paths``: a test's own processes,
    never those of the other engineers' tests running on the same machine."""
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
        if name in TOOL_NAMES and state not in ("Z", "X") and any(n in argv for n in needles):
            found.append((int(entry.name), argv.replace(b"\0", b" ").decode(errors="replace")))
    return found


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


@pytest.fixture
def no_leaks(tmp_path: Path, private_tmp: Path) -> Iterator[None]:
    """Fails the test if it leaves a qemu-nbd or fio process, or a socket directory, behind:
    only its own, found by its paths (tests of others run in parallel on this machine)."""
    yield
    left = processes_mentioning(tmp_path, private_tmp)
    assert not left, f"processes left behind: {left}"
    assert not list(private_tmp.iterdir()), "temporary files left behind"
