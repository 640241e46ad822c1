"""The model's I/O over time as fio's bandwidth, IOPS and latency logs.

fio 3.33 with ``write_bw_log``, ``write_iops_log``, ``write_lat_log`` and ``log_avg_msec=W``
writes ``<job>_bw.1.log``, ``_iops.1.log``, ``_clat.1.log``, ``_lat.1.log`` (and ``_slat``),
one line per window and direction: ``time (ms since the job started), value, direction (0 read,
1 write), block size (0: an average), priority (0)``. Values: KiB/s, IO/s, mean ns of the I/Os
completed in the window. The model writes the same from every I/O it completes, by completion
time, all of the VM's clones in one ``.1.log`` (fio's group); ``slat`` is not written (the model
has no submission stage). A window without completions has bandwidth and IOPS 0 and no latency
line, as in fio.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .backends import get_backend
from .errors import UsageError
from .scenario import Scenario
from .store import atomic_write_text
from .tools import RawLog
from .traces import needs_traces, scenario_traces

LOGS = ("bw", "iops", "clat", "lat")


def _windows(ev: pd.DataFrame, t0: float, avg_ms: int) -> pd.DataFrame:
    """Per window of one direction's I/Os: end time (ms), length (ms), I/Os, bytes, latency."""
    done_ms = (ev.done_s.to_numpy() - t0) * 1e3
    end_ms = float(done_ms.max())
    n = max(1, math.ceil(end_ms / avg_ms))
    idx = np.minimum((done_ms // avg_ms).astype(np.int64), n - 1)
    starts = np.arange(n) * avg_ms
    ends = np.minimum(starts + avg_ms, end_ms)
    lat = (ev.done_s.to_numpy() - ev.issued_s.to_numpy()) * 1e9
    return pd.DataFrame({"time": np.round(ends).astype(np.int64),
                         "len_s": (ends - starts) / 1e3,
                         "ios": np.bincount(idx, minlength=n),
                         "bytes": np.bincount(idx, ev.bytes.to_numpy(), minlength=n),
                         "lat_sum": np.bincount(idx, lat, minlength=n)})


def log_lines(events: pd.DataFrame, avg_ms: int) -> dict[str, list[tuple[int, int, int]]]:
    """Each log's ``(time_ms, value, direction)`` lines, in time order (reads before writes)."""
    out: dict[str, list[tuple[int, int, int]]] = {name: [] for name in LOGS}
    if events.empty:
        return out
    t0 = float(events.issued_s.min())
    for ddir in (0, 1):
        ev = events[events.is_write == bool(ddir)]
        if not ev.empty:
            _add_lines(out, _windows(ev, t0, avg_ms), ddir)
    return {k: sorted(v) for k, v in out.items()}


def _add_lines(out: dict[str, list[tuple[int, int, int]]], w: pd.DataFrame, ddir: int) -> None:
    for t, len_s, ios, nbytes, lat_sum in zip(w.time.tolist(), w.len_s.tolist(), w.ios.tolist(),
                                               w.bytes.tolist(), w.lat_sum.tolist(), strict=True):
        if len_s <= 0:
            continue
        out["bw"].append((int(t), round(nbytes / 1024 / len_s), ddir))
        out["iops"].append((int(t), round(ios / len_s), ddir))
        if ios:
            mean = round(lat_sum / ios)
            out["clat"].append((int(t), mean, ddir))
            out["lat"].append((int(t), mean, ddir))


def write_fio_logs(directory: Path, vm: str, events: pd.DataFrame, avg_ms: int) -> list[Path]:
    """``<directory>/<vm>_{bw,iops,clat,lat}.1.log`` in fio's format."""
    written = []
    for name, lines in log_lines(events, avg_ms).items():
        path = directory / f"{vm}_{name}.1.log"
        atomic_write_text(path, "".join(f"{t}, {v}, {d}, 0, 0\n" for t, v, d in lines))
        written.append(path)
    return written


def write_run_logs(run_dir: Path, scenario: Scenario, seed: object, avg_ms: int) -> list[Path]:
    """The model's run again (same scenario, seed and offset streams), its I/Os as fio logs in
    ``run_dir/fio-json``. Timelines and fleets are refused (UsageError)."""
    if not isinstance(seed, int):
        raise UsageError(f"{run_dir}/run.json: seed: not an integer")
    if scenario.timeline is not None or scenario.fleet is not None:
        raise UsageError("fio-json --logs: scenarios with a timeline or a fleet are not "
                         "supported (their VMs run several times or in aggregate)")
    with tempfile.TemporaryDirectory(prefix="cowbench-logs-") as tmp:
        model = get_backend("sim")
        traces = scenario_traces(
            scenario, RawLog(Path(tmp)), lambda s, t: model.simulate(s, seed, traces=t)
        ).traces if needs_traces(scenario) else None
        events = model.io_events(scenario, seed, traces)
    written = []
    for vm, ev in sorted(events.items()):
        written += write_fio_logs(run_dir / "fio-json", vm, ev, avg_ms)
    return written
