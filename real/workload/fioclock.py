"""The clock fio keeps time with, named on its command line so that it is not chosen again.

At every start fio chooses its clock: it calibrates the CPU's cycle counter against the
system clock (a 1.3 ms busy loop, 50 times), and unless a clock is named it then tests that
counter on every CPU and calibrates it again before settling: on the counter (``cpu``) if
the test passed, else on ``clock_gettime``. The test costs more CPU than a short job itself:
a null job of one 4 KiB I/O took 153 ms of CPU with fio's choice, 88 to 94 ms with a clock
named (fio 3.33 on this project's 2-core virtual machine, ``perf stat -r 10``, spread under
1%). A calibration starts fio some 90 times, a real run once a VM. And the choice is not
even stable there: 17 of 20 starts settled on ``cpu``, 3 on ``clock_gettime``.

So fio is asked once per process which clock it settles on (``--debug=time`` prints it) and
every later fio of the real backend is told that clock: fio's own choice on any machine, made
once, the same for every fio of a run. Where fio does not say (a build without debug output)
nothing is added and each fio chooses as before.
"""

from __future__ import annotations

import functools
import re

from cowbench.errors import ToolError
from cowbench.tools import fio_isolated, run, which

#: fio's clocks by the number ``--debug=time`` gives them (``enum fio_cs``, fio's gettime.h)
CLOCKS = {1: "gettimeofday", 2: "clock_gettime", 3: "cpu"}
_SETTLED = re.compile(r"gettime: clocksource=(\d+)")


def settled_clock(debug_output: str) -> str | None:
    """The clock fio settled on, from its ``--debug=time`` output (the last it names)."""
    found = _SETTLED.findall(debug_output)
    return CLOCKS.get(int(found[-1])) if found else None


@functools.cache
def clock_args() -> tuple[str, ...]:
    """``("--clocksource=NAME",)`` naming the clock fio itself chooses here, or ``()``."""
    try:  # as every tool is run: the child dies with this process, even killed
        out = run(fio_isolated([which("fio"), "--debug=time", "--name=clock",
                                "--ioengine=null", "--size=4k", "--bs=4k"]), timeout=60)
    except (ToolError, OSError):
        return ()
    clock = settled_clock(out.stdout + out.stderr)
    return (f"--clocksource={clock}",) if clock else ()
