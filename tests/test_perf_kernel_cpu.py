"""The kernel's CPU of a large I/O (sim/perf/schedfit.py, demand.py, host.py): what the machine
spends on an I/O's data outside fio and qemu-nbd (the disk's completions in softirq, kworkers),
measured by each size's deepest raw probe as the machine's CPU beyond the two processes, and
served on the host's cores by one kernel task for the host's one disk (issue 16: at density
the 1 MiB sequential writer was predicted 31-70% fast in every session; on the quiet machine
of 2026-12-03 14:10 a 1 MiB write at iodepth 8 cost the machine 2029 us, fio 426 and
qemu-nbd 1197 of it)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from cowbench.profile import CpuCost, PerfParams, Probe, SchedParams
from sim.perf.demand import Demand, PerfModel
from sim.perf.fit import cpu_qd1
from sim.perf.host import Host
from sim.perf.schedfit import background_rate, kernel_cpu, sched_params
from sim.storage.disk import HostIO

from .test_perf import TRUE, probe

Proc = Generator[simpy.Event, Any, None]
MiB = 1 << 20


def deep(rw: str, bs: int, iodepth: int, iops: float, issuer: float, server: float,
         beyond: float, background: float = 0.0) -> Probe:
    """A raw probe whose machine figure is its processes', ``beyond`` of the kernel's per I/O,
    and ``background`` CPU seconds per second of the machine's own."""
    return probe(rw=rw, bs=bs, iodepth=iodepth).model_copy(update={
        "iops": iops, "issuer_cpu_s": issuer, "server_cpu_s": server,
        "host_cpu_s": issuer + server + beyond + background / iops})


def machine(background: float = 0.0) -> list[Probe]:
    """The quiet machine's write probes of 2026-12-03 14:10 (per I/O, us: fio, qemu-nbd,
    the machine beyond them), and reads made up alike."""
    b = background
    return [deep("randread", 4096, 1, 3379, 46e-6, 138e-6, 70e-6, b),  # qd1: wake-ups
            deep("randread", 4096, 32, 25052, 12e-6, 46e-6, 7e-6, b),
            deep("randread", 65536, 32, 8424, 27e-6, 90e-6, 17e-6, b),
            deep("randread", MiB, 1, 506, 202e-6, 799e-6, 417e-6, b),
            deep("randread", MiB, 8, 1006, 291e-6, 911e-6, 269e-6, b),
            deep("randwrite", 4096, 1, 4780, 27e-6, 117e-6, 23e-6, b),
            deep("randwrite", 4096, 32, 20640, 13e-6, 55e-6, 8e-6, b),
            deep("randwrite", 65536, 32, 7401, 31e-6, 96e-6, 77e-6, b),
            deep("randwrite", MiB, 1, 450, 475e-6, 1240e-6, 1010e-6, b),
            deep("randwrite", MiB, 8, 702, 426e-6, 1197e-6, 406e-6, b)]


@pytest.mark.parametrize("background", [0.0, 0.3])
def test_a_sizes_kernel_cpu_is_its_deepest_probes_beyond_the_processes_and_a_4k_ones(
        background: float) -> None:
    # the iodepth-1 probes' figures carry every wake-up (1010 us beyond for a 1 MiB write at
    # iodepth 1, 406 at 8): the deepest probe of each size is the kernel's work on the data;
    # the machine's background (other processes) is no I/O's
    writes = kernel_cpu(machine(background), "randwrite", background, cores=2)
    assert [s for s, _ in writes] == [65536, MiB]
    assert [k for _, k in writes] == pytest.approx([69e-6, 398e-6])
    reads = kernel_cpu(machine(background), "randread", background, cores=2)
    assert [k for _, k in reads] == pytest.approx([10e-6, 262e-6])
    s = sched_params(machine(), cores=2)
    assert s is not None
    assert s.write_kernel_cpu == kernel_cpu(machine(), "randwrite",
                                            background_rate(machine(), 2), 2)
    # linear in bytes between sizes, none at 4 KiB and below
    t = s.model_copy(update={"write_kernel_cpu": writes})
    assert t.kernel_cpu(True, 4096) == 0.0
    assert t.kernel_cpu(True, (65536 + MiB) / 2) == pytest.approx((69e-6 + 398e-6) / 2)


def test_no_deep_probe_of_4k_or_no_figure_beyond_the_processes_gives_no_kernel_cpu() -> None:
    assert kernel_cpu([p for p in machine() if p.bs != 4096], "randwrite", 0.0, 2) == []
    same = [p.model_copy(update={"host_cpu_s": p.issuer_cpu_s + p.server_cpu_s})  # type: ignore[operator]
            for p in machine()]
    assert kernel_cpu(same, "randwrite", 0.0, 2) == []
    # a machine figure the cores could not have spent (a busy machine's) is not used
    busy = [p.model_copy(update={"host_cpu_s": 3.0 / p.iops}) for p in machine()]
    assert kernel_cpu(busy, "randwrite", 0.0, 2) == []


DATA = CpuCost(issuer_io_s=13e-6, issuer_wake_s=17e-6, server_io_s=46e-6, server_wake_s=46e-6)
SCHED = SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump(),
                    write_bytes_cpu=[(MiB, 413e-6, 1142e-6)])
#: a 1 MiB write took 2.5 ms at iodepth 1 beyond its transfer: its processes' CPU and the rest
PATH = [(s, 2.5e-3 if s == MiB else v) for s, v in TRUE.write_path_s]
PARAMS = TRUE.model_copy(update={"sched": SCHED, "transfer_on_path": True, "write_path_s": PATH})
KERNEL = PARAMS.model_copy(update={"sched": SCHED.model_copy(update={
    "write_kernel_cpu": [(MiB, 398e-6)]})})
BIG = HostIO(write_bytes=MiB, write_ops=1)


def test_a_large_write_carries_its_kernel_cpu_and_its_path_gives_it_up() -> None:
    with_k = PerfModel(KERNEL).demand(is_write=True, length=MiB, host=BIG, fmt="raw")
    without = PerfModel(PARAMS).demand(is_write=True, length=MiB, host=BIG, fmt="raw")
    assert with_k.kernel_s == pytest.approx(398e-6) and without.kernel_s == 0.0
    assert (with_k.issuer_s, with_k.server_s) == (without.issuer_s, without.server_s)
    assert with_k.path_s + with_k.delay_s == pytest.approx(
        without.path_s + without.delay_s - 398e-6)
    assert cpu_qd1(KERNEL.sched, "randwrite", MiB) - cpu_qd1(PARAMS.sched, "randwrite", MiB) \
        == pytest.approx(398e-6)
    small = PerfModel(KERNEL).demand(is_write=True, length=4096,
                                     host=HostIO(write_bytes=4096, write_ops=1), fmt="raw")
    assert small.kernel_s == 0.0


def beside_writer(params: PerfParams, until: float = 0.2) -> tuple[float, float, Host]:
    """(IOPS of a 4 KiB reader at iodepth 4 of each of three VMs, of a 1 MiB writer at
    iodepth 4) on one scheduled host, and the host."""
    env = simpy.Environment()
    model = PerfModel(params)
    host = Host(env, model, np.random.default_rng(5))
    read = model.demand(is_write=False, length=4096, fmt="raw",
                        host=HostIO(read_bytes=4096, read_ops=1))
    write = model.demand(is_write=True, length=MiB, fmt="raw", host=BIG)
    counts = {"read": 0, "write": 0}

    def slot(name: str, d: Demand, disk: str) -> Proc:
        while True:
            yield host.client()
            yield from host.serve(d, disk)
            counts[name] += env.now > until / 5

    for vm in range(3):
        for _ in range(4):
            env.process(slot("read", read, f"r{vm}"))
    for _ in range(4):
        env.process(slot("write", write, "w"))
    env.run(until=until)
    span = until * 4 / 5
    return counts["read"] / 3 / span, counts["write"] / span, host


def test_the_kernels_cpu_runs_on_the_hosts_cores_and_holds_back_its_writer() -> None:
    reads, writes, host = beside_writer(KERNEL)
    reads0, writes0, host0 = beside_writer(PARAMS)
    assert host0._kernel is None  # no kernel CPU measured: no kernel task, as before
    assert host._kernel is not None
    # the kernel ran each 1 MiB write's own, on the host's cores
    assert host._kernel.cpu_s == pytest.approx(398e-6 * writes * 0.2, rel=0.3)
    assert writes < 0.95 * writes0
    # (the readers are not slower for it: the kernel's work waits for a core in line, as a
    # process's does, and the writer it holds back leaves them the cores it no longer uses)
    assert reads > 0.9 * reads0


def test_calibrate_prints_the_kernels_cpu_per_mib() -> None:
    from rich.console import Console

    from cowbench.calibrate_view import print_profile
    from cowbench.profile import Profile

    def shown(params: PerfParams) -> str:
        out = Console(record=True, width=240)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=[probe()], params=params), out)
        return out.export_text()

    assert "kernel per 1 MiB read / write 0 / 398 us" in shown(KERNEL)
    assert "kernel per" not in shown(PARAMS)
