"""The host's cores and the processes on the I/O path that share them, one queue for all cores.

The model's scheduler until 2026-12-06, kept for comparisons (``SchedParams.queues: one``):
the host's scheduler is now :mod:`sim.perf.eevdf` (a queue per core, lags kept through
sleeps, wake-up preemption and the tick, as Linux 6.18 has them), which the stored density
and held-out sessions of 2026-12-05 refitted closer to the machine (docs/io-model.md, "A
queue per core"). What follows is this module's model, as it was written.

Every VM's I/O goes through two processes of the host (per VM: the *issuer*, fio here and a
vCPU in production, and the *server*, qemu-nbd here and an iothread in production), and every
process of every VM competes for the same few cores. Which one runs next, and for how long,
decides each VM's share of the host and its tail latency; the path's stages
(``sim.perf.host``) serve I/Os in arrival order, so without this a VM with more I/Os in
flight takes a larger share, and nothing makes a tail (issue 16: a reader at iodepth 16 beside
four others predicted at twice its real rate; p99 five-fold low).

- :class:`Cores`: the host's cores, ``count`` servers. A process that has work asks for a
  core with its *virtual runtime* (the CPU seconds it has used, over its weight) as
  priority, so the runnable process that has run least goes first (equal vruntimes in
  arrival order, round-robin).
- :class:`Task`: one process: a queue of CPU bursts. Runnable while it has bursts; on a core
  it first pays ``wake_s`` if it had slept (the wake-up and switch in), then runs its bursts in
  order, those that arrive meanwhile too (a server batches the requests that queued while it
  waited), for at most one slice (``slice_s`` times its weight); then it gives the core up,
  back to the queue if work is left, asleep if not (waiting for the device or its peer).
- the host's *kernel* (``sim.perf.host.Host.kernel``): one more :class:`Task`, the host's
  own, for the CPU an I/O's data costs outside the two processes (the disk's completions in
  softirq, kworkers: ``SchedParams.kernel_cpu``), run once the device is done. One for the
  host: its virtio disk here has one queue, whose interrupts all land on one core
  (``/sys/block/vda/mq/0``; ``virtio1-req.0`` in /proc/interrupts).

A process that wakes takes no core from a running one (Linux 6.6 and later schedule with
EEVDF, ``kernel/sched/fair.c``; this machine runs 6.18: with ``RUN_TO_PARITY`` the process
picked keeps its core for its slice unless it sleeps first), and it re-enters the queue at the
mean vruntime of the processes that want a core (:func:`avg_vruntime`, EEVDF's
``avg_vruntime``), behind those that waited runnable with less, banking nothing for the time it
slept. EEVDF keeps the lag a process had when it slept (up to two slices); the model keeps
none: the six stored density sessions refitted worse with it (docs/io-model.md, the density
sessions). So a process with many I/Os in flight stays runnable, keeps the core its slices and
reaps many completions per turn; one at iodepth 1 sleeps on every I/O and waits for a core at
each wake-up: on the quiet density sessions the 4 KiB reader at iodepth 1 ran 460-650 IOPS
beside eleven VMs, where alone it ran 3.4k-5.5k.

So a process that always has work gets its fair share of the cores and no more, a waking
process waits for the slices of those ahead of it (the tail), and the CPU one I/O costs falls
with the I/Os in flight (one wake-up serves a batch), as measured: qemu-nbd used 47 us per
4 KiB read at iodepth 1 and 13 us at iodepth 32 (``Probe.server_cpu_s``).

The slice is the kernel's default (``base_slice_ns`` 0.75 ms times ``1 + log2(cores)``, up to
8 cores: Linux ``kernel/sched/fair.c``, ``update_sysctl``); the costs are measured by the
calibration (``sim.perf.schedfit``).
"""

from __future__ import annotations

import bisect
import operator
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import simpy
from simpy.events import PENDING, URGENT
from simpy.resources.resource import Preempted

#: what is left of a burst below this is done (float rounding of the slices)
EPS_S = 1e-12


def ns(seconds: float) -> int:
    """A vruntime as the resource's priority: whole nanoseconds (SimPy's priorities are ints)."""
    return round(seconds * 1e9)


class Cores:
    """The host's ``count`` cores; requests carry the asking process's vruntime.

    ``simpy.PreemptiveResource(env, count)`` as it is used, in fewer steps (a calibrated
    host asks for a core four times per simulated I/O), with exactly its order of events: the
    waiting requests sorted by (priority, time asked), ties in arrival order; only the first
    is looked at, when a request comes or a release's event is processed; it takes a free
    core, or, asked with ``preempt`` (only CFS's tasks ask so), preempts the user that has
    run most if that one's key is higher (an ``Interrupt`` to its process); a release frees
    its core at once."""

    def __init__(self, env: simpy.Environment, count: int, slice_s: float) -> None:
        self.env = env
        self.capacity = count
        self.slice_s = slice_s
        #: the vruntime of the last process picked: where a waking process re-enters
        self.min_vruntime = 0.0
        self.users: list[CoreRequest] = []
        self.queue: list[CoreRequest] = []

    def request(self, priority: int = 0, preempt: bool = True) -> CoreRequest:
        """An event that fires when a core is the caller's (a context manager that releases
        it)."""
        req = CoreRequest(self, priority, preempt)
        if not self.queue and len(self.users) < self.capacity:  # a free core, no one waiting
            self.users.append(req)
            req.usage_since = self.env.now
            req.succeed()
            return req
        bisect.insort_right(self.queue, req, key=_key)
        self._put()
        return req

    def _put(self, _: object = None) -> None:
        if not self.queue:
            return
        head = self.queue[0]
        if len(self.users) >= self.capacity and head.preempt:
            victim = max(self.users, key=_key)
            if victim.key > head.key:
                self.users.remove(victim)
                assert victim.proc is not None
                cause = Preempted(by=head.proc, usage_since=victim.usage_since,  # type: ignore[arg-type]
                                  resource=self)  # type: ignore[arg-type]
                victim.proc.interrupt(cause)
        if len(self.users) < self.capacity:
            self.users.append(head)
            head.usage_since = self.env.now
            head.succeed()
            self.queue.pop(0)

    def release(self, req: CoreRequest) -> None:
        """Done with ``req``'s core: it is free at once; the first waiting request is looked
        at when this release's event is processed."""
        if req in self.users:
            self.users.remove(req)
        done = simpy.Event(self.env)
        done.callbacks.append(self._put)
        done._ok, done._value = True, None  # succeed(), in fewer steps
        self.env.schedule(done)


#: a request's place in the queue (``CoreRequest.key``), read in C: the queue is sorted and
#: searched by it some twenty million times in a calibrated run of scenarios/io-holdout.yaml
_key = operator.attrgetter("key")


class Preemptible(Protocol):
    """What a request's process must do when it is preempted (``simpy.Process`` does)."""

    def interrupt(self, cause: Any = None) -> None: ...


class CoreRequest(simpy.Event):
    """A request for one of the :class:`Cores`."""

    def __init__(self, cores: Cores, priority: int, preempt: bool) -> None:
        env = self.env = cores.env  # simpy.Event.__init__, inlined as SimPy's own do
        self.callbacks = []
        self._value = PENDING
        self.cores = cores
        self.proc: Preemptible | None = env.active_process
        self.preempt = preempt
        self.key = (priority, env.now, not preempt)
        self.usage_since: float | None = None

    def __enter__(self) -> CoreRequest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if not self.triggered:  # given up while it waited
            self.cores.queue.remove(self)
        if exc_type is not GeneratorExit:
            self.cores.release(self)


def avg_vruntime(cores: Any) -> float:
    """The mean vruntime of the processes that want one of ``cores`` (:class:`Cores`, or
    SimPy's resource as the tests use it), running or waiting, each as it asked: EEVDF's
    ``avg_vruntime``, where a process that wakes with no lag is placed (0 with none)."""
    n = len(cores.queue) + len(cores.users)
    if not n:
        return 0.0
    total: int = sum(r.key[0] for r in cores.queue) + sum(r.key[0] for r in cores.users)
    return total / n / 1e9


class Task:
    """One process on the I/O path: its bursts run on the host's :class:`Cores`.

    It behaves as the SimPy process it describes (kept as the reference in
    tests/test_sched_engine.py): wait for work, ask for a core with its vruntime, take a
    turn (the wake-up if it slept, then bursts for at most a slice), give the core up, again;
    a preemption (an ``Interrupt`` to that process) ends the turn or the wait for the core.
    It is written as callbacks on the same events, scheduled in the same order, rather than
    as a generator: a calibrated run of scenarios/io-holdout.yaml resumes the tasks some two
    million times, and a generator's resume (and, with ``cfs``'s preemptions, an exception
    thrown into it) costs more than a plain call. Only ``cfs`` tasks preempt: the model's own
    tasks never do (EEVDF), so ``cfs`` and the cores' preemption serve the comparison with the
    reference process and the model before 2026-12-03.

    ``cfs``: schedule as the model did before 2026-12-03 (Linux's CFS, before 6.6): a waking
    process re-enters a slice behind the queue's virtual time and takes a core at once from a
    process that has run more (kept for the comparison with the reference process)."""

    def __init__(self, env: simpy.Environment, cores: Cores, wake_s: float,
                 weight: float = 1.0, cfs: bool = False) -> None:
        self.env = env
        self.cfs = cfs
        self.cores = cores
        self.wake_s = wake_s
        self.weight = weight
        self.vruntime = 0.0
        self.cpu_s = 0.0  # CPU used: wake-ups and bursts
        self.turns = 0
        #: (each wait for a core, each turn's length) in seconds, when asked for
        #: (``Host.record_turns``: benchmarks/io_turns.py --profile); None: not kept
        self.record: tuple[list[float], list[float]] | None = None
        self._asked = 0.0
        self._bursts: deque[list[Any]] = deque()  # [seconds left, done event, wake-up]
        self._idle: simpy.Event | None = None
        self._slept = True  # a process starts asleep: its first turn pays a wake-up
        self._req: Any = None  # the request for the core it holds or waits for
        #: what it waits for, and the callback it waits with (what a preemption takes back)
        self._target: simpy.Event | None = None
        self._then: Callable[[simpy.Event], None] = self._granted
        self._start = self._t = self._step = self._left = 0.0  # the turn, the burst running
        # started as SimPy starts a process: an urgent event at once (``Initialize``)
        self._urgent(self._loop)

    def _urgent(self, then: Callable[[simpy.Event], None]) -> None:
        ev = simpy.Event(self.env)
        ev._ok, ev._value, ev.callbacks = True, None, [then]
        self.env.schedule(ev, URGENT)

    def run(self, seconds: float, wake_s: float | None = None) -> simpy.Event:
        """An event that fires once the process has run ``seconds`` of CPU for the caller;
        ``wake_s``: what waking for it costs, if the process sleeps when it comes (else the
        process's own ``wake_s``): a read of data wakes qemu-nbd's worker threads, a read of
        a hole does not."""
        done = simpy.Event(self.env)
        self._bursts.append([max(seconds, 0.0), done, self.wake_s if wake_s is None else wake_s])
        if self._idle is not None:
            self._idle.succeed()
            self._idle = None
        return done

    def interrupt(self, cause: Any = None) -> None:
        """Preempted (by the cores): as SimPy's ``Process.interrupt``, an urgent event, at
        which the turn ends, or the wait for a core, whichever it is in."""
        self._urgent(self._preempted)

    def _loop(self, _: object = None) -> None:
        """Wait for work (asleep), then ask for a core."""
        if self._bursts:
            self._ask()
            return
        self._idle = idle = simpy.Event(self.env)
        self._target, self._then = idle, self._woken
        idle.callbacks.append(self._woken)

    def _woken(self, _: object) -> None:
        self._slept = True
        self.vruntime = self.placed()
        self._ask()

    def placed(self) -> float:
        """Where a waking process re-enters the queue: at the mean vruntime of those that want
        a core, or later if it has run more: its sleep earns it no place ahead of those that
        waited runnable (the module docstring says why no lag)."""
        cores = self.cores
        if self.cfs:
            return max(self.vruntime, cores.min_vruntime - cores.slice_s)
        return max(self.vruntime, cores.min_vruntime, avg_vruntime(cores))

    def _ask(self) -> None:
        # no wake-up preemption (EEVDF's RUN_TO_PARITY): it waits for a core to be given up
        self._asked = self.env.now
        req = self._req = self.cores.request(priority=round(self.vruntime * 1e9),
                                             preempt=self.cfs)
        req.proc = self  # the one preempted if it is
        self._target, self._then = req, self._granted
        req.callbacks.append(self._granted)

    def _granted(self, _: object) -> None:
        """A turn on a core: the wake-up if it slept, then bursts for at most a slice, or
        until it has none left (a process that wakes meanwhile does not take the core)."""
        cores, now = self.cores, self.env.now
        cores.min_vruntime = max(cores.min_vruntime, self.vruntime)
        self._start = now
        self.turns += 1
        if self.record is not None:
            self.record[0].append(now - self._asked)
        wake = self._bursts[0][2] if self._bursts else self.wake_s
        if self._slept and wake > 0:
            self._target = ev = simpy.Timeout(self.env, wake)
            self._then = self._awake
            ev.callbacks.append(self._awake)
            return
        self._awake(None)

    def _awake(self, _: object) -> None:
        self._left = self.cores.slice_s * self.weight - (self.env.now - self._start)
        self._burst()

    def _burst(self) -> None:
        """The next burst, or the end of the turn."""
        if self._bursts and self._left > EPS_S:
            env = self.env
            self._t = env.now
            self._step = step = min(self._bursts[0][0], self._left)
            self._target = ev = simpy.Timeout(env, step)
            self._then = self._ran
            ev.callbacks.append(self._ran)
            return
        self._end_turn()

    def _ran(self, _: object) -> None:
        burst = self._bursts[0]
        burst[0] -= self.env.now - self._t
        self._left -= self._step
        if burst[0] <= EPS_S:
            self._bursts.popleft()
            burst[1].succeed()
        self._burst()

    def _end_turn(self) -> None:
        used = self.env.now - self._start
        if self.record is not None:
            self.record[1].append(used)
        self.cpu_s += used
        self.vruntime += used / self.weight
        self._slept = False
        self._release()

    def _release(self) -> None:
        # as leaving ``with cores.request() as req``: the request was granted, so only its
        # release (a request given up before would also leave the queue)
        self.cores.release(self._req)
        self._loop()

    def _preempted(self, _: object) -> None:
        assert self._target is not None and self._target.callbacks is not None
        self._target.callbacks.remove(self._then)
        if self._then == self._granted:  # as it was given the core: ask again
            self._release()
            return
        if self._then == self._ran:  # what ran of the burst is done
            self._bursts[0][0] -= self.env.now - self._t
        self._end_turn()
