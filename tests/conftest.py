"""Shared fixtures. Tests that need qemu-img, qemu-io, qemu-nbd or fio are marked ``real``
and skipped, with the reason, on a machine that lacks them; CI installs them
(scripts/bootstrap.sh), so in CI nothing is skipped."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from cowbench.scenario import Scenario, parse_scenario

REAL_TOOLS = ("qemu-img", "qemu-io", "qemu-nbd", "fio")
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


def _our_processes() -> set[tuple[int, str]]:
    """Running qemu-nbd and fio processes descended from this test process. qemu-nbd's
    daemons count too: the real backend makes this process their subreaper (real/nbd.py)."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            continue
        parent[int(entry)] = int(fields[1])
        names[int(entry)] = stat[stat.find("(") + 1:stat.rfind(")")]
    me, out = os.getpid(), set()
    for pid, name in names.items():
        if name not in ("qemu-nbd", "fio"):
            continue
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 1)
        if p == me:
            out.add((pid, name))
    return out


def _sock_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("cowbench-")}


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fails the test if it leaves a qemu-nbd or fio process, or a socket directory, behind."""
    procs, socks = _our_processes(), _sock_dirs()
    yield
    left = _our_processes() - procs
    assert not left, f"processes left behind: {sorted(left)}"
    assert _sock_dirs() - socks == set(), "socket directories left behind"
