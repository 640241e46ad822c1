"""The model's timeline engine: operations applied in order, the cache manager, sampling.

Operations take logical time: each is applied at its ``t`` and completes before the next, as in
the real backend; an operation's own predicted duration is a figure (``duration_s``). Workload
runs at the same instant run together in SimPy, contending for their hosts' devices
(``sim.world.model``), each VM's I/O applied to the top file of its disk chain.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import simpy

from cowbench.lifecycle import Op, batches, schedule
from cowbench.nova.imagecache import cache_pass
from cowbench.records import Recorder
from cowbench.scenario import Scenario
from sim.perf.device import make_device
from sim.storage.disk import Qcow2Image
from sim.storage.fs import FS_BLOCK
from sim.storage.images import DISK_INFO_BYTES
from sim.storage.snapshot import take_internal_snapshot

from .lifecycle import (
    CacheEntry,
    HostState,
    Instance,
    Layer,
    chain_data,
    content_blocks,
    fetched,
    flattened,
    new_disk,
    record_files,
    sparse_copy,
    transfer_time,
)
from .vm import VmStats, record_io, run_vm


class World:
    """Everything on every host at the current logical time."""

    def __init__(self, scenario: Scenario, rec: Recorder) -> None:
        self.s = scenario
        self.rec = rec
        self.hosts = {h.name: HostState() for h in scenario.hosts}
        self.where: dict[str, str] = {}
        self.snapshots: dict[str, tuple[int, int]] = {}
        self.vm_index = {vm.name: i for i, vm in enumerate(scenario.vms)}

    # -- the image cache ------------------------------------------------------------------
    def ensure_base(self, host: str, image_name: str, t: float) -> int:
        """Fetch (and convert) a base into the host's cache if absent; bytes fetched."""
        cache = self.hosts[host].caches
        if image_name in cache:
            cache[image_name].mtime = t
            return 0
        disk, nbytes = fetched(self.s, self.s.image(image_name))
        cache[image_name] = CacheEntry(disk, t)
        return nbytes

    def cache_pass(self, t: float) -> None:
        """Nova's image cache manager: touch bases in use, remove those unused long enough."""
        for h in self.hosts.values():
            used = {i.image for i in [*h.instances.values(), *h.resizing.values()]}
            names = list(h.caches)
            mtime, removed = cache_pass(t, [n in used for n in names],
                                        [h.caches[n].mtime for n in names],
                                        self.s.nova.image_cache)
            for name, m, gone in zip(names, mtime.tolist(), removed.tolist(), strict=True):
                h.caches[name].mtime = m
                if gone:
                    del h.caches[name]

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, t: float | None) -> None:
        for name, h in self.hosts.items():
            c_alloc = sum(e.file.allocated_bytes for e in h.caches.values())
            c_size = sum(e.file.file_bytes for e in h.caches.values())
            record_files(self.rec, f"cache:{name}", c_alloc, c_size, t)
            alloc = c_alloc
            for inst in [*h.instances.values(), *h.resizing.values()]:
                alloc += inst.files()[0] + DISK_INFO_BYTES
            self.rec.add(f"host:{name}", "allocated_bytes", alloc, t)
            for vm, inst in h.instances.items():
                a, s = inst.files()
                record_files(self.rec, f"vm:{vm}", a, s, t)
                if t is None:
                    self.rec.add(f"vm:{vm}", "data_clusters", inst.top.data_clusters)
        for name, (a, s) in self.snapshots.items():
            record_files(self.rec, f"snapshot:{name}", a, s, t)

    def instance(self, vm: str) -> Instance:
        return self.hosts[self.where[vm]].instances[vm]

    def op_done(self, op: Op, transfer: int | None, duration: float) -> None:
        if transfer is not None:
            self.rec.add(op.entity, "transfer_bytes", transfer, op.t)
        self.rec.add(op.entity, "duration_s", duration, op.t)

    # -- operations -------------------------------------------------------------------------
    def boot(self, op: Op) -> None:
        vm = self.s.vms[self.vm_index[op.vm]]
        host = op.to or self.s.host_of(vm).name  # the scheduler's choice for arrivals
        fetched_bytes = self.ensure_base(host, vm.image, op.t)
        size = self.s.root_size(vm)
        self.hosts[host].instances[vm.name] = Instance(vm, vm.image, [new_disk(self.s, vm, size)],
                                                       size)
        self.where[vm.name] = host
        copy = self.hosts[host].caches[vm.image].file.allocated_bytes if fetched_bytes else 0
        dev = self.s.device
        self.op_done(op, fetched_bytes,
                     transfer_time(fetched_bytes, self.s.nova.glance_bandwidth_bytes_per_s)
                     + copy / dev.write_bandwidth_bytes_per_s)

    def snapshot(self, op: Op) -> None:
        inst = self.instance(op.vm)
        name = op.name or f"{op.vm}-snap-{op.index}"
        if op.kind == "internal":
            if isinstance(inst.top.image, Qcow2Image):
                take_internal_snapshot(inst.top.image, name)
            self.op_done(op, None, self.s.device.write_latency_s)
            return
        if op.kind == "external":
            below = chain_data(self.s, inst)
            top = inst.top
            top.name = f"disk.{name}"
            st = self.s.strategy
            img = Qcow2Image(inst.root_size, st.cluster_size, backing=below)
            inst.layers.append(Layer.new("disk", img, inst.root_size))
            self.op_done(op, None, self.s.device.write_latency_s)
            return
        flat = flattened(self.s, inst, self.s.nova.snapshot_image_format)
        self.snapshots[name] = (flat.allocated_bytes, flat.file_bytes)
        dev = self.s.device
        self.op_done(op, flat.file_bytes,
                     inst.top.allocated_bytes / dev.write_bandwidth_bytes_per_s
                     + flat.allocated_bytes / dev.write_bandwidth_bytes_per_s
                     + transfer_time(flat.file_bytes, self.s.nova.glance_bandwidth_bytes_per_s))

    def migrate(self, op: Op) -> None:
        assert op.to is not None
        src = self.where[op.vm]
        inst = self.hosts[src].instances.pop(op.vm)
        bw = self.s.nova.migration_bandwidth_bytes_per_s
        fetched_bytes = 0
        if op.kind == "flatten":
            flat = flattened(self.s, inst, "qcow2")
            moved = Instance(inst.vm, None, [Layer.new("disk", flat, inst.root_size)],
                             inst.root_size)
            moved.top.written[:] = content_blocks(self.s, inst)
            transfer = flat.file_bytes
            self.hosts[src].resizing[op.vm] = inst
        elif op.kind == "live":
            fetched_bytes = self.ensure_base(op.to, str(inst.image), op.t)
            moved = self._live_copy(inst)
            top = inst.top.image
            transfer = (top.data_clusters * top.cluster_size if isinstance(top, Qcow2Image)
                        else top.allocated_bytes)
        else:
            fetched_bytes = self.ensure_base(op.to, str(inst.image), op.t)
            transfer = sum(x.file_bytes for x in inst.layers)
            moved = _copied(inst, fill=self.s.nova.remote_filesystem_transport == "ssh")
            self.hosts[src].resizing[op.vm] = inst
        self.hosts[op.to].instances[op.vm] = moved
        self.where[op.vm] = op.to
        self.op_done(op, transfer, transfer_time(transfer + fetched_bytes, bw))

    def _live_copy(self, inst: Instance) -> Instance:
        """Block migration: an empty overlay at the destination, then the top's clusters."""
        vm = inst.vm
        layer = new_disk(self.s, vm, inst.root_size)
        top = inst.top.image
        if isinstance(top, Qcow2Image) and isinstance(layer.image, Qcow2Image):
            c = top.cluster_size
            for g in np.flatnonzero(top.allocated).tolist():
                layer.image.write(g * c, min(c, inst.root_size - g * c))
        layer.written[:] = inst.top.written
        return Instance(vm, inst.image, [layer], inst.root_size)

    def resize(self, op: Op) -> None:
        assert op.root_size is not None
        inst = self.instance(op.vm)
        img = inst.top.image
        if isinstance(img, Qcow2Image):
            img.resize(op.root_size)
        else:
            img.virtual_size = op.root_size
            img.blocks = np.concatenate([img.blocks, np.zeros(
                -(-op.root_size // FS_BLOCK) - img.blocks.shape[0], dtype=bool)])
        grown = np.zeros(-(-op.root_size // FS_BLOCK), dtype=bool)
        for layer in inst.layers:
            g = grown.copy()
            g[:layer.written.shape[0]] = layer.written
            layer.written = g
        inst.root_size = op.root_size
        self.op_done(op, None, self.s.device.write_latency_s)

    def confirm(self, op: Op) -> None:
        for h in self.hosts.values():
            h.resizing.pop(op.vm, None)
        self.op_done(op, None, 0.0)

    def delete(self, op: Op) -> None:
        self.hosts[self.where.pop(op.vm)].instances.pop(op.vm)
        for h in self.hosts.values():
            h.resizing.pop(op.vm, None)
        self.op_done(op, None, 0.0)


def _copied(inst: Instance, fill: bool) -> Instance:
    """A file copy of the instance's chain: scp writes holes out, rsync --sparse keeps them."""
    layers = [Layer(x.name, copy.deepcopy(x.image), x.written.copy(), x.filled or fill)
              for x in inst.layers]
    if not fill:
        for layer in layers:
            layer.sparse_at_copy = sparse_copy(layer)
    return Instance(inst.vm, inst.image, layers, inst.root_size)


def run_group(world: World, ops: list[Op]) -> None:
    """Workload runs that start at the same instant, together, contending per host."""
    s = world.s
    env = simpy.Environment()
    own = {h.name: h.calibrated for h in s.hosts}
    devices = {h: make_device(env, s.device, s.seed, i, own.get(h))
               for i, h in enumerate(world.hosts)}
    stats: dict[int, VmStats] = {}
    for op in ops:
        vm = s.vms[world.vm_index[op.vm]]
        wl = s.workloads[op.workload or str(vm.workload)]
        st = stats[op.index] = VmStats()
        inst = world.instance(op.vm)
        if isinstance(inst.top.image, Qcow2Image):
            inst.top.image.open()  # each run exports the disk with a fresh qemu-nbd
        env.process(run_vm(env, s, vm, world.vm_index[op.vm], inst.top,  # type: ignore[arg-type]
                           devices[world.where[op.vm]], st, wl, size=inst.root_size))
    env.run()
    for op in ops:
        vm = s.vms[world.vm_index[op.vm]]
        wl = s.workloads[op.workload or str(vm.workload)]
        st = stats[op.index]
        record_io(world.rec, f"vm:{op.vm}", st, wl, op.t)
        elapsed = st.last_done - st.first_issue if st.last_done > st.first_issue else math.nan
        world.op_done(op, None, elapsed)


def simulate_timeline(scenario: Scenario, rec: Recorder) -> None:
    """Apply the scenario's whole timeline to a fresh world, recording as it goes."""
    world = World(scenario, rec)
    for t, kind, ops in schedule(scenario):
        if kind == "pass":
            world.cache_pass(t)
        for is_run, batch in batches(ops):
            if is_run:
                run_group(world, batch)
            else:
                for op in batch:
                    getattr(world, op.op)(op)
        world.sample(t)
    world.sample(None)
