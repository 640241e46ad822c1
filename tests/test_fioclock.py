"""fio is told the clock it chooses itself (real/workload/fioclock.py), asked once."""

from __future__ import annotations

import subprocess

import pytest

from real.workload.fioclock import CLOCKS, clock_args, settled_clock

from .conftest import needs_tools

DEBUG = """\
time     11365 min=2596106, max=2598744, mean=2596178.760000, S=7.404766, N=50
time     11365 gettime: clocksource=3
time     11365 cycles_start=86329421372716
time     11365 gettime: clocksource=2
"""


def test_the_clock_fio_settled_on_is_the_last_it_names() -> None:
    assert settled_clock(DEBUG) == "clock_gettime"
    assert settled_clock(DEBUG.replace("=2\n", "=3\n")) == "cpu"
    assert settled_clock("time 1 gettime: clocksource=1\n") == "gettimeofday"
    assert settled_clock("fio-3.33\n") is None  # no debug output: nothing named
    assert settled_clock("time 1 gettime: clocksource=9\n") is None  # a clock it did not have


@needs_tools
@pytest.mark.real
def test_fio_takes_the_clock_it_chose_and_does_not_choose_again() -> None:
    args = clock_args()
    assert len(args) == 1 and args[0].removeprefix("--clocksource=") in CLOCKS.values()
    assert clock_args() is args  # asked once
    def debug(*named: str) -> str:  # fio's --debug=time first: it then shows each choice
        return subprocess.run(["fio", "--debug=time", *named, "--name=j", "--ioengine=null",
                               "--size=4k", "--bs=4k"], capture_output=True, text=True,
                               check=True).stdout

    # fio's own way: the cycle counter calibrated, tested on every CPU, calibrated again;
    # with the clock named, calibrated once (the first, before options, is never shown)
    assert debug().count("trimmed mean=") == 2
    named = debug(*args)
    assert named.count("trimmed mean=") == 1
    assert settled_clock(named) == args[0].removeprefix("--clocksource=")
    assert "IOPS=" in named  # and the job ran
