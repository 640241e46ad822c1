"""The host's long waits (``sim.perf.eevdf``, fitted by ``sim.perf.tail``): at each tick of a
core where a process waits, each process runnable there is set aside, off the core for a slice
for each other session runnable there (a tick however crowded, in profiles fitted before
version 8), at a chance that the probes of several exports' p99 pins down."""

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


def core(p: float, *, hogs: int, sleeper: bool, seconds: float, seed: int = 0,
         each_s: float = 0.0, sessions: list[object] | None = None,
         ) -> tuple[list[EevdfTask], EevdfTask | None]:
    """One core at long-wait chance ``p`` for ``seconds``: ``hogs`` processes that never sleep
    (in ``sessions``, one each, if given; else each its own) and, if ``sleeper``, one that
    wakes every 1 ms for 10 us of CPU. A long wait's mean: ``each_s`` for each other session
    runnable, if given, else a tick."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SCHED.slice_s, (p, TICK_S, np.random.default_rng(seed)), each_s)
    busy = [EevdfTask(env, rqs, 0.0, session=None if sessions is None else sessions[i])
            for i in range(hogs)]
    for hog in busy:
        hog.run(10 * seconds)
    light = EevdfTask(env, rqs, 0.0) if sleeper else None

    def wake(task: EevdfTask) -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(1e-3)
            yield task.run(10e-6)

    if light is not None:
        light.record = ([], [])
        env.process(wake(light))
    env.run(until=seconds)
    return busy, light


def test_a_process_alone_on_its_core_is_never_set_aside() -> None:
    (hog,), _ = core(1.0, hogs=1, sleeper=False, seconds=1.0)
    assert hog.long_waits == 0 and hog.cpu_s == pytest.approx(1.0, abs=TICK_S)  # to its last tick
    _, light = core(1.0, hogs=0, sleeper=True, seconds=1.0)
    assert light is not None and light.long_waits == 0 and max(light.record[0]) == 0.0


def test_each_process_runnable_on_a_crowded_core_is_set_aside_at_a_tick_at_the_chance() -> None:
    # two processes that never sleep, both runnable at each of the 5,000 ticks of 20 s: each
    # set aside at about 5% of them, for a tick on average
    hogs, _ = core(0.05, hogs=2, sleeper=False, seconds=20.0)
    for hog in hogs:
        assert 190 < hog.long_waits < 310
        assert hog.long_wait_s / hog.long_waits == pytest.approx(TICK_S, rel=0.2)
    # the core runs one while the other is aside: it idles only when both are
    assert sum(h.cpu_s for h in hogs) > 0.99 * 20.0
    # at a chance of 0, none
    hogs, _ = core(0.0, hogs=2, sleeper=False, seconds=2.0)
    assert [h.long_waits for h in hogs] == [0, 0]


def test_a_process_that_wakes_for_microseconds_is_seldom_set_aside() -> None:
    # beside a process that never sleeps, one that wakes every 1 ms for 10 us is on the
    # core's queue at few ticks: even at a chance of one in two, few of its wake-ups are set
    # aside (drawn at the wake-up, as before the fit's version 2, half of them would be)
    _, light = core(0.5, hogs=1, sleeper=True, seconds=4.0)
    assert light is not None
    wakes = len(light.record[0])
    assert wakes > 3000
    assert 0 < light.long_waits < 0.05 * wakes
    # those it has are a tick long on average, and make its longest waits
    assert max(light.record[0]) > 1e-3


def mean_wait(hogs: list[EevdfTask]) -> float:
    return sum(h.long_wait_s for h in hogs) / sum(h.long_waits for h in hogs)


def test_a_long_wait_lasts_a_slice_for_each_other_session_runnable_on_the_core() -> None:
    slice_s = SCHED.slice_s
    # two processes that never sleep: a slice on average; five: four slices
    two, _ = core(0.05, hogs=2, sleeper=False, seconds=20.0, each_s=slice_s)
    five, _ = core(0.05, hogs=5, sleeper=False, seconds=20.0, each_s=slice_s)
    assert mean_wait(two) == pytest.approx(slice_s, rel=0.15)
    # (four others while all five are runnable; three once one is aside)
    assert 3 * slice_s < mean_wait(five) < 4.2 * slice_s
    # four threads of one session (a qemu-nbd's) beside one process: one other session
    # for each, so a slice, as two processes have
    one = object()
    mixed, _ = core(0.05, hogs=5, sleeper=False, seconds=20.0, each_s=slice_s,
                    sessions=[one, one, one, one, None])
    assert mean_wait(mixed) == pytest.approx(slice_s, rel=0.15)
    # without it (a profile fitted before version 8): a tick, however crowded
    old, _ = core(0.05, hogs=5, sleeper=False, seconds=20.0)
    assert mean_wait(old) == pytest.approx(TICK_S, rel=0.15)


def x_probe(rw: str = "randread", exports: int = 4) -> Probe:
    return probe(rw=rw, iodepth=4, exports=exports)


def test_long_waits_lengthen_a_crowded_hosts_tail_far_more_than_its_mean() -> None:
    _, none = replay_latencies(HOST, x_probe(), ios=8000)
    _, some = replay_latencies(with_wait(HOST, 0.3), x_probe(), ios=8000)
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
    truth = 0.25
    got = tail.fit_long_wait(HOST, tails_made_with(with_wait(HOST, truth)))
    assert got.sched is not None and got.sched.long_wait_each_s == SCHED.slice_s
    assert got.sched.long_wait_s == 0
    assert truth / 1.6 < got.sched.long_wait_p < truth * 1.6
    # nothing else moves
    assert got.model_copy(update={"sched": SCHED}) == HOST


def test_tails_the_model_already_has_fit_no_long_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "TAIL_IOS", 1000)
    short = [p.model_copy(update={"lat_p99_s": 0.8 * p.lat_p99_s})  # type: ignore[operator]
             for p in tails_made_with(HOST)]
    got = tail.fit_long_wait(HOST, short)
    assert got.sched is not None and got.sched.long_wait_p == 0.0 and got.sched.long_wait_s == 0
    assert got.sched.long_wait_each_s == 0


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
    assert ("27.5% of the processes runnable on a crowded core set aside at each tick, 1.5 ms "
            "for each other session runnable there on average" in shown(with_wait(HOST, 0.275)))
    # a profile fitted before version 8: a tick however crowded
    before = SCHED.model_copy(update={"long_wait_p": 0.275, "long_wait_s": TICK_S})
    assert ("27.5% of the processes runnable on a crowded core set aside at each tick, 4 ms on "
            "average" in shown(HOST.model_copy(update={"sched": before})))
