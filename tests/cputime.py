"""The CPU each test costs, for finding where the suite's time goes (``--cpu-times=FILE``).

Wall time says little on a shared 2-core machine: a test waiting for the core that another
worker holds looks slow. CPU does not move with the load: each test's user and system seconds,
of the process that runs it (the worker) and of its children, are appended to ``FILE`` as one
JSON line (``nodeid``, ``self_user_s``, ``self_sys_s``, ``children_user_s``,
``children_sys_s``, ``wall_s``, ``worker``, ``end_unix``: when it ended, for the session's
timeline), and the controller prints the costliest at the end. Setup and teardown count with
the test: a module fixture's work lands on the first test that asks for it. A child counts once
it is reaped (``getrusage(RUSAGE_CHILDREN)``): the subprocesses a test waits for (cowbench,
fio, qemu-img, papermill and its kernel), not a daemon that outlives it nor the kernel's own
writeback of the pages a test dirtied.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: How many tests the summary names.
SHOWN = 25


def _usage() -> tuple[float, float, float, float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime, me.ru_stime, kids.ru_utime, kids.ru_stime, time.monotonic()


class CpuTimes:
    """Records each test's CPU into ``path`` (appended: xdist's workers share the file)."""

    def __init__(self, path: Path, worker: str) -> None:
        self.path = path
        self.worker = worker

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item,
                                nextitem: pytest.Item | None) -> Iterator[None]:
        before = _usage()
        try:
            return (yield)
        finally:
            su, ss, cu, cs, wall = (b - a for a, b in zip(before, _usage(), strict=True))
            line = json.dumps({"nodeid": item.nodeid, "self_user_s": round(su, 3),
                               "self_sys_s": round(ss, 3), "children_user_s": round(cu, 3),
                               "children_sys_s": round(cs, 3), "wall_s": round(wall, 3),
                               "worker": self.worker, "end_unix": round(time.time(), 3)})
            with open(self.path, "a") as f:  # one write of one line: appends do not interleave
                f.write(line + "\n")


def ranking(path: Path, shown: int = SHOWN) -> list[str]:
    """The summary: totals, then the ``shown`` costliest tests, CPU seconds user/system."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def user(r: dict[str, Any]) -> float:
        return float(r["self_user_s"] + r["children_user_s"])

    def system(r: dict[str, Any]) -> float:
        return float(r["self_sys_s"] + r["children_sys_s"])

    rows.sort(key=lambda r: -(user(r) + system(r)))
    u, s = sum(map(user, rows)), sum(map(system, rows))
    out = [f"{len(rows)} tests: {u + s:.1f} s of CPU (user {u:.1f}, system {s:.1f}); "
           f"the {min(shown, len(rows))} costliest, CPU s (user/system), wall s:"]
    out += [f"{user(r) + system(r):7.1f} ({user(r):6.1f}/{system(r):5.1f}) {r['wall_s']:7.1f}  "
            f"{r['nodeid']}" for r in rows[:shown]]
    return out


def configure(config: pytest.Config) -> None:
    """Register the recorder in every process that runs tests (``--cpu-times`` given)."""
    where = config.getoption("cpu_times")
    if where:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        config.pluginmanager.register(CpuTimes(Path(where), worker), "cowbench-cpu-times")


def summary(terminal: Any, config: pytest.Config) -> None:
    """The ranking, once, by the controller (or the only process, without xdist)."""
    where = config.getoption("cpu_times")
    if where and not hasattr(config, "workerinput") and Path(where).is_file():
        terminal.section("CPU per test (--cpu-times)")
        for line in ranking(Path(where)):
            terminal.write_line(line)
