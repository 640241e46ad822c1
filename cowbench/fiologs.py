"""The model's I/O over time as fio's bandwidth, IOPS and latency logs.

fio 3.33 with ``write_bw_log``, ``write_iops_log``, ``write_lat_log`` and ``log_avg_msec=W``
writes, for every clone (fio's thread), ``<prefix>_bw.<n>.log``, ``_iops.<n>.log``,
``_clat.<n>.log``, ``_lat.<n>.log`` (and ``_slat``), measured with its null engine and through
qemu-nbd (``tests/test_fiologs_real.py``):

- **which**: per clone, what its job asks for: ``write_bw_log`` a _bw log, ``write_iops_log``
  an _iops log, ``write_lat_log`` _lat, _clat and _slat (measured with a file and fio's
  default psync engine, ``tests/test_fiologs_real.py``: a job asking for none gets none).
  A VM whose workload asks for no log at all gets :data:`UNASKED`, every log the model has,
  as ``fio-json --logs`` asks.
- **names**: ``<n>`` is fio's thread number across the whole fio process, 1-based (a job's
  clones after it, the job-file's sections in order: ``[a] numjobs=2``, ``[b] numjobs=2``,
  ``[c]`` give ``a_iops.1``, ``a_iops.2``, ``b_iops.3``, ``b_iops.4``, ``c_iops.5``); the
  prefix is the option's value, or without one the job's name (cowbench's real run names a
  VM's job ``<vm>``, or ``<vm>.<section>`` for one of several sections). With
  ``per_job_logs=0`` there is no ``.<n>``: every clone of the prefix appends to one file.
  A clone that logged nothing still gets its (empty) file.
- **time**: milliseconds since the clone's own start (fio's ``td->epoch``): after its
  ``startdelay``, moved to its ramp's end (whose I/Os are not logged), and for a stonewalled
  job its own start, not fio's (:class:`sim.world.vm.IoEvents`).
- **bw, iops**: fio's helper thread samples each clone every ``W`` ms; a sample whose window
  had completions of a direction writes ``t, rate, direction, 0, 0``, the rate fio's integer
  ``bytes x 1000 / W / 1024`` (KiB/s) or ``I/Os x 1000 / W``; a window without completions
  writes no line, and the window cut short by the clone's end none either (a reader of
  4,096 ms logged up to 4,003 ms): the helper samples a clone only while it runs
  (``calc_log_samples`` skips one not ``TD_RUNNING``; at exit ``finalize_logs`` writes only
  samples taken), and it wakes a little late, so the window that ends as the clone does has
  no line either (a 1,000 ms time-based job with W=500 on a file logged its rates at 500
  alone, 23 runs of 25), and a job shorter than ``W`` logs no rate at all (a 200 ms job
  with W=1000: empty _bw and _iops files, its latency line at 200).
- **clat, lat**: each completion adds its latency to its direction's window; the first
  completion at least ``W`` ms after the window began writes the window's mean (rounded) at
  its own time and starts the next window at that time rounded down to ``W`` (fio's
  ``add_log_sample``); what is left is written at the clone's end (thinktime=350ms bursts
  with W=100 gave lines at 350, 700 and 1,050 ms). A clone's end is when it finished: a
  time-based job of 500 ms, whose last I/O completes just before, has its last rate line
  at 500 ms, its last latency line at 502.
- ``log_avg_msec=0``: one line per I/O at its completion: IOPS 1, bandwidth its bytes over
  its completion latency (``bytes x 10^6 / clat_ns``), its latency, with its block size in
  the fourth column.

The model writes these from every I/O it completes (``clat`` and ``lat`` alike: it has no
submission stage, so its ``slat`` log is empty, as fio's own is for an engine that does not
time submissions, psync). fio's helper thread wakes a little late (its first sample
of a 2,000 IO/s writer came at 143 ms, not 100); the model samples on time.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .backends import get_backend
from .errors import UsageError
from .jobopts import fio_flag
from .scenario import Scenario
from .store import atomic_write_text
from .tools import RawLog
from .traces import needs_traces, scenario_traces
from .workload_schema import Workload

#: each log the model writes, and the fio option that asks for it (fio 3.33's
#: ``write_lat_log`` writes _clat, _lat and _slat; the model's _slat is empty, see the module)
LOGS = {"bw": "write_bw_log", "iops": "write_iops_log", "clat": "write_lat_log",
        "lat": "write_lat_log", "slat": "write_lat_log"}
#: the logs of a VM whose workload asks fio for none (no ``write_*_log``): all the model has
UNASKED = ("bw", "iops", "clat", "lat")

#: a nanosecond in ms: the model's float times are not taken to differ by less (fio's clock
#: counts whole nanoseconds)
NS_MS = 1e-6

Line = tuple[int, int, int, int]  # time ms, value, direction, block size


@dataclass(frozen=True)
class LogFile:
    """One log fio writes for one clone: ``clone`` in fio's run order (0 for thread 1);
    ``avg_ms``: its job's own ``log_avg_msec``, None where the job file sets none."""

    clone: int
    kind: str
    name: str
    avg_ms: int | None = None


def log_files(wl: Workload, vm: str) -> list[LogFile]:
    """The files fio names for VM ``vm``'s fio process running ``wl`` (see the module): per
    clone in fio's run order, the logs its job's ``write_*_log`` options ask for (a job
    asking for none: none), or, where no job of ``wl`` asks for any, :data:`UNASKED`."""
    out: list[LogFile] = []
    thread = 0
    asked = any(option in part.fio_logs for part in wl.parts for option in LOGS.values())
    for part in wl.parts:
        job = f"{vm}.{part.section}" if wl.jobs else vm
        per_job = _flag(part, "per_job_logs", True)
        own = part.fio_logs.get("log_avg_msec")
        kinds = {k: o for k, o in LOGS.items() if o in part.fio_logs} if asked else \
            {k: LOGS[k] for k in UNASKED}
        for _ in range(part.numjobs):
            thread += 1
            for kind, option in kinds.items():
                prefix = _value(part, option) or job
                out.append(LogFile(thread - 1, kind, f"{prefix}_{kind}"
                                   f"{f'.{thread}' if per_job else ''}.log",
                                   None if own is None else int(own)))
    return out


def _value(part: Workload, option: str) -> str | None:
    """The job file's ``option=value`` (the last: fio takes it), a bare prefix (one with a
    directory part is refused, ``cowbench.jobopts.log_problem``); None when absent or given
    without a value."""
    return (part.fio_logs.get(option) or "").strip() or None


def _flag(part: Workload, option: str, default: bool) -> bool:
    if option not in part.fio_logs:
        return default
    return fio_flag(option, part.fio_logs[option])


def clone_lines(ev: pd.DataFrame, origin: float, avg_ms: int,
                end: float | None = None) -> dict[str, list[Line]]:
    """One clone's lines of each log, in time order (reads before writes at one time):
    ``ev`` its I/Os (``issued_s``, ``done_s``, ``bytes``, ``is_write``), ``origin`` the
    instant its time counts from, ``end`` when it finished (its last completion if None)."""
    out: dict[str, list[Line]] = {kind: [] for kind in LOGS}
    if ev.empty:
        return out
    ended = max(float(ev.done_s.max()), end or 0.0)
    end_ms = _ms(ended, origin)
    # the rate samples taken while the clone runs: at each k x W strictly before its end
    sampled = max(0, math.ceil(((ended - origin) * 1e3 - NS_MS) / avg_ms) - 1) if avg_ms else 0
    for ddir in (0, 1):
        d = ev[ev.is_write == bool(ddir)].sort_values("done_s", kind="stable")
        if d.empty:
            continue
        ms = np.array([_ms(t, origin) for t in d.done_s.tolist()], dtype=np.int64)
        lat = (d.done_s.to_numpy() - d.issued_s.to_numpy()) * 1e9
        nbytes = d.bytes.to_numpy().astype(np.int64)
        if avg_ms == 0:
            _per_io(out, ms, lat, nbytes, ddir)
        else:
            _rates(out, ms, nbytes, ddir, avg_ms, sampled)
            _latency(out, ms, lat, ddir, avg_ms, end_ms)
    return {k: sorted(v, key=lambda line: (line[0], line[2])) for k, v in out.items()}


def _ms(t: float, origin: float) -> int:
    """fio's ``mtime_since``: whole milliseconds since ``origin`` (never before it)."""
    return max(0, math.floor((t - origin) * 1e3 + 1e-9))


def _per_io(out: dict[str, list[Line]], ms: np.ndarray, lat: np.ndarray,
            nbytes: np.ndarray, ddir: int) -> None:
    for t, lat_ns, b in zip(ms.tolist(), lat.tolist(), nbytes.tolist(), strict=True):
        ns = max(1, round(lat_ns))  # fio's latencies are whole nanoseconds
        out["iops"].append((t, 1, ddir, b))
        out["bw"].append((t, b * 10**6 // ns, ddir, b))
        out["clat"].append((t, ns, ddir, b))
        out["lat"].append((t, ns, ddir, b))


def _rates(out: dict[str, list[Line]], ms: np.ndarray, nbytes: np.ndarray, ddir: int,
           avg_ms: int, n: int) -> None:
    """The ``n`` samples at ``k x W`` (those before the clone's end), each of the completions
    before it since the last; none for an empty window."""
    if n == 0:
        return
    window = ms // avg_ms
    keep = window < n
    ios = np.bincount(window[keep], minlength=n)
    size = np.bincount(window[keep], nbytes[keep], minlength=n)
    for k in np.flatnonzero(ios).tolist():
        t = (k + 1) * avg_ms
        out["iops"].append((t, int(ios[k]) * 1000 // avg_ms, ddir, 0))
        out["bw"].append((t, int(size[k]) * 1000 // avg_ms // 1024, ddir, 0))


def _latency(out: dict[str, list[Line]], ms: np.ndarray, lat: np.ndarray, ddir: int,
             avg_ms: int, end_ms: int) -> None:
    """fio's averaged latency window: closed by the first completion ``W`` ms or more after
    its start (that completion included), the rest at the clone's end."""
    window = ms // avg_ms
    prev = np.concatenate(([0], window[:-1]))
    closes = np.flatnonzero(window > prev).tolist()
    total = np.concatenate(([0.0], np.cumsum(lat)))
    start = 0
    for i in closes:
        _mean_line(out, int(ms[i]), total, start, i + 1, ddir)
        start = i + 1
    if start < len(ms):
        _mean_line(out, end_ms, total, start, len(ms), ddir)


def _mean_line(out: dict[str, list[Line]], t: int, total: np.ndarray, a: int, b: int,
               ddir: int) -> None:
    mean = math.floor((total[b] - total[a]) / (b - a) + 0.5)  # fio: the mean + 0.50, cut
    out["clat"].append((t, mean, ddir, 0))
    out["lat"].append((t, mean, ddir, 0))


def vm_logs(wl: Workload, vm: str, events: pd.DataFrame, avg_ms: int) -> dict[str, str]:
    """Each log file's text for one VM: the files :func:`log_files` names, each clone's
    lines from its own I/Os in ``events`` (``clone``, ``origin_s``, ``end_s`` as
    :meth:`cowbench.backends.Backend.io_events` gives them), windowed by its job's own
    ``log_avg_msec`` (as the real run's fio is given it), else ``avg_ms``."""
    by_clone = {c: events[events.clone == c] for c in set(events.clone.tolist())}
    lines: dict[int, dict[str, list[Line]]] = {}
    texts: dict[str, list[str]] = {}
    for f in log_files(wl, vm):
        if f.clone not in lines:
            ev = by_clone.get(f.clone)
            lines[f.clone] = ({k: [] for k in LOGS} if ev is None else
                              clone_lines(ev, float(ev.origin_s.iloc[0]),
                                          avg_ms if f.avg_ms is None else f.avg_ms,
                                          float(ev.end_s.iloc[0])))
        texts.setdefault(f.name, []).extend(f"{t}, {v}, {d}, {b}, 0\n"
                                            for t, v, d, b in lines[f.clone][f.kind])
    return {name: "".join(rows) for name, rows in texts.items()}


def real_log_dirs(run_dir: Path, names: list[str]) -> list[Path]:
    """The directories under ``run_dir/raw`` where the real run's fio wrote logs of these
    ``names`` (a job file's ``write_*_log``: each VM's fio directory, once per repeat), in
    order. They are left where fio wrote them, not copied: the same file names in two
    directories are what fio-plot compares (``-i MODEL_DIR REAL_DIR``, a benchmark per
    directory; its ``-g`` graphs pick the logs by name, so a renamed copy would not be
    drawn), and the run's raw/ stays its record."""
    raw = run_dir / "raw"
    wanted = set(names)
    found = {p.parent for p in raw.rglob("*.log") if p.name in wanted and p.is_file()} \
        if raw.is_dir() else set()
    return sorted(found)


def write_run_logs(run_dir: Path, scenario: Scenario, seed: object, avg_ms: int) -> list[Path]:
    """The model's run again (same scenario, seed and offset streams), its I/Os as fio logs in
    ``run_dir/fio-json``, named as each VM's fio would name them. Timelines and fleets are
    refused (UsageError), and so are two VMs whose logs would have the same name (their job
    files' ``write_*_log`` prefixes), before anything is written."""
    return write_logs(run_dir / "fio-json", run_logs(run_dir, scenario, seed, avg_ms))


def write_logs(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """``files`` (:func:`run_logs`) in ``out_dir`` (a run's ``fio-json/``; ``cowbench
    fio-json`` gives it held by its descriptor)."""
    written = []
    for name, text in sorted(files.items()):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written


def run_logs(run_dir: Path, scenario: Scenario, seed: object, avg_ms: int) -> dict[str, str]:
    """:func:`write_run_logs`'s files, by name, none written: what is refused is refused
    before ``fio-json`` writes anything, its JSON files included."""
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
    files: dict[str, str] = {}
    owner: dict[str, str] = {}
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None:
            continue
        for name, text in vm_logs(wl, vm.name, events[vm.name], avg_ms).items():
            if name in owner:
                raise UsageError(f"fio-json --logs: vms {owner[name]} and {vm.name} would both "
                                 f"write {name} (their jobs' write_*_log prefixes)")
            owner[name], files[name] = vm.name, text
    return files

