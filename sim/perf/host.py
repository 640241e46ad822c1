"""One host of the calibrated I/O model in SimPy: the path's stages (the host's, or each VM's
own), the device, the image files' locks and its cores (``sim.perf.eevdf``, a queue per core;
``sim.perf.sched`` with ``SchedParams.queues: one``); ``sim.perf.perf`` describes the whole
model."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import simpy

from .demand import Demand, PerfModel
from .eevdf import EevdfTask, Group, Runqueues
from .sched import Cores, Task

#: a process on the host's cores, of either scheduler
AnyTask = Task | EevdfTask

Process = Generator[simpy.Event, Any, None]

#: the hosts made inside :func:`recording`, each keeping its tasks' turns and waits
_recording: list[Host] | None = None


@contextmanager
def recording() -> Iterator[list[Host]]:
    """Every :class:`Host` made inside the ``with`` keeps its tasks' waits for a core and
    turns (``Task.record``) and is added to the list it gives: a scenario's run, read per VM
    (``Host.names``) by benchmarks/io_trace.py beside the kernel's record of the real one."""
    global _recording
    outer = _recording
    hosts: list[Host] = []
    _recording = hosts
    try:
        yield hosts
    finally:
        _recording = outer


class Exponentials:
    """``rng.exponential(scale)``, drawn from ``rng`` a block at a time: the same numbers in
    the same order (numpy's exponential is ``scale`` times its standard exponential, and a
    block of those is the draws one by one), in a fifth of the time a call to numpy takes
    (0.08 us against 0.39 here). For a generator nothing else draws from: the block takes
    ``rng`` ahead of the draws handed out, so another draw from it would get other numbers.
    A probe's replay (``sim.perf.replay``: the fit's replays, millions of draws) is such a
    one; a scenario's host shares its generator with the device's L2 misses and draws one by
    one."""

    __slots__ = ("rng", "_left")

    BLOCK = 1024

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._left: list[float] = []  # the block's draws still to hand out, the next last

    def __call__(self, scale: float) -> float:
        left = self._left
        if not left:
            left.extend(reversed(self.rng.standard_exponential(self.BLOCK).tolist()))
        return scale * left.pop()


class SharedDevice:
    """The storage's bandwidth, shared equally by the transfers in progress (processor
    sharing): a 4 KiB read next to 64 KiB copies-on-write is slowed, not queued behind them,
    as on a device with many requests in flight."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.jobs: dict[simpy.Event, float] = {}  # remaining seconds at the full rate
        self.last = env.now
        self.version = 0

    def _advance(self) -> None:
        if self.jobs:
            dt = (self.env.now - self.last) / len(self.jobs)
            for ev in self.jobs:
                self.jobs[ev] -= dt
        self.last = self.env.now

    def _schedule(self) -> None:
        self.version += 1
        if not self.jobs:
            return
        version = self.version
        t = self.env.timeout(max(min(self.jobs.values()), 0.0) * len(self.jobs))
        t.callbacks.append(lambda _ev: self._fire(version))

    def _fire(self, version: int) -> None:
        if version != self.version:  # an arrival or a departure rescheduled since
            return
        self._advance()
        eps = 1e-12
        for ev in [ev for ev, left in self.jobs.items() if left <= eps]:
            del self.jobs[ev]
            ev.succeed()
        self._schedule()

    def transfer(self, seconds: float) -> simpy.Event:
        self._advance()
        ev = self.env.event()
        self.jobs[ev] = seconds
        self._schedule()
        return ev


class Stage:
    """A single server that serves in arrival order: ``simpy.Resource(env, capacity=1)`` as
    the host used it, in a fraction of its steps (the replays of a fit simulate millions of
    I/Os). Exactly its order of events: a request is granted at once if the stage is free
    (the oldest waiting first); a release frees the stage at once but hands it to the next in
    line only when its event is processed (SimPy's ``Release``), so a request made meanwhile
    takes it for the oldest waiting one."""

    __slots__ = ("env", "busy", "waiting")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.busy = False
        self.waiting: deque[simpy.Event] = deque()

    def request(self) -> simpy.Event:
        """An event that fires when the stage is the caller's."""
        ev = simpy.Event(self.env)
        if not self.busy and not self.waiting:  # free, no one before it: at once
            self.busy = True
            ev.succeed()
            return ev
        self.waiting.append(ev)
        self._grant()
        return ev

    def _grant(self, _: object = None) -> None:
        if not self.busy and self.waiting:
            self.busy = True
            self.waiting.popleft().succeed()

    def release(self, request: simpy.Event) -> None:
        """Done with ``request``'s turn, or with waiting for it."""
        if request.triggered:
            self.busy = False
        else:
            self.waiting.remove(request)
        done = simpy.Event(self.env)
        done.callbacks.append(self._grant)
        done._ok, done._value = True, None  # succeed(), in fewer steps
        self.env.schedule(done)

    def hold(self, seconds: float) -> Process:
        """Wait for the stage, then hold it ``seconds``."""
        req = self.request()
        try:
            yield req
            yield self.env.timeout(seconds)
        finally:
            self.release(req)


class FileLock:
    """An image file's lock as the host filesystem takes it around O_DIRECT I/O (ext4's inode
    lock): allocating writes, which extend the file, take it alone and keep it until their
    data is on the device; reads of the file's own data and overwrites share it. Waiters are
    served in arrival order, so a read that comes after an allocating write waits for it.
    Measured here (ext4 on the virtual disk, fio 4 KiB O_DIRECT reads at iodepth 1 of a
    512 MiB file): 88 us while four `dd oflag=direct,append` extended another file, 648 us
    while they extended the same one."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.readers = 0
        self.writer = False
        self.waiting: deque[tuple[bool, simpy.Event]] = deque()

    def acquire(self, alone: bool) -> simpy.Event:
        ev = self.env.event()
        self.waiting.append((alone, ev))
        self._grant()
        return ev

    def release(self, alone: bool) -> None:
        if alone:
            self.writer = False
        else:
            self.readers -= 1
        self._grant()

    def _grant(self) -> None:
        while self.waiting and not self.writer:
            alone, ev = self.waiting[0]
            if alone and self.readers:
                return
            self.waiting.popleft()
            if alone:
                self.writer = True
            else:
                self.readers += 1
            ev.succeed()


class Host:
    """One host's stages and device, in a SimPy environment; ``lock(key)`` is the file lock
    of one image (allocating writes to one image run one at a time: measured, 4 KiB first
    writes reached 5.3k IOPS on one export at iodepth 8 or 32 and 8.3k on four).

    The path's stages are the host's, shared by every VM (``PerfParams.path: host``), or each
    VM's own (``vm``), made when the VM's first I/O comes, as its processes are."""

    def __init__(self, env: simpy.Environment, model: PerfModel, rng: np.random.Generator,
                 exponential: Callable[[float], float] | None = None) -> None:
        self.env = env
        self.model = model
        self.rng = rng
        #: a draw of the exponential of a given mean: ``rng``'s own, one by one, unless the
        #: caller hands the same numbers faster (:class:`Exponentials`, for a generator of the
        #: host's alone)
        self.exponential = exponential or rng.exponential
        m = model.p.stages
        full = int(m)
        self.shares = [1.0 / m] * full + ([(m - full) / m] if m - full > 1e-9 else [])
        self.stages = [Stage(env) for _ in self.shares]
        self.per_vm = model.p.path == "vm"
        self._paths: dict[int, list[Stage]] = {}
        self.disk = SharedDevice(env)
        self.fifo = model.p.device_queue == "fifo"
        self.on_path = model.p.transfer_on_path
        self.queue = Stage(env)  # the device in arrival order
        self._locks: dict[int, FileLock] = {}
        # the host's cores, shared by every VM's issuer and server (sim.perf.eevdf)
        sched = model.p.sched
        self.cores: Runqueues | Cores | None = None
        if sched is not None:
            self.cores = (Runqueues(env, sched.cores, sched.slice_s,
                                    (sched.long_wait_p, sched.long_wait_s, rng),
                                    sched.long_wait_each_s)
                          if sched.queues == "per-core" else Cores(env, sched.cores, sched.slice_s))
        self._tasks: dict[int, tuple[AnyTask, AnyTask]] = {}
        #: each VM's pool threads (``Demand.pool_s``): all made, and those idle now
        self._pools: dict[int, list[AnyTask]] = {}
        self._idle: dict[int, list[AnyTask]] = {}
        self._kernel: AnyTask | None = None
        #: each VM's qemu-nbd's task group (``_group``)
        self._groups: dict[int, Group] = {}
        #: keep every task's waits for a core and turns (``Task.record``)
        self.record_turns = _recording is not None
        #: each VM's name by its disk (``label``): who a task serves, for a reader of turns
        self.names: dict[int, str] = {}
        if _recording is not None:
            _recording.append(self)

    def label(self, image: object, name: str) -> None:
        """The VM whose disk is ``image`` is called ``name``."""
        self.names[id(image)] = name

    def _task(self, wake_s: float, pin: int | None = None,
              server_of: object = None) -> AnyTask:
        """A process on the host's cores, of their scheduler; ``server_of``: a thread of the
        qemu-nbd serving that disk, in that qemu-nbd's session (and its group if the host
        has them: ``SchedParams.groups``)."""
        if isinstance(self.cores, Runqueues):
            return EevdfTask(self.env, self.cores, wake_s, pin=pin,
                             group=self._group(server_of),
                             session=None if server_of is None else id(server_of))
        assert self.cores is not None
        return Task(self.env, self.cores, wake_s)

    def _group(self, image: object) -> Group | None:
        """The task group of the qemu-nbd serving ``image``: its session's (cowbench starts
        each qemu-nbd, and each fio job starts itself, in a session of its own, so each is
        a group of its own; fio's job is one process, the same alone or in a group)."""
        s = self.model.p.sched
        if image is None or s is None or s.groups != "session":
            return None
        assert isinstance(self.cores, Runqueues)
        key = id(image)
        if key not in self._groups:
            self._groups[key] = self.cores.group()
        return self._groups[key]

    def tasks(self, image: object) -> tuple[AnyTask, AnyTask]:
        """The issuer and the server of the VM whose disk is ``image``."""
        key = id(image)
        if key not in self._tasks:
            s = self.model.p.sched
            assert s is not None and self.cores is not None
            self._tasks[key] = (self._task(s.issuer_wake_s),
                                self._task(s.server_wake_s, server_of=image))
            if self.record_turns:
                for task in self._tasks[key]:
                    task.record = ([], [])
        return self._tasks[key]

    def cpu_of(self, image: object) -> tuple[float, float] | None:
        """The CPU seconds the issuer and the server of the VM whose disk is ``image`` have
        used so far (wake-ups and bursts; the host's kernel apart); None if they were never
        made: no host scheduler, or no I/O yet."""
        pair = self._tasks.get(id(image))
        pool = sum(t.cpu_s for t in self._pools.get(id(image), ()))
        return None if pair is None else (pair[0].cpu_s, pair[1].cpu_s + pool)

    def named_tasks(self) -> list[tuple[str, AnyTask]]:
        """Every task made so far, named ``VM:fio`` (the issuer), ``VM:main`` (the server)
        by its VM's name (``label``; ``?`` for a disk not labelled), and ``kernel``."""
        out = [(f"{self.names.get(key, '?')}:{kind}", task)
               for key, pair in self._tasks.items()
               for kind, task in zip(("fio", "main"), pair, strict=True)]
        out += [(f"{self.names.get(key, '?')}:pool", task)
                for key, pool in self._pools.items() for task in pool]
        return out + ([("kernel", self._kernel)] if self._kernel is not None else [])

    def all_tasks(self) -> list[tuple[AnyTask, AnyTask]]:
        """Every VM's (issuer, server) made so far, in the order of their first I/O."""
        return list(self._tasks.values())

    def path_stages(self, image: object) -> list[Stage]:
        """The stages the path of the VM whose disk is ``image`` goes through."""
        if not self.per_vm:
            return self.stages
        key = id(image)
        if key not in self._paths:
            self._paths[key] = [Stage(self.env) for _ in self.shares]
        return self._paths[key]

    def kernel(self) -> AnyTask:
        """The host's kernel as one more process on its cores: the CPU an I/O's data costs
        outside fio and qemu-nbd (the disk's completions in softirq, kworkers), one queue for
        the host's one disk (a virtio disk of one queue interrupts one core)."""
        if self._kernel is None:
            # pinned to the core that takes the disk's interrupts (the first), with a queue per
            # core
            self._kernel = self._task(0.0, pin=0)
            if self.record_turns:
                self._kernel.record = ([], [])
        return self._kernel

    def lock(self, image: object) -> FileLock:
        key = id(image)  # images are mutable dataclasses: by identity
        if key not in self._locks:
            self._locks[key] = FileLock(self.env)
        return self._locks[key]

    def client(self) -> simpy.Timeout:
        return self.env.timeout(self.model.client_s)

    def _path(self, seconds: float, image: object) -> Process:
        exp = self.exponential
        for stage, share in zip(self.path_stages(image), self.shares, strict=True):
            req = stage.request()
            try:
                yield req
                yield self.env.timeout(exp(seconds * share))  # drawn once it is served
            finally:
                stage.release(req)

    def transfer(self, seconds: float, image: object, alloc: bool = False) -> Process:
        """One transfer of ``seconds`` at the device's full rate, as the host serves it. With
        ``transfer_on_path``, the transfer of an I/O that allocates nothing holds the path's
        first stage (a whole one): on the host's path it is that stage's work; where each VM
        has its own path, the VM's first stage is held while the device, which every VM
        shares, serves it (the VM's server waits on its read or write as the others' transfers
        go on). Every other transfer is the device's alone."""
        if self.on_path and not alloc and not self.per_vm:
            yield from self.stages[0].hold(seconds)
        elif self.on_path and not alloc:
            stage = self.path_stages(image)[0]
            req = stage.request()
            try:
                yield req
                yield from self._device(seconds)
            finally:
                stage.release(req)
        else:
            yield from self._device(seconds)

    def _device(self, seconds: float) -> Process:
        if self.fifo:
            yield from self.queue.hold(seconds)
        else:
            yield self.disk.transfer(seconds)

    def _allocation(self, d: Demand, image: object, copied: bool = False) -> Process:
        """An allocating write's own round through the path (its waiting part holds only the
        image's lock), then its copy; ``copied``: its copy-on-write read is done already
        (``_in_pool``), only the cluster's write is left."""
        if d.alloc_s > 0:
            yield from self._path(d.alloc_s, image)
        if d.alloc_wait_s > 0:
            yield self.env.timeout(self.exponential(d.alloc_wait_s))
        device_s = d.device_s - d.cow_device_s if copied else d.device_s
        if device_s > 0:
            yield from self.transfer(device_s, image, alloc=True)

    def serve(self, d: Demand, image: object = None) -> Process:
        """One guest I/O of the VM whose disk is ``image``: with a host scheduler, its issuer
        and its server run their half of its CPU as it goes, and again as it returns, and the
        host's kernel its own once the device is done. Its data crosses the socket between
        them in pieces (``Demand.data_turns``): a write's as it goes, a read's as it
        returns. The part of the server's CPU that qemu-nbd's pool spends (``Demand.pool_s``)
        a pool thread of the VM's runs, half before the device and half after, beside the
        main thread; an allocating write then reads the rest of its cluster from the backing
        file (``Demand.cow_device_s``: another file, in a call of its own), takes its image's
        lock and keeps it until the thread is done: a write that extends the file holds ext4's
        inode lock for its whole call (fitted to the probe of one image's first writes at
        depth, whose rate that lock sets: ``sim.perf.alloc.fit_lock_hold``). A read of the
        image's own data or an overwrite takes the lock shared at the same point and keeps it
        until its data has moved (ext4 takes the inode's lock shared for an O_DIRECT read or
        overwrite, for the whole call): it waits for the allocating writes before it and they
        for it. Measured here: a mixed VM's 4 KiB reads and overwrites of its overlay took
        139-148 us a call once its clusters were all written, 756-772 us while its first
        writes extended the file (1,239 us each)."""
        if self.cores is None:
            yield from self._serve(d, image)
            return
        issuer, server = self.tasks(image)
        pieces = 1 + d.data_turns
        main_s = d.server_s - d.pool_s  # the main thread's
        if d.is_write:  # the request carries the data: fio sends it, qemu-nbd receives it
            yield from self._across(issuer, d.issuer_s / 2, d.issuer_wake_s,
                                    server, main_s / 2, d.server_wake_s, pieces)
        else:
            yield issuer.run(d.issuer_s / 2, d.issuer_wake_s)
            yield server.run(main_s / 2, d.server_wake_s)
        if d.pool_s > 0:
            yield from self._in_pool(d, image)
        else:
            yield from self._serve(d, image)
            if d.kernel_s > 0:
                yield self.kernel().run(d.kernel_s)
        if d.is_write:
            yield server.run(main_s / 2, d.server_wake_s)
            yield issuer.run(d.issuer_s / 2, d.issuer_wake_s)
        else:  # the reply carries the data: qemu-nbd sends it, fio receives it
            yield from self._across(server, main_s / 2, d.server_wake_s,
                                    issuer, d.issuer_s / 2, d.issuer_wake_s, pieces)

    def _in_pool(self, d: Demand, image: object) -> Process:
        """The I/O's calls by a pool thread of the VM (an idle one, or one made for it)."""
        key = id(image)
        idle = self._idle.setdefault(key, [])
        if idle:
            worker = idle.pop()
        else:
            # its wake-ups are in its CPU per I/O (the probes')
            worker = self._task(0.0, server_of=image)
            if self.record_turns:
                worker.record = ([], [])
            self._pools.setdefault(key, []).append(worker)
        yield worker.run(d.pool_s / 2, 0.0)
        alone = d.allocates
        lock = self.lock(image) if alone or (d.shares_file and d.device_s > 0) else None
        copied = alone and d.cow_device_s > 0
        if copied:  # the copy-on-write read, from the backing file, before the lock
            if d.wait_s > 0:
                yield self.env.timeout(self.exponential(d.wait_s))
            yield from self.transfer(d.cow_device_s, image, alloc=True)
        if lock is not None:
            yield lock.acquire(alone=alone)
        yield from self._serve(d, image, held=lock is not None, copied=copied)
        if lock is not None and not alone:  # the call returns with the data moved
            lock.release(alone=False)
        if d.kernel_s > 0:
            yield self.kernel().run(d.kernel_s)
        yield worker.run(d.pool_s / 2, 0.0)
        if lock is not None and alone:
            lock.release(alone=True)
        idle.append(worker)

    @staticmethod
    def _across(sender: AnyTask, send_s: float, send_wake_s: float, receiver: AnyTask,
                receive_s: float, receive_wake_s: float, pieces: int) -> Process:
        """An I/O's data across the unix socket between fio and qemu-nbd, a buffer at a time:
        the sender writes a piece, then the receiver reads it (the next finds no room until
        it has), ``pieces`` times, each side's CPU in equal parts (the wake-ups after the
        first are in the bytes' CPU)."""
        for i in range(pieces):
            yield sender.run(send_s / pieces, send_wake_s if i == 0 else 0.0)
            yield receiver.run(receive_s / pieces, receive_wake_s if i == 0 else 0.0)

    def _serve(self, d: Demand, image: object, held: bool = False,
               copied: bool = False) -> Process:
        """The I/O's path, its waits and its transfer; ``held``: the image's lock is its
        caller's, taken already (a pool thread's: ``_in_pool``); ``copied``: so is its
        copy-on-write read, round trip and transfer."""
        yield from self._path(d.path_s, image)
        if d.delay_s > 0:
            yield self.env.timeout(self.exponential(d.delay_s))
        if d.wait_s > 0 and not copied:  # the copy-on-write read's round trip: waiting
            yield self.env.timeout(self.exponential(d.wait_s))
        if d.allocates and held:
            yield from self._allocation(d, image, copied)
        elif d.allocates:
            lock = self.lock(image)
            yield lock.acquire(alone=True)
            yield from self._allocation(d, image)
            lock.release(alone=True)
        elif d.shares_file and d.device_s > 0 and not held:
            lock = self.lock(image)
            yield lock.acquire(alone=False)
            yield from self.transfer(d.device_s, image)
            lock.release(alone=False)
        elif d.device_s > 0:
            yield from self.transfer(d.device_s, image)
