"""The model's world over a timeline: Nova's operations, the cache manager, sampling.

Nova's state machine (``cowbench.nova.machine``) decides what each operation and each cache
manager pass does; this world carries its instructions (``cowbench.nova.instructions``) out on
the exact allocation maps of ``sim.storage``, and predicts each operation's figures.

Operations take logical time: each is applied at its ``t`` and completes before the next, as in
the real backend; an operation's own predicted duration is a figure (``duration_s``). Workload
runs at the same instant run together in SimPy (``sim.world.runs``), contending for their
hosts' devices, each VM's I/O applied to the top file of its disk chain. Every strategy's disk
boots and runs; which other operations it allows is ``cowbench.lifecycle.STRATEGY_OPS``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property, singledispatchmethod

import numpy as np

from cowbench.diskfs import glance_filesystem, host_filesystems
from cowbench.lifecycle import Op, nova_machine, typed
from cowbench.nova.instructions import (
    Base,
    BlockCopy,
    CopyFiles,
    FetchBase,
    FlattenCopy,
    GrowDisk,
    Instruction,
    KeepResize,
    MakeDisk,
    MakeLocalBase,
    MakeLocalDisk,
    MakeResizedBase,
    Refuse,
    RemoveBase,
    RemoveInstance,
    RemoveResize,
    RunWorkload,
    Sample,
    SnapshotExternal,
    SnapshotInternal,
    TouchBase,
    UploadSnapshot,
    only,
)
from cowbench.nova.machine import Operation, Run
from cowbench.records import Recorder
from cowbench.runseed import run_numbers
from cowbench.scenario import Scenario, Strategy
from cowbench.timeline_fleet import record_claims
from sim.storage.backing import BaseData
from sim.storage.disk import Qcow2Image, RawImage
from sim.storage.fs import FS_BLOCK
from sim.storage.images import DISK_INFO_BYTES, backing_data
from sim.storage.qcow2_ext import SUBCLUSTERS, Qcow2ExtImage
from sim.storage.reflink import ReflinkCopy, counted_again
from sim.storage.snapshot import take_internal_snapshot
from sim.storage.strategies import CONVERT_CHUNK, extra_figures, overlay
from sim.storage.xfs import HostFs, local_base_bytes

from .lifecycle import (
    CacheEntry,
    HostState,
    Instance,
    Kept,
    Layer,
    LocalBaseFile,
    _guest_content,
    chain_data,
    content_below,
    content_blocks,
    fetched,
    flattened,
    new_layers,
    record_files,
    resized_copy,
    sparse_copy,
    sparse_meta,
    transfer_time,
)


@dataclass
class Done:
    """An operation's figures, as its instructions are carried out: bytes fetched from
    Glance, bytes it moved (``transfer_bytes``; None: not a transfer) and its predicted
    ``duration_s``: NaN (no prediction) unless an instruction moves bytes or writes, as a
    delete, a confirm or a boot onto a cached base whose disk copies nothing does not (their
    time is the tools' start-up and the filesystem's metadata, which the model leaves out)."""

    fetched: int = 0
    transfer: int | None = None
    duration: float = math.nan
    timed: bool = False  # an instruction gave a time (NaN: one it cannot know)

    def took(self, seconds: float) -> None:
        """The operation also spends ``seconds``."""
        self.duration = self.duration + seconds if self.timed else seconds
        self.timed = True


#: strategies whose disk is a copy of the base's data, written when the disk is made
COPYING = frozenset({"full_copy", "internal_snapshot"})


class World:
    """Everything on every host at the current logical time."""

    def __init__(self, scenario: Scenario, rec: Recorder) -> None:
        self.s = scenario
        self.fs = host_filesystems(scenario)  # what each host's files are allocated as
        self.rec = rec
        self.hosts = {h.name: HostState() for h in scenario.hosts}
        self.snapshots: dict[str, tuple[int, int]] = {}
        self.vm_index = {vm.name: i for i, vm in enumerate(scenario.vms)}
        self.machine = nova_machine(scenario)
        self.done = Done()  # what the operation being carried out did, for its figures
        # a scenario without a timeline has one instant: only its end-of-run figures
        self.timed = scenario.timeline is not None

    @cached_property
    def run_number(self) -> dict[int, int]:
        """Per workload run (by its operation's index), the VM's run number
        (``cowbench.runseed``)."""
        return run_numbers(self.s)

    # -- the image cache, as the machine says (cowbench.nova.instructions) -------------------
    @singledispatchmethod
    def execute(self, instruction: Instruction) -> None:
        """Carry out one of the machine's instructions."""
        raise TypeError(f"no executor for {type(instruction).__name__}")

    @execute.register
    def _(self, ins: Refuse) -> None:
        raise ValueError(f"Nova refuses the operation: {ins.reason}")

    @execute.register
    def _(self, ins: FetchBase) -> None:
        disk, nbytes = fetched(self.s, self.s.image(ins.image), self.fs[ins.host])
        self.hosts[ins.host].caches[Base(ins.image)] = CacheEntry(disk, ins.t)
        self.done.fetched += nbytes

    @execute.register
    def _(self, ins: MakeResizedBase) -> None:
        copy = resized_copy(self.s.image(ins.image), ins.size, self.fs[ins.host])
        self.hosts[ins.host].caches[Base(ins.image, ins.size)] = CacheEntry(copy, ins.t, True)
        self.done.took(copy.allocated_bytes / self.s.device.write_bandwidth_bytes_per_s)

    @execute.register
    def _(self, ins: MakeLocalBase) -> None:
        """An ephemeral or swap base: what mkfs or mkswap writes, written at the device's
        bandwidth."""
        b = ins.base
        assert b.size is not None
        made = LocalBaseFile(local_base_bytes(b.kind, b.size, self.fs[ins.host]), b.size)
        self.hosts[ins.host].caches[b] = CacheEntry(made, ins.t)
        self.done.took(made.allocated_bytes / self.s.device.write_bandwidth_bytes_per_s)

    @execute.register
    def _(self, ins: MakeLocalDisk) -> None:
        inst = self.instance(ins.vm, ins.host)
        inst.local[ins.base] = _local_overlay(self.s, inst, ins.base, self.fs[ins.host])

    @execute.register
    def _(self, ins: TouchBase) -> None:
        self.hosts[ins.host].caches[ins.base].mtime = ins.t

    @execute.register
    def _(self, ins: RemoveBase) -> None:
        del self.hosts[ins.host].caches[ins.base]

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, t: float | None) -> None:
        """Every figure at ``t`` (``None``: the end of the run, with each VM's data clusters
        and the figures only some disks have)."""
        for name, h in self.hosts.items():
            c_alloc = sum(e.file.allocated_bytes for e in h.caches.values())
            c_size = sum(e.file.file_bytes for e in h.caches.values())
            record_files(self.rec, f"cache:{name}", c_alloc, c_size, t)
            alloc = c_alloc
            on_host = [i for i in [*h.instances.values(), *h.resizing.values()]
                       if not i.remote]  # an RBD clone lives in Ceph
            for inst in on_host:
                alloc += inst.files()[0] + DISK_INFO_BYTES
            self.rec.add(f"host:{name}", "allocated_bytes", alloc, t)
            self.rec.add(f"host:{name}", "used_bytes", alloc - _counted_again(h, on_host), t)
            for vm, inst in h.instances.items():
                a, s = inst.files()
                record_files(self.rec, f"vm:{vm}", a, s, t)
                if t is None:
                    self._end_figures(f"vm:{vm}", inst)
        for name, (a, s) in self.snapshots.items():
            record_files(self.rec, f"snapshot:{name}", a, s, t)

    def _end_figures(self, entity: str, inst: Instance) -> None:
        self.rec.add(entity, "data_clusters", inst.top.data_clusters)
        if inst.remote:
            self.rec.add(entity, "model_only", 1.0)
        for metric, value in extra_figures(inst.top.image).items():
            self.rec.add(entity, metric, value)

    def run_of(self, op: Op) -> RunWorkload:
        """What the machine says a ``run`` operation runs: which workload, on which host,
        on the disk's size then."""
        return only(self.machine.apply(typed(op)), RunWorkload)

    def instance(self, vm: str, host: str) -> Instance:
        """``vm``'s disk on ``host``: where the machine's instruction says it is (who is where
        is the machine's record, ``cowbench.nova.tenancy``)."""
        return self.hosts[host].instances[vm]

    def op_done(self, op: Op | Operation, transfer: int | None, duration: float) -> None:
        """The operation's own figures (none in a scenario without a timeline)."""
        if not self.timed:
            return
        if transfer is not None:
            self.rec.add(op.entity, "transfer_bytes", transfer, op.t)
        self.rec.add(op.entity, "duration_s", duration, op.t)

    # -- operations, dispatched by type (cowbench.nova.machine) ------------------------------
    def apply(self, operation: Operation) -> None:
        """Carry out one operation (a workload run goes in a batch, not here)."""
        self.carry_out(operation, self.machine.apply(operation))

    def carry_out(self, operation: Operation, instructions: list[Instruction]) -> None:
        """The machine's instructions for ``operation``, then the operation's figures."""
        if isinstance(operation, Run):
            raise TypeError("no executor for Run: workload runs go in a batch")
        self.done = Done()
        for ins in instructions:
            self.execute(ins)
        self.op_done(operation, self.done.transfer, self.done.duration)

    @execute.register
    def _(self, ins: Sample) -> None:
        self.sample(ins.t)
        record_claims(self.s, self.rec, self.machine, ins.t)  # a fleet's figures, if it is one

    @execute.register
    def _(self, ins: MakeDisk) -> None:
        """The strategy's disk; its time: the fetch from Glance and the base's copy."""
        vm = self.s.vms[self.vm_index[ins.vm]]
        layers = new_layers(self.s, vm, ins.size, self.fs[ins.host])
        inst = Instance(vm, ins.image, layers, ins.size, remote=self.s.model_only(vm))
        self.hosts[ins.host].instances[vm.name] = inst
        fetched = self.done.fetched
        self.done.transfer = fetched
        # bytes written on the host: the fetched base's raw copy in _base, and the disk's own
        # copy of the base (a full copy; the converted data of an internal_snapshot's qcow2)
        written = self.hosts[ins.host].caches[Base(ins.image)].file.allocated_bytes \
            if fetched else 0
        if self.s.strategy_of(vm).kind in COPYING:
            written += inst.files()[0]
        if fetched:
            self.done.took(transfer_time(fetched, self.s.nova.glance_bandwidth_bytes_per_s))
        if written:
            self.done.took(written / self.s.device.write_bandwidth_bytes_per_s)

    @execute.register
    def _(self, ins: SnapshotInternal) -> None:
        layer = self.instance(ins.vm, ins.host).top
        if isinstance(layer.image, Qcow2Image):
            l1 = take_internal_snapshot(layer.image, ins.name)
            layer.kept.append(Kept.of(layer, l1))
        self.done.took(self.s.device.write_latency_s)

    @execute.register
    def _(self, ins: SnapshotExternal) -> None:
        inst = self.instance(ins.vm, ins.host)
        below = chain_data(self.s, inst)
        inst.top.name = f"disk.{ins.name}"
        img = Qcow2Image(inst.root_size, self.s.strategy_of(inst.vm).cluster_size, backing=below,
                         host_fs=self.fs[ins.host])
        inst.layers.append(Layer.new("disk", img, inst.root_size))
        self.done.took(self.s.device.write_latency_s)

    @execute.register
    def _(self, ins: UploadSnapshot) -> None:
        inst = self.instance(ins.vm, ins.host)
        flat = flattened(self.s, inst, ins.fmt, glance_filesystem(self.s))
        self.snapshots[ins.name] = (flat.allocated_bytes, flat.file_bytes)
        dev = self.s.device
        self.done.transfer = flat.file_bytes
        self.done.took((inst.top.allocated_bytes + flat.allocated_bytes)
                       / dev.write_bandwidth_bytes_per_s
                       + transfer_time(flat.file_bytes, self.s.nova.glance_bandwidth_bytes_per_s))

    @execute.register
    def _(self, ins: FlattenCopy) -> None:
        inst = self.hosts[ins.src].instances[ins.vm]
        flat = flattened(self.s, inst, "qcow2", self.fs[ins.dst])
        moved = Instance(inst.vm, None, [Layer.new("disk", flat, inst.root_size)],
                         inst.root_size)
        moved.top.written[:] = content_blocks(self.s, inst)
        self._moved(ins.vm, ins.dst, moved, flat.file_bytes)

    @execute.register
    def _(self, ins: BlockCopy) -> None:
        inst = self.hosts[ins.src].instances[ins.vm]
        top = inst.top.image
        if isinstance(top, Qcow2ExtImage):  # what qemu-img map says it holds: subclusters
            transfer = sum(b - a for a, b in _subcluster_runs(top))
        elif isinstance(top, Qcow2Image):
            transfer = top.data_clusters * top.cluster_size
        else:
            transfer = top.allocated_bytes
        self._moved(ins.vm, ins.dst, self._live_copy(inst, ins.backing, ins.dst), transfer)

    @execute.register
    def _(self, ins: CopyFiles) -> None:
        inst = self.hosts[ins.src].instances[ins.vm]
        moved = _copied(inst, fill=ins.transport == "ssh", fs=self.fs[ins.dst])
        self._moved(ins.vm, ins.dst, moved, inst.files()[1])

    def _moved(self, vm: str, dst: str, moved: Instance, transfer: int) -> None:
        """The VM now on ``dst``; the migration's time: what it moved and what it fetched."""
        self.hosts[dst].instances[vm] = moved
        self.done.transfer = transfer
        self.done.took(transfer_time(transfer + self.done.fetched,
                                     self.s.nova.migration_bandwidth_bytes_per_s))

    def _live_copy(self, inst: Instance, backing: Base | None, dst: str) -> Instance:
        """Block migration: an empty overlay at the destination over ``backing`` (the base
        the source's disk names: for ``resized_base`` the copy resized to the root size, raw
        to its end, as ``real.world.lifecycle`` makes it), then the top's clusters
        (``_converted_top``)."""
        vm = inst.vm
        assert inst.image is not None
        data = backing_data(self.s.image(inst.image), self.s.nova.force_raw_images)
        if backing is not None and backing.resized and backing.size is not None:
            data = data.grown(backing.size)
        top = inst.top.image
        assert isinstance(top, Qcow2Image), "check_timeline: block migration of overlays only"
        if isinstance(top, Qcow2ExtImage):  # only the subclusters the top holds
            img = overlay(inst.root_size, self.s.strategy_of(vm), data, self.fs[dst])
            for start, end in _subcluster_runs(top):
                for off in range(start, end, CONVERT_CHUNK):
                    img.write(off, min(CONVERT_CHUNK, end - off))
        else:
            img = _converted_top(inst, self.s.strategy_of(vm), self.fs[dst])
            img.backing = data
        layer = Layer.new("disk", img, inst.root_size)
        layer.written[:] = inst.top.written
        moved = Instance(vm, inst.image, [layer], inst.root_size)
        # Nova makes the local disks on the destination over its bases before the mirror
        # starts; the guest's workloads never write them, so no cluster of theirs moves
        moved.local = {b: _local_overlay(self.s, moved, b, self.fs[dst]) for b in inst.local}
        return moved

    @execute.register
    def _(self, ins: GrowDisk) -> None:
        inst = self.instance(ins.vm, ins.host)
        img = inst.top.image
        if isinstance(img, Qcow2Image):
            img.resize(ins.size)
        else:
            assert isinstance(img, RawImage), "check_timeline: no such disk resizes"
            img.virtual_size = ins.size
            img.blocks = np.concatenate([img.blocks, np.zeros(
                -(-ins.size // FS_BLOCK) - img.blocks.shape[0], dtype=bool)])
        grown = np.zeros(-(-ins.size // FS_BLOCK), dtype=bool)
        for layer in inst.layers:
            g = grown.copy()
            g[:layer.written.shape[0]] = layer.written
            layer.written = g
        inst.root_size = ins.size
        self.done.took(self.s.device.write_latency_s)

    @execute.register
    def _(self, ins: KeepResize) -> None:
        self.hosts[ins.host].resizing[ins.vm] = self.hosts[ins.host].instances.pop(ins.vm)

    @execute.register
    def _(self, ins: RemoveResize) -> None:
        self.hosts[ins.host].resizing.pop(ins.vm, None)

    @execute.register
    def _(self, ins: RemoveInstance) -> None:
        self.hosts[ins.host].instances.pop(ins.vm)


def _subcluster_runs(img: Qcow2ExtImage) -> list[tuple[int, int]]:
    """The guest byte ranges an extended-L2 image holds itself (its allocated subclusters),
    merged where they touch, in order: what ``qemu-img convert -B`` copies of it."""
    sc, runs = img.sc_size, list[tuple[int, int]]()
    for g in np.flatnonzero(img.allocated).tolist():
        bits = int(img.sc_bits[g])
        for k in range(SUBCLUSTERS):
            if bits >> k & 1:
                a = g * img.cluster_size + k * sc
                if runs and runs[-1][1] == a:
                    runs[-1] = (runs[-1][0], a + sc)
                else:
                    runs.append((a, a + sc))
    size = img.virtual_size
    return [(a, min(b, size)) for a, b in runs if a < size]


def _converted_top(inst: Instance, st: Strategy, fs: HostFs) -> Qcow2Image:
    """What ``qemu-img convert -O qcow2 -B BASE`` of the top writes into a new file on the
    destination's ``fs`` (a block migration, ``real.world.lifecycle``; on XFS the file has
    QEMU's extent size hint, as every file convert creates): only the top's own clusters,
    and of each the bytes from its first non-zero 4 KiB block (the guest's bytes, the base's
    data its copy-on-write brought) to the cluster's end, in requests of up to 2 MiB, into
    a file convert opens without its backing: the zeros before that block are a zero write,
    so the new cluster is zeroed with fallocate and its head left unwritten
    (``Qcow2Image.holes``); the backing is named once it is done, and the image closed, its
    metadata on disk. Measured (FIEMAP of
    a destination's disk, 491 clusters copied, each a 4 KiB guest write over a raw base's
    hole or the base's data: every cluster unwritten up to its first data block and written
    from there to its end; a whole read of it through qemu-nbd moved 49664000 bytes, where
    copying clusters whole predicted 65863680, and wrote nothing where leaving the metadata
    dirty predicted 131072)."""
    top = inst.top.image
    assert isinstance(top, Qcow2Image)
    c = top.cluster_size
    img = overlay(inst.root_size, st, None, fs)
    per = max(1, c // FS_BLOCK)
    nblocks = top.n_clusters * per
    content = _guest_content(inst.top, nblocks, content_below(inst.layers)[-1])
    rows = (content & np.repeat(top.allocated & ~top.zeroed, per)[:nblocks]).reshape(-1, per)
    # from its first non-zero block to the cluster's end: convert writes data runs out to the
    # target's cluster boundary (its zero writes stay cluster-aligned)
    first = np.where(rows.any(axis=1), rows.argmax(axis=1), per)
    out = (np.arange(per)[None, :] >= first[:, None]).reshape(-1)
    for start, length in _block_runs(out):
        end = min(start + length, inst.root_size)
        for off in range(start, end, CONVERT_CHUNK):
            img.write(off, min(CONVERT_CHUNK, end - off))
    img.flush()  # convert closes the image: its metadata is on disk before any session
    return img


def _block_runs(blocks: np.ndarray) -> list[tuple[int, int]]:
    """(offset, length) in bytes of the runs of set 4 KiB blocks."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], blocks.astype(np.int8), [0]))))
    return [(int(a) * FS_BLOCK, int(b - a) * FS_BLOCK) for a, b in zip(edges[::2], edges[1::2],
                                                                        strict=True)]


def _local_overlay(s: Scenario, inst: Instance, base: Base, fs: HostFs) -> Layer:
    """A new ``disk.local`` or ``disk.swap``: an empty overlay of the local base's size with
    the strategy's options, over a base whose content the model leaves out (the guest never
    writes these disks here, and an empty overlay copies nothing of it)."""
    assert base.size is not None
    img = overlay(base.size, s.strategy_of(inst.vm), BaseData(base.size, []), fs)
    return Layer.new(base.disk_name, img, base.size)


def _copied(inst: Instance, fill: bool, fs: HostFs = "ext4") -> Instance:
    """A file copy of the instance's chain onto a host whose files are on ``fs``: scp writes
    holes out, rsync --sparse keeps them (on XFS, with what its speculative preallocation
    left unwritten between the blocks it wrote: ``sparse_copy``). Neither gives the copy
    QEMU's extent size hint, so QEMU's later writes into it allocate as on ext4.
    A raw file scp wrote whole has every block allocated: a later resize grows it with a hole
    (``qemu-img resize`` of a raw file: measured, a 1 GiB copy resized to 2 GiB kept 1 GiB
    allocated, where counting the whole file as filled said 2 GiB), a discard punches one."""
    layers = [Layer(x.name, copy.deepcopy(x.image), x.written.copy(),
                    x.filled or (fill and not isinstance(x.image, RawImage)),
                    kept=list(x.kept), data=x.data, fs=fs) for x in inst.layers]
    for layer in layers:
        if isinstance(layer.image, RawImage):  # cp's or rsync's file: no hint, on fs
            layer.image.host_fs, layer.image.xfs_hint = fs, 0
            layer.image.requests = []
    if fill:
        for layer in layers:
            if isinstance(layer.image, RawImage):
                layer.image.blocks[:] = True
            elif isinstance(layer.image, Qcow2Image):  # unwritten extents written as zeros
                layer.image.holes.clear()
                layer.image.sparse_meta = None  # and the metadata's holes of an older copy
    if not fill:
        for layer, below in zip(layers, content_below(inst.layers), strict=True):
            layer.sparse_at_copy = sparse_copy(layer, below, fs)
            if isinstance(layer.image, Qcow2Image):
                layer.image.sparse_meta = sparse_meta(layer)
    moved = Instance(inst.vm, inst.image, layers, inst.root_size)
    # each local disk is a file of its own over its base, copied alike
    moved.local = {b: _copied(Instance(inst.vm, None, [x], x.image.virtual_size), fill, fs).top
                   for b, x in inst.local.items()}
    return moved


def _counted_again(h: HostState, on_host: list[Instance]) -> int:
    """Bytes of the host's files counted more than once in its ``allocated_bytes``: the
    extents its reflink copies share with their base (``sim.storage.reflink.counted_again``),
    per base file (the image's ``_base`` entry: clones of one image share its extents)."""
    by_image: dict[str, list[ReflinkCopy]] = {}
    for inst in on_host:
        for layer in inst.layers:
            if isinstance(layer.image, ReflinkCopy) and inst.image is not None:
                by_image.setdefault(inst.image, []).append(layer.image)
    return sum(counted_again(copies, Base(image) in h.caches)
               for image, copies in by_image.items())
