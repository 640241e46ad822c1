"""The CPU of a large I/O's bytes (sim/perf/schedfit.py, demand.py, fit.py): the data of a
guest I/O crosses the socket between fio and qemu-nbd, so a 1 MiB I/O costs the two many times
a 4 KiB one's CPU (measured here at iodepth 1: fio 155-178 us and qemu-nbd 460-480 us per
1 MiB, 7 and 55-58 us per 4 KiB). That CPU, measured by each size's own probes, is served on
the host's cores in the two processes' slices, not as work of the path's stages that every
VM's I/Os pass in arrival order (issue 16: at density every small-block VM was predicted
20-68% slow beside a 1 MiB writer and reader predicted fast)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from cowbench.profile import CpuCost, PerfParams, Probe, SchedParams
from sim.perf.demand import PerfModel
from sim.perf.fit import _bw_floor, cpu_qd1
from sim.perf.host import Host
from sim.perf.schedfit import bytes_cpu, sched_params
from sim.storage.disk import HostIO

from .test_perf import TRUE, probe

Proc = Generator[simpy.Event, Any, None]
MiB = 1 << 20
DATA = CpuCost(issuer_io_s=7e-6, issuer_wake_s=0.0, server_io_s=32e-6, server_wake_s=11e-6)
ALLOC = CpuCost(issuer_io_s=14e-6, issuer_wake_s=4e-6, server_io_s=122e-6, server_wake_s=18e-6)


def cpu_probe(rw: str, bs: int, iodepth: int, issuer: float, server: float,
              iops: float = 1.0) -> Probe:
    return probe(rw=rw, bs=bs, iodepth=iodepth).model_copy(update={
        "issuer_cpu_s": issuer, "server_cpu_s": server, "iops": iops})


PROBES = [cpu_probe("randread", 4096, 1, 7e-6, 55e-6),
          cpu_probe("randread", 4096, 32, 7e-6, 32e-6),
          cpu_probe("randread", 65536, 1, 16e-6, 75e-6),
          cpu_probe("randread", MiB, 1, 178e-6, 480e-6, iops=700),
          cpu_probe("randread", MiB, 8, 213e-6, 584e-6),  # its deepest: the table's
          cpu_probe("randwrite", 4096, 1, 8e-6, 58e-6),
          cpu_probe("randwrite", 65536, 1, 10e-6, 55e-6),  # less than 4 KiB's: nothing
          cpu_probe("randwrite", MiB, 1, 155e-6, 460e-6)]


def test_each_size_costs_what_its_deepest_probe_measured_beyond_the_deepest_4k_one() -> None:
    # at iodepth 1 every figure carries the wake-ups (a 64 KiB read cost qemu-nbd 119 us at
    # iodepth 1 where a 4 KiB one cost 99, but 100 against 48 at iodepth 32 on the quiet
    # machine of 2026-12-03 14:20): a size's deepest probe against the deepest 4 KiB one; a
    # size probed only at iodepth 1 (64 KiB here) against the 4 KiB one at iodepth 1
    reads = bytes_cpu(PROBES, "randread")
    assert [s for s, _, _ in reads] == [65536, MiB]
    assert reads[0][1:] == pytest.approx((9e-6, 20e-6))
    assert reads[1][1:] == pytest.approx((206e-6, 552e-6))
    writes = bytes_cpu(PROBES, "randwrite")
    assert writes[0][1:] == pytest.approx((2e-6, 0.0))
    assert writes[1][1:] == pytest.approx((147e-6, 402e-6))
    s = sched_params(PROBES, cores=2)
    assert s is not None and s.read_bytes_cpu == reads and s.write_bytes_cpu == writes
    assert bytes_cpu([p for p in PROBES if p.bs != 4096], "randread") == []
    same = [p.model_copy(update={"issuer_cpu_s": 7e-6, "server_cpu_s": 55e-6}) for p in PROBES]
    assert bytes_cpu(same, "randread") == []  # no size costs more: no table


SCHED = SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump(), alloc=ALLOC,
                    read_bytes_cpu=[(65536, 5e-6, 10e-6), (MiB, 160e-6, 410e-6)],
                    write_bytes_cpu=[(MiB, 100e-6, 300e-6)])


def test_the_cpu_of_a_size_is_linear_in_bytes_between_probed_sizes_and_past_the_largest() -> None:
    assert SCHED.bytes_cpu(False, 4096) == (0.0, 0.0)
    assert SCHED.bytes_cpu(False, (65536 + MiB) / 2) == pytest.approx((82.5e-6, 210e-6))
    assert SCHED.bytes_cpu(False, 2 * MiB - 4096) == pytest.approx((320e-6, 820e-6))
    assert SCHED.bytes_cpu(True, MiB) == pytest.approx((100e-6, 300e-6))
    assert SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump()).bytes_cpu(False, MiB) == \
        (0.0, 0.0)  # profiles made before it: every size a 4 KiB I/O's


PARAMS = TRUE.model_copy(update={"sched": SCHED})


def demand_cpu(host: HostIO, length: int, is_write: bool) -> tuple[float, float]:
    d = PerfModel(PARAMS).demand(is_write=is_write, length=length, host=host, fmt="qcow2")
    return d.issuer_s, d.server_s


def test_a_large_io_carries_the_cpu_of_its_bytes_and_its_path_gives_it_up() -> None:
    read = demand_cpu(HostIO(read_bytes=MiB, read_ops=1), MiB, False)
    assert read == pytest.approx((7e-6 + 160e-6, 32e-6 + 410e-6))
    write = demand_cpu(HostIO(write_bytes=MiB, write_ops=1), MiB, True)
    assert write == pytest.approx((7e-6 + 100e-6, 32e-6 + 300e-6))
    # half of the read in a hole: the hole's half crosses the socket as no data
    half = demand_cpu(HostIO(read_bytes=MiB // 2, read_ops=1, backing_reads=1), MiB, False)
    assert half[1] == pytest.approx(32e-6 + SCHED.bytes_cpu(False, MiB // 2)[1], rel=0.05)
    # a first write that copies carries its kind's cost and its bytes'
    cow = demand_cpu(HostIO(read_bytes=61440, read_ops=1, write_bytes=65536, write_ops=1,
                            allocs=1), 4096, True)
    assert cow == pytest.approx((ALLOC.issuer_io_s, ALLOC.server_io_s))
    model = PerfModel(PARAMS)
    big = model.demand(is_write=False, length=MiB, host=HostIO(read_bytes=MiB, read_ops=1),
                       fmt="raw")
    blind = PerfModel(PARAMS.model_copy(update={"sched": SCHED.model_copy(update={
        "read_bytes_cpu": []})})).demand(is_write=False, length=MiB,
                                         host=HostIO(read_bytes=MiB, read_ops=1), fmt="raw")
    assert big.path_s < blind.path_s  # the bytes' CPU left the shared stages for the cores
    assert big.sched_s - blind.sched_s == pytest.approx(570e-6)


def small_beside_large(params: PerfParams, until: float = 0.3) -> tuple[float, float]:
    """(IOPS of a 4 KiB reader at iodepth 1, of a 1 MiB reader at iodepth 4) on one host."""
    env = simpy.Environment()
    model = PerfModel(params)
    host = Host(env, model, np.random.default_rng(3))
    small = model.demand(is_write=False, length=4096, fmt="raw",
                         host=HostIO(read_bytes=4096, read_ops=1))
    large = model.demand(is_write=False, length=MiB, fmt="raw",
                         host=HostIO(read_bytes=MiB, read_ops=1))
    counts = {"small": 0, "large": 0}

    def slot(name: str, d: Any) -> Proc:
        while True:
            yield host.client()
            yield from host.serve(d, name)
            counts[name] += env.now > until / 5

    env.process(slot("small", small))
    for _ in range(4):
        env.process(slot("large", large))
    env.run(until=until)
    return counts["small"] / (until * 0.8), counts["large"] / (until * 0.8)


def test_a_large_readers_copies_take_its_share_of_the_cores_not_the_shared_path() -> None:
    # the same time per 1 MiB read at iodepth 1, spent either as CPU of its own processes on
    # the cores (in slices, fairly) or as work of the path's stages, which every VM's I/Os
    # pass in arrival order: a 4 KiB reader beside four 1 MiB reads in flight waits behind
    # their path work in the second, and takes a core when it wakes in the first
    on_cores = PARAMS.model_copy(update={"device_queue": "shared"})
    extra = sum(SCHED.bytes_cpu(False, MiB))
    path = [(s, v + extra) if s == MiB else (s, v) for s, v in TRUE.read_path_s]
    on_path = on_cores.model_copy(update={"read_path_s": path, "sched": SCHED.model_copy(
        update={"read_bytes_cpu": []})})
    small_cores, _ = small_beside_large(on_cores)
    small_path, _ = small_beside_large(on_path)
    assert small_cores > 1.2 * small_path


def test_the_device_leaves_each_sizes_iodepth_1_probe_the_cpu_it_measured() -> None:
    # 1 MiB reads at iodepth 1 took 1/700 s, 665 us of it the two processes' CPU: the device
    # took at most the rest, so its bandwidth is at least 1 MiB over that rest
    s = sched_params(PROBES, cores=2)
    assert s is not None
    cpu = cpu_qd1(s, "randread", MiB)
    assert cpu == pytest.approx(s.cost("data").qd1_s + 206e-6 + 552e-6)
    table = [(65536, 0.9e9), (MiB, 1.0e9)]
    floor = _bw_floor(table, PROBES, s, "randread")
    assert floor[1][1] == pytest.approx(MiB / (1 / 700 - cpu))
    assert floor[0] == (65536, max(0.9e9, 65536 / (1.0 - cpu_qd1(s, "randread", 65536))))
    assert _bw_floor(table, PROBES, None, "randread") == table
