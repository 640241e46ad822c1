"""The CPU a large I/O costs its own processes (sim/perf/schedfit.py, demand.py, fit.py): the
data of a guest I/O crosses the socket between fio and qemu-nbd, so a 1 MiB I/O costs the two
many times a 4 KiB one's CPU (measured here at iodepth 1: fio 155-178 us and qemu-nbd 460-480
us per 1 MiB, 7 and 55-58 us per 4 KiB). That CPU is served on the host's cores, in the two
processes' slices, not as work of the path's stages that every VM's I/Os pass in arrival
order (issue 16: at density a 1 MiB writer was predicted at twice its real rate while every
small-block VM beside it was predicted 18-48% slow). A first write that copies nothing costs
a write's CPU, not a copy-on-write's."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from cowbench.profile import Beside, CpuCost, PerfParams, Probe, SchedParams
from sim.perf.demand import PerfModel
from sim.perf.fit import _bw_table, device_bw
from sim.perf.host import Host
from sim.perf.schedfit import sched_params, size_cpu
from sim.storage.disk import HostIO

from .test_perf import TRUE, probe

Proc = Generator[simpy.Event, Any, None]

DATA = CpuCost(issuer_io_s=7e-6, issuer_wake_s=0.0, server_io_s=32e-6, server_wake_s=11e-6)
ALLOC = CpuCost(issuer_io_s=14e-6, issuer_wake_s=4e-6, server_io_s=122e-6, server_wake_s=18e-6)
MiB = 1 << 20


def cpu_probe(rw: str, bs: int, iodepth: int, issuer: float, server: float) -> Probe:
    return probe(rw=rw, bs=bs, iodepth=iodepth).model_copy(update={
        "issuer_cpu_s": issuer, "server_cpu_s": server})


def test_each_size_costs_what_its_iodepth_1_probes_measured_beyond_4k() -> None:
    probes = [cpu_probe("randread", 4096, 1, 7e-6, 55e-6),
              cpu_probe("randwrite", 4096, 1, 8e-6, 58e-6),
              cpu_probe("randread", 4096, 32, 7e-6, 32e-6),
              cpu_probe("randread", 65536, 1, 16e-6, 75e-6),
              cpu_probe("randwrite", 65536, 1, 10e-6, 61e-6),
              cpu_probe("randread", MiB, 1, 178e-6, 480e-6),
              cpu_probe("randwrite", MiB, 1, 155e-6, 460e-6),
              cpu_probe("randread", MiB, 8, 213e-6, 584e-6)]  # at depth: not the table's
    table = size_cpu(probes)
    assert [s for s, _, _ in table] == [65536, MiB]
    assert table[0][1:] == pytest.approx(((9e-6 + 2e-6) / 2, (20e-6 + 3e-6) / 2))
    assert table[1][1:] == pytest.approx(((171e-6 + 147e-6) / 2, (425e-6 + 402e-6) / 2))
    s = sched_params(probes, cores=2)
    assert s is not None and s.size_cpu_s == table


SCHED = SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump(), alloc=ALLOC,
                    size_cpu_s=[(65536, 5e-6, 10e-6), (MiB, 160e-6, 410e-6)])


def test_the_cpu_of_a_size_is_linear_between_the_probed_ones_and_past_the_largest() -> None:
    assert SCHED.data_cpu(4096) == (0.0, 0.0)
    assert SCHED.data_cpu((65536 + MiB) / 2) == pytest.approx((82.5e-6, 210e-6))
    assert SCHED.data_cpu(2 * MiB - 4096) == pytest.approx((320e-6, 820e-6))
    assert SCHED.model_copy(update={"size_cpu_s": []}).data_cpu(MiB) == (0.0, 0.0)


PARAMS = TRUE.model_copy(update={"sched": SCHED})


def demand_cpu(host: HostIO, length: int, is_write: bool) -> tuple[float, float]:
    d = PerfModel(PARAMS).demand(is_write=is_write, length=length, host=host, fmt="qcow2")
    return d.issuer_s, d.server_s


def test_a_large_io_carries_the_cpu_of_its_bytes_a_hole_none() -> None:
    read = demand_cpu(HostIO(read_bytes=MiB, read_ops=1), MiB, False)
    assert read == pytest.approx((7e-6 + 160e-6, 32e-6 + 410e-6))
    write = demand_cpu(HostIO(write_bytes=MiB, write_ops=1), MiB, True)
    assert write == pytest.approx(read)
    # half of it in a hole: the hole's half crosses no socket as data
    half = demand_cpu(HostIO(read_bytes=MiB // 2, read_ops=1, backing_reads=1), MiB, False)
    assert half[1] == pytest.approx(32e-6 + SCHED.data_cpu(MiB // 2)[1])


def test_a_first_write_that_copies_nothing_costs_a_writes_cpu() -> None:
    # a whole 64 KiB cluster (measured here: qemu-nbd 71 us, against 159 us for a 4 KiB first
    # write that copied the rest of its cluster and 61 us for a raw 64 KiB write)
    whole = demand_cpu(HostIO(write_bytes=65536, write_ops=1, allocs=1), 65536, True)
    assert whole == pytest.approx((7e-6 + 5e-6, 32e-6 + 10e-6))
    cow = demand_cpu(HostIO(read_bytes=61440, read_ops=1, write_bytes=65536, write_ops=1,
                            allocs=1), 4096, True)
    assert cow == pytest.approx((ALLOC.issuer_io_s, ALLOC.server_io_s))
    ext = demand_cpu(HostIO(write_bytes=4096, write_ops=1, allocs=1, sub_allocs=1), 4096, True)
    assert ext == pytest.approx((DATA.issuer_io_s, DATA.server_io_s))


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
    # their path work in the second, and takes the cores when it wakes in the first; the
    # large reader, held by the device either way, moves as much
    on_cores = PARAMS.model_copy(update={"device_queue": "shared"})
    extra = sum(SCHED.data_cpu(MiB))
    path = [(s, v + extra) if s == MiB else (s, v) for s, v in TRUE.read_path_s]
    on_path = on_cores.model_copy(update={"read_path_s": path, "sched": SCHED.model_copy(
        update={"size_cpu_s": []})})
    small_cores, large_cores = small_beside_large(on_cores)
    small_path, large_path = small_beside_large(on_path)
    assert small_cores > 1.2 * small_path  # 8.2k against 6.2k
    assert large_cores == pytest.approx(large_path, rel=0.05)


def device(rw: str, bs: int, iodepth: int, bw: float, beside: Beside | None = None) -> Probe:
    return probe("device", rw, bs, iodepth).model_copy(update={"bw_bytes_per_s": bw,
                                                               "beside": beside})


def test_the_device_beside_the_path_moves_what_the_storage_alone_did() -> None:
    # through qemu-nbd the large probes are held back by their copies (the cores); with those
    # on the cores the device's bandwidth is the storage's own, where it was probed alone
    raw = [probe("raw", rw, bs, qd).model_copy(update={"bw_bytes_per_s": bw})
           for rw, bs, qd, bw in (("randread", 65536, 32, 0.89e9), ("randread", MiB, 8, 1.12e9),
                                  ("randwrite", MiB, 8, 1.10e9))]
    alone = [device("randread", 65536, 8, 1.56e9), device("randread", 4096, 1, 0.05e9),
             device("randread", 4096, 1, 0.01e9, Beside(rw="randread", bs=65536, iodepth=8))]
    assert device_bw(raw + alone, "randread") == 1.56e9
    assert device_bw(raw + alone, "randwrite") == 1.56e9  # the other direction's
    assert device_bw(raw, "randread") is None
    assert _bw_table(raw + alone, "randread", storage_alone=True) == [(65536, 1.56e9),
                                                                      (MiB, 1.56e9)]
    assert _bw_table(raw + alone, "randread") == [(65536, 0.89e9), (MiB, 1.12e9)]
    writes = [device("randwrite", MiB, 4, 2.05e9)]
    assert _bw_table(raw + alone + writes, "randwrite", storage_alone=True) == [(MiB, 2.05e9)]
