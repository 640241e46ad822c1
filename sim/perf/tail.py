"""The host's long waits, fitted to the tails the calibration measured (issue 16).

The machine's kernel makes a runnable thread wait, now and then, far longer than its rules
make any wait in the model (``sim.perf.eevdf``): in its record of the probe of four exports,
one wait in a few hundred lasted 2 to 23 ms, while every turn lasted under 0.1 ms and the
model's longest wait was 0.4 ms; an I/O that meets one of them makes the probe's p99, which
fio measured 10 to 16 times its mean where the model's replay had 1.7 (docs/io-model.md, "The
tail of a crowded host" and "The host's long waits"). Where they come from is not modelled:
the kernel's grouping of each qemu-nbd's threads does make them (they go when it is switched
off), but the same grouping in the model did not.

So the model draws them: at each tick of a core where a process waits, each process runnable
there is set aside with chance ``p``, off the core for an exponential time of mean a slice
for each other session runnable there (at least one: a qemu-nbd's threads are one session,
each fio another), then it wakes again; on a core with one process, never
(:meth:`sim.perf.eevdf.Cpu._set_aside`). That is how long EEVDF keeps an entity that has had
more than its share waiting: while each other one on its queue runs its slice. ``p`` is
fitted here: the chance at
which the model's replays of the probes of several exports (reads and writes of 4 KiB at
iodepth 4 on two or more raw exports: the crowded host, nothing allocated) have, at the
median, the 99th percentile fio measured. None of those probes, or no host scheduler: no long
waits.

Until 2026-12-06's evening (fit version 1) the draw was made at a wake-up instead: a process
waking onto a core with ``k`` processes queued waited long with chance ``1 - (1 - p)^k``. That
gave a VM that wakes for each of its I/Os (one in flight) a long wait far more often than one
with many in flight, which seldom sleeps; the kernel's record of the contention probe showed
them waiting alike, and in the twelve stored sessions of io-density.yaml and io-holdout.yaml
the VMs at iodepth 1 or 2 and the chains came out 16-30% slow at the median, io-holdout's
mixed VM at iodepth 16 31% fast (docs/io-model.md, "Long waits by the time runnable").

Until 2026-12-07 (fit version 7) a long wait's mean was one tick (4 ms), however crowded the
core. The probes' tails say otherwise: in the twelve calibrations of that day's fresh
sessions, from two exports to four their p99 grew 1.6- to 10.3-fold (6 the median) while
their mean latency grew 1.6- to 2.0-fold; and at twelve VMs the model's p99 was short of
every VM's, by 11% to 72%, in the six sessions of io-density.yaml of that day
(docs/io-model.md, "Long waits as long as the crowd").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cowbench.profile import PerfParams, Probe

from .replay import replay_latencies

#: I/Os per export replayed for each probe at each step (fixed seed: the same draws at each)
TAIL_IOS = 2000
#: the chances tried lie between these (1e-3 adds no tail to these probes; at 0.9 a crowded
#: core is left nearly empty at every tick)
P_LOW, P_HIGH = 1e-3, 0.9
#: bisection steps on log p: the last step's factor is (P_HIGH / P_LOW) ** (1 / 2**STEPS), 1.05
STEPS = 7


def crowded(probes: Sequence[Probe]) -> list[Probe]:
    """The probes the long waits are fitted to: raw exports, several at once, nothing beside,
    their p99 recorded."""
    return [p for p in probes if p.target == "raw" and p.exports > 1 and p.beside is None
            and p.lat_p99_s is not None and p.lat_p99_s > 0 and p.iops > 0]


def p99_gap(params: PerfParams, probes: Sequence[Probe]) -> float:
    """The median over ``probes`` of log(the model's p99 / fio's)."""
    gaps = []
    for p in probes:
        _, lat = replay_latencies(params, p, ios=TAIL_IOS * p.exports)
        assert p.lat_p99_s is not None
        gaps.append(math.log(float(np.percentile(lat, 99)) / p.lat_p99_s))
    return float(np.median(gaps))


def with_wait(params: PerfParams, p: float) -> PerfParams:
    """``params`` (with a host scheduler) with long waits at chance ``p`` a tick, of mean a
    slice for each other session runnable on the core."""
    assert params.sched is not None
    sched = params.sched.model_copy(update={
        "long_wait_p": p, "long_wait_s": 0.0,
        "long_wait_each_s": params.sched.slice_s if p > 0 else 0.0})
    return params.model_copy(update={"sched": sched})


def fit_long_wait(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """``params`` with the host's long waits fitted to ``probes`` (see the module docstring):
    none if the replays without them are already as long-tailed as fio's, the most tried if
    even that is short."""
    sched = params.sched
    if sched is None or sched.queues != "per-core":
        return params
    fit_on = crowded(probes)
    if not fit_on:
        return params
    if p99_gap(with_wait(params, 0.0), fit_on) >= 0:
        return with_wait(params, 0.0)
    lo, hi = math.log(P_LOW), math.log(P_HIGH)
    if p99_gap(with_wait(params, P_HIGH), fit_on) <= 0:
        return with_wait(params, P_HIGH)
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        if p99_gap(with_wait(params, math.exp(mid)), fit_on) < 0:
            lo = mid
        else:
            hi = mid
    return with_wait(params, round(math.exp((lo + hi) / 2), 6))
