"""The host's long waits (``sim.perf.eevdf``, fitted by ``sim.perf.tail``): now and then a
process that wakes on a busy core waits about a tick before it joins the core's queue, at a
chance per process queued there that the probes of several exports' p99 pins down."""

from __future__ import annotations

import json

import numpy as np
import pytest
import simpy
from rich.console import Console

from cowbench.calibrate_view import print_profile
from cowbench.profile import Beside, PerfParams, Probe, Profile, SchedParams
from sim.perf import tail
from sim.perf.eevdf import TICK_S, EevdfTask, Runqueues
from sim.perf.replay import replay_latencies
from sim.perf.tail import with_wait

from .test_perf import TRUE, probe
from .test_perf_sched import SCHED

HOST = TRUE.model_copy(update={"sched": SCHED, "path": "vm"})


def waits(p: float, *, busy: bool, wakes: int = 300, seed: int = 0) -> list[float]:
    """Each wait for a core of a process that wakes every 1 ms for 10 us of CPU, on one core,
    beside a process that never sleeps (``busy``) or alone."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SCHED.slice_s, (p, TICK_S, np.random.default_rng(seed)))
    sleeper = EevdfTask(env, rqs, 0.0)
    sleeper.record = ([], [])
    if busy:
        hog = EevdfTask(env, rqs, 0.0)
        hog.run(10.0)

    def wake() -> simpy.events.ProcessGenerator:
        for _ in range(wakes):
            yield env.timeout(1e-3)
            yield sleeper.run(10e-6)

    env.process(wake())
    env.run(until=wakes * 2e-3 + 1.0)
    return sleeper.record[0]


def test_a_process_that_wakes_on_an_idle_core_never_waits_long() -> None:
    assert max(waits(1.0, busy=False)) == 0.0


def test_a_process_that_wakes_beside_another_waits_a_tick_on_average_when_it_waits_long() -> None:
    # chance 1 with one process on the core: every wake-up waits long, exponential of mean a
    # tick, then for its turn as without
    without, every = waits(0.0, busy=True), waits(1.0, busy=True, wakes=600)
    assert np.mean(without) < 1e-3
    extra = np.mean(every) - np.mean(without)
    assert extra == pytest.approx(TICK_S, rel=0.15)
    # and at a chance of 5% about one wake-up in twenty does
    some = np.array(waits(0.05, busy=True, wakes=2000))
    assert 0.025 < np.mean(some > 1e-3) < 0.08


def x_probe(rw: str = "randread", exports: int = 4) -> Probe:
    return probe(rw=rw, iodepth=4, exports=exports)


def test_long_waits_lengthen_a_crowded_hosts_tail_far_more_than_its_mean() -> None:
    _, none = replay_latencies(HOST, x_probe(), ios=8000)
    _, some = replay_latencies(with_wait(HOST, 0.01), x_probe(), ios=8000)
    assert np.mean(some) < 1.3 * np.mean(none)
    assert np.percentile(some, 99) > 2 * np.percentile(none, 99)
    # a chance of 0 is the scheduler without them, draw for draw
    _, zero = replay_latencies(with_wait(HOST, 0.0), x_probe(), ios=2000)
    _, plain = replay_latencies(HOST, x_probe(), ios=2000)
    assert np.array_equal(zero, plain)


def tails_made_with(params: PerfParams, seed: int = 7) -> list[Probe]:
    """The probes of several exports, their figures 'measured' on the model with ``params``
    (another seed than the fit's, many more I/Os), and a single export's beside them."""
    out = []
    for rw in ("randread", "randwrite"):
        for k in (2, 4):
            p = x_probe(rw, k)
            _, lat = replay_latencies(params, p, ios=6000 * k, seed=seed)
            out.append(p.model_copy(update={"iops": k * 4 / float(np.mean(lat)),
                                            "lat_mean_s": float(np.mean(lat)),
                                            "lat_p99_s": float(np.percentile(lat, 99))}))
    return out + [probe(iodepth=32)]


@pytest.mark.slow
def test_the_fit_finds_the_chance_that_made_the_tails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "TAIL_IOS", 1500)
    truth = 0.006
    got = tail.fit_long_wait(HOST, tails_made_with(with_wait(HOST, truth)))
    assert got.sched is not None and got.sched.long_wait_s == TICK_S
    assert truth / 1.6 < got.sched.long_wait_p < truth * 1.6
    # nothing else moves
    assert got.model_copy(update={"sched": SCHED}) == HOST


def test_tails_the_model_already_has_fit_no_long_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "TAIL_IOS", 1000)
    short = [p.model_copy(update={"lat_p99_s": 0.8 * p.lat_p99_s})  # type: ignore[operator]
             for p in tails_made_with(HOST)]
    got = tail.fit_long_wait(HOST, short)
    assert got.sched is not None and got.sched.long_wait_p == 0.0 and got.sched.long_wait_s == 0


def test_without_probes_of_several_exports_or_a_scheduler_nothing_is_fitted() -> None:
    singles = [probe(iodepth=q) for q in (1, 4, 32)]
    assert tail.fit_long_wait(HOST, singles) == HOST
    assert tail.fit_long_wait(TRUE, [x_probe()]) == TRUE  # no host scheduler
    one_queue = HOST.model_copy(update={"sched": SCHED.model_copy(update={"queues": "one"})})
    assert tail.fit_long_wait(one_queue, [x_probe()]) == one_queue
    # the probe beside a job (the contention probe) and the copies' are not what it reads
    beside = x_probe(exports=2).model_copy(update={"beside": Beside(
        rw="randread", bs=4096, iodepth=32, exports=2)})
    assert tail.crowded([x_probe(exports=2)]) == [x_probe(exports=2)]
    assert tail.crowded([beside, probe(target="cow", rw="write", iodepth=8, exports=4)]) == []


def test_a_profile_made_before_them_has_none_and_calibrate_prints_them() -> None:
    old = json.loads(SCHED.model_dump_json())
    del old["long_wait_p"], old["long_wait_s"]
    assert SchedParams.model_validate(old).long_wait_p == 0.0

    def shown(params: PerfParams) -> str:
        out = Console(record=True, width=220)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=[probe()], params=params), out)
        return out.export_text()

    assert "long waits for a core" not in shown(HOST)
    assert ("0.72% per process queued on the core, 4 ms on average"
            in shown(with_wait(HOST, 0.0072)))
