"""Where each VM's offsets come from, and the exact streams from fio's null engine.

``offsets: auto`` (the default) takes every job's stream from fio itself whenever fio is
installed (``cowbench.fiojob.fio_null_traces``): the model then applies exactly what the real
run will issue. A job bounded by its I/O count (``io_size``, ``size``, ``number_ios``) is asked
for its whole stream. A job bounded by time (``time_based``, or a ``runtime`` or the scenario's
``duration`` that may cut it short) issues as many I/Os as the machine lets it, so the I/O
model first predicts how many each clone issues (a run of the model on its own offsets, or on a
stand-in for what it cannot generate), fio is asked for that many and a margin (a wider one
after a stand-in), and the model runs on fio's stream; where a stream ran out before the job's
time did, the prediction moved: fio is asked again for the count the model's rate now gives,
and the model runs again.

The model stays a pure function of the scenario and the streams handed to it (STYLE.md point
4); fio's output lands under the run's ``raw/``. :class:`StreamCache` keeps the streams of one
run by (workload, disk size, seed), so VMs running the same job on disks of the same size ask
fio once. Every workload run of a timeline takes its own stream, keyed by
``cowbench.lifecycle.stream_key`` (a later ``run`` event naming another workload, or a run on a
resized disk); a time-bounded one is sized by its own records (those at the instants it
starts: runs of one key issue one stream from its start, so the longest decides). A job fio
seeds at random takes a new seed at each run (``cowbench.runseed``), so each of its runs has
a stream and a key of its own, ``<key>@<run number>``.
"""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import UsageError
from .fiojob import cut, fio_null_traces, null_options, replay_traces, stream_engine
from .iolog import TRIM, Trace
from .lifecycle import run_ops, stream_key
from .runseed import for_run, run_numbers, varies_per_run
from .scenario import VM, Scenario, Workload
from .tools import RawLog

if TYPE_CHECKING:
    import pandas as pd

Traces = dict[str, list[Trace]]
Simulate = Callable[[Scenario, "Traces | None"], "pd.DataFrame"]

#: A time-bounded job's stream is asked for this much more than the model predicts.
MARGIN = 1.2
#: ... and this much more when the first prediction is a stand-in's (a job the model cannot
#: generate, run as the nearest one it can: its mean block size, no offset options). The
#: model's own offsets predict the count on fio's stream within 2% (io-holdout.yaml's five
#: jobs it generates, 2026-12-04); the stand-in of io-holdout's ``bssplit`` reader
#: (4k/50:16k/30:64k/20 with ``io_size: 1GiB``) was 18-22% short: run as 19.5 KiB reads, the
#: split's mean, it stopped at 1 GiB after 53,773, where fio's own stream averages 15.3 KiB
#: an I/O (fio shrinks a random I/O to the room its random map leaves: 8.7% of the reads are
#: 64 KiB, not 20%) and the model ran 65.7-69.0k of it in the job's 8 s. A stream that runs
#: out costs a whole run of the model more; asking fio for more costs a longer null-engine
#: stream, cheap beside a run of the model.
STAND_IN_MARGIN = 2.0
#: fio's null runs at once (:meth:`StreamCache.take_all`).
STREAMS_AT_ONCE = 8
#: Rounds of (ask fio, run the model) before giving up on a prediction that keeps moving.
ROUNDS = 3


def fio_installed() -> bool:
    return shutil.which("fio") is not None


def source_of(wl: Workload, fio_here: bool) -> str:
    """Where ``wl``'s offsets come from: ``fio``, ``model`` or ``iolog`` (``auto`` resolved)."""
    if wl.offsets == "auto":
        return "fio" if fio_here else "model"
    return wl.offsets


def refuse_without_fio(scenario: Scenario, fio_here: bool) -> None:
    """A workload the model's generator cannot do, with ``offsets: auto`` and no fio here:
    one line naming it and why."""
    for name, wl in scenario.workloads.items():
        beyond = wl.beyond_model
        if wl.offsets == "auto" and beyond and not fio_here:
            raise UsageError(f"workloads.{name}: {', '.join(beyond)} needs fio's own offset "
                             "stream (offsets: auto), but fio is not installed")


def is_timed(scenario: Scenario, wl: Workload) -> bool:
    """Is the job bounded by time (its count of I/Os then depends on the machine's speed)?
    A ``number_ios`` counted after a ramp is too: the ramp's I/Os come on top."""
    return any(p.time_based or p.runtime is not None or p.counts_after_ramp
               for p in wl.parts) or scenario.duration is not None


@dataclass
class StreamCache:
    """The null-engine streams of one run, by (workload, disk size, seed): each clone's I/Os,
    the whole stream or its first ``ios``."""

    log: RawLog
    _done: dict[tuple[str, int, str], tuple[int | None, list[Trace]]] = field(
        default_factory=dict)

    def take(self, wl: Workload, label: str, disk_size: int, seed: int,
             ios: int | None = None) -> list[Trace]:
        """``wl``'s per-clone streams on a disk of ``disk_size`` bytes (``ios``: the first
        ``ios`` I/Os of each clone; ``None``: the whole stream of a job bounded by count)."""
        return self.take_all([Ask(wl, label, disk_size, seed, ios)])[0]

    def take_all(self, asks: Sequence[Ask]) -> list[list[Trace]]:
        """:meth:`take` for each of ``asks``, fio's runs at once (up to
        :data:`STREAMS_AT_ONCE`): a null run mostly waits (fio sleeps 100 ms after starting
        its jobs and polls for their end every 10 ms: 0.23 s of wall for 0.08 s of CPU, a
        1,024-write stream, fio 3.33), so a scenario's VMs take their streams in about the
        time of one. Each distinct stream runs once, for the most any ask wants of it."""
        todo: dict[tuple[str, int, str], Ask] = {}
        for ask in asks:
            key = self._key(ask)
            if not self._has(key, ask.ios) and not _covers(todo.get(key), ask.ios):
                todo[key] = ask
        if len(todo) == 1:
            [(key, ask)] = todo.items()
            self._done[key] = (ask.ios, fio_null_traces(ask.wl, ask.label, ask.disk_size,
                                                        self.log, ask.ios, ask.seed))
        elif todo:
            self._run_at_once(todo)
        out = []
        for ask in asks:
            have = self._done[self._key(ask)]
            out.append(have[1] if ask.ios in (None, have[0]) else
                       [cut(t, ask.ios) for t in have[1]])
        return out

    def _run_at_once(self, todo: dict[tuple[str, int, str], Ask]) -> None:
        """fio's null runs of ``todo`` on a pool of threads. Signals reach the main thread:
        interrupted there (or a run failing), the runs not started are dropped and those
        running killed (``cancel``) before the exception goes on."""
        cancel = threading.Event()
        with ThreadPoolExecutor(min(STREAMS_AT_ONCE, len(todo)),
                                thread_name_prefix="fio-null") as pool:
            futs = {key: pool.submit(fio_null_traces, ask.wl, ask.label, ask.disk_size,
                                     self.log, ask.ios, ask.seed, cancel)
                    for key, ask in todo.items()}
            try:
                for key, fut in futs.items():  # in the asks' order: the first error is theirs
                    self._done[key] = (todo[key].ios, fut.result())
            except BaseException:
                cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _key(self, ask: Ask) -> tuple[str, int, str]:
        # what fio is told, but for the bound: jobs that differ in iodepth alone issue one
        # stream; zipf, pareto and normal draws also depend on the job's name (the VM's)
        wl = ask.wl
        named = any(p.random_distribution.split(":")[0] in ("zipf", "pareto", "normal", "gauss")
                    for p in wl.parts)
        told = [o for p in wl.parts for o in (f"[{p.section}]", *null_options(p, None, ask.seed))]
        return (" ".join(told), ask.disk_size, ask.label if named else "")

    def _has(self, key: tuple[str, int, str], ios: int | None) -> bool:
        have = self._done.get(key)
        return have is not None and (have[0] is None or (ios is not None and have[0] >= ios))


class Ask(NamedTuple):
    """One stream :meth:`StreamCache.take_all` is asked for (:meth:`StreamCache.take`'s
    arguments)."""

    wl: Workload
    label: str
    disk_size: int
    seed: int
    ios: int | None = None


def _covers(ask: Ask | None, ios: int | None) -> bool:
    """Does a run for ``ask`` give the first ``ios`` I/Os of each clone (``None``: all)?"""
    return ask is not None and (ask.ios is None or (ios is not None and ask.ios >= ios))


@dataclass(frozen=True)
class Run:
    """One key of ``traces``: a VM running a workload on a disk of ``disk`` bytes, at the
    instants ``times`` (``None``: a scenario without a timeline, whose records have none)."""

    key: str
    vm: VM
    workload: str
    disk: int
    times: tuple[float, ...] | None
    jobs: bool = False  # several jobs of one VM
    seeded: Workload | None = None  # what fio runs, seeded for this run (cowbench.runseed)


@dataclass
class Plan:
    """What :func:`take_streams` decided: per VM its streams, what they came from, and the
    model's records on those streams when it already ran on them."""

    traces: Traces
    offsets: dict[str, dict[str, Any]]
    predicted: pd.DataFrame | None = None


def take_streams(scenario: Scenario, seed: int, log: RawLog, simulate: Simulate,
                 first: pd.DataFrame | None = None) -> Plan:
    """Per workload run (``cowbench.lifecycle.stream_key``: a VM's name for its own workload),
    the exact streams it issues (``offsets`` fio, or auto with fio here, or iolog), and
    run.json's account of where each run's offsets come from.

    ``simulate(scenario, traces)`` runs the model; ``first`` is a run of it on its own
    offsets, if the caller has one (the space check's). Time-bounded jobs are sized with the
    model (see the module's docstring); the model's records on the final streams come back in
    ``predicted``."""
    fio_here = fio_installed()
    refuse_without_fio(scenario, fio_here)
    cache = StreamCache(log)
    plan = Plan({}, {})
    timed: list[Run] = []
    whole: list[tuple[str, VM, str, int, Ask]] = []  # runs bounded by count: their whole streams
    vms = {vm.name: vm for vm in scenario.vms}
    numbers = run_numbers(scenario)
    for (name, workload, disk), times in _runs(scenario, numbers):
        vm, wl = vms[name], scenario.workloads[workload]
        number = numbers[times[0][0]] if varies_per_run(wl) else None
        key = stream_key(scenario, vm, workload, disk, number)
        source = source_of(wl, fio_here)
        plan.offsets[key] = {"workload": workload, "offsets": source}
        if number is not None and source != "iolog":
            wl = for_run(wl, seed, name, number)
            plan.offsets[key].update(run=number, randseed=wl.parts[0].randseed)
        if source == "fio":
            plan.offsets[key].update(stream_engine(wl, disk))
        if source == "iolog":
            plan.traces[key] = _checked(replay_traces(wl), vm, workload, disk)
        elif source == "fio" and is_timed(scenario, wl):
            timed.append(Run(key, vm, workload, disk, None if scenario.timeline is None
                             else tuple(t for _, t in times), bool(wl.jobs), wl))
        elif source == "fio":
            whole.append((key, vm, workload, disk, Ask(wl, vm.name, disk, seed)))
            plan.offsets[key]["stream"] = "whole"
    for (key, vm, workload, disk, _), traces in zip(
            whole, cache.take_all([w[-1] for w in whole]), strict=True):
        plan.traces[key] = _checked(traces, vm, workload, disk)
    if timed:
        _size_timed(scenario, seed, cache, plan, timed, simulate, first)
    return plan


def _runs(scenario: Scenario, numbers: dict[int, int]
          ) -> list[tuple[tuple[str, str, int], list[tuple[int, float]]]]:
    """The runs that take one stream, each with its runs' ``(operation index, instant)``: a
    VM's runs of one workload on one disk size together, but each run of a workload seeded
    per run (``cowbench.runseed``) alone."""
    out: dict[tuple[str, str, int, int | None], list[tuple[int, float]]] = {}
    for op, run in run_ops(scenario):
        alone = varies_per_run(scenario.workloads[run.workload])
        key = (run.vm, run.workload, run.size, numbers[op.index] if alone else None)
        out.setdefault(key, []).append((op.index, op.t))
    # run_times' order: by the VM's place in ``vms``, then time
    index = {vm.name: i for i, vm in enumerate(scenario.vms)}
    order = sorted(out, key=lambda k: (index[k[0]], out[k][0][1], out[k][0][0]))
    return [((k[0], k[1], k[2]), out[k]) for k in order]


def _size_timed(scenario: Scenario, seed: int, cache: StreamCache, plan: Plan,
                timed: list[Run], simulate: Simulate, first: pd.DataFrame | None) -> None:
    """Ask fio for each time-bounded run's predicted count, run the model on the streams, and
    ask again where a stream ran out before its job's time (see the module's docstring)."""
    stand_in = _stand_in(scenario, timed)
    if first is None or stand_in is not scenario:
        first = simulate(stand_in, {k: v for k, v in plan.traces.items()})
    want = {r.key: _predicted_ios(first, scenario, r) for r in timed}
    margin = {r.key: STAND_IN_MARGIN if scenario.workloads[r.workload].beyond_model
              else MARGIN for r in timed}
    for rounds in range(1, ROUNDS + 1):
        asked = []
        for r in (r for r in timed if r.key in want):
            wl = r.seeded or scenario.workloads[r.workload]
            ios = math.ceil(want[r.key] * margin[r.key]) + max(p.iodepth for p in wl.parts)
            asked.append((r, Ask(wl, r.vm.name, r.disk, seed, ios)))
            plan.offsets[r.key].update(stream="predicted", ios_per_clone=ios, rounds=rounds)
        for (r, _), traces in zip(asked, cache.take_all([a for _, a in asked]), strict=True):
            plan.traces[r.key] = _checked(traces, r.vm, r.workload, r.disk)
        plan.predicted = simulate(scenario, plan.traces)
        want = {r.key: _extrapolated(plan.predicted, scenario, r) for r in timed
                if _ran_out(plan.predicted, r, plan.traces[r.key],
                            plan.offsets[r.key]["ios_per_clone"])}
        margin = dict.fromkeys(want, MARGIN)  # a count the model ran on fio's stream
        if not want:
            return
    raise UsageError(f"offsets: the model's count of I/Os for {next(iter(want))} kept "
                     f"moving over {ROUNDS} rounds of fio's null engine; set offsets: model")


def _checked(traces: list[Trace], vm: VM, workload: str, disk: int) -> list[Trace]:
    """Refuse streams the model cannot apply: I/O past the disk's end."""
    for t in traces:
        if t.end > disk:
            raise UsageError(f"vm {vm.name} (workload {workload}): the stream writes up to "
                             f"byte {t.end}, past the disk's end ({disk})")
    return traces


def _per_run(records: pd.DataFrame, r: Run, metrics: tuple[str, ...]) -> list[float]:
    """The sum of ``metrics`` in each of ``r``'s runs (one, without a timeline)."""
    rows = records[(records.entity == f"vm:{r.vm.name}") & records.metric.isin(metrics)]
    if r.times is None:
        return [float(rows.value.sum())]
    rows = rows[rows.t_s.isin(r.times)]
    return [float(v) for v in rows.groupby("t_s").value.sum()] or [0.0]


def _issued(records: pd.DataFrame, scenario: Scenario, r: Run) -> float:
    """Guest reads and writes the model issued in ``r``'s longest run (a verify phase's reads
    left out), those of fio's ramps too (``ramp_ios``: fio's figures leave them out, but its
    stream issues them): each run of one key issues the same stream from its start."""
    wl = scenario.workloads[r.workload]
    return max(_per_run(records, r, ("write_ios", "ramp_ios") if wl.verifies else
                        ("read_ios", "write_ios", "ramp_ios")))


def _clones(scenario: Scenario, r: Run) -> int:
    """What the VM's count of I/Os is divided by for one clone's: ``numjobs``; several jobs
    of one VM: 1 (no clone issues more than the VM, whichever job it is of)."""
    wl = scenario.workloads[r.workload]
    return 1 if wl.jobs else wl.numjobs


def _predicted_ios(records: pd.DataFrame, scenario: Scenario, r: Run) -> float:
    """I/Os one clone of ``r``'s job issues in the model's run (at most)."""
    return max(_issued(records, scenario, r) / _clones(scenario, r), 1.0)


def _ran_out(records: pd.DataFrame, r: Run, traces: list[Trace], asked: int) -> bool:
    """Did the model use up every read and write of a stream that fio cut at ``asked`` I/Os
    per clone, in some run (a stream fio ended itself, shorter, is the job's whole)?"""
    if not any(len(t) >= asked for t in traces):
        return False
    used = max(_per_run(records, r, ("read_ios", "write_ios", "ramp_ios")))
    if r.jobs:  # per job the records do not say: a clone cut at ``asked`` may have run out
        return used >= asked
    reads_writes = sum(int((t.ddir != TRIM).sum()) for t in traces)
    return reads_writes > 0 and used >= reads_writes


def _extrapolated(records: pd.DataFrame, scenario: Scenario, r: Run) -> float:
    """Per clone, the I/Os the job issues over its whole time at the rate the model ran it
    (at least half as many again as it used up)."""
    issued = _issued(records, scenario, r)
    iops = max(_per_run(records, r, ("read_iops", "write_iops")))
    parts = scenario.workloads[r.workload].parts
    longest = max((p.runtime for p in parts if p.runtime is not None), default=None)
    limit = min(x for x in (longest, scenario.duration, math.inf) if x is not None)
    ramp = max(p.ramp_s for p in parts)  # fio's runtime starts after it
    over_time = iops * (limit + ramp) if math.isfinite(limit) else 0.0
    return max(over_time, 1.5 * issued) / _clones(scenario, r)


def _stand_in(scenario: Scenario, timed: list[Run]) -> Scenario:
    """``scenario`` with each time-bounded job the model cannot generate replaced by the
    nearest one it can (the mean block size, no offset options), for a first count of I/Os;
    ``scenario`` itself when there is none."""
    names = {r.workload for r in timed}
    swap = {n: _nearest(wl) for n, wl in scenario.workloads.items()
            if n in names and wl.beyond_model}
    if not swap:
        return scenario
    return scenario.model_copy(update={"workloads": {**scenario.workloads, **swap}})


def _nearest(wl: Workload) -> Workload:
    bs = wl.bs
    if wl.bssplit:
        parts = [p.partition("/") for p in wl.bssplit.split(",")[0].split(":")]
        sizes = [(_bytes(s), int(pct or 0)) for s, _, pct in parts]
        weight = sum(p for _, p in sizes) or 1
        bs = max(512, int(sum(s * p for s, p in sizes) / weight) // 512 * 512)
    rw = "write" if wl.rw == "trimwrite" else wl.rw.replace("trim", "write")
    return wl.model_copy(update={
        "offsets": "model", "fio_extra": {}, "bssplit": None, "loops": 1, "bs": bs, "rw": rw,
        "offset": wl.offset - wl.offset % bs})


def _bytes(text: str) -> int:
    from .units import parse_size

    return parse_size(text)
