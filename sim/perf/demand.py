"""What one guest I/O asks of the host: the demand model of the calibrated I/O model
(``sim.perf.perf`` describes the whole model; ``sim.perf.host`` serves these demands)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cowbench.profile import MIN_PATH_S as MIN_PATH_S  # the calibrated model's floor
from cowbench.profile import CpuCost, PerfParams, Probe
from sim.storage.disk import HostIO

Fmt = Literal["raw", "qcow2", "qcow2_ext"]

#: the path's part of a probe's qd1 time is never taken below this share of it
MIN_PATH_SHARE = 0.1
#: what a hole punched by a trim costs where the profile has no trim probe (made before it):
#: whole 64 KiB trims of written clusters at iodepth 1 (qcow2 and raw files, ext4 on the
#: project's 2-core VM, 2026-12-05, load 4 to 9) took 76 to 2658 us, 653 us the median of 15
#: runs, where trims that freed nothing took 38-51 us: the median less that round trip
PUNCH_FALLBACK_S = 600e-6
#: the size a trim's bare round trip is priced at (a hole read's path does not vary with it)
FS_TRIM_UNIT = 4096


def interp_log(table: Sequence[tuple[int, float]], size: float) -> float:
    """Piecewise-linear in log(size) through ``table`` (sorted by size), flat past its ends."""
    xs = [math.log(max(s, 1)) for s, _ in table]
    ys = [v for _, v in table]
    return float(np.interp(math.log(max(size, 1.0)), xs, ys))


@dataclass(frozen=True)
class Demand:
    """What one guest I/O asks of the host: path seconds (over the stages), device seconds,
    and for an allocating write, the seconds of allocation work (``alloc_s``, the COW read's
    round and the cluster allocation) that it does holding its image file's lock alone,
    together with its device transfer."""

    path_s: float
    device_s: float
    alloc_s: float = 0.0
    wait_s: float = 0.0
    delay_s: float = 0.0  # the path's waiting part (wake-ups, the virtual disk's round trip)
    #: a transfer to or from the image's own file that allocates nothing: it shares the
    #: file's lock with others like it, and waits for the allocating writes before it
    shares_file: bool = False
    #: with a host scheduler: the CPU its issuer and its server spend on it (beyond their
    #: wake-ups), and what the two take of its time at iodepth 1, wake-ups included
    issuer_s: float = 0.0
    server_s: float = 0.0
    sched_s: float = 0.0
    #: the part of the allocation round that waits holding only the image's lock (not work on
    #: the shared stages: ``PerfParams.alloc_shared``)
    alloc_wait_s: float = 0.0
    #: with a host scheduler: what waking for this I/O costs its issuer and its server
    issuer_wake_s: float = 0.0
    server_wake_s: float = 0.0
    #: with a host scheduler: the CPU the host's kernel spends on its data outside any
    #: process (softirq completions, kworkers: ``SchedParams.kernel_cpu``), once it is done
    kernel_s: float = 0.0
    #: with a host scheduler: the pieces beyond one in which its data crosses the socket
    #: between the issuer and the server (``SchedParams.bytes_turns``): a write's as it
    #: goes, a read's as it returns (``Host._across``)
    data_turns: int = 0
    is_write: bool = False
    #: with a host scheduler: the part of ``server_s`` qemu-nbd's pool spends on it, run by a
    #: pool thread of its own (``SchedParams.pool_share``)
    pool_s: float = 0.0
    #: of ``device_s``, an allocating write's copy-on-write read: with qemu-nbd's pool
    #: modelled, its pool thread reads the rest of the cluster from the backing file before it
    #: takes the image's lock, in a call of its own (qcow2's ``perform_cow`` reads the COW
    #: regions, then writes them with the guest's data): another file, not under that lock
    cow_device_s: float = 0.0

    #: a first write into a cluster (or a subcluster), said by the host I/O it makes, not
    #: by what its allocation round costs: a round fitted to 0 s is still no overwrite
    allocating: bool = False

    @property
    def allocates(self) -> bool:
        """Whether it takes its image file's lock alone, with its transfer on the device: a
        first write, or a write with a synchronous metadata read of its own to do."""
        return self.allocating or self.alloc_s > 0 or self.alloc_wait_s > 0

    @property
    def alloc_round_s(self) -> float:
        """The whole allocation round, work and waiting."""
        return self.alloc_s + self.alloc_wait_s


class PerfModel:
    """Service demands from a :class:`PerfParams`."""

    def __init__(self, params: PerfParams) -> None:
        self.p = params
        self.client_s = params.client_s
        s = params.sched  # what each kind of I/O costs the scheduler's processes, made once
        self._costs = {k: s.cost(k) for k in ("data", "hole", "alloc")} if s else {}
        self._sized: dict[tuple[CpuCost, bool, float], CpuCost] = {}

    def bandwidth(self, is_write: bool, op_bytes: float) -> float:
        return interp_log(self.p.write_bw if is_write else self.p.read_bw, op_bytes)

    def raw_path(self, is_write: bool, length: int) -> float:
        return interp_log(self.p.write_path_s if is_write else self.p.read_path_s, length)

    def chain(self, depth: int) -> float:
        """What a read that falls through ``depth`` qcow2 layers adds to an allocated read:
        one layer's ``chain_base_s`` (may be negative: the base answers a read a layer does
        not hold), plus ``a k + b k^2`` for the ``k = depth - 1`` layers above it."""
        if depth <= 0:
            return 0.0
        k = depth - 1
        return self.p.chain_base_s + self.p.chain_a_s * k + self.p.chain_b_s * k * k

    def device(self, read_bytes: int, read_ops: int, write_bytes: int, write_ops: int) -> float:
        t = 0.0
        if read_bytes:
            t += read_bytes / self.bandwidth(False, read_bytes / max(read_ops, 1))
        if write_bytes:
            t += write_bytes / self.bandwidth(True, write_bytes / max(write_ops, 1))
        return t

    def demand(self, *, is_write: bool, length: int, host: HostIO, fmt: Fmt,
               depth: int = 1, l2_miss: bool = False) -> Demand:
        """The demand of one guest I/O whose host-side effect is ``host``."""
        p = self.p
        raw = self.raw_path(is_write, length)
        served = 1.0 if is_write else min(1.0, host.read_bytes / length)
        extra = alloc = wait = 0.0
        if fmt != "raw":
            extra += p.qcow2_write_s if is_write else p.qcow2_read_s
            if is_write:
                if fmt == "qcow2_ext":
                    alloc += p.subcluster_alloc_s * host.sub_allocs
                else:
                    alloc += p.alloc_s * host.allocs
                # a copy-on-write read (or an L2 table load) is a synchronous host read
                # before the data write: a round through the block layer of its own
                alloc += p.cow_read_s * host.read_ops
                wait += p.cow_wait_s * host.read_ops
            elif host.backing_reads:
                extra += self.chain(depth)
            if l2_miss:
                extra += p.l2_miss_s
        # the part of a read the device does not serve (holes) costs the hole path
        dev_path = served * raw + extra
        # a hole's path does not grow or shrink with the size read (measured: reads of a hole
        # at iodepth 1 took 58, 63 and 64 us for 4, 16 and 64 KiB): the smallest size's
        hole_path = (1 - served) * max(p.read_path_s[0][1] - p.hole_read_s, MIN_PATH_S)
        dev_path = max(dev_path, MIN_PATH_S - hole_path, 0.0)
        moved = length if is_write else served * length  # the data through the socket
        dev_path, hole_path = self._less_cpu(dev_path, hole_path, host, served, is_write, moved)
        cpu = p.cpu_share * dev_path + p.hole_cpu_share * hole_path
        delay = dev_path + hole_path - cpu
        read_dev = self.device(host.read_bytes, host.read_ops, 0, 0)
        dev = read_dev + self.device(0, 0, host.write_bytes, host.write_ops)
        allocating = fmt != "raw" and is_write and bool(host.allocs or host.sub_allocs)
        cow_dev = read_dev if allocating else 0.0
        if p.alloc_bw is not None and (host.allocs or host.sub_allocs):
            # the device's own rate for copies-on-write and cluster writes (sim.perf.alloc)
            dev = (host.read_bytes + host.write_bytes) / p.alloc_bw
            cow_dev = host.read_bytes / p.alloc_bw if allocating else 0.0
        own = fmt != "raw" and not allocating and alloc == 0.0 and (
            is_write or host.read_ops > host.backing_reads)
        work, alloc_wait = alloc * p.alloc_shared, alloc * (1 - p.alloc_shared)
        s = p.sched
        if s is None:
            return Demand(cpu, dev, work, wait, delay, shares_file=own, alloc_wait_s=alloc_wait,
                          allocating=allocating)
        c = self._cpu(host, served, is_write, moved)
        return Demand(cpu, dev, work, wait, delay, shares_file=own, issuer_s=c.issuer_io_s,
                      server_s=c.server_io_s, sched_s=c.qd1_s, alloc_wait_s=alloc_wait,
                      issuer_wake_s=c.issuer_wake_s, server_wake_s=c.server_wake_s,
                      kernel_s=s.kernel_cpu(is_write, moved), allocating=allocating,
                      data_turns=s.bytes_turns(is_write, moved), is_write=is_write,
                      pool_s=self._pool(host, served, is_write), cow_device_s=cow_dev)

    def _cpu(self, host: HostIO, served: float, is_write: bool, moved: float) -> CpuCost:
        """What an I/O costs the host scheduler's processes: its kind's (:meth:`_kind_cpu`),
        and the CPU of the ``moved`` bytes of data beyond 4 KiB (``SchedParams.bytes_cpu``)."""
        c = self._kind_cpu(host, served)
        s = self.p.sched
        assert s is not None
        issuer, server = s.bytes_cpu(is_write, moved)
        if issuer == server == 0.0:
            return c
        key = (c, is_write, moved)  # made once per kind and size (one per simulated I/O is slow)
        if key not in self._sized:
            self._sized[key] = c.model_copy(update={"issuer_io_s": c.issuer_io_s + issuer,
                                                    "server_io_s": c.server_io_s + server})
        return self._sized[key]

    def _pool(self, host: HostIO, served: float, is_write: bool) -> float:
        """What qemu-nbd's pool spends on an I/O (``SchedParams.pool_share`` of the server's
        CPU per I/O of its kind, for the part of it that reaches the file: none for a hole)."""
        s = self.p.sched
        if s is None or s.pool_share <= 0:
            return 0.0
        kind = "alloc" if (host.allocs or host.sub_allocs) and host.read_ops else "data"
        return s.pool_share * self._costs[kind].server_io_s * (1.0 if is_write else served)

    def _kind_cpu(self, host: HostIO, served: float) -> CpuCost:
        """What an I/O costs the host scheduler's processes: an allocating write's, or a data
        read's and a hole read's in the parts ``served`` and not. An allocating write that
        copies (a copy-on-write read) costs what the copy-on-write probes measured; one that
        does not (a whole cluster, a subcluster of extended_l2, a cluster the backing file has
        no data for) a write of data's: measured here, qemu-nbd spent 159 us per 4 KiB first
        write that copied, 71 per whole 64 KiB cluster and 58 per 4 KiB into an extended_l2
        subcluster, where a raw write took 61 and 58."""
        if (host.allocs or host.sub_allocs) and host.read_ops:
            return self._costs["alloc"]
        d, h = self._costs["data"], self._costs["hole"]
        if served >= 1.0 or d == h:
            return d
        return CpuCost(**{k: served * v + (1.0 - served) * getattr(h, k)
                          for k, v in d.model_dump().items()})

    def _less_cpu(self, dev_path: float, hole_path: float, host: HostIO, served: float,
                  is_write: bool, moved: float) -> tuple[float, float]:
        """The path's time less what the host scheduler's processes and its kernel take of it
        at iodepth 1 (their CPU is served on the host's cores instead, as :meth:`_cpu` and
        ``SchedParams.kernel_cpu`` count it), both parts alike, never below ``MIN_PATH_S``."""
        s = self.p.sched
        total = dev_path + hole_path
        if s is None or total <= 0:
            return dev_path, hole_path
        cpu = self._cpu(host, served, is_write, moved).qd1_s + s.kernel_cpu(is_write, moved)
        k = max(total - cpu, MIN_PATH_S) / total
        return dev_path * k, hole_path * k

    def trim(self, host: HostIO) -> Demand:
        """The demand of one guest trim (fio's ``randtrim``, ``trimwrite``: ``NBD_CMD_TRIM``)
        whose host-side effect is ``host``.

        A trim carries no data: it is a request through the same path as a read the device
        does not serve (a hole's: fio's nbd engine, qemu-nbd, the block layer, and back), with
        that read's CPU on the host's processes. What it changes is metadata in QEMU's caches
        (qcow2: the L2 entry, the refcount; a part of a cluster is dropped) and, where it frees
        data, a hole punched in the image's file (``qcow2_process_discards``, raw-posix's
        ``fallocate(PUNCH_HOLE)``): ``punch_s`` each, the filesystem's work done holding the
        image file's lock alone (ext4 takes the inode's lock for it, as for a write that
        extends the file), waiting on the storage rather than working on the path's stages;
        the metadata reads a refcount cache miss makes go to the device. Measured here: trims
        that freed nothing took 38-51 us at iodepth 1, trims of written clusters 135-2041 us."""
        bare = self.demand(is_write=False, length=FS_TRIM_UNIT, host=HostIO(), fmt="raw")
        punch = self.p.punch_s if self.p.punch_s is not None else PUNCH_FALLBACK_S
        dev = self.device(host.read_bytes, host.read_ops, host.write_bytes, host.write_ops)
        return replace(bare, device_s=bare.device_s + dev,
                       alloc_wait_s=punch * host.punches)

    def probe_demand(self, probe: Probe) -> Demand:
        """The demand of one I/O of a calibration probe (what its target makes the host do)."""
        w = probe.rw != "randread"
        bs, c = probe.bs, probe.cluster_size
        host = HostIO(read_bytes=0 if w else bs, read_ops=0 if w else 1,
                      write_bytes=bs if w else 0, write_ops=1 if w else 0)
        if probe.target == "trim":  # every trim frees a written cluster: one hole each
            return self.trim(HostIO(punches=1))
        if probe.target == "device":  # the storage alone: no qemu-nbd path
            return Demand(0.0, self.device(host.read_bytes, host.read_ops, host.write_bytes,
                                           host.write_ops))
        if probe.target == "raw":
            return self.demand(is_write=w, length=bs, host=host, fmt="raw")
        if probe.target == "hole":
            return self.demand(is_write=w, length=bs, fmt="raw", host=HostIO(read_ops=1))
        if probe.target == "cow":
            n = -(-bs // c)
            cow_read = n * c - bs
            host = HostIO(read_bytes=cow_read, read_ops=int(cow_read > 0),
                          write_bytes=n * c, write_ops=1, allocs=n)
        elif probe.target == "cow_ext":
            n = -(-bs // c)
            host = HostIO(write_bytes=bs, write_ops=1, allocs=n, sub_allocs=n)
        elif probe.target == "chain":
            host.backing_reads = 1
        fmt: Fmt = "qcow2_ext" if probe.target == "cow_ext" else "qcow2"
        return self.demand(is_write=w, length=bs, host=host, fmt=fmt,
                           depth=max(probe.depth, 1), l2_miss=probe.target == "l2miss")
