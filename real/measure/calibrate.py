"""``cowbench calibrate``: a fio probe matrix through the real stack on a directory.

Every probe runs fio's nbd engine against qemu-nbd exports (``--cache=none --aio=threads``,
as the real backend runs VMs, FACTS.md 3.1) of images made in a private work directory under
the target directory, which is removed at the end whatever happens (and every qemu-nbd
stopped). The images:

- ``raw.img``: a raw file of ``span`` bytes, every byte written (fio, sequential 1 MiB);
- ``qcow2.img``: ``qemu-img convert -O qcow2`` of it, every cluster allocated;
- ``hole.img``: a raw file of the same size that holds no data (reads of a sparse base's holes);
- a fresh overlay over ``raw.img`` for each first-write probe (``cow``: one write per
  cluster, so every write allocates and copies the rest of its cluster; ``cow_ext``: the same
  with ``extended_l2=on``, where a 4 KiB write fills whole subclusters and copies nothing);
- a chain of empty qcow2 layers over ``raw.img`` for reads that fall through ``depth`` layers;
- ``qcow2.img`` again with a two-entry L2 cache of 4 KiB slices, so nearly every read misses;
- ``raw.img`` read by fio alone (libaio, O_DIRECT, no qemu-nbd): the storage itself, small
  reads alone, large reads alone, and small reads beside large ones, to see in what order the
  storage serves requests (``sim.perf.device_interference``);
- for the trim probe, last: a qcow2 copy of the first ``TRIM_SPAN`` of ``raw.img`` (written
  with O_DIRECT, every cluster allocated and on the storage, as a VM's written clusters are),
  made anew for each run of it, trimmed a whole cluster at a time (each trim frees its cluster
  and punches a hole in the file: ``PerfParams.punch_s``); 0.4 s to make here.

A probe through the stack may have a job beside it on exports of its own (``Beside.exports``):
the contention probe, a 4 KiB reader at iodepth 1 beside deep readers that keep every core busy
(replayed, not fitted: ``sim.perf.fit.contended``).

The short matrix (the default, 43 probes) took 173-177 s on this project's 2-core machine
before the contention probe; ``long`` probes more sizes, depths, iodepths and exports (82
probes with 4 exports; 80 then: 686-689 s); ``quick``, what ``cowbench run`` makes when it
finds no profile of the storage, is 36 of the short matrix's probes, twice over, 0.4 s each
(``_in_quick``): 65 s here with the contention probe.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cowbench.errors import ToolError, UsageError
from cowbench.fdtree import PrivateDir
from cowbench.profile import Beside, Probe, Target, Turns
from cowbench.signals import shielded
from cowbench.tools import (
    CpuSpan,
    Schedstats,
    absolute,
    core_share,
    fio_isolated,
    require_tools,
    run,
    sum_stats,
    thread_delta,
    thread_schedstats,
    which,
)
from real.workload.fioclock import clock_args
from real.workload.nbd import NbdExport, stop_servers_in

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
CLUSTER = 64 * KiB
L2_SLICE = 4 * KiB
L2_ENTRIES = 2  # QEMU's minimum L2 cache: two entries
#: the trim probe's image: more clusters than its trims reach in its runtime (about 1,000 a
#: second here, 135-2041 us each), so none is trimmed twice (fio's random map)
TRIM_SPAN = 256 * MiB
#: a probe whose rounds' IOPS lie further apart than this factor (its fastest round over its
#: slowest) is measured again (``Settings.unsteady_rounds``): on this machine a probe of
#: 1 MiB reads at iodepth 8 ran 368-1,352 IOPS over the rounds of one calibration, and in 8
#: of 22 fresh calibrations its slowest round was under half its fastest (2026-12-07); with
#: three rounds, two slow ones made its median a third of the usual and the model's 1 MiB
#: reader of io-density.yaml -48.6% (docs/io-model.md, "Probes measured again")
UNSTEADY_FACTOR = 1.5
#: at most this many runs more for unsteady probes in one calibration of the short or long
#: matrix (``Settings.unsteady_runs``): the probes furthest apart first, each for all its
#: ``unsteady_rounds`` (the short matrix: four probes, about 16 s on top of about 205)
UNSTEADY_RUNS = 12


@dataclass(frozen=True)
class ProbeSpec:
    target: Target
    rw: Literal["randread", "randwrite", "write", "randtrim"]
    bs: int
    iodepth: int
    exports: int = 1
    depth: int = 0
    cluster_size: int = CLUSTER
    beside: Beside | None = None

    @property
    def name(self) -> str:
        extra = f"-d{self.depth}" if self.target == "chain" else ""
        name = f"{self.target}{extra}-{self.rw}-{_size(self.bs)}-qd{self.iodepth}-x{self.exports}"
        if self.beside is not None:
            b = self.beside
            name += f"-beside-{b.rw}-{_size(b.bs)}-qd{b.iodepth}"
            name += f"-x{b.exports}" if b.exports > 1 else ""
        return name


def spec_of(probe: Probe) -> ProbeSpec:
    """The spec a profile's probe was measured with (to measure it again)."""
    return ProbeSpec(probe.target, probe.rw, probe.bs, probe.iodepth, probe.exports,
                     probe.depth, probe.cluster_size, probe.beside)


def _size(bs: int) -> str:
    return f"{bs // MiB}m" if bs >= MiB else f"{bs // KiB}k"


@dataclass(frozen=True)
class Settings:
    matrix: Literal["quick", "short", "long"]
    runtime_s: float
    ramp_s: float
    span: int
    exports: int
    rounds: int = 3
    #: qemu-nbd's ``--aio`` for every export (a scenario's ``real.aio``): ``threads``, its
    #: pool of threads, is qemu's default and the real backend's
    aio: Literal["threads", "native", "io_uring"] = "threads"
    #: rounds more for a probe whose rounds' IOPS lie more than :data:`UNSTEADY_FACTOR`
    #: apart, at most ``unsteady_runs`` runs in all: a calibration's; 0 for a drift check,
    #: whose rule reads the rounds it planned
    unsteady_rounds: int = 0
    unsteady_runs: int = UNSTEADY_RUNS

    def as_dict(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "runtime_s": self.runtime_s, "ramp_s": self.ramp_s,
                "rounds": self.rounds,
                "unsteady": {"factor": UNSTEADY_FACTOR, "rounds": self.unsteady_rounds,
                             "max_runs": self.unsteady_runs},
                "span_bytes": self.span, "max_exports": self.exports, "cache": "none",
                "aio": self.aio, "cluster_size": CLUSTER, "ioengine": "nbd",
                "l2_miss_probe": {"l2-cache-size": L2_ENTRIES * L2_SLICE,
                                  "l2-cache-entry-size": L2_SLICE}}


def settings(matrix: Literal["quick", "short", "long"], exports: int,
             aio: Literal["threads", "native", "io_uring"] = "threads") -> Settings:
    if matrix == "quick":  # what `cowbench run` makes when it finds no profile: see _in_quick
        # (its time is held within 90 s: a round more for at most six unsteady probes)
        return Settings(matrix, runtime_s=0.4, ramp_s=0.1, span=1 * GiB, exports=exports,
                        rounds=2, aio=aio, unsteady_rounds=1, unsteady_runs=6)
    if matrix == "short":
        return Settings(matrix, runtime_s=0.8, ramp_s=0.2, span=1 * GiB, exports=exports,
                        aio=aio, unsteady_rounds=3)
    return Settings(matrix, runtime_s=2.0, ramp_s=0.5, span=2 * GiB, exports=exports, aio=aio,
                    unsteady_rounds=3)


def probe_matrix(s: Settings) -> list[ProbeSpec]:
    """The probes, in the order they run (the quickest-to-set-up first)."""
    if s.matrix == "quick":
        return [p for p in probe_matrix(replace(s, matrix="short")) if _in_quick(p, s.exports)]
    n = s.exports
    qds: tuple[int, ...]
    sizes: tuple[int, ...]
    deep: tuple[int, ...]
    if s.matrix == "short":
        qds, sizes, deep = (1, 4, 32), (16 * KiB, 64 * KiB, MiB), (1, 2, 4, 16, 32)
        exports = sorted({2, n} - {1})
    else:
        qds = (1, 2, 4, 8, 16, 32)
        sizes = (8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, MiB)
        deep = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
        exports = list(range(2, n + 1))
    specs: list[ProbeSpec] = []
    rws: tuple[Literal["randread", "randwrite"], ...] = ("randread", "randwrite")
    for rw in rws:
        specs += [ProbeSpec("raw", rw, 4 * KiB, qd) for qd in qds]
        for bs in sizes:
            specs.append(ProbeSpec("raw", rw, bs, 1))
            if bs >= 64 * KiB:  # the device's bandwidth: many large I/Os in flight
                specs.append(ProbeSpec("raw", rw, bs, 32 if bs < MiB else 8))
            elif rw == "randread" and (bs == 16 * KiB or s.matrix == "long"):
                # mid-size reads under load: where the transfer's work is done (sim.perf.fit)
                specs.append(ProbeSpec("raw", rw, bs, 8))
    for rw in rws:
        specs += [ProbeSpec("qcow2", rw, 4 * KiB, qd)
                  for qd in (qds if s.matrix == "long" else (1, 32))]
    specs.append(ProbeSpec("l2miss", "randread", 4 * KiB, 1))
    specs += [ProbeSpec("hole", "randread", 4 * KiB, qd) for qd in (1, 32)]
    for k in exports:
        specs.append(ProbeSpec("raw", "randread", 4 * KiB, 4, exports=k))
        specs.append(ProbeSpec("raw", "randwrite", 4 * KiB, 4, exports=k))
    # a reader at iodepth 1 beside deep readers on exports of their own that keep every core
    # busy: how the host's scheduler serves a process that sleeps on every I/O beside
    # processes that never do (replayed, not fitted: sim.perf.fit.contended)
    specs.append(ProbeSpec("raw", "randread", 4 * KiB, 1, beside=Beside(
        rw="randread", bs=4 * KiB, iodepth=32, exports=max(2, n - 1))))
    specs += [ProbeSpec("cow", "write", 4 * KiB, qd) for qd in (1, 8)]
    specs.append(ProbeSpec("cow", "write", 64 * KiB, 1))
    if n > 1:  # several images allocating at once: the storage's own rate (sim.perf.alloc)
        specs.append(ProbeSpec("cow", "write", 4 * KiB, 8, exports=n))
    if s.matrix == "long":
        specs += [ProbeSpec("cow", "write", bs, 1) for bs in (16 * KiB, 32 * KiB)]
    specs.append(ProbeSpec("cow_ext", "write", 4 * KiB, 1))
    specs += [ProbeSpec("chain", "randread", 4 * KiB, 1, depth=d) for d in deep]
    specs.append(ProbeSpec("chain", "randread", 4 * KiB, 8, depth=max(deep)))
    # the storage alone: small reads alone; large reads and writes alone, its bandwidths
    # either way (cowbench.profile.device_bandwidths); small reads beside large ones
    specs.append(ProbeSpec("device", "randread", 4 * KiB, 1))
    for rw in rws:
        specs += [ProbeSpec("device", rw, 64 * KiB, 8), ProbeSpec("device", rw, MiB, 2)]
    larges = [Beside(rw="randread", bs=64 * KiB, iodepth=8)]
    if s.matrix == "long":  # and beside large writes, as copies-on-write make
        larges.append(Beside(rw="randwrite", bs=64 * KiB, iodepth=8))
    for large in larges:
        specs.append(ProbeSpec("device", "randread", 4 * KiB, 1, beside=large))
    # whole-cluster trims of written clusters: what a hole punched in the file costs
    specs.append(ProbeSpec("trim", "randtrim", CLUSTER, 1))
    return specs


def _in_quick(p: ProbeSpec, exports: int) -> bool:
    """The quick matrix: the short one without the probes whose parameters others already
    pin down (the evidence is in docs/io-model.md): two exports are
    between one and ``exports``; 16 KiB writes at iodepth 1 and 4 KiB writes at iodepth 4 are
    interpolated between their neighbours; the chain keeps depths 1, 4 and the deepest at
    iodepth 1 (the form ``base + a k + b k^2`` needs three points)."""
    if p.exports not in (1, exports):
        return False
    if p.target == "raw" and p.rw == "randwrite":
        return not (p.bs == 16 * KiB or (p.bs == 4 * KiB and p.iodepth == 4 and p.exports == 1))
    if p.target == "chain":
        return p.iodepth == 1 and p.depth in (1, 4, 32)
    return True


def check_dir(path: Path, s: Settings) -> None:
    """Refuse a directory that cannot hold the probes' images (exit 2, nothing created)."""
    if not path.is_dir():
        raise UsageError(f"--dir {path}: not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--dir {path}: not writable")
    need = 3 * s.span + 256 * MiB + TRIM_SPAN
    free = shutil.disk_usage(path).free
    if free < need:
        raise UsageError(f"--dir {path}: {free >> 20} MiB free, the probes need "
                         f"{need >> 20} MiB")


def _nothing(_: PrivateDir) -> None:
    pass


@contextmanager
def _workdir(path: Path, on_create: Callable[[PrivateDir], None] = _nothing
             ) -> Iterator[Path]:
    """A private directory in ``path`` (``cowbench.fdtree``: mode 0700, reached through its
    descriptor, removed by inode), whoever else can write in ``path``; ``on_create`` is told
    of it at once (a run's lease, so `cowbench gc` removes it if the run is killed)."""
    work: PrivateDir | None = None
    try:  # an interrupt held while it is made is raised as the shield ends: remove it then too
        with shielded():
            work = PrivateDir.create(path, f".cowbench-calibrate-{secrets.token_hex(4)}")
            on_create(work)
        yield work.path
    finally:
        if work is not None:
            stop_servers_in(work.path)
            work.remove()


class _Images:
    """The probe images in the work directory, made on first use."""

    def __init__(self, work: Path, s: Settings) -> None:
        self.work = work
        self.s = s
        self.raw = work / "raw.img"
        self.qcow2 = work / "qcow2.img"
        self.hole = work / "hole.img"
        self._chain: list[Path] = []
        self._n = 0

    def setup(self, specs: Sequence[ProbeSpec]) -> None:
        """The images ``specs`` read: the raw file always (every other image is over it or
        beside it), the qcow2 copy only for probes of it (converting 1 GiB took 5 s here,
        which a drift check of raw, copy-on-write and chain probes saves)."""
        run(["qemu-img", "create", "-q", "-f", "raw", str(self.raw), str(self.s.span)])
        run(["qemu-img", "create", "-q", "-f", "raw", str(self.hole), str(self.s.span)])
        run(fio_isolated([which("fio"), *clock_args(), "--name=fill", f"--filename={self.raw}",
                          "--rw=write", "--bs=1M", "--direct=1", "--ioengine=psync",
                          f"--size={self.s.span}", "--output=/dev/null"]), timeout=600)
        images = [self.raw]
        if any(s.target in ("qcow2", "l2miss") for s in specs):
            run(["qemu-img", "convert", "-t", "none", "-O", "qcow2", "-o",
                 f"cluster_size={CLUSTER}", "-f", "raw", str(self.raw), str(self.qcow2)],
                timeout=600)
            images.append(self.qcow2)
        self.warm(images)

    def warm(self, images: Sequence[Path]) -> None:
        """Read the images once, as the probes will (O_DIRECT). On a virtual disk the
        hypervisor's cache holds what was written or read lately: measured here, random 4 KiB
        reads of a just-written file ran at 11k IOPS and of a file not read since at 4-7k.
        A VM's run reads its freshly made base and overlay, so the probes read warm data."""
        for image in images:
            run(fio_isolated([which("fio"), *clock_args(), "--name=warm", f"--filename={image}",
                              "--rw=read", "--bs=1M", "--direct=1", "--ioengine=psync",
                              "--output=/dev/null"]), timeout=600)

    def fresh_overlay(self, ext: bool, cluster: int) -> Path:
        self._n += 1
        path = self.work / f"cow-{self._n}.qcow2"
        opts = f"cluster_size={cluster}" + (",extended_l2=on" if ext else "")
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", str(self.raw),
             "-F", "raw", str(path), str(self.s.span)])
        return path

    def trim_image(self, cluster: int) -> Path:
        """A qcow2 copy of the first ``TRIM_SPAN`` of the raw file, written with O_DIRECT:
        every cluster allocated, its data on the storage (a trim of a cluster only cached
        would free pages, not blocks: measured, 135 us a trim against 989 us)."""
        self._n += 1
        path = self.work / f"trim-{self._n}.qcow2"
        run(["qemu-img", "convert", "-t", "none", "-O", "qcow2", "-o",
             f"cluster_size={cluster}", "--image-opts",
             f"driver=raw,size={TRIM_SPAN},file.driver=file,file.filename={self.raw}",
             str(path)], timeout=600)
        return path

    def chain(self, depth: int) -> Path:
        while len(self._chain) < depth:
            below, fmt = (self._chain[-1], "qcow2") if self._chain else (self.raw, "raw")
            path = self.work / f"chain-{len(self._chain) + 1}.qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(below), "-F", fmt,
                 str(path), str(self.s.span)])
            self._chain.append(path)
        return self._chain[depth - 1]

    def export_args(self, spec: ProbeSpec) -> list[tuple[Path, str, str | None]]:
        """(image, format, image-opts) for each export of ``spec``, then for each export of
        the job beside it (``raw.img``)."""
        bg = [(self.raw, "raw", None)] * (spec.beside.exports if spec.beside else 0)
        return self._own_exports(spec) + bg

    def _own_exports(self, spec: ProbeSpec) -> list[tuple[Path, str, str | None]]:
        if spec.target == "raw":
            return [(self.raw, "raw", None)] * spec.exports
        if spec.target == "hole":
            return [(self.hole, "raw", None)] * spec.exports
        if spec.target == "qcow2":
            return [(self.qcow2, "qcow2", None)] * spec.exports
        if spec.target == "l2miss":
            opts = (f"driver=qcow2,file.driver=file,file.filename={self.qcow2},"
                    f"l2-cache-size={L2_ENTRIES * L2_SLICE},l2-cache-entry-size={L2_SLICE}")
            return [(self.qcow2, "qcow2", opts)] * spec.exports
        if spec.target in ("cow", "cow_ext"):
            return [(self.fresh_overlay(spec.target == "cow_ext", spec.cluster_size), "qcow2",
                     None) for _ in range(spec.exports)]
        if spec.target == "trim":
            return [(self.trim_image(spec.cluster_size), "qcow2", None)
                    for _ in range(spec.exports)]
        return [(self.chain(spec.depth), "qcow2", None)] * spec.exports


def _fio_argv(spec: ProbeSpec, uris: Sequence[str], s: Settings, out: Path) -> list[str]:
    """fio through the exports at ``uris``: job ``p<i>`` on each of the probe's own, then a
    job ``bg`` on each export of the job beside it (``spec.beside``), for as long."""
    argv = [which("fio"), *clock_args(), "--output-format=json", f"--output={out}"]
    for i, uri in enumerate(uris):
        b = spec.beside if i >= spec.exports else None
        rw, bs, qd = (spec.rw, spec.bs, spec.iodepth) if b is None else (b.rw, b.bs, b.iodepth)
        job = [f"--name={'bg' if b is not None else f'p{i}'}", "--ioengine=nbd", f"--uri={uri}",
               f"--bs={bs}", f"--iodepth={qd}", f"--size={s.span}",
               f"--runtime={round(s.runtime_s * 1000)}ms"]
        if rw == "write":  # first writes: one per cluster, each a new cluster
            skip = spec.cluster_size - spec.bs if spec.bs < spec.cluster_size else 0
            job += [f"--rw=write:{skip}" if skip else "--rw=write"]
        elif rw == "randtrim":  # each cluster once (fio's random map), no ramp
            job = [j for j in job if not j.startswith("--size=")]
            job += ["--rw=randtrim", f"--size={TRIM_SPAN}", "--randrepeat=0"]
        else:
            job += [f"--rw={rw}", "--time_based=1", f"--ramp_time={round(s.ramp_s * 1000)}ms",
                    "--norandommap=1", "--randrepeat=0"]
        argv += job
    return argv


def _device_argv(spec: ProbeSpec, raw: Path, s: Settings, out: Path) -> list[str]:
    """fio on the raw file alone (libaio, O_DIRECT): job p0 is the probe's, ``bg`` beside it."""
    # half the time of a probe through the stack: the storage alone completes several times
    # more I/Os per second (measured: 18k 4 KiB reads at iodepth 1, against 9-11k)
    common = ["--ioengine=libaio", "--direct=1", f"--filename={raw}", f"--size={s.span}",
              "--time_based=1", f"--runtime={round(s.runtime_s * 500)}ms",
              f"--ramp_time={round(s.ramp_s * 500)}ms", "--norandommap=1", "--randrepeat=0"]
    argv = [which("fio"), *clock_args(), "--output-format=json", f"--output={out}",
            "--name=p0", f"--rw={spec.rw}", f"--bs={spec.bs}", f"--iodepth={spec.iodepth}",
            *common]
    if spec.beside is not None:
        b = spec.beside
        argv += ["--name=bg", f"--rw={b.rw}", f"--bs={b.bs}", f"--iodepth={b.iodepth}",
                 *common]
    return argv


def _summarise(spec: ProbeSpec, data: dict[str, Any], runtime: float,
               server_cpu: float | None = None, ramp_s: float = 0.0,
               host_cpu: float | None = None,
               threads: tuple[Schedstats, Schedstats] | None = None) -> Probe:
    """The probe's figures from fio's JSON; ``server_cpu`` and ``host_cpu``: the CPU seconds
    qemu-nbd and the whole machine used while fio ran, over ``ramp_s`` of ramp and the jobs'
    runtime; ``threads``: what qemu-nbd's main threads and its other threads did on the cores
    meanwhile (:func:`cowbench.tools.thread_delta`)."""
    kind = {"randread": "read", "randtrim": "trim"}.get(spec.rw, "write")
    ios = iops = bw = lat_w = cpu = wall = ctx = 0.0
    p99 = 0.0
    for job in data["jobs"]:
        if job.get("jobname") == "bg":  # the job beside the probe's: not the probe's figures
            continue
        d = job[kind]
        n = float(d["total_ios"])
        ios += n
        cpu_s, run_s = _job_cpu(job)
        cpu += cpu_s
        ctx += float(job.get("ctx", 0))
        wall = max(wall, run_s)
        iops += float(d["iops"])
        bw += float(d["bw_bytes"])
        clat = d.get("clat_ns", {})
        lat_w += n * float(clat.get("mean", 0.0)) * 1e-9
        pct = clat.get("percentile", {}).get("99.000000")
        if pct is not None:
            p99 = max(p99, float(pct) * 1e-9)
    if ios == 0:
        raise ToolError(["fio"], 0, "", f"probe {spec.name}: fio completed no I/O")
    return Probe(name=spec.name, target=spec.target, rw=spec.rw, bs=spec.bs,
                 iodepth=spec.iodepth, exports=spec.exports, depth=spec.depth,
                 cluster_size=spec.cluster_size, runtime_s=runtime, ios=int(ios), iops=iops,
                 bw_bytes_per_s=bw, lat_mean_s=lat_w / ios, lat_p99_s=p99, beside=spec.beside,
                 issuer_cpu_s=cpu / ios, server_cpu_s=_per_io(server_cpu, ios, wall, ramp_s),
                 host_cpu_s=(None if spec.beside is not None
                             else _per_io(host_cpu, ios, wall, ramp_s)),
                 issuer_turns=ctx / ios,
                 server_main=None if threads is None else _turns(threads[0], ios, wall, ramp_s),
                 server_pool=None if threads is None else _turns(threads[1], ios, wall, ramp_s))


def _turns(t: Schedstats, ios: float, run_s: float, ramp_s: float) -> Turns | None:
    """One kind of thread's figures per I/O (over the ramp's I/Os too, as ``_per_io``)."""
    threads, cpu_ns, wait_ns, turns = t
    turns_per_io = _per_io(float(turns), ios, run_s, ramp_s)
    cpu_per_io = _per_io(cpu_ns / 1e9, ios, run_s, ramp_s)
    if turns_per_io is None or cpu_per_io is None:
        return None
    return Turns(threads=threads, turns=turns_per_io, cpu_s=cpu_per_io,
                 wait_s=wait_ns / 1e9 / turns if turns else 0.0)


def _job_cpu(job: dict[str, Any]) -> tuple[float, float]:
    """(CPU seconds, runtime seconds) of one fio job after its ramp: fio resets its CPU
    figures when the ramp ends and gives them as percents of ``job_runtime`` (ms)."""
    run_s = float(job.get("job_runtime", 0.0)) / 1000
    return (float(job.get("usr_cpu", 0.0)) + float(job.get("sys_cpu", 0.0))) / 100 * run_s, run_s


def _per_io(cpu: float | None, ios: float, run_s: float, ramp_s: float) -> float | None:
    """CPU seconds per I/O of CPU measured over fio's whole run (the ramp's I/Os too, at the
    measured rate: ``ios`` counts only those after the ramp)."""
    if cpu is None or run_s <= 0:
        return None
    return cpu / (ios * (1 + ramp_s / run_s))


Progress = Callable[[int, int, str], None]


def measure(path: Path, s: Settings, specs: Sequence[ProbeSpec] | None = None,
            progress: Progress | None = None,
            on_create: Callable[[PrivateDir], None] = _nothing) -> list[Probe]:
    """Run the probes on ``path``, ``s.rounds`` times over, the whole matrix per round (so a
    slow spell of a shared machine hits one round of many probes, not every round of a few),
    then the probes whose rounds disagree (:func:`unsteady`) ``s.unsteady_rounds`` times
    more, those probes again per round; return each probe's median over its rounds, with its
    spread. Leaves nothing behind."""
    require_tools(("qemu-img", "qemu-nbd", "fio"))
    check_dir(path, s)
    path = absolute(path)  # the probe images are handed to qemu-img, qemu-nbd and fio
    specs = list(specs) if specs is not None else probe_matrix(s)
    say = progress or (lambda i, n, msg: None)
    total = len(specs) * s.rounds
    runs: list[list[Probe]] = [[] for _ in specs]
    with _workdir(path, on_create) as work:
        images = _Images(work, s)
        say(0, total, f"writing {s.span >> 20} MiB of probe images")
        images.setup(specs)
        for k in range(s.rounds):
            # a round's first probe ran slow and scattered (4 KiB reads at iodepth 1: 7-11k
            # IOPS where the same reads of the qcow2 image ran at 10.4-11.6k): a throwaway
            # probe first, so every measured probe follows another
            _run_probe(specs[0], images, work, s)
            for i, spec in enumerate(specs):
                step = k * len(specs) + i
                say(step, total, f"round {k + 1}/{s.rounds}: probe {spec.name}")
                r = _run_probe(spec, images, work, s)
                runs[i].append(r)
                say(step + 1, total, f"round {k + 1}/{s.rounds}: probe {spec.name}: "
                                     f"{r.iops:,.0f} IOPS, {r.lat_mean_s * 1e6:,.0f} us")
        again = unsteady(runs, s.unsteady_rounds, s.unsteady_runs)
        if again:
            step, total = total, total + len(again) * s.unsteady_rounds
            _run_probe(specs[again[0]], images, work, s)  # a throwaway first, as above
            for k in range(s.unsteady_rounds):
                for i in again:
                    name, seen = specs[i].name, runs[i]
                    lo, hi = min(r.iops for r in seen), max(r.iops for r in seen)
                    say(step, total, f"again {k + 1}/{s.unsteady_rounds}: probe {name} "
                                     f"(its rounds {lo:,.0f}-{hi:,.0f} IOPS)")
                    r = _run_probe(specs[i], images, work, s)
                    seen.append(r)
                    step += 1
                    say(step, total, f"again {k + 1}/{s.unsteady_rounds}: probe {name}: "
                                     f"{r.iops:,.0f} IOPS, {r.lat_mean_s * 1e6:,.0f} us")
    return [_median(r) for r in runs]


def unsteady(runs: Sequence[Sequence[Probe]], rounds: int,
             max_runs: int = UNSTEADY_RUNS) -> list[int]:
    """The probes (their indices in ``runs``, each probe's rounds) to measure ``rounds``
    times more: those whose fastest round's IOPS is more than :data:`UNSTEADY_FACTOR` times
    their slowest's, furthest apart first, as many as ``max_runs`` runs allow; in the
    matrix's order."""
    if rounds <= 0:
        return []
    apart = []
    for i, seen in enumerate(runs):
        iops = [r.iops for r in seen]
        if len(iops) > 1 and max(iops) > UNSTEADY_FACTOR * min(iops):
            apart.append((max(iops) / min(iops) if min(iops) > 0 else math.inf, i))
    apart.sort(key=lambda a: (-a[0], a[1]))
    return sorted(i for _, i in apart[:max_runs // rounds])


def _median(runs: list[Probe]) -> Probe:
    """One probe from its rounds: the median of each figure, the rounds' IOPS range."""
    def med(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs))

    iops = [r.iops for r in runs]
    cpu = {f: float(statistics.median(v)) if (v := [getattr(r, f) for r in runs
                                                   if getattr(r, f) is not None]) else None
           for f in ("issuer_cpu_s", "server_cpu_s", "host_cpu_s", "steal_share",
                     "issuer_turns")}
    threads = {f: _median_turns([t for r in runs if (t := getattr(r, f)) is not None])
               for f in ("server_main", "server_pool")}
    return runs[0].model_copy(update={**cpu, **threads,
        "iops": med("iops"), "bw_bytes_per_s": med("bw_bytes_per_s"),
        "lat_mean_s": med("lat_mean_s"), "lat_p99_s": med("lat_p99_s"),
        "ios": sum(r.ios for r in runs), "runtime_s": sum(r.runtime_s for r in runs),
        "rounds": len(runs), "iops_min": min(iops), "iops_max": max(iops)})


def _median_turns(runs: Sequence[Turns]) -> Turns | None:
    """The rounds' median of each figure of one kind of thread (None if never measured)."""
    if not runs:
        return None
    return Turns(threads=round(statistics.median(t.threads for t in runs)),
                 **{f: float(statistics.median(getattr(t, f) for t in runs))
                    for f in ("turns", "cpu_s", "wait_s")})


def _run_probe(spec: ProbeSpec, images: _Images, work: Path, s: Settings) -> Probe:
    out = work / "fio.json"
    servers: list[NbdExport] = []
    with ExitStack() as stack:
        if spec.target == "device":  # the storage alone, no qemu-nbd
            argv = _device_argv(spec, images.raw, s, out)
        else:
            for k, (image, fmt, opts) in enumerate(images.export_args(spec)):
                # trims reach the image only with --discard=unmap (Nova's hw_disk_discard)
                nbd = NbdExport(image, fmt, work, f"e{k}", image_opts=opts,
                                discard="unmap" if spec.rw == "randtrim" else "ignore",
                                aio=s.aio)
                stack.enter_context(nbd)
                servers.append(nbd)
            argv = _fio_argv(spec, [n.uri for n in servers], s, out)
        own = servers[:spec.exports]  # the probe's; the others serve the job beside it
        pids = [n.pid for n in own if n.pid is not None]
        before = [thread_schedstats(pid) for pid in pids]
        cpu0, span = sum(n.cpu_s() for n in own), CpuSpan()
        run(fio_isolated(argv), timeout=s.runtime_s + s.ramp_s + 120)
        runtime, host_cpu, stolen = span.used()
        server_cpu = sum(n.cpu_s() for n in own) - cpu0 if own else None
        deltas = [thread_delta(b, thread_schedstats(pid), pid)
                  for b, pid in zip(before, pids, strict=True)]
        threads = ((sum_stats(d[0] for d in deltas), sum_stats(d[1] for d in deltas))
                   if deltas else None)
    data = _fio_json(argv, out, spec)
    for pattern in ("cow-*.qcow2", "trim-*.qcow2"):  # first writes' and trims' are used once
        for image in work.glob(pattern):
            image.unlink()
    # the ramp fio ran (_fio_argv, _device_argv): none for first writes and trims, half on
    # the device
    ramp = (0.0 if spec.rw in ("write", "randtrim") else s.ramp_s / 2
            if spec.target == "device" else s.ramp_s)
    probe = _summarise(spec, data, runtime, server_cpu, ramp, host_cpu, threads)
    return probe.model_copy(update={"steal_share": core_share(stolen, runtime)})


def _fio_json(argv: list[str], out: Path, spec: ProbeSpec) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        raise ToolError(argv, 0, "", f"probe {spec.name}: fio wrote no JSON") from None
    finally:
        out.unlink(missing_ok=True)
    return data
