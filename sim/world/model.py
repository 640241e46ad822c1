"""The model of a scenario's plain VMs (no timeline, no fleet), exact mode.

Hosts hold an image cache (``_base``, raw bases as Nova's ``force_raw_images`` makes them) and
one disk per VM made by the scenario's strategy. Each VM runs its fio job (``sim.world.vm``):
each I/O is applied to the VM's exact allocation map (``sim.storage.disk``), and the host I/O it
causes is served by the host's shared ``Device`` (``sim.perf.device``). A fresh
``simpy.Environment`` per call, no module state, no files: the caller writes results (STYLE.md
point 4). ``sim.driver.simulate`` picks this, the timeline or the fleet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import simpy

from cowbench.iolog import Trace
from cowbench.records import Recorder
from cowbench.scenario import VM, Scenario, Workload
from sim.perf.device import make_device
from sim.storage.images import DISK_INFO_BYTES, base_data, cache_file, glance_file
from sim.storage.strategies import (
    Disk,
    configure_io,
    extra_figures,
    guest_write,
    resized_copies,
    root_disk,
)
from sim.workload.fio import io_stream, job_seed

from .vm import VmStats, record_io, run_vm


def make_disk(scenario: Scenario, vm: VM) -> Disk:
    image = scenario.image(vm.image)
    size = scenario.root_size(vm)
    return root_disk(size, scenario.strategy_of(vm), base_data(image))


def simulate_vms(scenario: Scenario, rec: Recorder,
                 traces: Mapping[str, Sequence[Trace]] | None = None,
                 events: dict[str, list[tuple[float, float, int, bool]]] | None = None) -> None:
    """Run the scenario's VMs at once, each its workload; add their records to ``rec``.

    ``traces`` gives, per VM name, the exact I/O stream of each fio clone (``offsets: fio`` or
    ``iolog``, or a finished real run's record); other VMs generate their offsets. ``events``
    receives, per VM, every guest I/O as ``(issued_s, done_s, bytes, is_write)``."""
    seed = scenario.seed
    env = simpy.Environment()
    devices = {h.name: make_device(env, scenario.device, seed, i, h.calibrated)
               for i, h in enumerate(scenario.hosts)}
    disks: dict[str, Disk] = {}
    stats: dict[str, VmStats] = {}
    for i, vm in enumerate(scenario.vms):
        disks[vm.name] = make_disk(scenario, vm)
        log = None if events is None else events.setdefault(vm.name, [])
        stats[vm.name] = VmStats(events=log)
        wl = scenario.workload_of(vm)
        if wl is not None:
            env.process(run_vm(env, scenario, vm, i, disks[vm.name],
                               devices[scenario.host_of(vm).name], stats[vm.name], wl,
                               (traces or {}).get(vm.name)))
        else:
            stats[vm.name].add_host(disks[vm.name].flush())
    env.run()
    _record(scenario, rec, disks, stats)


def untimed_is_upper_bound(scenario: Scenario) -> bool:
    """Does :func:`place_vms` allocate at least what :func:`simulate_vms` does? Yes when every
    write only adds (no trims, no zero writes that may unmap) and every job is bounded by its
    I/O count, not by time: then writing all of it, in any order, allocates the same clusters
    the clock would let through, or more (a runtime that cuts a job short only removes
    writes)."""
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None:
            continue
        if wl.time_based or "trim" in wl.rw or (
                wl.zero_buffers and scenario.strategy_of(vm).detect_zeroes != "off"):
            return False
    return True


def place_vms(scenario: Scenario, rec: Recorder) -> None:
    """The VMs' space without the clock: every write of every job applied, clone after clone,
    no device, no timing; add the allocation records to ``rec`` (no I/O figures). For the
    free-space check before a real run, where it is an upper bound of :func:`simulate_vms`'s
    allocation (see :func:`untimed_is_upper_bound`) at a fraction of its cost."""
    disks: dict[str, Disk] = {}
    for i, vm in enumerate(scenario.vms):
        disk = disks[vm.name] = make_disk(scenario, vm)
        wl = scenario.workload_of(vm)
        if wl is not None:
            configure_io(disk, scenario.strategy_of(vm), wl)
            for clone in range(wl.numjobs):
                seed = job_seed(wl, clone, scenario.seed, i, vm.name)
                for chunk in io_stream(wl, scenario.root_size(vm), seed):
                    w = chunk.is_write
                    for off, length in zip(chunk.offsets[w].tolist(), chunk.lengths[w].tolist(),
                                           strict=True):
                        guest_write(disk, off, length)
        disk.flush()
    _record(scenario, rec, disks, None)


def record_images(scenario: Scenario, rec: Recorder) -> None:
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            g = glance_file(image)
            rec.add(f"image:{image.name}", "allocated_bytes", g.allocated_bytes)
            rec.add(f"image:{image.name}", "file_bytes", g.file_bytes)


def _record(scenario: Scenario, rec: Recorder, disks: dict[str, Disk],
            stats: dict[str, VmStats] | None) -> None:
    """Every figure; the allocation figures only when there are no ``stats``."""
    record_images(scenario, rec)
    for host in scenario.hosts:
        # an RBD clone lives in Ceph, not on the host (and needs no local _base)
        vms = [vm for vm in scenario.vms
               if scenario.host_of(vm).name == host.name and not scenario.model_only(vm)]
        bases = {vm.image for vm in vms}
        caches = [cache_file(scenario.image(n)) for n in sorted(bases)]
        caches += resized_copies(scenario, vms, {n: base_data(scenario.image(n)) for n in bases})
        cache_alloc = sum(c.allocated_bytes for c in caches)
        rec.add(f"cache:{host.name}", "allocated_bytes", cache_alloc)
        rec.add(f"cache:{host.name}", "file_bytes", sum(c.file_bytes for c in caches))
        disk_alloc = sum(disks[vm.name].allocated_bytes for vm in vms)
        rec.add(f"host:{host.name}", "allocated_bytes",
                cache_alloc + disk_alloc + DISK_INFO_BYTES * len(vms))
    for vm in scenario.vms:
        _record_vm(rec, f"vm:{vm.name}", disks[vm.name],
                   None if stats is None else stats[vm.name], scenario.workload_of(vm))
        if scenario.model_only(vm):
            rec.add(f"vm:{vm.name}", "model_only", 1.0)
        for metric, value in extra_figures(disks[vm.name]).items():
            rec.add(f"vm:{vm.name}", metric, value)


def _record_vm(rec: Recorder, entity: str, disk: Disk, st: VmStats | None,
               wl: Workload | None) -> None:
    rec.add(entity, "allocated_bytes", disk.allocated_bytes)
    rec.add(entity, "file_bytes", disk.file_bytes)
    rec.add(entity, "data_clusters", disk.data_clusters)
    if wl is None or st is None:
        return
    record_io(rec, entity, st, wl)


