"""The host's cores shared by the processes on the I/O path (sim/perf/sched.py): a process
with more work queued gets its fair share and no more, waiting for a core makes the tail, a
wake-up serves a batch, and nothing is lost."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from cowbench.profile import (
    PerfParams,
    Probe,
    Profile,
    SchedParams,
    load_profile,
    profile_json,
)
from sim.perf.demand import PerfModel
from sim.perf.fit import fit
from sim.perf.host import Host
from sim.perf.perf import fit_with_alloc
from sim.perf.replay import fit_rows
from sim.perf.sched import Cores, Task, ns
from sim.perf.schedfit import kernel_slice_s, sched_params

from .test_perf import TRUE, probe, synthetic_probes

ROOT = Path(__file__).resolve().parent.parent

Proc = Generator[simpy.Event, Any, None]
SLICE = 1.5e-3


def vm_loop(env: simpy.Environment, task: Task, work_s: float, device_s: float,
            lat: list[float], until: float, rng: np.random.Generator | None = None) -> Proc:
    """One I/O slot of a VM: the server's CPU for the request (exponentially distributed with
    ``rng``), the device, again the CPU."""
    def work() -> float:
        return work_s / 2 if rng is None else float(rng.exponential(work_s / 2))

    while env.now < until:
        t0 = env.now
        yield task.run(work())
        yield env.timeout(device_s)
        yield task.run(work())
        lat.append(env.now - t0)


def run_vms(depths: list[int], cores: int = 1, work_s: float = 10e-6,
            device_s: float = 20e-6, wake_s: float = 0.0, until: float = 0.5,
            rng: np.random.Generator | None = None) -> tuple[list[list[float]], list[Task]]:
    env = simpy.Environment()
    host = Cores(env, cores, SLICE)
    tasks = [Task(env, host, wake_s) for _ in depths]
    lats: list[list[float]] = [[] for _ in depths]
    for task, depth, lat in zip(tasks, depths, lats, strict=True):
        for _ in range(depth):
            env.process(vm_loop(env, task, work_s, device_s, lat, until, rng))
    env.run(until=until)
    return lats, tasks


def test_a_process_that_sleeps_on_every_io_gets_one_turn_per_slice_of_one_that_never_does(
        ) -> None:
    # one core; the deep VM's server always has work (16 slots x 10 us of work per 30 us): it
    # keeps the core for its slice (EEVDF's RUN_TO_PARITY); the shallow one's 4 I/Os go to the
    # device at once and come back while the deep one runs, so it waits for the slice's end,
    # then finishes and reissues its 4 in one turn (40 us)
    (deep, shallow), (busy, light) = run_vms([16, 4], until=0.1)
    assert len(shallow) == pytest.approx(4 * 0.1 / (SLICE + 40e-6), rel=0.05)
    assert busy.cpu_s > 0.95 * 0.1 - SLICE and len(deep) > 30 * len(shallow)
    assert light.cpu_s == pytest.approx(len(shallow) * 10e-6, abs=40e-6)


def test_the_tail_grows_with_the_processes_runnable() -> None:
    p99, mean = [], []
    for n in (1, 8, 16):
        lats, _ = run_vms([1] * n, cores=2, device_s=50e-6, wake_s=5e-6, until=0.1,
                          rng=np.random.default_rng(0))
        p99.append(float(np.percentile(np.concatenate(lats), 99)))
        mean.append(float(np.mean(np.concatenate(lats))))
    assert p99[0] < p99[1] < p99[2]
    # the tail grows faster than the mean: waiting for a core comes on top of the device
    assert p99[2] - p99[0] > 2 * (mean[2] - mean[0])


def test_a_waking_light_process_waits_for_the_running_ones_slices() -> None:
    env = simpy.Environment()
    host = Cores(env, 1, SLICE)
    hogs = [Task(env, host, 0.0) for _ in range(2)]
    light = Task(env, host, 0.0)

    def busy(hog: Task) -> Proc:
        while True:
            yield hog.run(1.0)

    lat: list[float] = []
    for hog in hogs:
        env.process(busy(hog))
    env.process(vm_loop(env, light, 10e-6, 200e-6, lat, 0.2))
    env.run(until=0.2)
    # its sleep earns it no place ahead of those that waited runnable, and it takes no core
    # from a running one: each of its two wake-ups per I/O (the request, the reply) waits for
    # the running one's slice, then the waiting one's (alone: 210 us)
    assert min(lat[1:]) > 2 * SLICE
    assert max(lat[1:]) <= 4 * SLICE + 210e-6 + 1e-9
    assert light.cpu_s == pytest.approx(len(lat) * 10e-6, abs=10e-6)
    # the busy ones share what it leaves, a slice at a time, and the core never idles
    assert hogs[0].cpu_s == pytest.approx(hogs[1].cpu_s, rel=0.05)
    # (the turn in progress at the end is not counted yet: at most a slice)
    assert hogs[0].cpu_s + hogs[1].cpu_s + light.cpu_s == pytest.approx(0.2, abs=SLICE)
    assert hogs[0].turns > 0.2 / 2 / SLICE


def test_a_waking_process_re_enters_at_the_mean_vruntime_of_those_that_want_a_core() -> None:
    env = simpy.Environment()
    cores = Cores(env, 1, SLICE)
    task = Task(env, cores, 0.0)
    for v in (2e-3, 4e-3, 9e-3):  # one running, two waiting
        cores.request(priority=ns(v))
    assert len(cores.users) == 1 and len(cores.queue) == 2
    task.vruntime = 1e-3  # it slept while the others ran: no credit for that
    assert task.placed() == pytest.approx(5e-3)
    task.vruntime = 7e-3  # it ran more than they did: it keeps that
    assert task.placed() == 7e-3


def test_a_wake_up_serves_a_batch() -> None:
    per_io = []
    for depth in (1, 16):
        lats, (task,) = run_vms([depth], cores=1, device_s=100e-6, wake_s=15e-6, until=0.2)
        per_io.append(task.cpu_s / len(lats[0]))
    assert per_io[0] == pytest.approx(10e-6 + 2 * 15e-6, rel=0.02)
    assert per_io[1] < 0.5 * per_io[0]


def test_bursts_are_done_whole_and_in_order_whatever_the_slice() -> None:
    env = simpy.Environment()
    host = Cores(env, 1, 1e-3)
    task = Task(env, host, 2e-6)
    done: list[tuple[int, float]] = []
    for k, s in enumerate((2.5e-3, 0.4e-3, 1e-3)):
        task.run(s).callbacks.append(lambda _e, k=k: done.append((k, env.now)))
    env.run()
    assert [k for k, _ in done] == [0, 1, 2]
    assert done[-1][1] == pytest.approx(3.9e-3 + 2e-6)  # the work and one wake-up, no more
    assert task.cpu_s == pytest.approx(3.9e-3 + 2e-6)


# -- the scheduler in the host: its parameters, the fit, and a host of several VMs -------------

SCHED = SchedParams(cores=2, slice_s=1.5e-3, issuer_io_s=4e-6, issuer_wake_s=1.5e-6,
                    server_io_s=13e-6, server_wake_s=17e-6)


def with_cpu(p: Probe, sched: SchedParams = SCHED) -> Probe:
    """``p`` with the CPU figures a host with ``sched`` shows: two wake-ups per I/O with one
    in flight, none with many."""
    wakes = 0 if p.iodepth * p.exports > 1 else 2
    return p.model_copy(update={"issuer_cpu_s": sched.issuer_io_s + wakes * sched.issuer_wake_s,
                                "server_cpu_s": sched.server_io_s + wakes * sched.server_wake_s})


def test_the_costs_come_from_the_probes_cpu_and_the_slice_from_the_kernel() -> None:
    probes = [with_cpu(probe(iodepth=q)) for q in (1, 4, 32)]
    assert sched_params(probes, cores=2) == SCHED
    assert sched_params(probes, cores=8).slice_s == pytest.approx(3e-3)  # 0.75 ms x (1 + 3)
    assert sched_params(probes, cores=None) is None
    assert sched_params([probe(iodepth=q) for q in (1, 32)], cores=2) is None  # no figures
    assert kernel_slice_s(64) == kernel_slice_s(8)


def host_run(params: PerfParams, depths: list[int], until: float = 0.06
             ) -> list[tuple[float, float, float]]:
    """(IOPS, mean, p99 latency) of VMs of ``depths`` reading 4 KiB on one host."""
    env = simpy.Environment()
    model = PerfModel(params)
    host = Host(env, model, np.random.default_rng(0))
    d = model.probe_demand(probe())
    lats: list[list[float]] = [[] for _ in depths]
    warm = until / 5

    def slot(k: int) -> Proc:
        while True:
            yield host.client()
            t0 = env.now
            yield from host.serve(d, k)
            if env.now > warm:
                lats[k].append(env.now - t0)

    for k, depth in enumerate(depths):
        for _ in range(depth):
            env.process(slot(k))
    env.run(until=until)
    return [(len(x) / (until - warm), float(np.mean(x)), float(np.percentile(x, 99)))
            for x in lats]


def test_a_depth_1_vm_beside_a_deep_one_waits_for_a_core() -> None:
    sched = TRUE.model_copy(update={"sched": SCHED})
    (alone_iops, alone_lat, _), = host_run(sched, [1])
    deep, *shallow = host_run(sched, [16, 1, 1, 1, 1])
    # its processes sleep on every I/O and wait for a core at each wake-up, behind the deep
    # VM's server, which stays runnable and reaps many completions per turn
    assert all(x[1] > 2 * alone_lat and x[0] < 0.5 * alone_iops for x in shallow)
    assert deep[0] > 0.6 * (deep[0] + sum(x[0] for x in shallow))


def test_scheduled_tails_grow_with_the_vms_on_the_host() -> None:
    sched = TRUE.model_copy(update={"sched": SCHED})
    p99 = [host_run(sched, [1] * n)[0][2] for n in (1, 4, 12)]
    assert p99[0] < p99[1] < p99[2]


def test_a_host_without_cpu_figures_is_the_host_it_was() -> None:
    # a profile made before the scheduler: no cores, no tasks, the same figures
    assert TRUE.sched is None
    assert host_run(TRUE, [4]) == host_run(TRUE.model_copy(update={"sched": None}), [4])
    old = json.loads(TRUE.model_dump_json())
    del old["sched"]
    assert PerfParams.model_validate(old).sched is None


@pytest.mark.slow
def test_the_fit_with_a_scheduler_replays_probes_made_with_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a host as a calibration with CPU figures fits it: each VM's path its own
    true = TRUE.model_copy(update={"sched": SCHED, "path": "vm"})
    probes = [with_cpu(p) for p in synthetic_probes(true, ios=4000)]
    got = fit_with_alloc(probes, cores=2)
    assert got.sched is not None and got.path == "vm"
    # every kind of probe here shows the same CPU: the kinds' own costs are the data reads'
    assert got.sched.model_copy(update={"hole": None, "alloc": None}) == SCHED
    assert got.sched.cost("alloc") == pytest.approx(got.sched.cost("data"))
    errs = sorted(abs(r.rel_error) for r in fit_rows(got, probes, ios=1500)
                  if r.metric == "iops")
    assert np.median(errs) < 0.03
    assert errs[-1] < 0.2
    # the same probes fitted as if no CPU had been measured replay worse
    blind = fit([p.model_copy(update={"issuer_cpu_s": None, "server_cpu_s": None})
                 for p in probes])
    worse = sorted(abs(r.rel_error) for r in fit_rows(blind, probes, ios=1500)
                   if r.metric == "iops")
    assert np.median(worse) > np.median(errs)
    # benchmarks/sched_ab.py makes that blind profile from a profile with the scheduler
    src, out = tmp_path / "with.json", tmp_path / "without.json"
    src.write_text(profile_json(Profile(created="now", duration_s=1.0, matrix="short", dir="/d",
                                        host={}, tools={}, settings={}, probes=probes,
                                        params=got)))
    # run as `python benchmarks/sched_ab.py IN OUT` runs it (its __main__), in this process:
    # what it computes is the point, not a process of its own (1.1 s of CPU to start one)
    with monkeypatch.context() as m:
        m.setattr(sys, "argv", ["sched_ab.py", str(src), str(out)])
        runpy.run_path(str(ROOT / "benchmarks" / "sched_ab.py"), run_name="__main__")
    ab = load_profile(out)
    assert ab.params.sched is None and ab.probes == probes
    assert ab.params.stages == blind.stages and len(ab.fit) == 2 * len(errs)


def test_calibrate_prints_the_scheduler_or_its_absence() -> None:
    from rich.console import Console

    from cowbench.calibrate_view import print_profile
    from cowbench.profile import Profile

    def shown(params: PerfParams) -> str:
        out = Console(record=True, width=200)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=[probe()], params=params), out)
        return out.export_text()

    assert ("2 cores, 1.5 ms slices; issuer 4.0 + 1.5 us, server 13.0 + 17.0 us"
            in shown(TRUE.model_copy(update={"sched": SCHED})))
    assert "none (no CPU figures in the probes)" in shown(TRUE)
    grouped = SCHED.model_copy(update={"groups": "session"})
    assert "each qemu-nbd one" in shown(TRUE.model_copy(update={"sched": grouped}))
    assert "none in the model (each process its own share)" in shown(
        TRUE.model_copy(update={"sched": SCHED}))


PARAMS_SCHED = TRUE.model_copy(update={"sched": SCHED})


def scheduled_scenario() -> dict[str, Any]:
    """Two VMs (a reader at iodepth 8, a writer at iodepth 1) on a host with a scheduler."""
    from .conftest import small_dict

    d = small_dict()
    d["workloads"] = {"r": {"rw": "randread", "bs": "4k", "iodepth": 8, "io_size": "4MiB"},
                      "w": {"rw": "randwrite", "bs": "4k", "iodepth": 1, "io_size": "1MiB"}}
    d["vms"] = [{"name": "a", "image": "img", "workload": "r"},
                {"name": "b", "image": "img", "workload": "w"}]
    d["device"] = {"calibrated": PARAMS_SCHED.model_dump(mode="json")}
    return d


def test_a_scheduled_scenario_is_deterministic() -> None:
    from cowbench.scenario import parse_scenario
    from sim import simulate

    d = scheduled_scenario()
    first = simulate(parse_scenario(d), seed=3)
    assert first.equals(simulate(parse_scenario(d), seed=3))
    lat = first[first.metric == "read_lat_p99_s"].value
    assert len(lat) == 1 and float(lat.iloc[0]) > 0


def test_a_recorded_run_names_each_task_after_its_vm_and_changes_nothing() -> None:
    """Inside ``sim.perf.host.recording()`` (benchmarks/io_trace.py --profile) every host
    made keeps its tasks' turns and waits, each task named after the VM it serves; the run's
    figures are the ones it has outside."""
    from cowbench.scenario import parse_scenario
    from sim import simulate
    from sim.perf.host import recording

    d = scheduled_scenario()
    plain = simulate(parse_scenario(d), seed=3)
    with recording() as hosts:
        kept = simulate(parse_scenario(d), seed=3)
    assert kept.equals(plain)
    [host] = hosts
    named = dict(host.named_tasks())
    assert {"a:fio", "a:main", "b:fio", "b:main"} <= set(named)
    for task in named.values():
        assert task.record is not None and len(task.record[0]) == task.turns > 0
    with recording():
        pass
    assert Host(simpy.Environment(), PerfModel(PARAMS_SCHED), np.random.default_rng(0)
                ).record_turns is False  # outside, nothing is kept



def test_a_scheduled_run_records_the_cpu_of_each_vms_processes() -> None:
    """Each VM's ``issuer_cpu_s`` and ``server_cpu_s``: what its two processes used on the
    host's cores over the run (their costs per I/O and per wake-up, as the real backend
    measures fio's and qemu-nbd's); none without a scheduler, which has no processes."""
    from cowbench.scenario import parse_scenario
    from sim import simulate
    from sim.perf.host import recording

    d = scheduled_scenario()
    with recording() as hosts:
        df = simulate(parse_scenario(d), seed=3)
    [host] = hosts
    named = dict(host.named_tasks())
    cpu = {(e, m): v for e, m, v in df[df.metric.str.endswith("_cpu_s")][
        ["entity", "metric", "value"]].itertuples(index=False)}
    assert set(cpu) == {(f"vm:{v}", m) for v in "ab" for m in ("issuer_cpu_s", "server_cpu_s")}
    for vm in "ab":
        assert cpu[(f"vm:{vm}", "issuer_cpu_s")] == named[f"{vm}:fio"].cpu_s > 0
        assert cpu[(f"vm:{vm}", "server_cpu_s")] == named[f"{vm}:main"].cpu_s > 0
    # at least each I/O's own CPU, at most that and a wake-up of each process per I/O
    ios = {e: v for e, m, v in df[["entity", "metric", "value"]].itertuples(index=False)
           if m in ("read_ios", "write_ios")}
    for vm in "ab":
        n = ios[f"vm:{vm}"]
        assert SCHED.issuer_io_s * n <= cpu[(f"vm:{vm}", "issuer_cpu_s")] <= (
            (SCHED.issuer_io_s + 2 * SCHED.issuer_wake_s) * n * 1.001)
        assert SCHED.server_io_s * n <= cpu[(f"vm:{vm}", "server_cpu_s")] <= (
            (SCHED.server_io_s + 2 * SCHED.server_wake_s) * n * 1.001)
    # the host's cores: what every process and the kernel were given, over the span of the
    # VMs' I/O, of the two cores' time
    [busy] = df[df.metric == "cpu_busy_share"][["entity", "value"]].itertuples(index=False)
    used = sum(task.cpu_s for task in named.values())
    assert used == pytest.approx(sum(cpu.values()))  # no kernel CPU in SCHED: no kernel task
    assert busy.entity.startswith("host:") and 0 < busy.value <= 1
    span = used / (2 * busy.value)  # the first I/O to the last: the writer's, the longer
    w = df[(df.entity == "vm:b") & (df.metric == "write_ios")].value.iloc[0]
    lat = df[(df.entity == "vm:b") & (df.metric == "write_lat_mean_s")].value.iloc[0]
    assert w * lat <= span <= 1.2 * w * lat + 1e-3
    d["device"] = {"calibrated": TRUE.model_dump(mode="json")}
    plain = simulate(parse_scenario(d), seed=3)
    assert not plain.metric.str.endswith("_cpu_s").any()
    assert not (plain.metric == "cpu_busy_share").any()


class SimpyCores(simpy.PreemptiveResource):
    """The cores as SimPy's own preemptive resource: what :class:`Cores` must equal."""

    def __init__(self, env: simpy.Environment, count: int, slice_s: float) -> None:
        super().__init__(env, capacity=count)
        self.slice_s = slice_s
        self.min_vruntime = 0.0


@pytest.mark.parametrize("count", [1, 2])
def test_the_cores_run_as_simpys_preemptive_resource_to_the_step(count: int) -> None:
    """Tasks of random bursts and wake-ups, of several weights, on :class:`Cores` and on
    ``simpy.PreemptiveResource``: the same CPU, turns and vruntime for every task, at the
    same moments."""

    def run(make: Any) -> list[tuple[float, ...]]:
        env = simpy.Environment()
        cores = make(env, count, 2e-4)
        rng = np.random.default_rng(5)
        tasks = [Task(env, cores, wake_s=float(rng.uniform(0, 2e-5)), weight=w)
                 for w in (1.0, 1.0, 2.0, 0.5, 1.0)]
        seen: list[tuple[float, ...]] = []

        def feed(task: Task, k: int) -> Proc:
            for _ in range(300):
                yield env.timeout(float(rng.exponential(1e-4 * (k + 1))))
                yield task.run(float(rng.exponential(3e-5 * (k + 1))))
                seen.append((k, env.now))

        for k, task in enumerate(tasks):
            env.process(feed(task, k))
        env.run()
        return seen + [(t.cpu_s, t.turns, t.vruntime) for t in tasks]

    assert run(Cores) == run(SimpyCores)
