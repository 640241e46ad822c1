"""qemu-nbd's pool of threads in the model (``SchedParams.pool_share``): the share of its CPU
per I/O its pool spends runs on a process of its own for each I/O in flight, beside the main
thread; an allocating write holds its image's lock through its pool thread's call, a read of
the image's own data or an overwrite holds it shared through its call (fit version 5). Measured
here (benchmarks/io_turns.py --settings mix-alone mix-filled --syscalls, 2026-12-06): a mixed
VM's calls on its fresh overlay took 756-772 us while its first writes extended the file, 139-148
us once nothing did, and its reads of the backing file 130-151 us; qemu-nbd's main thread
spent 26 us per I/O, its pool 34, on both cores at once."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import simpy
from rich.console import Console

from cowbench.calibrate_view import print_profile
from cowbench.profile import CpuCost, Profile, SchedParams, Turns
from sim.perf.demand import PerfModel
from sim.perf.host import Host
from sim.perf.schedfit import pool_share, sched_params
from sim.storage.disk import HostIO

from .test_perf import TRUE, probe

Proc = Generator[simpy.Event, Any, None]
DATA = CpuCost(issuer_io_s=10e-6, issuer_wake_s=2e-6, server_io_s=60e-6, server_wake_s=10e-6)
ALLOC = CpuCost(issuer_io_s=10e-6, issuer_wake_s=2e-6, server_io_s=150e-6, server_wake_s=10e-6)


def threads(main_us: float, pool_us: float) -> dict[str, Turns]:
    return {"server_main": Turns(threads=1, turns=1.0, cpu_s=main_us * 1e-6, wait_s=0.0),
            "server_pool": Turns(threads=4, turns=2.0, cpu_s=pool_us * 1e-6, wait_s=0.0)}


def test_the_share_is_the_median_of_the_pools_over_the_deep_probes_of_one_export() -> None:
    probes = [probe(rw="randread", iodepth=32).model_copy(update=threads(20, 30)),  # 60%
              probe(rw="randwrite", iodepth=32).model_copy(update=threads(25, 25)),  # 50%
              probe(rw="randwrite", iodepth=8, target="cow").model_copy(
                  update=threads(70, 105)),  # 60%
              probe(rw="randread", iodepth=4).model_copy(update=threads(40, 10))]  # 20%
    assert pool_share(probes) == pytest.approx(0.55)  # the median of 0.2, 0.5, 0.6, 0.6
    # what it does not read: iodepth 1 (the main thread's wake-ups one an I/O), several
    # exports, 64 KiB, a probe without the threads' figures
    others = [probe(rw="randread", iodepth=1).model_copy(update=threads(10, 90)),
              probe(rw="randread", iodepth=32, exports=4).model_copy(update=threads(10, 90)),
              probe(rw="randread", iodepth=32, bs=65536).model_copy(update=threads(10, 90)),
              probe(rw="randread", iodepth=32)]
    assert pool_share(probes + others) == pytest.approx(0.55)
    assert pool_share(others) == 0.0  # profiles made before the threads' figures: one process
    cpu = [p.model_copy(update={"issuer_cpu_s": 10e-6, "server_cpu_s": 50e-6})
           for p in probes + [probe(rw="randread", iodepth=1).model_copy(
               update={"issuer_cpu_s": 12e-6, "server_cpu_s": 80e-6})]]
    s = sched_params(cpu, cores=2)
    assert s is not None and s.pool_share == pytest.approx(0.55)


def sched(share: float) -> SchedParams:
    return SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump(), alloc=ALLOC,
                       pool_share=share)


def test_an_ios_pool_part_is_its_pool_share_of_the_servers_cpu_for_what_reaches_the_file(
        ) -> None:
    model = PerfModel(TRUE.model_copy(update={"sched": sched(0.6)}))
    read = model.demand(is_write=False, length=4096, fmt="raw",
                        host=HostIO(read_bytes=4096, read_ops=1))
    assert read.pool_s == pytest.approx(0.6 * 60e-6) and read.server_s == pytest.approx(60e-6)
    hole = model.demand(is_write=False, length=4096, fmt="raw", host=HostIO(read_ops=1))
    assert hole.pool_s == 0.0  # answered from the file's map: no call
    first = model.demand(is_write=True, length=4096, fmt="qcow2",
                         host=HostIO(write_bytes=65536, write_ops=1, read_bytes=61440,
                                     read_ops=1, allocs=1, cow=True))
    assert first.allocates and first.pool_s == pytest.approx(0.6 * 150e-6)
    none = PerfModel(TRUE.model_copy(update={"sched": sched(0.0)}))
    assert none.demand(is_write=False, length=4096, fmt="raw",
                       host=HostIO(read_bytes=4096, read_ops=1)).pool_s == 0.0


def run_vm(share: float, depth: int, seconds: float = 0.2) -> tuple[Host, int]:
    """One VM reading 4 KiB at ``depth`` in flight on a host of two cores; its I/Os done."""
    env = simpy.Environment()
    model = PerfModel(TRUE.model_copy(update={"sched": sched(share)}))
    host = Host(env, model, np.random.default_rng(3))
    d = model.demand(is_write=False, length=4096, fmt="raw",
                     host=HostIO(read_bytes=4096, read_ops=1))
    done = [0]

    def slot() -> Proc:
        while True:
            yield host.client()
            yield from host.serve(d, "vm")
            done[0] += 1

    for _ in range(depth):
        env.process(slot())
    env.run(until=seconds)
    return host, done[0]


def test_the_pool_runs_beside_the_main_thread_and_its_cpu_is_the_servers() -> None:
    one, ios1 = run_vm(0.0, depth=16)
    pool, ios = run_vm(0.6, depth=16)
    assert [n for n, _ in one.named_tasks()] == ["?:fio", "?:main"]
    names = [n for n, _ in pool.named_tasks()]
    assert names[:2] == ["?:fio", "?:main"] and set(names[2:]) == {"?:pool"}
    assert 2 <= len(names) - 2 <= 16  # at most one thread per I/O in flight
    # the server's CPU counts its pool's: the same per I/O either way
    for host, n in ((one, ios1), (pool, ios)):
        cpu = host.cpu_of("vm")
        assert cpu is not None and cpu[1] / n == pytest.approx(60e-6, rel=0.1)
    # the main thread, alone, no longer bounds the VM: one process of 60 us an I/O allows
    # 16.7k a second; with the pool on the other core the VM goes faster
    assert ios / ios1 > 1.2
    _, main = pool.tasks("vm")
    assert main.cpu_s / ios == pytest.approx(0.4 * 60e-6, rel=0.15)


def test_a_first_write_holds_its_images_lock_until_its_pool_thread_is_done() -> None:
    env = simpy.Environment()
    model = PerfModel(TRUE.model_copy(update={"sched": sched(0.6)}))
    host = Host(env, model, np.random.default_rng(4))
    first = model.demand(is_write=True, length=4096, fmt="qcow2",
                         host=HostIO(write_bytes=65536, write_ops=1, read_bytes=61440,
                                     read_ops=1, allocs=1, cow=True))
    own = model.demand(is_write=False, length=4096, fmt="qcow2",
                       host=HostIO(read_bytes=4096, read_ops=1))
    assert first.allocates and own.shares_file
    held: list[tuple[float, float]] = []
    reads: list[float] = []
    lock = host.lock("vm")
    real_release = lock.release

    def release(alone: bool) -> None:
        if alone:
            held.append((env.now, host._pools[id("vm")][0].cpu_s))  # the writer's thread
        real_release(alone)

    lock.release = release  # type: ignore[method-assign]

    def writer() -> Proc:
        yield from host.serve(first, "vm")

    def reader() -> Proc:
        while not lock.writer:  # once the write holds the lock
            yield env.timeout(1e-6)
        yield from host.serve(own, "vm")
        reads.append(env.now)

    env.process(writer())
    env.process(reader())
    env.run(until=0.05)
    assert len(held) == 1 and len(reads) == 1
    t, pool_cpu = held[0]
    # released once its pool thread had run both halves of its part
    assert pool_cpu == pytest.approx(first.pool_s, rel=1e-6)
    assert reads[0] > t  # the read of the image's own data waited for it


def test_a_first_write_reads_its_copy_before_it_takes_its_images_lock() -> None:
    # qcow2's perform_cow reads the rest of the cluster from the backing file, then writes it
    # with the guest's data: only the write is on the image's file, under its lock (fit
    # version 9). Two first writes of one image, the second asked for once the first holds
    # the lock (for 1 ms more of its allocation round): the second reads its copy meanwhile,
    # and each holds the lock for its cluster's write alone
    env = simpy.Environment()
    model = PerfModel(TRUE.model_copy(update={"sched": sched(0.6)}))
    host = Host(env, model, np.random.default_rng(4), exponential=lambda mean: mean)
    first = replace(model.demand(is_write=True, length=4096, fmt="qcow2",
                                 host=HostIO(write_bytes=65536, write_ops=1, read_bytes=61440,
                                             read_ops=1, allocs=1, cow=True)),
                    alloc_wait_s=1e-3)
    assert 0 < first.cow_device_s < first.device_s
    lock = host.lock("vm")
    seen: list[tuple[float, float, bool]] = []  # (when, seconds, the lock held alone then)
    real_transfer = host.transfer

    def transfer(seconds: float, image: object, alloc: bool = False) -> Proc:
        seen.append((env.now, seconds, lock.writer))
        yield from real_transfer(seconds, image, alloc)

    host.transfer = transfer  # type: ignore[method-assign]
    done: list[float] = []

    def writer(after: bool) -> Proc:
        while after and not lock.writer:
            yield env.timeout(1e-6)
        yield from host.serve(first, "vm")
        done.append(env.now)

    env.process(writer(False))
    env.process(writer(True))
    env.run(until=0.05)
    assert len(done) == 2
    reads = [(t, held) for t, s, held in seen if s == pytest.approx(first.cow_device_s)]
    writes = [(t, held) for t, s, held in seen
              if s == pytest.approx(first.device_s - first.cow_device_s)]
    assert len(reads) == len(writes) == 2
    assert all(held for _, held in writes)  # each cluster's write under the lock
    assert reads[0][1] is False  # the first copy read with the lock free
    assert reads[1][1] is True  # the second while the first writer held it


def test_without_the_pool_a_first_writes_copy_is_under_its_lock_as_before() -> None:
    env = simpy.Environment()
    model = PerfModel(TRUE.model_copy(update={"sched": sched(0.0)}))
    host = Host(env, model, np.random.default_rng(4), exponential=lambda mean: mean)
    first = model.demand(is_write=True, length=4096, fmt="qcow2",
                         host=HostIO(write_bytes=65536, write_ops=1, read_bytes=61440,
                                     read_ops=1, allocs=1, cow=True))
    lock = host.lock("vm")
    seen: list[tuple[float, bool]] = []
    real_transfer = host.transfer

    def transfer(seconds: float, image: object, alloc: bool = False) -> Proc:
        seen.append((seconds, lock.writer))
        yield from real_transfer(seconds, image, alloc)

    host.transfer = transfer  # type: ignore[method-assign]
    env.process(host.serve(first, "vm"))
    env.run(until=0.05)
    assert seen == [(pytest.approx(first.device_s), True)]  # one transfer, the whole copy


def test_a_first_write_copies_nothing_from_the_device_where_the_backing_has_no_data(
        ) -> None:
    model = PerfModel(TRUE.model_copy(update={"sched": sched(0.6)}))
    zeroed = model.demand(is_write=True, length=4096, fmt="qcow2",
                          host=HostIO(write_bytes=4096, write_ops=2, allocs=1, cow=True))
    over = model.demand(is_write=True, length=4096, fmt="qcow2",
                        host=HostIO(write_bytes=4096, write_ops=1))
    raw = model.demand(is_write=True, length=4096, fmt="raw",
                       host=HostIO(write_bytes=4096, write_ops=1))
    assert zeroed.allocating and zeroed.cow_device_s == 0.0
    assert over.cow_device_s == raw.cow_device_s == 0.0


@pytest.mark.parametrize("share", [0.6, 0.0])
def test_a_read_of_the_images_own_data_holds_its_lock_shared_for_its_whole_call(
        share: float) -> None:
    # with the pool, a read of the overlay's own data holds the lock from its pool thread's
    # call to its data's arrival, the virtual disk's round trip in it: a first write that
    # comes meanwhile waits for all of it. Without the pool (share 0: the one-process model
    # of a profile without the pool's figures) it holds the lock for its transfer alone.
    env = simpy.Environment()
    # a read's path of 300 us at iodepth 1, most of it the virtual disk's round trip
    slow = [(4096, 300e-6), (1 << 20, 1e-3)]
    model = PerfModel(TRUE.model_copy(update={"sched": sched(share), "read_path_s": slow}))
    host = Host(env, model, np.random.default_rng(4), exponential=lambda mean: mean)
    own = model.demand(is_write=False, length=4096, fmt="qcow2",
                       host=HostIO(read_bytes=4096, read_ops=1))
    first = model.demand(is_write=True, length=4096, fmt="qcow2",
                         host=HostIO(write_bytes=65536, write_ops=1, read_bytes=61440,
                                     read_ops=1, allocs=1, cow=True))
    assert own.shares_file and own.path_s + own.delay_s > 10 * own.device_s > 0
    lock = host.lock("vm")
    real_acquire, real_release = lock.acquire, lock.release
    taken: list[float] = []
    shared: list[tuple[float, bool]] = []  # when the read let go; a writer waiting then

    def acquire(alone: bool) -> simpy.Event:
        if not alone:
            taken.append(env.now)
        return real_acquire(alone)

    def release(alone: bool) -> None:
        if not alone:
            shared.append((env.now, any(a for a, _ in lock.waiting)))
        real_release(alone)

    lock.acquire = acquire  # type: ignore[method-assign]
    lock.release = release  # type: ignore[method-assign]
    wrote: list[float] = []

    def reader() -> Proc:
        yield from host.serve(own, "vm")

    def writer() -> Proc:
        while not lock.readers:  # once the read holds the lock
            yield env.timeout(1e-6)
        yield from host.serve(first, "vm")
        wrote.append(env.now)

    env.process(reader())
    env.process(writer())
    env.run(until=0.05)
    assert len(taken) == len(shared) == len(wrote) == 1
    held = shared[0][0] - taken[0]
    if share:
        assert held == pytest.approx(own.path_s + own.delay_s + own.device_s, rel=1e-6)
        assert shared[0][1]  # the first write was waiting for it
    else:
        assert held == pytest.approx(own.device_s, rel=1e-6)


def test_calibrate_prints_the_pools_share() -> None:
    def shown(share: float) -> str:
        out = Console(record=True, width=220)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=[probe()],
                              params=TRUE.model_copy(update={"sched": sched(share)})), out)
        return out.export_text()

    assert "55% of its CPU per I/O of data, a thread per I/O in flight" in shown(0.55)
    assert "pool of threads" not in shown(0.0)
