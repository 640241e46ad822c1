"""The model: ``simulate(scenario, seed) -> records`` (exact mode).

Hosts hold an image cache (``_base``, raw bases as Nova's ``force_raw_images`` makes them) and
one disk per VM made by the scenario's strategy. Each VM runs its fio job: every clone of the
job keeps ``iodepth`` I/Os in flight (a closed loop), each I/O is applied to the VM's exact
allocation map (``sim.disk``), and the host I/O it causes is served by the host's shared
``Device`` (``sim.device``). A fresh ``simpy.Environment`` per call, no module state, no files:
the caller writes results (STYLE.md point 4).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from cowbench.records import Recorder
from cowbench.scenario import VM, Image, Scenario, Workload

from .device import Device
from .disk import BaseData, HostIO, Qcow2Image, RawImage
from .fio import IoChunk, io_stream, job_seed
from .fs import FS_BLOCK

DISK_INFO_BYTES = FS_BLOCK  # instances/<uuid>/disk.info: a tiny JSON file, one block
Process = Generator[simpy.Event, Any, None]


@dataclass
class VmStats:
    """What one VM's jobs did, collected while the model runs."""

    read_lat: list[float] = field(default_factory=list)
    write_lat: list[float] = field(default_factory=list)
    read_bytes: int = 0
    write_bytes: int = 0
    host_read: int = 0
    host_write: int = 0
    first_issue: float = math.inf
    last_done: float = 0.0

    def add_host(self, io: HostIO) -> None:
        self.host_read += io.read_bytes
        self.host_write += io.write_bytes


def base_data(image: Image) -> BaseData:
    assert image.virtual_size is not None
    return BaseData(image.virtual_size, image.data_extents())


def cache_file(image: Image) -> RawImage:
    """The raw base in ``_base``: ``qemu-img convert -O raw`` keeps zero runs as holes."""
    assert image.virtual_size is not None
    return RawImage(image.virtual_size, base_data(image))


def glance_file(image: Image) -> Qcow2Image | RawImage:
    """The image as uploaded (synthetic images are written with qemu-io, extent by extent)."""
    assert image.virtual_size is not None
    if image.format == "raw":
        return RawImage(image.virtual_size, base_data(image))
    img = Qcow2Image(image.virtual_size)
    for off, length in image.data_extents():
        img.write(off, length)
    return img


def make_disk(scenario: Scenario, vm: VM) -> Qcow2Image | RawImage:
    image = scenario.image(vm.image)
    size = scenario.root_size(vm)
    st = scenario.strategy
    if st.kind == "qcow2_overlay":
        return Qcow2Image(size, st.cluster_size, backing=base_data(image),
                          refcount_bits=st.refcount_bits)
    return RawImage(size, base_data(image))


class _Job:
    """One fio clone's stream, shared by its ``iodepth`` in-flight slots."""

    def __init__(self, chunks: Iterator[IoChunk]) -> None:
        self._chunks = chunks
        self._ios: Iterator[tuple[int, int, bool]] = iter(())

    def next(self) -> tuple[int, int, bool] | None:
        while True:
            io = next(self._ios, None)
            if io is not None:
                return io
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._ios = zip(chunk.offsets.tolist(), chunk.lengths.tolist(),
                            chunk.is_write.tolist(), strict=True)


def _slot(env: simpy.Environment, job: _Job, disk: Qcow2Image | RawImage, device: Device,
          stats: VmStats, deadline: float, pacer: _Pacer | None) -> Process:
    while env.now < deadline:
        io = job.next()
        if io is None:
            return
        if pacer is not None:
            wait = pacer.reserve(env.now)
            if wait > 0:
                yield env.timeout(wait)
                if env.now >= deadline:
                    return
        offset, length, is_write = io
        issued = env.now
        stats.first_issue = min(stats.first_issue, issued)
        host = disk.write(offset, length) if is_write else disk.read(offset, length)
        yield from device.serve(host)
        stats.add_host(host)
        done = env.now
        if is_write:
            stats.write_lat.append(done - issued)
            stats.write_bytes += length
        else:
            stats.read_lat.append(done - issued)
            stats.read_bytes += length
        stats.last_done = max(stats.last_done, done)


class _Pacer:
    """fio's rate_iops for one job: issues no faster than one per ``1/rate`` seconds."""

    def __init__(self, rate: int) -> None:
        self.gap = 1.0 / rate
        self.next_t = 0.0

    def reserve(self, now: float) -> float:
        t = max(now, self.next_t)
        self.next_t = t + self.gap
        return t - now


def _run_vm(env: simpy.Environment, scenario: Scenario, vm: VM, vm_index: int,
            disk: Qcow2Image | RawImage, device: Device, stats: VmStats,
            wl: Workload) -> Process:
    size = scenario.root_size(vm)
    limit = min(x for x in (wl.runtime, scenario.duration, math.inf) if x is not None)
    deadline = env.now + limit
    slots = []
    for clone in range(wl.numjobs):
        seed = job_seed(wl, clone, scenario.seed, vm_index)
        job = _Job(io_stream(wl, size, seed))
        pacer = _Pacer(wl.rate_iops) if wl.rate_iops else None
        for _ in range(wl.iodepth):
            slots.append(env.process(_slot(env, job, disk, device, stats, deadline, pacer)))
    yield simpy.AllOf(env, slots)
    stats.add_host(disk.flush())


def simulate(scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
    """Run the model once; return its records (backend ``sim``)."""
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    if scenario.fleet is not None:
        from .fleet import simulate_fleet  # fleet scenarios: lifecycle + fluid/exact disks

        return simulate_fleet(scenario, seed)
    env = simpy.Environment()
    rec = Recorder("sim", seed)
    devices = {h.name: Device(env, scenario.device) for h in scenario.hosts}
    disks: dict[str, Qcow2Image | RawImage] = {}
    stats: dict[str, VmStats] = {}
    for i, vm in enumerate(scenario.vms):
        disks[vm.name] = make_disk(scenario, vm)
        stats[vm.name] = VmStats()
        wl = scenario.workload_of(vm)
        if wl is not None:
            env.process(_run_vm(env, scenario, vm, i, disks[vm.name],
                                devices[scenario.host_of(vm).name], stats[vm.name], wl))
        else:
            stats[vm.name].add_host(disks[vm.name].flush())
    env.run()
    _record(scenario, rec, disks, stats)
    return rec.frame()


def _record(scenario: Scenario, rec: Recorder, disks: dict[str, Qcow2Image | RawImage],
            stats: dict[str, VmStats]) -> None:
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            g = glance_file(image)
            rec.add(f"image:{image.name}", "allocated_bytes", g.allocated_bytes)
            rec.add(f"image:{image.name}", "file_bytes", g.file_bytes)
    for host in scenario.hosts:
        vms = [vm for vm in scenario.vms if scenario.host_of(vm).name == host.name]
        bases = {vm.image for vm in vms}
        caches = [cache_file(scenario.image(n)) for n in sorted(bases)]
        cache_alloc = sum(c.allocated_bytes for c in caches)
        rec.add(f"cache:{host.name}", "allocated_bytes", cache_alloc)
        rec.add(f"cache:{host.name}", "file_bytes", sum(c.file_bytes for c in caches))
        disk_alloc = sum(disks[vm.name].allocated_bytes for vm in vms)
        rec.add(f"host:{host.name}", "allocated_bytes",
                cache_alloc + disk_alloc + DISK_INFO_BYTES * len(vms))
    for vm in scenario.vms:
        _record_vm(rec, f"vm:{vm.name}", disks[vm.name], stats[vm.name],
                   scenario.workload_of(vm))


def _record_vm(rec: Recorder, entity: str, disk: Qcow2Image | RawImage, st: VmStats,
               wl: Workload | None) -> None:
    rec.add(entity, "allocated_bytes", disk.allocated_bytes)
    rec.add(entity, "file_bytes", disk.file_bytes)
    rec.add(entity, "data_clusters", disk.data_clusters)
    if wl is None:
        return
    rec.add(entity, "host_read_bytes", st.host_read)
    rec.add(entity, "host_write_bytes", st.host_write)
    elapsed = st.last_done - st.first_issue if st.last_done > st.first_issue else math.nan
    for kind, lat, nbytes, present in (("read", st.read_lat, st.read_bytes, wl.read_fraction > 0),
                                       ("write", st.write_lat, st.write_bytes,
                                        wl.read_fraction < 1)):
        if not present:
            continue
        arr = np.asarray(lat)
        rec.add(entity, f"{kind}_ios", arr.size)
        rec.add(entity, f"{kind}_iops", arr.size / elapsed)
        rec.add(entity, f"{kind}_bw_bytes_per_s", nbytes / elapsed)
        if arr.size:
            rec.add(entity, f"{kind}_lat_mean_s", float(arr.mean()))
            rec.add(entity, f"{kind}_lat_p99_s", float(np.percentile(arr, 99)))
