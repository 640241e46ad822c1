"""The host's cores scheduled as Linux 6.18's EEVDF, a queue per core (sim.perf.eevdf)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.perf.demand import PerfModel
from sim.perf.eevdf import TICK_S, Cpu, EevdfTask, Group, Runqueues
from sim.perf.host import Host
from sim.perf.sched import Cores, Task

from .test_perf import TRUE
from .test_perf_sched import SCHED, host_run

SLICE = 1.5e-3


def hog(env: simpy.Environment, rqs: Runqueues, seconds: float,
        done: list[float] | None = None) -> EevdfTask:
    """A process with one burst of ``seconds`` from now (its end's time added to ``done``)."""
    task = EevdfTask(env, rqs, 0.0)
    task.record = ([], [])
    ev = task.run(seconds)
    if done is not None:
        ev.callbacks.append(lambda _e: done.append(env.now))
    return task


def queued(cpu: Cpu, *vs: float) -> list[EevdfTask]:
    """Processes on ``cpu``'s queue at the vruntimes given (deadlines a slice on), and the
    first of them running, its slice protected."""
    out = []
    for v in vs:
        t = EevdfTask(cpu.env, cpu.rqs, 0.0)
        t.v, t.d, t.new, t.queued, t.core = v, v + SLICE, False, True, cpu
        cpu._join(t)
        out.append(t)
    cpu.curr, out[0].vprot = out[0], out[0].d
    return out


def test_a_used_up_slice_is_noticed_at_the_tick() -> None:
    """Two processes that never sleep on one core: each keeps the core past its 1.5 ms slice
    until the tick sees it (every 4 ms, HZ 250), so every turn is a whole tick."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    a, b = hog(env, rqs, 0.02), hog(env, rqs, 0.02)
    env.run()
    assert a.record is not None and b.record is not None
    turns = a.record[1] + b.record[1]
    assert len(turns) >= 8
    assert all(t == pytest.approx(TICK_S, abs=1e-9) for t in turns[:-2])
    assert a.cpu_s == pytest.approx(0.02) and b.cpu_s == pytest.approx(0.02)
    assert env.now == pytest.approx(0.04)


def test_each_core_has_its_queue_and_an_idle_core_takes_a_waking_process() -> None:
    """Two processes on two cores run at once, each on its own, and neither waits."""
    env = simpy.Environment()
    rqs = Runqueues(env, 2, SLICE)
    done: list[float] = []
    a, b = hog(env, rqs, 0.01, done), hog(env, rqs, 0.01, done)
    env.run()
    assert done == pytest.approx([0.01, 0.01])
    assert {a.cpu, b.cpu} == {0, 1}
    assert a.record is not None and b.record is not None
    assert a.record[0] == [0.0] and b.record[0] == [0.0]


def test_a_waking_process_is_placed_with_its_lag_and_keeps_it() -> None:
    """place_entity: at V - lag x (n + 1) / n, so that once it counts in V its lag is what it
    left with; with no lag, at V."""
    env = simpy.Environment()
    cpu = Runqueues(env, 1, SLICE).cpus[0]
    queued(cpu, 0.0, 3e-3)  # V = 1.5 ms; the first runs
    w = EevdfTask(env, cpu.rqs, 0.0)
    w.new, w.vlag = False, 1e-3
    cpu.enqueue(w)
    assert w.v == pytest.approx(1.5e-3 - 1e-3 * 3 / 2)
    assert cpu.avg() - w.v == pytest.approx(1e-3)
    assert w.d == pytest.approx(w.v + SLICE)
    z = EevdfTask(env, cpu.rqs, 0.0)
    z.new = False
    before = cpu.avg()
    cpu.enqueue(z)
    assert z.v == pytest.approx(before)


def test_a_lag_is_kept_within_two_slices_or_a_tick() -> None:
    env = simpy.Environment()
    cpu = Runqueues(env, 1, SLICE).cpus[0]
    _, far_behind, far_ahead = queued(cpu, 15e-3, 0.0, 30e-3)
    cpu.leave(far_behind)
    assert far_behind.vlag == pytest.approx(max(2 * SLICE, TICK_S))
    cpu.leave(far_ahead)
    assert far_ahead.vlag == pytest.approx(-max(2 * SLICE, TICK_S))


def test_the_pick_is_the_eligible_process_of_earliest_deadline() -> None:
    """One whose deadline is earliest but who has had more than its share is not picked."""
    env = simpy.Environment()
    cpu = Runqueues(env, 1, SLICE).cpus[0]
    ahead, behind, mid = queued(cpu, 4e-3, 0.0, 1e-3)  # V = 5/3 ms
    cpu.curr = None
    ahead.d, behind.d, mid.d = 1e-3, 5e-3, 2e-3
    assert cpu.pick(protect=False) is mid
    mid.d = 6e-3
    assert cpu.pick(protect=False) is behind


def test_a_waking_process_takes_the_core_only_from_one_no_longer_eligible() -> None:
    """check_preempt_wakeup_fair with RUN_TO_PARITY: the running process keeps its core to
    its deadline while it is eligible; once a wake-up with lag puts it past V, the one woken
    takes the core at once."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    cpu = rqs.cpus[0]
    running, _ = queued(cpu, 0.0, 0.0)  # V = 0: eligible, its slice protected
    running.run(10e-3)
    plain = EevdfTask(env, rqs, 0.0)
    plain.new, plain.queued, plain.core = False, True, cpu
    cpu.enqueue(plain)  # no lag: placed at V, a deadline a slice on
    assert cpu.curr is running
    owed = EevdfTask(env, rqs, 0.0)
    owed.new, owed.vlag, owed.queued, owed.core = False, 1e-3, True, cpu
    owed.run(1e-5)
    cpu.enqueue(owed)  # its lag puts V below the running one's vruntime
    assert running.v > cpu.avg()
    assert cpu.curr is owed


def test_a_process_that_sleeps_past_its_share_stays_queued_until_it_is_picked() -> None:
    """DELAY_DEQUEUE: it still counts in V while it would not be eligible; when it is picked
    it leaves with a lag of at most 0 (DELAY_ZERO)."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    cpu = rqs.cpus[0]
    ahead, behind = queued(cpu, 3e-3, 0.0)  # the one running has had more than its share
    behind.run(1e-3)
    cpu.sleep(ahead)
    assert ahead.delayed and ahead in cpu.queue and cpu.curr is behind
    assert cpu.avg() == pytest.approx(1.5e-3)
    env.run()
    assert ahead not in cpu.queue and not ahead.delayed and -1e-12 < ahead.vlag <= 0
    assert not ahead.queued


def test_a_core_with_nothing_to_run_pulls_a_waiting_process() -> None:
    """Three processes on two cores: the third queues behind one of the first two; when the
    other's core runs out of work, it takes the third (new-idle balance) rather than leave
    it to wait."""
    env = simpy.Environment()
    rqs = Runqueues(env, 2, SLICE)
    done: list[float] = []
    long = hog(env, rqs, 20e-3, done)
    short = hog(env, rqs, 1e-3, done)
    third = hog(env, rqs, 10e-3, done)
    env.run()
    assert long.cpu != short.cpu
    assert third.record is not None
    # it waited at most for the tick of the core it shared, never for the long one's 20 ms
    assert sum(third.record[0]) <= TICK_S + 1e-9
    assert done[-1] == pytest.approx(20e-3)


def test_bursts_are_done_whole_and_in_order_through_preemptions() -> None:
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    task = EevdfTask(env, rqs, 2e-6)
    other = hog(env, rqs, 0.05)
    done: list[float] = []
    for s in (3e-3, 7e-3, 1e-6):
        task.run(s).callbacks.append(lambda _e: done.append(env.now))
    env.run()
    assert len(done) == 3 and done == sorted(done)
    assert task.cpu_s == pytest.approx(3e-3 + 7e-3 + 1e-6 + 2e-6)
    assert other.cpu_s == pytest.approx(0.05)


def test_a_reader_at_iodepth_1_beside_deep_ones_keeps_the_lag_it_waited_for() -> None:
    """The kernel's record of the contention probe: a reader at iodepth 1 beside readers at
    iodepth 32 is served sooner than a queue by vruntime serves it (it wakes with the lag it
    earned waiting, and takes the core of a deep VM's process that has had its share), while
    the deep VMs still take most of the host."""
    per_core = TRUE.model_copy(update={"sched": SCHED})
    one = TRUE.model_copy(update={"sched": SCHED.model_copy(update={"queues": "one"})})
    shallow, *deep = host_run(per_core, [1, 32, 32, 32])
    was, *_ = host_run(one, [1, 32, 32, 32])
    assert shallow[0] > 1.5 * was[0] and shallow[1] < was[1] / 1.5
    assert sum(x[0] for x in deep) > 5 * shallow[0]


def test_the_host_schedules_with_a_queue_per_core_unless_told_one() -> None:
    params = TRUE.model_copy(update={"sched": SCHED})
    host = Host(simpy.Environment(), PerfModel(params), np.random.default_rng(0))
    assert isinstance(host.cores, Runqueues)
    assert isinstance(host.tasks(object())[0], EevdfTask)
    one = TRUE.model_copy(update={"sched": SCHED.model_copy(update={"queues": "one"})})
    host = Host(simpy.Environment(), PerfModel(one), np.random.default_rng(0))
    assert isinstance(host.cores, Cores)
    assert isinstance(host.tasks(object())[0], Task)


def grouped_hog(env: simpy.Environment, rqs: Runqueues, seconds: float, group: Group) -> EevdfTask:
    task = EevdfTask(env, rqs, 0.0, group=group)
    task.run(seconds)
    return task


def test_a_group_of_processes_shares_one_process_s_share_of_a_core() -> None:
    """CONFIG_SCHED_AUTOGROUP: four busy threads of one session beside one busy process on
    one core get half of it between them, as one process would, not four fifths."""
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    group = rqs.group()
    threads = [grouped_hog(env, rqs, 1.0, group) for _ in range(4)]
    alone = hog(env, rqs, 1.0)
    env.run(until=0.4)
    total = sum(t.cpu_s for t in threads)
    assert total + alone.cpu_s == pytest.approx(0.4, abs=TICK_S)  # accounted at the ticks
    assert total == pytest.approx(0.2, rel=0.05)
    # within the group, the four share alike
    assert max(t.cpu_s for t in threads) < 1.2 * min(t.cpu_s for t in threads)


def test_without_groups_each_process_has_its_own_share() -> None:
    env = simpy.Environment()
    rqs = Runqueues(env, 1, SLICE)
    threads = [hog(env, rqs, 1.0) for _ in range(4)]
    alone = hog(env, rqs, 1.0)
    env.run(until=0.4)
    assert sum(t.cpu_s for t in threads) == pytest.approx(0.32, rel=0.05)
    assert alone.cpu_s == pytest.approx(0.08, rel=0.05)


def test_a_group_on_two_cores_has_its_share_split_between_them() -> None:
    """calc_group_shares: a group busy on both cores has entities whose weights add up to
    about one process's; a group busy on one core has the whole share there."""
    env = simpy.Environment()
    rqs = Runqueues(env, 2, SLICE)
    spread, one = rqs.group(), rqs.group()
    for _ in range(4):
        grouped_hog(env, rqs, 1.0, spread)
    env.run(until=0.2)
    on = [se for se in spread.ses if se.rq is not None]
    assert len(on) == 2
    assert sum(se.w for se in on) == pytest.approx(1.0, rel=0.1)
    lone = grouped_hog(env, rqs, 1.0, one)
    env.run(until=0.4)
    (home,) = [se for se in one.ses if se.rq is not None]
    assert home.w == pytest.approx(1.0) and lone.cpu_s > 0


def test_each_qemu_nbd_is_a_task_group_of_its_own_and_fio_is_not_in_one() -> None:
    """``SchedParams.groups: session``: a VM's server and its pool threads are one group (a
    qemu-nbd is started in a session of its own), another VM's another; the issuer (a fio
    job, one process in its own session) is in none; with ``none`` nothing is grouped."""
    grouped = TRUE.model_copy(update={"sched": SCHED.model_copy(update={"groups": "session"})})
    host = Host(simpy.Environment(), PerfModel(grouped), np.random.default_rng(0))
    a, b = object(), object()
    issuer, server = host.tasks(a)
    assert isinstance(issuer, EevdfTask) and isinstance(server, EevdfTask)
    assert issuer.group is None and server.group is not None
    other = host.tasks(b)[1]
    assert isinstance(other, EevdfTask) and other.group not in (None, server.group)
    worker = host._task(0.0, server_of=a)
    assert isinstance(worker, EevdfTask) and worker.group is server.group
    plain = Host(simpy.Environment(), PerfModel(TRUE.model_copy(update={"sched": SCHED})),
                 np.random.default_rng(0))
    assert all(isinstance(t, EevdfTask) and t.group is None for t in plain.tasks(a))


def test_a_deep_vm_s_server_threads_get_one_share_when_grouped() -> None:
    """Four VMs reading at iodepth 1, 32, 32, 32 on one host, half of qemu-nbd's CPU in its
    pool: with each qemu-nbd one group, the deep VMs' many busy pool threads no longer each
    take a share of the cores, so the reader at iodepth 1 gets more of the host (here 1.47
    times the IOPS) than when every thread is a process of its own."""
    pool = SCHED.model_copy(update={"pool_share": 0.5})
    flat = TRUE.model_copy(update={"sched": pool})
    grouped = TRUE.model_copy(update={"sched": pool.model_copy(update={"groups": "session"})})
    shallow_flat = host_run(flat, [1, 32, 32, 32])[0]
    shallow_grouped = host_run(grouped, [1, 32, 32, 32])[0]
    assert shallow_grouped[0] > 1.2 * shallow_flat[0]
