"""The model's event loop (sim/perf/loop.py) runs as ``simpy.Environment`` does: the same
events in the same order, and the same ends (until a time, until an event, an event that
fails, a run resumed after it stopped)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from sim.perf.loop import EventLoop

Proc = Generator[simpy.Event, Any, None]


def world(env: simpy.Environment, seen: list[Any]) -> simpy.Process:
    """Processes that wait, share a resource, interrupt one another and tie in time."""
    rng = np.random.default_rng(3)
    res = simpy.PreemptiveResource(env, capacity=2)

    def worker(k: int) -> Proc:
        for i in range(200):
            gap = float(rng.choice([0.0, 1.0, rng.exponential(2.0)]))
            yield env.timeout(gap)
            with res.request(priority=int(rng.integers(0, 3))) as req:
                try:
                    yield req
                    yield env.timeout(float(rng.choice([0.0, rng.exponential(1.0)])))
                except simpy.Interrupt:
                    seen.append(("preempted", k, env.now))
            seen.append((k, i, env.now, repr(env._eid)))  # events scheduled so far

    procs = [env.process(worker(k)) for k in range(5)]
    return env.process(_all(env, procs))


def _all(env: simpy.Environment, procs: list[simpy.Process]) -> Proc:
    yield simpy.AllOf(env, procs)


def trace(make: Any, until: Any) -> list[Any]:
    env = make()
    seen: list[Any] = []
    done = world(env, seen)
    stop = done if until == "event" else until

    def watcher() -> Proc:  # waits on the event the run stops at, registered after the stop
        yield env.timeout(1.0)
        yield done
        seen.append(("watcher", env.now))

    env.process(watcher())
    seen.append(("returned", env.run(stop), env.now))
    if until is not None:
        env.run()  # the rest, after a stop: the stopping event's later callbacks too
        seen.append(("rest", env.now))
    return seen


@pytest.mark.parametrize("until", [None, 37.5, 40, "event"])
def test_the_loop_runs_as_simpy(until: Any) -> None:
    assert trace(EventLoop, until) == trace(simpy.Environment, until)
    assert any(s[0] == "preempted" for s in trace(EventLoop, until))


def test_a_failed_event_is_raised_and_a_defused_one_is_not() -> None:
    for make in (EventLoop, simpy.Environment):
        env = make()
        env.event().fail(ValueError("boom"))
        with pytest.raises(ValueError, match="boom"):
            env.run()
        env = make()
        ev = env.event()
        ev.fail(ValueError("quiet"))
        ev.defused = True
        assert env.run() is None


def test_until_must_lie_ahead_and_an_event_must_fire() -> None:
    for make in (EventLoop, simpy.Environment):
        env = make()
        env.run(5)
        with pytest.raises(ValueError):
            env.run(5)
        with pytest.raises(RuntimeError):
            env.run(env.event())
        done = env.timeout(1, value="v")
        assert env.run(done) == "v" and env.run(done) == "v"
