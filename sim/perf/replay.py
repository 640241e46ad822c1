"""Replaying a calibration probe on the model: its closed loops on one simulated host."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import simpy

from cowbench.profile import FitRow, PerfParams, Probe

from .demand import PerfModel
from .fit import contended
from .host import Exponentials, Host, Process
from .loop import EventLoop

#: a contention probe's own I/Os replayed at most: 1.2 s of CPU here for a quick profile's
#: (371-379 IOPS over five seeds, 373 with 4,000 I/Os, which took 12.5 s)
CONTENDED_IOS = 400


def replay(params: PerfParams, probe: Probe, *, ios: int = 6000, seed: int = 0,
           on_host: Callable[[Host], None] | None = None,
           record_turns: bool = False) -> tuple[float, float]:
    """The model's (IOPS, mean latency) for ``probe`` (:func:`replay_latencies`)."""
    iops, lat = replay_latencies(params, probe, ios=ios, seed=seed, on_host=on_host,
                                 record_turns=record_turns)
    return iops, float(np.mean(lat))


def replay_latencies(params: PerfParams, probe: Probe, *, ios: int = 6000, seed: int = 0,
                     on_host: Callable[[Host], None] | None = None,
                     record_turns: bool = False) -> tuple[float, np.ndarray]:
    """The model's IOPS for ``probe`` and the latency of each of its I/Os counted (in
    seconds, in the order they completed; the first tenth, the warm-up, left out): its
    exports x iodepth closed loops. A
    contention probe's reader (``sim.perf.fit.contended``) is replayed for at most
    ``CONTENDED_IOS`` of its own I/Os: the readers beside it complete some fifty times as
    many. The job beside a probe runs on exports of its own (``Beside.exports``), each with
    its own processes. ``on_host`` is given the simulated host once the replay is done (its
    processes' turns: benchmarks/io_turns.py; with ``record_turns``, each wait for a core and
    each turn too)."""
    if contended(probe):
        ios = min(ios, CONTENDED_IOS)
    env = EventLoop()
    model = PerfModel(params)
    rng = np.random.default_rng(seed)
    host = Host(env, model, rng, Exponentials(rng))  # the host's alone: drawn a block at a time
    host.record_turns = record_turns
    demand = model.probe_demand(probe)
    warm = ios // 10
    lat: list[float] = []
    done = [0]
    t0 = [0.0]

    def slot(export: object) -> Process:
        while done[0] < ios + warm:
            yield host.client()
            start = env.now
            yield from host.serve(demand, export)
            done[0] += 1
            if done[0] == warm:
                t0[0] = env.now
            elif done[0] > warm:
                lat.append(env.now - start)

    procs = [env.process(slot(e)) for e in range(probe.exports) for _ in range(probe.iodepth)]
    if probe.beside is not None:  # a job beside the probe's own, on the same storage
        b = probe.beside
        other = model.probe_demand(probe.model_copy(update={
            "rw": b.rw, "bs": b.bs, "iodepth": b.iodepth, "beside": None}))

        def background(export: object) -> Process:
            while done[0] < ios + warm:
                yield host.client()
                yield from host.serve(other, export)

        for k in range(b.exports):  # each export its own processes (a key made once)
            key = ("beside", k)
            for _ in range(b.iodepth):
                env.process(background(key))
    env.run(simpy.AllOf(env, procs))
    if on_host is not None:
        on_host(host)
    elapsed = env.now - t0[0]
    return len(lat) / elapsed, np.asarray(lat)


def fit_punch(params: PerfParams, probes: Sequence[Probe], ios: int = 600) -> PerfParams:
    """``params`` with ``punch_s``: what the trim probe (whole-cluster trims of written
    clusters at iodepth 1, each punching a hole in the image's file) took per trim beyond
    what the model gives a trim that frees nothing (a bare round trip: ``PerfModel.trim``),
    or as they are without such a probe (profiles made before it keep the fallback)."""
    probe = next((p for p in probes if p.target == "trim" and p.iodepth == 1
                  and p.exports == 1 and p.ios > 0), None)
    if probe is None:
        return params
    _, bare = replay(params.model_copy(update={"punch_s": 0.0}), probe, ios=ios)
    return params.model_copy(update={"punch_s": max(0.0, probe.lat_mean_s - bare)})


def fit_rows(params: PerfParams, probes: Sequence[Probe], ios: int = 3000) -> list[FitRow]:
    """The model's replay of each probe beside what was measured (``ios`` simulated I/Os
    each: 3000 replay the short matrix in about 5 s on this project's machine)."""
    rows = []
    for probe in probes:
        if probe.target == "device":  # the storage alone: it orders the device, see fit
            continue
        iops, lat = replay(params, probe, ios=ios)
        for metric, measured, model in (("iops", probe.iops, iops),
                                        ("lat_mean_s", probe.lat_mean_s, lat)):
            if measured > 0:
                rows.append(FitRow(probe=probe.name, metric=metric,
                                   measured=measured, model=model,
                                   rel_error=(model - measured) / measured))
    return rows
