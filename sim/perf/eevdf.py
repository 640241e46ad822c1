"""The host's cores as Linux 6.18 schedules them: EEVDF, with a run queue per core.

:mod:`sim.perf.sched` gives every core one shared queue, ordered by vruntime, where a waking
process takes no core and keeps no lag. A real host has a queue per core, and the kernel's
record of the calibration's probe of four exports (docs/io-model.md, "Today's machine, and
where its tail is") showed what that leaves out: a thread waits on its own core's queue while
the other core serves its own, a thread keeps its lag through a short sleep, a thread that
wakes takes the core from one that is no longer eligible, and a used-up slice is noticed at
the tick. This module has them, as ``kernel/sched/fair.c`` does (all processes of nice 0, so
of equal weight; the kernel's names in brackets):

- each process has a *vruntime* ``v`` (the CPU it has used, from where it was placed) and a
  virtual *deadline* ``d``; ``V`` is the mean ``v`` of the processes on a core's queue, the
  running one too (``avg_vruntime``); a process is *eligible* when ``v <= V``, when it has
  had no more than its share;
- a core runs the eligible process of earliest deadline (``pick_eevdf``); the one picked
  keeps the core until its deadline, ``v`` plus a slice (RUN_TO_PARITY), unless it sleeps, or
  a process wakes whose deadline is earlier while it is no longer eligible
  (``check_preempt_wakeup_fair``);
- a used-up slice (``v >= d``) gives a new deadline and a pick again (``update_deadline``);
  the kernel sees it when the core's queue changes or at the core's tick, every 4 ms (HZ 250);
- a process that sleeps while eligible leaves the queue with its *lag* ``V - v``, at most
  ``max(2 slices, a tick)`` either way (``update_entity_lag``); one that sleeps while not
  eligible stays on the queue, not run, until it would be picked (then it leaves, its lag no
  more than 0) or wakes (DELAY_DEQUEUE, DELAY_ZERO); a waking process is placed at
  ``V - lag``, its lag scaled by ``(n + 1) / n`` so that it still has it once it is counted in
  ``V`` (``place_entity``), with a deadline a slice on (half a slice for a new one);
- a waking process goes to the core of the process that woke it if that one is alone there
  or its core is no busier than the process's last (``wake_affine``), to an idle core if that
  one is not idle (``select_idle_sibling``: its last core first); a core with nothing to run
  pulls the process that has waited longest on the other (new-idle balance), and every
  ``BALANCE_TICKS`` ticks a core pulls one from a core with two more on its queue.

One thing is drawn, not derived: the host's *long waits*. The machine's kernel now and then
keeps a runnable thread waiting 2 to 23 ms on a crowded host, and those waits make every
crowded VM's p99; these rules do not make them (their longest wait is about 0.4 ms). So at
each tick of a core where a process waits, each process runnable there is, at a chance fitted
to the calibration's tails (``sim.perf.tail``), set aside: off the core for about a tick, then
it wakes again (:meth:`Cpu._set_aside`). A process is set aside by the time it is runnable
on a crowded core, not by its wake-ups: one that keeps many I/Os in flight, runnable most of
the time, loses as much of it as the others; one that wakes for each I/O and is done in
microseconds is seldom there at a tick.

What it leaves out: nice levels and cgroups (every process here is nice 0 in one group), the
cache-hot test of a migration, load averages (it counts processes queued), and interrupts
(the host's kernel work is a process of its own, pinned to the core that takes the disk's
interrupts: ``sim.perf.host.Host.kernel``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import simpy
from simpy.events import URGENT

#: the kernel's tick (CONFIG_HZ 250 here and on most distributions' kernels)
TICK_S = 4e-3
#: a busy core balances every this many ticks: ``sd->balance_interval`` (the domain's cores,
#: in ms) times its ``busy_factor`` (16) is 32 ms for a domain of two cores
BALANCE_TICKS = 8
#: what is left of a burst below this is done (float rounding)
EPS_S = 1e-12


class Runqueues:
    """The host's ``count`` cores, each with its own queue (the scheduler's ``rq``)."""

    def __init__(self, env: simpy.Environment, count: int, slice_s: float,
                 long_wait: tuple[float, float, Any] | None = None) -> None:
        self.env = env
        #: (chance at a tick for each process runnable on a core where one waits, mean in
        #: seconds, the generator that draws them): the host's long waits
        #: (:meth:`Cpu._set_aside`); None: none
        self.long_wait = long_wait if long_wait is not None and long_wait[0] > 0 else None
        self.capacity = count
        self.slice_s = slice_s
        #: a process's lag is kept within this either way (``update_entity_lag``)
        self.lag_limit = max(2 * slice_s, TICK_S)
        self.cpus = [Cpu(self, k) for k in range(count)]
        #: the core where a burst ended last, and when: the waker of the next wake-up then
        self.waker: Cpu | None = None
        self.waker_at = -1.0

    def select(self, task: EevdfTask) -> Cpu:
        """The core a waking ``task`` is queued on (``select_task_rq_fair``)."""
        prev = self.cpus[task.cpu] if task.cpu is not None else None
        target = prev
        waker = self.waker if self.waker_at == self.env.now else None
        if waker is not None and waker is not prev:
            # wake_affine: a synchronous wake-up (a reply on a socket) to the waker's core if
            # the waker is alone there, or if that core is not busier than the task's last
            # (the kernel compares load averages, prev's weighted by 1.085)
            others = sum(1 for t in waker.queue if t is not waker.curr)
            if prev is None or others == 0 or others * 100 < len(prev.queue) * 108.5:
                target = waker
        if target is not None and target.idle():
            return target
        if prev is not None and prev.idle():
            return prev
        for cpu in self.cpus:
            if cpu.idle():
                return cpu
        return target if target is not None else min(self.cpus, key=lambda c: len(c.queue))

    def balance(self, cpu: Cpu) -> None:
        """Periodic balance: ``cpu`` pulls one process from a core with two more queued."""
        src = max(self.cpus, key=lambda c: len(c.queue))
        if src is not cpu and len(src.queue) >= len(cpu.queue) + 2:
            self._move(src, cpu)

    def newidle(self, cpu: Cpu) -> None:
        """``cpu`` has nothing to run: it pulls a process waiting on another core."""
        for src in self.cpus:
            if src is not cpu and self._move(src, cpu):
                return

    def _move(self, src: Cpu, dst: Cpu) -> bool:
        """The process that has waited longest on ``src`` (not running, not delayed) to
        ``dst``, with its lag; False if there is none."""
        waiting = [t for t in src.queue if t is not src.curr and not t.delayed]
        if not waiting:
            return False
        task = min(waiting, key=lambda t: t.queued_at)
        src.leave(task)
        task.core = dst
        dst.enqueue(task)
        return True


class Cpu:
    """One core and its queue: every process on it, running, waiting or delayed."""

    def __init__(self, rqs: Runqueues, index: int) -> None:
        self.rqs = rqs
        self.env = rqs.env
        self.index = index
        self.queue: list[EevdfTask] = []
        self.sum_v = 0.0  # of the queue's vruntimes: V is its mean
        self.curr: EevdfTask | None = None
        self._since = 0.0  # when the running process's CPU was last accounted
        self._version = 0  # of the running process's pending event
        self._ticking = False
        self._ticks = 0

    def idle(self) -> bool:
        return self.curr is None and not self.queue

    def avg(self) -> float:
        """``V``: the mean vruntime of the queue (0 when it is empty)."""
        return self.sum_v / len(self.queue) if self.queue else 0.0

    # -- accounting and the tick

    def update_curr(self) -> bool:
        """Account what the running process has used since last; True if its slice is used
        up: it has a new deadline, and the core must pick again (``update_curr``)."""
        t, now = self.curr, self.env.now
        used = now - self._since
        self._since = now
        if t is None:
            return False
        if used > 0:
            t.v += used
            t.cpu_s += used
            self.sum_v += used
        if t.v >= t.d:
            t.d = t.v + self.rqs.slice_s
            return True
        return False

    def _start_ticks(self) -> None:
        """The core ticks while it has processes: every ``TICK_S`` on the machine's grid,
        the cores' ticks spread over it."""
        if self._ticking:
            return
        self._ticking = True
        offset = TICK_S * self.index / self.rqs.capacity
        now = self.env.now
        self._tick_in(offset + (int((now - offset) / TICK_S) + 1) * TICK_S - now)

    def _tick_in(self, delay: float) -> None:
        ev = simpy.Timeout(self.env, max(delay, 0.0))
        ev.callbacks.append(self._tick)

    def _tick(self, _: object) -> None:
        if not self.queue:
            self._ticking = False
            return
        self._ticks += 1
        if self.curr is not None and self.update_curr():
            self.resched()
        if self.rqs.long_wait is not None and len(self.queue) > 1:
            self._set_aside(self.rqs.long_wait)
        if self._ticks % BALANCE_TICKS == 0:
            self.rqs.balance(self)
        self._tick_in(TICK_S)

    def _set_aside(self, long_wait: tuple[float, float, Any]) -> None:
        """The host's long waits, at a tick of this core with a process waiting: each process
        runnable here (running or waiting; not one pinned, as the host's kernel, nor one
        delayed, which is asleep) is set aside with chance ``p``: off the core's queue for an
        exponential time of the mean fitted (``SchedParams.long_wait_p``, ``long_wait_s``),
        then it wakes again, its core chosen again. The core then runs what is left."""
        p, mean, rng = long_wait
        aside = [t for t in self.queue if t.pin is None and not t.delayed and rng.random() < p]
        for t in aside:
            if t is self.curr:
                self.update_curr()
                self._version += 1
                t.preempted()
                self.curr = None
            self.leave(t)
            t.wait_long(rng.exponential(mean))
        if aside and self.curr is None:
            self.dispatch()

    # -- the pick

    def pick(self, protect: bool) -> EevdfTask | None:
        """The eligible process of earliest deadline; the running one while its slice is
        protected (``protect``: RUN_TO_PARITY), or if it is as early (``pick_eevdf``)."""
        q = self.queue
        if len(q) <= 1:
            return q[0] if q else None
        avg = self.avg() + 1e-15  # float rounding: the mean itself is eligible
        curr = self.curr
        if curr is not None and curr.v > avg:
            curr = None
        if curr is not None and protect and curr.v < curr.vprot:
            return curr
        best: EevdfTask | None = None
        for t in q:
            if t is not self.curr and t.v <= avg and (best is None or t.d < best.d):
                best = t
        if best is None or (curr is not None and curr.d < best.d):
            best = curr
        return best if best is not None else min(q, key=lambda t: t.v)

    # -- arrivals and departures

    def enqueue(self, task: EevdfTask) -> None:
        """``task`` wakes on this core, or is moved to it: placed with its lag
        (``place_entity``), then it may take the core (``check_preempt_wakeup_fair``)."""
        resched = self.update_curr()
        n = len(self.queue)
        lag = task.vlag * (n + 1) / n if n else 0.0
        task.v = self.avg() - lag
        task.d = task.v + (self.rqs.slice_s / 2 if task.new else self.rqs.slice_s)
        task.new = False
        self._join(task)
        self._woken(task, resched)

    def requeue(self, task: EevdfTask) -> None:
        """``task`` wakes while still on this queue, delayed: as it was, but with no credit
        for the time it was asleep (DELAY_ZERO: a lag above 0 is dropped)."""
        resched = self.update_curr()
        task.delayed = False
        avg = self.avg()
        if task.v < avg:
            self.sum_v += avg - task.v
            task.v = avg
            task.d = avg + self.rqs.slice_s
        task.queued_at = self.env.now
        self._woken(task, resched)

    def _join(self, task: EevdfTask) -> None:
        task.cpu = self.index
        task.queued_at = self.env.now
        self.queue.append(task)
        self.sum_v += task.v

    def _woken(self, task: EevdfTask, resched: bool) -> None:
        if self.curr is None:
            self._start_ticks()
            self.dispatch()
        elif resched or self.pick(protect=True) is task:
            self.resched()

    def leave(self, task: EevdfTask) -> None:
        """``task`` leaves the queue (moved, or asleep) with its lag (``update_entity_lag``)."""
        lim = self.rqs.lag_limit
        task.vlag = min(max(self.avg() - task.v, -lim), lim)
        self.queue.remove(task)
        self.sum_v -= task.v
        if not self.queue:
            self.sum_v = 0.0

    def sleep(self, task: EevdfTask) -> None:
        """The running ``task`` has no work left: it leaves, or stays delayed if it is not
        eligible (DELAY_DEQUEUE); the core picks the next."""
        self.update_curr()
        if len(self.queue) > 1 and task.v > self.avg() + 1e-15:
            task.delayed = True
        else:
            self.leave(task)
        self.curr = None
        self.dispatch()

    # -- running

    def resched(self) -> None:
        """The core picks again; the running process, still runnable, gives it up if another
        is picked."""
        t = self.curr
        assert t is not None
        self.update_curr()
        if self.pick(protect=False) is t:  # picked again: its turn goes on
            t.vprot = t.d
            return
        self._version += 1
        t.preempted()
        self.curr = None
        self.dispatch()

    def dispatch(self) -> None:
        """The core to the process picked (a delayed one picked leaves the queue first, its
        lag no more than 0), or, with none, to a process pulled from another core."""
        while True:
            nxt = self.pick(protect=False)
            if nxt is None:
                self.rqs.newidle(self)  # a process pulled is dispatched as it is queued
                return
            if not nxt.delayed:
                break
            nxt.delayed = False
            self.leave(nxt)
            nxt.vlag = min(nxt.vlag, 0.0)
            nxt.queued = False
        self.curr = nxt
        nxt.vprot = nxt.d
        self._since = self.env.now
        nxt.given(self)

    def run_for(self, seconds: float, task: EevdfTask) -> None:
        """The running ``task``'s step (its wake-up, or a burst) ends ``seconds`` from now,
        unless the core is taken from it first."""
        self._version += 1
        ev = simpy.Timeout(self.env, seconds)
        ev.callbacks.append(_StepEnd(self, self._version, task))


class _StepEnd:
    """The callback of a step's end: ignored if the core was taken since."""

    __slots__ = ("cpu", "version", "task")

    def __init__(self, cpu: Cpu, version: int, task: EevdfTask) -> None:
        self.cpu, self.version, self.task = cpu, version, task

    def __call__(self, _: object) -> None:
        if self.cpu._version == self.version:
            self.task.step_done(self.cpu)


class EevdfTask:
    """One process on the I/O path, scheduled by :class:`Runqueues`; the interface of
    ``sim.perf.sched.Task``: ``run`` queues a burst of CPU and gives the event of its end;
    ``cpu_s``, ``turns`` and ``record`` (each wait for a core, each turn) as it has them.
    ``pin``: the core it always runs on (the host's kernel work)."""

    def __init__(self, env: simpy.Environment, cores: Runqueues, wake_s: float,
                 pin: int | None = None) -> None:
        self.env = env
        self.cores = cores
        self.wake_s = wake_s
        self.pin = pin
        self.v = self.d = self.vlag = self.vprot = 0.0
        self.new = True
        self.delayed = False
        self.queued = False  # on a core's queue: running, waiting or delayed
        self.cpu: int | None = pin  # its last core
        self.core: Cpu | None = None  # the core it is runnable on, while it is
        self.queued_at = 0.0
        self.cpu_s = 0.0  # CPU used: wake-ups and bursts
        self.turns = 0
        #: (each wait for a core, each turn's length) in seconds, when asked for; None: not
        self.record: tuple[list[float], list[float]] | None = None
        self._bursts: deque[list[Any]] = deque()  # [seconds left, done event, wake-up]
        self._slept = True  # a process starts asleep: its first turn pays a wake-up
        self._wake_left = 0.0
        self._started = self._t = self._asked = 0.0
        self._long = self._waited = False  # in a long wait; just out of one
        #: the long waits it has had (``Cpu._set_aside``), and their seconds
        self.long_waits = 0
        self.long_wait_s = 0.0

    def run(self, seconds: float, wake_s: float | None = None) -> simpy.Event:
        """An event that fires once the process has run ``seconds`` of CPU for the caller;
        ``wake_s``: what waking for it costs if the process sleeps when it comes (else the
        process's own ``wake_s``)."""
        done = simpy.Event(self.env)
        self._bursts.append([max(seconds, 0.0), done, self.wake_s if wake_s is None else wake_s])
        if len(self._bursts) == 1 and self.core is None:  # asleep: it wakes, at once
            ev = simpy.Event(self.env)
            ev._ok, ev._value, ev.callbacks = True, None, [self._wake]
            self.env.schedule(ev, URGENT)
        return done

    def _wake(self, _: object) -> None:
        if self.core is not None or not self._bursts or self._long:
            return
        rqs = self.cores
        if not self._waited:
            self._asked = self.env.now
        if self.queued:  # still on its core's queue, delayed
            assert self.cpu is not None
            self._waited = False
            self.core = rqs.cpus[self.cpu]
            self.core.requeue(self)
            return
        core = rqs.cpus[self.pin] if self.pin is not None else rqs.select(self)
        self._waited = False
        self.core = core
        self.queued = True
        self.core.enqueue(self)

    def wait_long(self, seconds: float) -> None:
        """Set aside by its core (:meth:`Cpu._set_aside`), which it has left: runnable, it
        waits ``seconds`` off any core, then wakes again."""
        self.core = None
        self.queued = False
        self._long = True
        self.long_waits += 1
        self.long_wait_s += seconds
        ev = simpy.Timeout(self.env, seconds)
        ev.callbacks.append(self._waited_long)

    def _waited_long(self, _: object) -> None:
        self._long = False
        self._waited = True  # its wait for a core goes on: it began before it was set aside
        self._wake(None)

    def given(self, cpu: Cpu) -> None:
        """A turn on ``cpu``: the wake-up if it slept, then its bursts."""
        self.turns += 1
        self._started = self.env.now
        if self.record is not None:
            self.record[0].append(self._started - self._asked)
        if self._slept:
            self._wake_left = self._bursts[0][2] if self._bursts else self.wake_s
            self._slept = False
        self._step(cpu)

    def _step(self, cpu: Cpu) -> None:
        self._t = self.env.now
        if self._wake_left > EPS_S:
            cpu.run_for(self._wake_left, self)
        elif self._bursts:
            cpu.run_for(self._bursts[0][0], self)
        else:  # nothing left: asleep until the next burst
            self._end_turn()
            self.core = None
            self._slept = True
            cpu.sleep(self)
            self.queued = self.delayed

    def step_done(self, cpu: Cpu) -> None:
        if self._wake_left > EPS_S:
            self._wake_left = 0.0
        else:
            burst = self._bursts.popleft()
            self.cores.waker, self.cores.waker_at = cpu, self.env.now
            burst[1].succeed()
        self._step(cpu)

    def preempted(self) -> None:
        """The core was taken: what ran of the step is done; it waits, runnable."""
        ran = self.env.now - self._t
        if self._wake_left > EPS_S:
            self._wake_left = max(self._wake_left - ran, 0.0)
        else:
            self._bursts[0][0] = max(self._bursts[0][0] - ran, 0.0)
        self._end_turn()
        self._asked = self.env.now

    def _end_turn(self) -> None:
        if self.record is not None:
            self.record[1].append(self.env.now - self._started)
