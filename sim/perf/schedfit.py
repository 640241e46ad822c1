"""The host scheduler's parameters (``sim.perf.eevdf``) from the calibration probes.

The costs are measured, not fitted: every probe records the CPU its I/Os took, of fio (the
issuer) and of qemu-nbd (the server) (``Probe.issuer_cpu_s``, ``server_cpu_s``). A process's
CPU per I/O is ``io + wakes x wake`` where ``wakes`` is how often it woke per I/O: twice with
one I/O in flight (for the request, and for its reply), almost never with many (a wake-up
serves every I/O that queued meanwhile). So, from the 4 KiB raw reads of one export: ``io``
is the deepest probe's CPU per I/O, ``wake`` half of what the iodepth-1 probe spent beyond
it. Measured here (loaded machine): qemu-nbd 47 us at iodepth 1 and 13 us at 32 (``io`` 13,
``wake`` 17), fio 7 and 4 us.

The cores are the machine's the probes ran on (the calibration fits where it measures); the
slice is the kernel's default, ``base_slice_ns`` 0.75 ms times ``1 + log2(cores)`` for up to
8 cores (Linux ``kernel/sched/fair.c``, ``update_sysctl``: 1.5 ms on 2 cores). Probes without
CPU figures (profiles made before them) give no scheduler.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from cowbench.profile import BYTES_BASE, CpuCost, Probe, SchedParams

#: the kernel's base slice before its scaling by the number of cores
BASE_SLICE_S = 0.75e-3


def kernel_slice_s(cores: int) -> float:
    """The kernel's default slice on ``cores`` cores."""
    return BASE_SLICE_S * (1 + int(math.log2(min(max(cores, 1), 8))))


def split_cpu(qd1_s: float, deep_s: float) -> tuple[float, float]:
    """(CPU per I/O, CPU per wake-up) of a process that used ``qd1_s`` per I/O with one in
    flight (two wake-ups per I/O) and ``deep_s`` with many (wake-ups shared)."""
    io = min(qd1_s, deep_s)
    return io, (qd1_s - io) / 2


def _pair(probes: Sequence[Probe], target: str, rw: str) -> tuple[Probe, Probe] | None:
    """The 4 KiB probes of ``target`` and ``rw`` from one export with CPU figures: (the
    iodepth-1 probe, the deepest), or None."""
    found = [p for p in probes if p.target == target and p.rw == rw and p.bs == 4096
             and p.exports == 1 and p.issuer_cpu_s is not None and p.server_cpu_s is not None]
    qd1 = next((p for p in found if p.iodepth == 1), None)
    deep = max((p for p in found if p.iodepth > 1), key=lambda p: p.iodepth, default=None)
    return None if qd1 is None or deep is None else (qd1, deep)


def _cpus(pair: tuple[Probe, Probe]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(issuer, server), each as (CPU per I/O, CPU per wake-up), from a probe pair."""
    qd1, deep = pair
    assert qd1.issuer_cpu_s is not None and qd1.server_cpu_s is not None
    assert deep.issuer_cpu_s is not None and deep.server_cpu_s is not None
    return (split_cpu(qd1.issuer_cpu_s, deep.issuer_cpu_s),
            split_cpu(qd1.server_cpu_s, deep.server_cpu_s))


def _cost(pair: tuple[Probe, Probe] | None) -> CpuCost | None:
    """What one I/O of a probe pair's kind costs the two processes, or None without one."""
    if pair is None:
        return None
    issuer, server = _cpus(pair)
    return CpuCost(issuer_io_s=issuer[0], issuer_wake_s=issuer[1], server_io_s=server[0],
                   server_wake_s=server[1])


def plausible(p: Probe, cores: int) -> bool:
    """Whether ``p``'s machine figure can be its own: the machine cannot have been busier
    than all its cores. At load 8-11 here it was not (20 ms per 4 KiB read at 164 IOPS on 2
    cores: fio's whole run, its start and end too, counted the other processes' CPU)."""
    return (p.host_cpu_s is not None and p.issuer_cpu_s is not None
            and p.server_cpu_s is not None and p.host_cpu_s * p.iops <= cores)


def background_rate(probes: Sequence[Probe], cores: int) -> float:
    """CPU seconds per second the machine spent beyond the probes' processes at the least:
    the lowest over the probes of their machine figure beyond fio's and qemu-nbd's, times
    their rate. On a quiet machine, the kernel's own share of the cheapest probe (0.08 of a
    core here); on a busy one, the other processes' CPU, which every probe's machine figure
    counts too (measured at load 8-11: 20 ms per 4 KiB read at 164 IOPS)."""
    rates = [_beyond(p) * p.iops for p in probes if plausible(p, cores)]
    return max(0.0, min(rates, default=0.0))


def _beyond(p: Probe) -> float:
    """What the machine spent per I/O of ``p`` beyond its two processes (0 unmeasured)."""
    if p.host_cpu_s is None or p.issuer_cpu_s is None or p.server_cpu_s is None:
        return 0.0
    return p.host_cpu_s - p.issuer_cpu_s - p.server_cpu_s


def sched_params(probes: Sequence[Probe], cores: int | None) -> SchedParams | None:
    """The scheduler for a host of ``cores`` cores, or None without cores or CPU figures.
    Reads of holes and allocating writes cost the processes what their own probes measured,
    not a data read's (here qemu-nbd spent 3-5 us on a hole, 33-66 us on a 4 KiB read of
    data, 96-118 us on a 4 KiB first write), as their counters measured it: nothing of what
    the machine spent beyond the two. From 2026-12-03 (before fit versions were recorded) to
    version 8 a first write's server was charged that too, less the background (ext4's block
    allocation in kernel threads: 18-31 us per 4 KiB first write on the quiet machine); in
    the twelve fresh sessions of version 8 (2026-12-07) the model's qemu-nbd then spent
    9-57% more per first write than the machine's did (the 4 KiB writer held to 500 IOPS:
    175-205 us against 138-162), where its readers' was within a few percent, and the VMs
    that allocate came out slow on the crowded host (docs/io-model.md, "The lock's hold, and
    a first write's CPU")."""
    data = _pair(probes, "raw", "randread")
    if cores is None or data is None:
        return None
    issuer, server = _cpus(data)
    background = background_rate(probes, cores)
    return SchedParams(cores=cores, slice_s=kernel_slice_s(cores), issuer_io_s=issuer[0],
                       issuer_wake_s=issuer[1], server_io_s=server[0], server_wake_s=server[1],
                       hole=_hole_cost(_pair(probes, "hole", "randread")),
                       alloc=_cost(_pair(probes, "cow", "write")),
                       read_bytes_cpu=bytes_cpu(probes, "randread"),
                       write_bytes_cpu=bytes_cpu(probes, "randwrite"),
                       read_kernel_cpu=kernel_cpu(probes, "randread", background, cores),
                       write_kernel_cpu=kernel_cpu(probes, "randwrite", background, cores),
                       read_bytes_turns=bytes_turns(probes, "randread"),
                       write_bytes_turns=bytes_turns(probes, "randwrite"),
                       pool_share=pool_share(probes))


def pool_share(probes: Sequence[Probe]) -> float:
    """The share of qemu-nbd's CPU per I/O its pool of threads spent, the median over the
    4 KiB probes of one export (raw, qcow2, copy-on-write, nothing beside) at iodepth above
    1, where its main thread's wake-ups are shared by several I/Os as the model's are; 0
    where no probe has the threads' figures (profiles made before them)."""
    shares = [p.server_pool.cpu_s / (p.server_main.cpu_s + p.server_pool.cpu_s)
              for p in probes
              if p.server_main is not None and p.server_pool is not None
              and p.target in ("raw", "qcow2", "cow") and p.exports == 1 and p.beside is None
              and p.iodepth > 1 and p.bs == 4096
              and p.server_main.cpu_s + p.server_pool.cpu_s > 0]
    return float(statistics.median(shares)) if shares else 0.0


def bytes_cpu(probes: Sequence[Probe], rw: str) -> list[tuple[int, float, float]]:
    """[(bytes, issuer s, server s)]: what a raw ``rw`` of each probed size above 4 KiB cost
    the two processes beyond a 4 KiB one (never below 0, nor below a smaller size's; empty
    if no size costs more): the deepest probe of the size from one export against the
    deepest 4 KiB one, where the wake-ups are shared and each I/O's own CPU is what remains;
    a size probed only at iodepth 1 against the 4 KiB probe at iodepth 1. Measured on the
    quiet machine (2026-12-03 14:20): qemu-nbd 100 us per 64 KiB read at iodepth 32 and 48
    per 4 KiB one, where at iodepth 1 the 64 KiB reads cost 119 us and the 4 KiB ones 99 (a
    64 KiB read's bytes 20 us by the iodepth-1 pair, 51 by the deep one: fitted with 20, the
    device's bandwidth made up the rest and held every VM's transfers at density)."""
    def cpu(p: Probe) -> tuple[float, ...] | None:
        if p.issuer_cpu_s is None or p.server_cpu_s is None:
            return None
        return (p.issuer_cpu_s, p.server_cpu_s)

    return [(size, issuer, server)
            for size, (issuer, server) in _beyond_base(_by_depth(probes, rw, cpu))]


def bytes_turns(probes: Sequence[Probe], rw: str) -> list[tuple[int, float]]:
    """[(bytes, turns)]: the context switches per I/O of the issuer (fio's, ``issuer_turns``)
    for a raw ``rw`` of each probed size above 4 KiB beyond a 4 KiB one's at the same
    iodepth, from one export with nothing beside it (never below 0, nor below a smaller
    size's; empty if no size costs more), paired as :func:`bytes_cpu` pairs them. Measured
    here (2026-12-06): fio switched 5.0 and 4.3 times per 1 MiB read at iodepth 1 and 8, 1.06
    and 0.29 times per 4 KiB one at iodepth 1 and 32; 1.11 and 0.29 per 64 KiB one. A 1 MiB
    reply crosses the unix socket (212,992 bytes of buffer here) in about five pieces, and fio
    wakes for each (``SchedParams.read_bytes_turns``, ``sim.perf.host.Host._across``)."""
    def turns(p: Probe) -> tuple[float, ...] | None:
        return None if p.issuer_turns is None or p.beside is not None else (p.issuer_turns,)

    return [(size, t) for size, (t,) in _beyond_base(_by_depth(probes, rw, turns))]


def _by_depth(probes: Sequence[Probe], rw: str,
              figures: Callable[[Probe], tuple[float, ...] | None],
              ) -> dict[tuple[int, str], tuple[float, ...]]:
    """{(size, "qd1" or "deep"): ``figures`` of the probe}: the raw ``rw`` probes of one
    export ``figures`` has figures of (not None), at iodepth 1 and the deepest."""
    out: dict[tuple[int, str], tuple[float, ...]] = {}
    depth: dict[int, int] = {}
    for p in probes:
        if p.target != "raw" or p.rw != rw or p.exports != 1:
            continue
        got = figures(p)
        if got is None:
            continue
        if p.iodepth == 1:
            out[p.bs, "qd1"] = got
        elif p.iodepth > depth.get(p.bs, 1):
            depth[p.bs] = p.iodepth
            out[p.bs, "deep"] = got
    return out


def _beyond_base(by: dict[tuple[int, str], tuple[float, ...]],
                 ) -> list[tuple[int, tuple[float, ...]]]:
    """[(size, figures beyond a 4 KiB I/O's)] for each size above 4 KiB in ``by``
    (:func:`_by_depth`): its deepest probe against the deepest 4 KiB one, a size probed only
    at iodepth 1 against the 4 KiB one at iodepth 1; each figure never below 0 nor below a
    smaller size's; empty if no size costs more."""
    base = {q: by[BYTES_BASE, q] for q in ("deep", "qd1") if (BYTES_BASE, q) in by}
    out: list[tuple[int, tuple[float, ...]]] = []
    most: tuple[float, ...] | None = None
    for size in sorted({s for s, _ in by if s > BYTES_BASE}):
        q = "deep" if (size, "deep") in by and "deep" in base else "qd1"
        if q not in base or (size, q) not in by:
            continue
        more = tuple(a - b for a, b in zip(by[size, q], base[q], strict=True))
        most = tuple(max(m, x) for m, x in zip(most or (0.0,) * len(more), more, strict=True))
        out.append((size, most))
    return out if most is not None and any(most) else []


def kernel_cpu(probes: Sequence[Probe], rw: str, background: float,
               cores: int) -> list[tuple[int, float]]:
    """[(bytes, s)]: what the machine spent per raw ``rw`` of each size above 4 KiB beyond
    fio, qemu-nbd and the ``background`` (CPU seconds per second), beyond a 4 KiB one's: the
    kernel's own work on the I/O's data (the block layer's completions in softirq, kworkers),
    which no process's counters see, yet on the same cores. From the deepest probe of each
    size from one export, where the wake-ups that inflate every figure at iodepth 1 are
    shared (never below 0, nor below a smaller size's; empty if no size costs more).
    Measured on the quiet machine (2026-12-03 14:10): 1 MiB writes at iodepth 8 cost the
    machine 2029 us each, fio 426 and qemu-nbd 1197 of it; 4 KiB ones at iodepth 32 8 us
    beyond the two."""
    deep: dict[int, Probe] = {}
    for p in probes:
        if (p.target == "raw" and p.rw == rw and p.exports == 1 and p.iodepth > 1
                and p.iops > 0 and plausible(p, cores)
                and p.iodepth > getattr(deep.get(p.bs), "iodepth", 0)):
            deep[p.bs] = p
    small = deep.get(BYTES_BASE)
    if small is None:
        return []

    def own(p: Probe) -> float:
        return max(0.0, _beyond(p) - background / p.iops)

    out: list[tuple[int, float]] = []
    kernel = 0.0
    for size in sorted(s for s in deep if s > BYTES_BASE):
        kernel = max(kernel, own(deep[size]) - own(small))
        out.append((size, kernel))
    return out if kernel else []


def _hole_cost(pair: tuple[Probe, Probe] | None) -> CpuCost | None:
    """A hole read's cost, its server's CPU per I/O at least the deep probe's time per I/O.
    Nothing but the two processes serves a hole, and one qemu-nbd thread serves every read
    of its export, so the deep probe's rate is that thread's; the counters miss part of it
    (measured here: 131k reads of a hole per second at iodepth 32, 7.6 us each, where fio
    and qemu-nbd counted 3.0 and 3.3 us)."""
    cost = _cost(pair)
    if cost is None or pair is None:
        return cost
    qd1, deep = pair
    assert qd1.server_cpu_s is not None
    io = max(cost.server_io_s, 1.0 / deep.iops)
    # the iodepth-1 probe's CPU stays what it measured: the wake-ups give up what io gained
    return cost.model_copy(update={"server_io_s": io,
                                   "server_wake_s": max(0.0, (qd1.server_cpu_s - io) / 2)})
