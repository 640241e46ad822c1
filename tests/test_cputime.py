"""``--cpu-times`` (tests/cputime.py): each test's CPU recorded and the costliest named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .cputime import CpuTimes, ranking


def _record(plugin: CpuTimes, nodeid: str, work: Any) -> None:
    """One test's protocol as pytest runs it through the plugin's wrapper."""
    hook = plugin.pytest_runtest_protocol(SimpleNamespace(nodeid=nodeid), None)  # type: ignore[arg-type]
    next(hook)
    work()
    try:
        hook.send(None)
    except StopIteration:
        return
    raise AssertionError("the wrapper yields once")


def test_a_test_is_charged_the_cpu_of_the_children_it_reaped(tmp_path: Path) -> None:
    path = tmp_path / "cpu.jsonl"
    plugin = CpuTimes(path, "gw1")
    _record(plugin, "t.py::idle", lambda: None)
    _record(plugin, "t.py::busy", lambda: subprocess.run(
        [sys.executable, "-c", "x = 0\nfor i in range(3 * 10**6): x += i"], check=True))
    rows = {r["nodeid"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert rows["t.py::busy"]["children_user_s"] > 0.05 > rows["t.py::idle"]["children_user_s"]
    assert rows["t.py::busy"]["wall_s"] > 0 and rows["t.py::busy"]["worker"] == "gw1"
    assert ranking(path)[1].split()[-1] == "t.py::busy"


def test_the_ranking_puts_the_costliest_first_with_user_and_system_apart(tmp_path: Path) -> None:
    rows = [("a", 0.5, 0.1, 0.0, 0.0), ("b", 0.1, 0.0, 2.0, 1.5), ("c", 0.0, 0.0, 0.2, 0.0)]
    path = tmp_path / "cpu.jsonl"
    path.write_text("".join(json.dumps({
        "nodeid": n, "self_user_s": su, "self_sys_s": ss, "children_user_s": cu,
        "children_sys_s": cs, "wall_s": 9.0, "worker": "gw0"}) + "\n"
        for n, su, ss, cu, cs in rows))
    head, *shown = ranking(path, shown=2)
    assert head.startswith("3 tests: 4.4 s of CPU (user 2.8, system 1.6)")
    assert [line.split()[-1] for line in shown] == ["b", "a"]
    assert shown[0].split()[:4] == ["3.6", "(", "2.1/", "1.5)"]
