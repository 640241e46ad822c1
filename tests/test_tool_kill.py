"""A tool killed (its timeout, an interrupt) is reaped even when a process it started in a
session of its own keeps its output pipes open, as fio's job process does: a drift probe
interrupted at its start hung in ``communicate()``, deaf to every signal (2026-12-05)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from cowbench import tools
from cowbench.tools import ToolError

HOLDER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         start_new_session=True)  # inherits stdout and stderr: the pipes
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


@pytest.mark.slow
def test_a_killed_tool_whose_grandchild_holds_its_pipes_is_reaped(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    monkeypatch.setattr(tools, "KILL_READ_S", 1.0, raising=False)
    pid_file = tmp_path / "grandchild"
    t0 = time.monotonic()
    try:
        with pytest.raises(ToolError, match="timed out"):
            tools.run([sys.executable, "-c", HOLDER, str(pid_file)], timeout=2)
        assert time.monotonic() - t0 < 15  # before: until the grandchild's 60 s were up
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
