"""fio's null-engine streams of a scenario's VMs are taken at once (``cowbench.streams``,
``StreamCache.take_all``): each null run mostly waits on fio's own sleeps, so a run of many VMs
took the sum of their streams' times. The streams stay what each VM's own run gives; a failing
or interrupted set kills the runs still going and leaves no process behind."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

import cowbench.streams as streams
from cowbench.errors import ToolError
from cowbench.fiojob import fio_null_traces
from cowbench.iolog import Trace
from cowbench.scenario import Workload
from cowbench.streams import Ask, StreamCache
from cowbench.tools import Cancelled, RawLog, run

from .conftest import needs_tools, processes_mentioning


def test_a_command_given_a_cancel_event_is_killed_once_it_is_set(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="nap: cancelled"):
        run(_nap(tmp_path), cancel=cancel, log=RawLog(tmp_path / "raw"), label="nap")
    assert time.monotonic() - started < 10  # not the 30 s of the command
    assert not processes_mentioning(tmp_path, names=(Path(sys.executable).name,))
    [rec] = list((tmp_path / "raw").iterdir())
    assert "interrupted before the command finished" in (rec / "stderr").read_text()
    assert (rec / "returncode").read_text() == "None\n"


def test_a_cancel_event_left_unset_changes_nothing(tmp_path: Path) -> None:
    out = run([sys.executable, "-c", "import time; time.sleep(0.2); print('done')"],
              cancel=threading.Event())
    assert out.stdout == "done\n"
    with pytest.raises(ToolError, match="timed out after 0.3 s"):  # the timeout still holds
        run(["sleep", "30"], cancel=threading.Event(), timeout=0.3)


def _nap(where: Path) -> list[str]:
    """A command of 30 s whose command line names ``where`` (one process, no child)."""
    return [sys.executable, "-c", "import time; time.sleep(30)", str(where)]


def _jobs(n: int) -> list[Workload]:
    return [Workload(rw="randwrite", bs=4096, io_size=(64 + 4 * k) << 10) for k in range(n)]


def test_the_streams_run_at_once_each_distinct_one_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Six asks, four distinct streams (two asked twice, one of them for more I/Os): four
    runs, overlapping in time, each answered from its own run."""
    lock, running, most, calls = threading.Lock(), [0], [0], []

    def fake(wl: Workload, name: str, disk: int, log: RawLog, ios: int | None,
             seed: int | None, cancel: threading.Event | None = None) -> list[Trace]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            calls.append((wl.io_size, ios))
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        n = ios or 8
        return [Trace.build([k * 4096 for k in range(n)], [4096] * n, [1] * n)]

    monkeypatch.setattr(streams, "fio_null_traces", fake)
    a, b, c, d = _jobs(4)
    asks = [Ask(a, "v1", 1 << 20, 1), Ask(b, "v2", 1 << 20, 1, 5), Ask(c, "v3", 1 << 20, 1),
            Ask(a, "v4", 1 << 20, 1), Ask(b, "v5", 1 << 20, 1, 9), Ask(d, "v6", 1 << 20, 1)]
    got = StreamCache(RawLog(tmp_path / "raw")).take_all(asks)
    assert sorted(calls, key=str) == sorted([(a.io_size, None), (b.io_size, 9),
                                             (c.io_size, None), (d.io_size, None)], key=str)
    assert most[0] == 4  # all at once
    assert [len(t[0]) for t in got] == [8, 5, 8, 8, 9, 8]  # each cut at what it asked


@needs_tools
@pytest.mark.slow
def test_streams_taken_at_once_are_those_taken_one_by_one(tmp_path: Path) -> None:
    jobs = _jobs(3) + [Workload(rw="randwrite", bs=4096, io_size=64 << 10,
                                random_distribution="zipf:1.2")]
    asks = [Ask(wl, f"v{k}", 8 << 20, 7) for k, wl in enumerate(jobs)]
    together = StreamCache(RawLog(tmp_path / "a")).take_all(asks)
    alone = [fio_null_traces(x.wl, x.label, x.disk_size, RawLog(tmp_path / f"b{k}"), None,
                             x.seed) for k, x in enumerate(asks)]
    for t, u in zip(together, alone, strict=True):
        assert [x.offsets.tolist() for x in t] == [y.offsets.tolist() for y in u]


@needs_tools
def test_a_failing_stream_kills_the_others_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first ask fails at once; the others' commands (30 s each) are killed, not
    waited for, and the error is the first ask's."""

    def fake(wl: Workload, name: str, disk: int, log: RawLog, ios: int | None,
             seed: int | None, cancel: threading.Event | None = None) -> list[Trace]:
        if name == "v0":
            raise RuntimeError("v0 failed")
        run(_nap(tmp_path), cancel=cancel, log=log)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(streams, "fio_null_traces", fake)
    asks = [Ask(wl, f"v{k}", 1 << 20, 1) for k, wl in enumerate(_jobs(4))]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="v0 failed"):
        StreamCache(RawLog(tmp_path / "raw")).take_all(asks)
    assert time.monotonic() - started < 10
    assert not processes_mentioning(tmp_path, names=(Path(sys.executable).name,))
