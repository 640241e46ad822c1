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
to the calibration's tails (``sim.perf.tail``), set aside: off the core for a slice for each
other session runnable there (a qemu-nbd's threads one session, each fio another), then it
wakes again (:meth:`Cpu._set_aside`). A process is set aside by the time it is runnable
on a crowded core, not by its wake-ups: one that keeps many I/Os in flight, runnable most of
the time, loses as much of it as the others; one that wakes for each I/O and is done in
microseconds is seldom there at a tick.

Task groups (:class:`Group`, when the host has them: ``SchedParams.groups``): the kernel
schedules a session's processes and threads as one group (CONFIG_SCHED_AUTOGROUP, on here and
on most distributions' kernels; measured on this project's machine, four busy processes of one
session beside one of another on one core got 127 and 128 ticks). On each core a group's
processes queued there wait on a queue of their own, and one entity stands for them on the
core's queue, of the weight of the group's one share split among the cores by where its load
is. A qemu-nbd with sixteen pool threads busy thus gets one process's share of a crowded host,
not sixteen. One test differs from the kernel's: a waking thread of a group takes the core
only if it is itself the thread the pick would run, where the kernel compares the two where
they meet (``find_matching_se``: the group's entity against the running one's); the kernel's
form made the VMs that wake for each I/O faster still and scored worse on the day's sessions
(docs/io-model.md, "Each qemu-nbd one task group").

What it leaves out: nice levels and cgroups other than the sessions' groups (every process
here is nice 0), the cache-hot test of a migration, load averages beyond the groups' (the
balance counts processes queued), and interrupts (the host's kernel work is a process of its
own, pinned to the core that takes the disk's interrupts: ``sim.perf.host.Host.kernel``).
"""

from __future__ import annotations

import math
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
                 long_wait: tuple[float, float, Any] | None = None,
                 long_wait_each_s: float = 0.0) -> None:
        self.env = env
        #: (chance at a tick for each process runnable on a core where one waits, mean in
        #: seconds, the generator that draws them): the host's long waits
        #: (:meth:`Cpu._set_aside`); None: none
        self.long_wait = long_wait if long_wait is not None and long_wait[0] > 0 else None
        #: if not 0, a long wait's mean is this for each other session runnable on the core
        #: (at least one), not ``long_wait``'s mean
        self.long_wait_each_s = long_wait_each_s
        self.capacity = count
        self.slice_s = slice_s
        #: a process's lag is kept within this either way (``update_entity_lag``), in CPU
        #: seconds: an entity of weight ``w`` keeps its ``vlag`` within this over ``w``
        self.lag_limit = max(2 * slice_s, TICK_S)
        self.cpus = [Cpu(self, k) for k in range(count)]
        #: the core where a burst ended last, and when: the waker of the next wake-up then
        self.waker: Cpu | None = None
        self.waker_at = -1.0

    def group(self) -> Group:
        """A new task group on these cores (a session's autogroup)."""
        return Group(self)

    def select(self, task: EevdfTask) -> Cpu:
        """The core a waking ``task`` is queued on (``select_task_rq_fair``)."""
        prev = self.cpus[task.cpu] if task.cpu is not None else None
        target = prev
        waker = self.waker if self.waker_at == self.env.now else None
        if waker is not None and waker is not prev:
            # wake_affine: a synchronous wake-up (a reply on a socket) to the waker's core if
            # the waker is alone there, or if that core is not busier than the task's last
            # (the kernel compares load averages, prev's weighted by 1.085)
            others = waker.nr - (waker.curr is not None)
            if prev is None or others == 0 or others * 100 < prev.nr * 108.5:
                target = waker
        if target is not None and target.idle():
            return target
        if prev is not None and prev.idle():
            return prev
        for cpu in self.cpus:
            if cpu.idle():
                return cpu
        return target if target is not None else min(self.cpus, key=lambda c: c.nr)

    def balance(self, cpu: Cpu) -> None:
        """Periodic balance: ``cpu`` pulls one process from a core with two more queued."""
        src = max(self.cpus, key=lambda c: c.nr)
        if src is not cpu and src.nr >= cpu.nr + 2:
            self._move(src, cpu)

    def newidle(self, cpu: Cpu) -> None:
        """``cpu`` has nothing to run: it pulls a process waiting on another core."""
        for src in self.cpus:
            if src is not cpu and self._move(src, cpu):
                return

    def _move(self, src: Cpu, dst: Cpu) -> bool:
        """The process that has waited longest on ``src`` (not running, not delayed) to
        ``dst``, with its lag; False if there is none."""
        waiting = [t for t in src.tasks() if t is not src.curr and not t.delayed]
        if not waiting:
            return False
        task = min(waiting, key=lambda t: t.queued_at)
        src.dequeue(task)
        task.core = dst
        dst.enqueue(task)
        return True


class Entity:
    """What a queue holds (a ``sched_entity``): a process, or a task group's part on one
    core. ``v`` and ``d`` are in virtual time: an entity of weight ``w`` (1: a process of
    nice 0) that runs ``s`` seconds moves ``s / w`` on."""

    def __init__(self) -> None:
        self.v = self.d = self.vlag = self.vprot = 0.0
        self.w = 1.0
        self.delayed = False
        self.queued_at = 0.0
        self.rq: Rq | None = None  # the queue it is on


class Rq:
    """A queue of entities (a ``cfs_rq``): a core's own, or a task group's on that core
    (``owner``: the group's entity on the core's queue)."""

    def __init__(self, rqs: Runqueues, owner: GroupSe | None = None) -> None:
        self.rqs = rqs
        self.owner = owner
        self.queue: list[Any] = []  # Entity: EevdfTask or GroupSe
        self.sum_wv = 0.0  # of the queue's weighted vruntimes: V is their weighted mean
        self.sum_w = 0.0
        self.curr: Any = None  # the entity of this queue that has the core

    def avg(self) -> float:
        """``V``: the weighted mean vruntime of the queue (0 when it is empty)."""
        return self.sum_wv / self.sum_w if self.queue else 0.0

    def join(self, se: Entity, at: float | None = None) -> None:
        if self.owner is not None:
            self.owner.decay()
        se.rq = self
        se.queued_at = self.rqs.env.now if at is None else at
        self.queue.append(se)
        self.sum_wv += se.w * se.v
        self.sum_w += se.w

    def leave(self, se: Entity) -> None:
        """``se`` leaves with its lag (``update_entity_lag``)."""
        if self.owner is not None:
            self.owner.decay()
        lim = self.rqs.lag_limit / se.w
        se.vlag = min(max(self.avg() - se.v, -lim), lim)
        self.queue.remove(se)
        se.rq = None
        self.sum_wv -= se.w * se.v
        self.sum_w -= se.w
        if not self.queue:
            self.sum_wv = self.sum_w = 0.0

    def place(self, se: Entity, rel_d: float) -> None:
        """``se``'s vruntime from its lag, scaled by ``(W + w) / W`` so that it still has it
        once it counts in ``V`` (``place_entity``), its deadline ``rel_d`` on."""
        lag = se.vlag * (self.sum_w + se.w) / self.sum_w if self.queue else 0.0
        se.v = self.avg() - lag
        se.d = se.v + rel_d

    def advance(self, se: Entity, used: float) -> bool:
        """``se`` has run ``used`` seconds; True if its slice is used up: it has a new
        deadline (``update_deadline``)."""
        if used > 0:
            se.v += used / se.w
            self.sum_wv += used
        if se.v >= se.d:
            se.d = se.v + self.rqs.slice_s / se.w
            return True
        return False

    def raise_to_avg(self, se: Entity) -> None:
        """DELAY_ZERO: a delayed ``se`` woken keeps no credit for its sleep."""
        avg = self.avg()
        if se.v < avg:
            self.sum_wv += se.w * (avg - se.v)
            se.v = avg
            se.d = avg + self.rqs.slice_s / se.w

    def pick(self, protect: bool) -> Any:
        """The eligible entity of earliest deadline; the current one while its slice is
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
        best = None
        for t in q:
            if t is not self.curr and t.v <= avg and (best is None or t.d < best.d):
                best = t
        if best is None or (curr is not None and curr.d < best.d):
            best = curr
        return best if best is not None else min(q, key=lambda t: t.v)


#: a group's load on a core, the number of its processes queued there, is averaged over
#: time as the kernel's PELT does (a half-life of 32 ms)
LOAD_TAU_S = 32e-3 / math.log(2)
#: the least weight of a group's entity (``MIN_SHARES``, 2 of a process's 1024)
MIN_SHARE = 2 / 1024


class Group:
    """A task group: the processes of one session, which the kernel schedules as one
    (CONFIG_SCHED_AUTOGROUP: a process that calls ``setsid()`` begins a group, its threads
    and children are in it). On each core the group's processes queued there are on a queue
    of their own, held by one entity on the core's queue whose weight is the group's one
    share, a process's, split among the cores by where the group's load is
    (``calc_group_shares``): a group of sixteen threads gets a sixteenth of what sixteen
    processes would."""

    def __init__(self, rqs: Runqueues) -> None:
        self.rqs = rqs
        self.ses = [GroupSe(self, cpu) for cpu in rqs.cpus]

    def share(self, se: GroupSe) -> float:
        """The weight of the group's entity ``se``: its load over the group's, its own as it
        is now (or its average, if more), the other cores' their averages."""
        for s in self.ses:
            s.decay()
        here = max(float(len(se.own.queue)), se.load_avg)
        total = here + sum(s.load_avg for s in self.ses if s is not se)
        return min(max(here / total, MIN_SHARE), 1.0) if total > 0 else 1.0


class GroupSe(Entity):
    """A task group's part on one core: an entity on the core's queue (``tg->se[cpu]``)
    with the group's processes queued on that core on a queue of its own
    (``tg->cfs_rq[cpu]``). It is on the core's queue while its own has a process (or it is
    delayed: asleep, not yet eligible)."""

    def __init__(self, group: Group, cpu: Cpu) -> None:
        super().__init__()
        self.group = group
        self.cpu = cpu
        self.own = Rq(cpu.rqs, self)
        self.load_avg = 0.0
        self._load_at = 0.0

    def decay(self) -> None:
        """The average of its queue's length brought to now (before the length changes)."""
        now = self.cpu.env.now
        dt = now - self._load_at
        if dt > 0:
            n = float(len(self.own.queue))
            self.load_avg = n + (self.load_avg - n) * math.exp(-dt / LOAD_TAU_S)
            self._load_at = now


class Cpu:
    """One core and its queue: every process on it, running, waiting or delayed, or the
    entity of its task group (:class:`Group`) that holds it."""

    def __init__(self, rqs: Runqueues, index: int) -> None:
        self.rqs = rqs
        self.env = rqs.env
        self.index = index
        self.root = Rq(rqs)
        self.nr = 0  # processes queued here, in a group or not
        self.curr: EevdfTask | None = None
        self._since = 0.0  # when the running process's CPU was last accounted
        self._version = 0  # of the running process's pending event
        self._ticking = False
        self._ticks = 0

    @property
    def queue(self) -> list[Any]:
        """The core's own queue: processes, and groups' entities."""
        return self.root.queue

    def tasks(self) -> list[EevdfTask]:
        """Every process queued here, in a group or not."""
        out: list[EevdfTask] = []
        for se in self.root.queue:
            if isinstance(se, GroupSe):
                out.extend(se.own.queue)
            else:
                out.append(se)
        return out

    def idle(self) -> bool:
        return self.curr is None and not self.root.queue

    def avg(self) -> float:
        """``V`` of the core's own queue."""
        return self.root.avg()

    # -- accounting and the tick

    def update_curr(self) -> bool:
        """Account what the running process has used since last, to it and to its group's
        entity; True if a slice is used up: it has a new deadline, and the core must pick
        again (``update_curr``)."""
        t, now = self.curr, self.env.now
        used = now - self._since
        self._since = now
        if t is None:
            return False
        t.cpu_s += max(used, 0.0)
        assert t.rq is not None
        resched = t.rq.advance(t, used)
        owner = t.rq.owner
        if owner is not None:
            resched = self.root.advance(owner, used) or resched
        return resched

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
        if not self.root.queue:
            self._ticking = False
            return
        self._ticks += 1
        if self.curr is not None:
            resched = self.update_curr()
            assert self.curr.rq is not None
            if self.curr.rq.owner is not None:  # entity_tick: update_cfs_group
                self._group_changed(self.curr.rq.owner)
            if resched:
                self.resched()
        if self.rqs.long_wait is not None and self.nr > 1:
            self._set_aside(self.rqs.long_wait)
        if self._ticks % BALANCE_TICKS == 0:
            self.rqs.balance(self)
        self._tick_in(TICK_S)

    def _set_aside(self, long_wait: tuple[float, float, Any]) -> None:
        """The host's long waits, at a tick of this core with a process waiting: each process
        runnable here (running or waiting; not one pinned, as the host's kernel, nor one
        delayed, which is asleep) is set aside with chance ``p``: off the core's queue for an
        exponential time, then it wakes again, its core chosen again. The core then runs what
        is left. The time's mean: ``SchedParams.long_wait_each_s`` (a slice) for each other
        session runnable here, at least one (EEVDF: an entity that has had more than its
        share waits while each other one on its queue runs its slice); in profiles fitted
        before version 8, ``long_wait_s`` (a tick) however crowded the core."""
        p, mean, rng = long_wait
        runnable = [t for t in self.tasks() if not t.delayed]
        if self.rqs.long_wait_each_s > 0:
            mean = self.rqs.long_wait_each_s * max(1, len({t.session for t in runnable}) - 1)
        aside = [t for t in runnable if t.pin is None and rng.random() < p]
        for t in aside:
            if t is self.curr:
                self.update_curr()
                self._version += 1
                t.preempted()
                self._put_prev(t)
            self.dequeue(t)
            t.wait_long(rng.exponential(mean))
        if aside and self.curr is None:
            self.dispatch()

    # -- the pick

    def pick(self, protect: bool) -> EevdfTask | None:
        """The process to run: the eligible entity of earliest deadline on the core's queue
        (:meth:`Rq.pick`), and if that is a group's, the same on the group's queue."""
        se = self.root.pick(protect)
        while isinstance(se, GroupSe):
            if se.delayed:
                return se  # type: ignore[return-value]  # dispatch takes it off
            se = se.own.pick(protect)
        return se  # type: ignore[no-any-return]

    # -- arrivals and departures

    def enqueue(self, task: EevdfTask) -> None:
        """``task`` wakes on this core, or is moved to it: placed with its lag
        (``place_entity``), its group's entity too if it was not here, then it may take the
        core (``check_preempt_wakeup_fair``)."""
        resched = self.update_curr()
        rq = self.root if task.group is None else task.group.ses[self.index].own
        rq.place(task, self.rqs.slice_s / 2 if task.new else self.rqs.slice_s)
        task.new = False
        self._join(task, rq)
        if rq.owner is not None:
            self._group_changed(rq.owner)
        self._woken(task, resched)

    def requeue(self, task: EevdfTask) -> None:
        """``task`` wakes while still on this queue, delayed: as it was, but with no credit
        for the time it was asleep (DELAY_ZERO: a lag above 0 is dropped)."""
        resched = self.update_curr()
        task.delayed = False
        assert task.rq is not None
        task.rq.raise_to_avg(task)
        task.queued_at = self.env.now
        self._woken(task, resched)

    def _join(self, task: EevdfTask, rq: Rq | None = None) -> None:
        task.cpu = self.index
        (rq or self.root).join(task)
        self.nr += 1

    def _group_changed(self, gse: GroupSe, sleeping: bool = False) -> None:
        """A process of ``gse``'s group joined or left this core, or it ran on at the tick:
        the group's entity joins the core's queue, leaves it (delayed if it sleeps before it
        is eligible again), or takes its new weight (``update_cfs_group``)."""
        root = self.root
        if not gse.own.queue:
            if gse.rq is not None and not gse.delayed:
                if sleeping and len(root.queue) > 1 and gse.v > root.avg() + 1e-15:
                    gse.delayed = True
                else:
                    root.leave(gse)
            return
        self.update_curr()
        w = gse.group.share(gse)
        if gse.rq is None:  # the group's lag kept as lag x weight (reweight_entity)
            gse.vlag *= gse.w / w
            gse.w = w
            root.place(gse, self.rqs.slice_s / w)
            root.join(gse)
            return
        if gse.delayed:
            gse.delayed = False
            root.raise_to_avg(gse)
        if abs(w - gse.w) > 1e-9 * w:
            self._reweight(gse, w)

    def _reweight(self, gse: GroupSe, w: float) -> None:
        """``gse`` on the core's queue takes weight ``w``: its lag, its deadline and its
        protected slice scaled as the kernel's ``reweight_entity`` does."""
        root, old = self.root, gse.w
        rel_d = (gse.d - gse.v) * old / w
        is_curr = root.curr is gse
        rel_prot = (gse.vprot - gse.v) * old / w if is_curr else 0.0
        at = gse.queued_at
        root.leave(gse)
        gse.vlag *= old / w
        gse.w = w
        root.place(gse, rel_d)
        root.join(gse, at)
        if is_curr:
            gse.vprot = gse.v + rel_prot

    def _woken(self, task: EevdfTask, resched: bool) -> None:
        if self.curr is None:
            self._start_ticks()
            self.dispatch()
        elif resched or self.pick(protect=True) is task:
            self.resched()

    def leave(self, task: EevdfTask) -> None:
        """``task`` leaves the core's own queue with its lag (``update_entity_lag``)."""
        self.dequeue(task)

    def dequeue(self, task: EevdfTask, sleeping: bool = False) -> None:
        """``task`` leaves its queue here with its lag; its group's entity leaves the core's
        queue if it was the group's last process here, else takes its new weight."""
        rq = task.rq
        assert rq is not None
        rq.leave(task)
        self.nr -= 1
        if rq.owner is not None:
            self._group_changed(rq.owner, sleeping)

    def sleep(self, task: EevdfTask) -> None:
        """The running ``task`` has no work left: it leaves, or stays delayed if it is not
        eligible (DELAY_DEQUEUE); the core picks the next."""
        self.update_curr()
        rq = task.rq
        assert rq is not None
        self._put_prev(task)
        if len(rq.queue) > 1 and task.v > rq.avg() + 1e-15:
            task.delayed = True
        else:
            self.dequeue(task, sleeping=True)
        self.dispatch()

    # -- running

    def _put_prev(self, task: EevdfTask) -> None:
        """``task`` no longer has the core (``put_prev_entity``), nor its group's entity."""
        rq = task.rq
        assert rq is not None
        rq.curr = None
        if rq.owner is not None:
            self.root.curr = None
        self.curr = None

    def _set_next(self, task: EevdfTask) -> None:
        """``task`` has the core (``set_next_entity``): its slice protected, and its group's
        entity's, to their deadlines (RUN_TO_PARITY)."""
        rq = task.rq
        assert rq is not None
        rq.curr = task
        task.vprot = task.d
        if rq.owner is not None:
            if self.root.curr is not rq.owner:
                rq.owner.vprot = rq.owner.d
            self.root.curr = rq.owner
        self.curr = task

    def resched(self) -> None:
        """The core picks again; the running process, still runnable, gives it up if another
        is picked."""
        t = self.curr
        assert t is not None
        self.update_curr()
        if self.pick(protect=False) is t:  # picked again: its turn goes on
            t.vprot = t.d
            owner = t.rq.owner if t.rq is not None else None
            if owner is not None:
                owner.vprot = owner.d
            return
        self._version += 1
        t.preempted()
        self._put_prev(t)
        self.dispatch()

    def dispatch(self) -> None:
        """The core to the process picked (a delayed one picked leaves the queue first, its
        lag no more than 0; a delayed group's entity too), or, with none, to a process
        pulled from another core."""
        while True:
            nxt: Any = self.pick(protect=False)
            if nxt is None:
                self.rqs.newidle(self)  # a process pulled is dispatched as it is queued
                return
            if not nxt.delayed:
                break
            nxt.delayed = False
            if isinstance(nxt, GroupSe):
                self.root.leave(nxt)
                nxt.vlag = min(nxt.vlag, 0.0)
                continue
            self.dequeue(nxt)
            nxt.vlag = min(nxt.vlag, 0.0)
            nxt.queued = False
        self._set_next(nxt)
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


class EevdfTask(Entity):
    """One process on the I/O path, scheduled by :class:`Runqueues`; the interface of
    ``sim.perf.sched.Task``: ``run`` queues a burst of CPU and gives the event of its end;
    ``cpu_s``, ``turns`` and ``record`` (each wait for a core, each turn) as it has them.
    ``pin``: the core it always runs on (the host's kernel work)."""

    def __init__(self, env: simpy.Environment, cores: Runqueues, wake_s: float,
                 pin: int | None = None, group: Group | None = None,
                 session: object = None) -> None:
        super().__init__()
        #: the session it is in, for the crowd a long wait counts (:meth:`Cpu._set_aside`):
        #: a qemu-nbd's threads share one; None: a session of its own
        self.session: object = session if session is not None else self
        self.env = env
        self.cores = cores
        self.wake_s = wake_s
        self.pin = pin
        #: the task group it is in (:class:`Group`); None: none of its own (a process
        #: alone in its session is scheduled as one not in a group)
        self.group = group
        self.new = True
        self.queued = False  # on a queue of a core: running, waiting or delayed
        self.cpu: int | None = pin  # its last core
        self.core: Cpu | None = None  # the core it is runnable on, while it is
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
