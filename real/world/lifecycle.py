"""Nova's lifecycle, built for real: one directory tree per host, operations with real tools.

Each operation of the expanded timeline (``cowbench.lifecycle``) goes through Nova's state
machine (``cowbench.nova.machine``), which decides what to do; its instructions
(``cowbench.nova.instructions``) are carried out here as Nova's libvirt driver does it
(FACTS.md section 1), with the hosts as directories on this machine:

- boot: unless cached, a qcow2 image is converted from Glance into
  ``_base/<sha1>.converted`` (``qemu-img convert -O raw``, with ``-t none`` where the
  filesystem takes O_DIRECT, else writeback) and renamed; a raw image, or a qcow2 one with
  ``force_raw_images`` off, is downloaded as it is into ``<sha1>.part``, every byte written
  (dense, as Nova's download writes it), and renamed; the disk is made by the VM's strategy
  (``real.storage.strategies``); the base's mtime is touched; a flavor's ephemeral and swap
  disks are qcow2 overlays (``disk.local``, ``disk.swap``) over bases made once per host
  (``qemu-img create -f raw``, then ``mkfs.ext4 -F -L ephemeral0`` or ``mkswap``), copied
  with the instance on a cold migration, made afresh over the destination's bases on a live
  one, and aged by the cache manager as a Glance base;
- snapshot ``live``: a delta overlay with the top's clusters (``qemu-img convert -B``, what
  libvirt's shallow blockRebase copies), flattened with ``qemu-img convert -O qcow2`` into Glance
  (upload bytes = its size), the delta deleted; ``external``: a new qcow2 on top of the chain;
- migrate ``cold``: the instance directory is renamed ``<uuid>_resize`` and its files copied to the
  destination (``ssh``: ``cp --sparse=never --reflink=never``, which writes holes out as scp
  does, never sharing extents on a reflink XFS; ``rsync``: ``rsync --sparse``); ``live``: an
  empty overlay on the destination's base, then only the top overlay's clusters (``qemu-img
  convert -B``); ``flatten``: the whole image (2012 Nova);
- resize (``qemu-img resize``), confirm (the ``_resize`` copy removed), delete;
- the cache manager pass: bases in use get their mtime set to the pass time; unused bases older
  than the minimum age are removed (hashed a last time first, ``real.measure.integrity``).

What each strategy allows besides boot and run is ``cowbench.lifecycle.STRATEGY_OPS``; VMs no
machine here can build (RBD clones) are left out.

Times are logical: the timeline's ``t`` (file mtimes are set from it), so a day of cache aging
runs in seconds; every operation's own wall time is measured as ``duration_s``. Hosts share this
machine; overlays name their backing file relative to their directory (``../_base/<sha1>``,
``real.storage.strategies``), and a copied overlay is re-pointed at the destination's ``_base`` with
``qemu-img rebase -u`` all the same (a header rewrite; on real hosts the path is the same
string).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import singledispatchmethod
from pathlib import Path

from cowbench.lifecycle import Op, nova_machine
from cowbench.nova.instructions import (
    EPHEMERAL_FS,
    EPHEMERAL_LABEL,
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
    Sample,
    SnapshotExternal,
    SnapshotInternal,
    TouchBase,
    UploadSnapshot,
)
from cowbench.nova.machine import Operation
from cowbench.records import Recorder
from cowbench.runseed import run_numbers
from cowbench.scenario import VM, Scenario
from cowbench.timeline_fleet import record_claims
from cowbench.tools import RawLog, qemu_img_info, qemu_img_map, run
from real.measure.extents import tree_space
from real.measure.integrity import Integrity
from real.storage.reflink import collect_cow_reservations, shared_exclusive
from real.storage.strategies import (
    copy_file,
    create_layer,
    create_overlay,
    disk_files,
    overlay_options,
    resized_base,
    size_tag,
)

from .backend import (
    create_disk,
    download,
    fetch_to_cache,
    sync_files,
    synthetic_digest,
)
from .layout import HostLayout, glance_path

EPOCH = 1_000_000_000.0  # logical t=0 as a file mtime


@dataclass
class RealInstance:
    vm: VM
    host: str
    image: str | None  # the image in _base; None once flattened
    layers: list[str]  # file names in the instance directory, bottom to top
    fmt: str
    root_size: int
    #: its local disks (``disk.local``, ``disk.swap``), each over its base in ``_base``
    local: list[Base] = field(default_factory=list)

    def dir(self, layouts: dict[str, HostLayout]) -> Path:
        return layouts[self.host].instance_dir(self.vm)

    def paths(self, layouts: dict[str, HostLayout]) -> list[Path]:
        """The root disk's files, bottom to top."""
        return [self.dir(layouts) / n for n in self.layers]

    def files(self, layouts: dict[str, HostLayout]) -> list[Path]:
        """Every disk file of the instance: the root disk's, then the local disks'."""
        return [*self.paths(layouts), *(self.dir(layouts) / b.disk_name for b in self.local)]


@dataclass
class RealWorld:
    s: Scenario
    work: Path
    layouts: dict[str, HostLayout]
    log: RawLog
    rec: Recorder
    check: Integrity
    sockets: Path  # qemu-nbd's socket directory (real.world.containment)
    progress: Callable[[str], None]
    mnt: Path | None = None  # the reflink XFS the hosts live on, if any
    instances: dict[str, RealInstance] = field(default_factory=dict)
    # per VM, the ``_resize`` copy its cold migration left (one at most: Nova migrates a VM
    # no more until it is confirmed, cowbench.nova.resize)
    resizing: dict[str, Path] = field(default_factory=dict)
    snapshots: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vms = {vm.name: vm for vm in self.s.vms}
        # a scenario without a timeline has one instant: only its end-of-run figures
        self.timed = self.s.timeline is not None
        self.machine = nova_machine(self.s)
        self.started = time.monotonic()  # when the operation being carried out started
        self.fetched = 0  # bytes it fetched from Glance
        self.transfer: int | None = None  # bytes it moved (its transfer_bytes)
        # per workload run (by operation index), the VM's run number (cowbench.runseed)
        self.run_number = run_numbers(self.s)

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
        """The image into the host's ``_base``; its bytes counted as fetched."""
        image = self.s.image(ins.image)
        dest = self.layouts[ins.host].cache_file(image)
        self.progress(f"{ins.host}: caching {image.name} in _base")
        src = glance_path(self.work, image)
        key, raw = f"cache:{ins.host}/{image.name}", self.base_fmt(ins.image) == "raw"
        if raw and image.synthetic is not None:  # its content is known: no need to read it
            self.check.expect(key, dest, synthetic_digest(image),
                              f"images[{self.s.images.index(image)}].synthetic")
        if raw:
            fetch_to_cache(src, image.format, dest, self.log, untrusted=image.path is not None)
        else:  # force_raw_images off: the qcow2 image kept as downloaded
            download(src, dest)
        if not raw or image.synthetic is None:
            self.check.hash_before(key, dest)
        _touch(dest, ins.t)
        self.fetched += src.stat().st_size

    @execute.register
    def _(self, ins: MakeResizedBase) -> None:
        base = self.layouts[ins.host].cache_file(self.s.image(ins.image))
        _touch(resized_base(base, ins.size, self.log), ins.t)

    @execute.register
    def _(self, ins: MakeLocalBase) -> None:
        """An ephemeral or swap base, as Nova's ``_create_ephemeral`` and ``_create_swap``
        make it: ``qemu-img create -f raw`` of its size, then ``mkfs -t ext4 -F -L
        ephemeral0`` (run as ``mkfs.ext4``, which mkfs -t ext4 starts) or ``mkswap``."""
        b = ins.base
        path = self._base_path(ins.host, b)
        self.progress(f"{ins.host}: making {b.name} in _base")
        run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(b.size)], log=self.log,
            label=f"qemu-img-create-{b.name}")
        if b.kind == "ephemeral":
            assert EPHEMERAL_FS == "ext4"  # the one mkfs named here (cowbench/packages.py)
            run(["mkfs.ext4", "-q", "-F", "-L", EPHEMERAL_LABEL, str(path)],
                log=self.log, label=f"mkfs-{b.name}", timeout=3600)
        else:
            run(["mkswap", str(path)], log=self.log, label=f"mkswap-{b.name}")
        _touch(path, ins.t)

    @execute.register
    def _(self, ins: MakeLocalDisk) -> None:
        inst = self.instances[ins.vm]
        self._local_disk(inst, ins.base)
        inst.local.append(ins.base)
        _write_disk_info(inst, self.layouts)

    def _local_disk(self, inst: RealInstance, base: Base) -> None:
        """``disk.local`` or ``disk.swap`` in the instance's directory: a qcow2 overlay of
        the base's size over its host's ``base`` (Nova's Qcow2 backend), as the strategy
        makes overlays."""
        assert base.size is not None
        create_overlay(self.s.strategy_of(inst.vm), self._base_path(inst.host, base),
                       inst.dir(self.layouts) / base.disk_name, base.size, self.log,
                       f"qemu-img-create-{inst.vm.name}-{base.disk_name}")

    @execute.register
    def _(self, ins: TouchBase) -> None:
        _touch(self._base_path(ins.host, ins.base), ins.t)

    @execute.register
    def _(self, ins: RemoveBase) -> None:
        """Hashed a last time first (``real.measure.integrity``), then removed."""
        if not ins.base.resized and not ins.base.is_local:
            key = f"cache:{ins.host}/{ins.base.image}"
            self.check.retire(key, f"{key} (removed at t={ins.t:g} s)")
        self._base_path(ins.host, ins.base).unlink()

    def _base_path(self, host: str, base: Base) -> Path:
        if base.is_local:
            return self.layouts[host].base_dir / base.name
        path = self.layouts[host].cache_file(self.s.image(base.image))
        return path if base.size is None else path.with_name(f"{path.name}_{size_tag(base.size)}")

    def base_fmt(self, image_name: str) -> str:
        image = self.s.image(image_name)
        return "raw" if self.s.nova.force_raw_images or image.format == "raw" else image.format

    def op_done(self, op: Op | Operation, transfer: int | None, started: float) -> None:
        """The operation's own figures (none in a scenario without a timeline)."""
        if not self.timed:
            return
        if transfer is not None:
            self.rec.add(op.entity, "transfer_bytes", transfer, op.t)
        self.rec.add(op.entity, "duration_s", time.monotonic() - started, op.t)

    # -- operations, dispatched by type (cowbench.nova.machine) ------------------------------
    def apply(self, operation: Operation) -> None:
        """Carry out one operation (a workload run goes in a batch, not here)."""
        self.carry_out(operation, self.machine.apply(operation))

    def carry_out(self, operation: Operation, instructions: list[Instruction]) -> None:
        """The machine's instructions for ``operation``, then its own figures (its
        ``duration_s``: the wall time of it all)."""
        self.started, self.fetched, self.transfer = time.monotonic(), 0, None
        for ins in instructions:
            self.execute(ins)
        self.op_done(operation, self.transfer, self.started)

    @execute.register
    def _(self, ins: MakeDisk) -> None:
        vm = self.vms[ins.vm]
        st = self.s.strategy_of(vm)
        path, fmt = create_disk(self.s, vm, self.layouts[ins.host], self.log,
                                self.base_fmt(ins.image))
        self.instances[vm.name] = RealInstance(
            vm, ins.host, ins.image, [p.name for p in disk_files(st, path)], fmt, ins.size)
        self.transfer = self.fetched

    @execute.register
    def _(self, ins: SnapshotInternal) -> None:
        top = self.instances[ins.vm].paths(self.layouts)[-1]
        run(["qemu-img", "snapshot", "-c", ins.name, str(top)], log=self.log,
            label=f"qemu-img-snapshot-{ins.name}")

    @execute.register
    def _(self, ins: SnapshotExternal) -> None:
        inst = self.instances[ins.vm]
        top = inst.paths(self.layouts)[-1]
        older = top.with_name(f"disk.{ins.name}")
        top.rename(older)  # nothing refers to the top, so renaming it breaks no chain
        # without opening the chain below (a deep one took seconds a layer), at the size the
        # old top has (root_size, kept by GrowDisk); the model's layer has the strategy's
        # cluster size and nothing else of it (sim.world.timeline), so this one too
        create_layer(older, top, inst.root_size,
                     f"cluster_size={self.s.strategy_of(inst.vm).cluster_size}", self.log,
                     f"qemu-img-create-{ins.name}", inst.fmt)
        inst.layers = [*inst.layers[:-1], older.name, "disk"]
        inst.fmt = "qcow2"

    @execute.register
    def _(self, ins: UploadSnapshot) -> None:
        """A delta of the top's clusters (libvirt's shallow blockRebase), flattened into
        Glance; the upload's bytes are its size."""
        inst = self.instances[ins.vm]
        top = inst.paths(self.layouts)[-1]
        out = self.work / "glance" / "snapshots" / f"{ins.name}.{ins.fmt}"
        out.parent.mkdir(parents=True, exist_ok=True)
        delta = top.with_name(f"{ins.name}.delta")
        backing = self._backing_of(top)
        if backing is not None and inst.fmt == "qcow2":
            path, fmt = backing
            run(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-B", path, "-F", fmt,
                 "-o", f"cluster_size={self.s.strategy_of(inst.vm).cluster_size}", str(top),
                 str(delta)],
                log=self.log, label=f"snapshot-delta-{ins.name}", timeout=3600)
            src, src_fmt = delta, "qcow2"
        else:
            src, src_fmt = top, inst.fmt
        run(["qemu-img", "convert", "-f", src_fmt, "-O", ins.fmt, str(src), str(out)],
            log=self.log, label=f"snapshot-flatten-{ins.name}", timeout=3600)
        delta.unlink(missing_ok=True)
        self.snapshots[ins.name] = out
        self.transfer = out.stat().st_size

    @execute.register
    def _(self, ins: FlattenCopy) -> None:
        inst, dest, src_dir, dest_dir = self._leaving(ins.vm, ins.dst)
        flat = dest_dir / "disk"
        run(["qemu-img", "convert", "-f", inst.fmt, "-O", "qcow2", str(src_dir / "disk"),
             str(flat)], log=self.log, label=f"flatten-{ins.vm}", timeout=3600)
        dest.image, dest.fmt = None, "qcow2"
        self._arrived(dest, flat.stat().st_size)

    @execute.register
    def _(self, ins: BlockCopy) -> None:
        inst, dest, src_dir, dest_dir = self._leaving(ins.vm, ins.dst)
        assert ins.backing is not None, "check_timeline: block migration of overlays only"
        backing = self._base_file(ins.dst, ins.backing)
        moved = self._live_copy(inst, backing, src_dir, dest_dir)
        # Nova makes the local disks on the destination over its bases before the mirror
        # starts; the guest's workloads never write them, so no cluster of theirs moves
        for b in inst.local:
            self._local_disk(dest, b)
        dest.local = list(inst.local)
        self._arrived(dest, moved)

    @execute.register
    def _(self, ins: CopyFiles) -> None:
        inst, dest, src_dir, dest_dir = self._leaving(ins.vm, ins.dst)
        transfer = self._copy_files(inst, src_dir, dest_dir, ins.transport)
        below = None if ins.backing is None else self._base_file(ins.dst, ins.backing)
        self._repoint(inst, below, dest_dir)
        dest.layers = list(inst.layers)
        for b in inst.local:  # each a file of its own over its base: re-pointed alike
            self._repoint_file(dest_dir / b.disk_name, self._base_file(ins.dst, b), dest_dir)
        dest.local = list(inst.local)
        self._arrived(dest, transfer)

    def _leaving(self, vm: str, dst: str) -> tuple[RealInstance, RealInstance, Path, Path]:
        """The VM's instance, the one it becomes on ``dst`` and both directories (the
        destination's made)."""
        inst = self.instances[vm]
        dest = RealInstance(inst.vm, dst, inst.image, ["disk"], inst.fmt, inst.root_size)
        dest_dir = dest.dir(self.layouts)
        dest_dir.mkdir(parents=True)
        return inst, dest, inst.dir(self.layouts), dest_dir

    def _arrived(self, dest: RealInstance, transfer: int) -> None:
        _write_disk_info(dest, self.layouts)
        self.instances[dest.vm.name] = dest
        self.transfer = transfer

    @execute.register
    def _(self, ins: KeepResize) -> None:
        src_dir = self.layouts[ins.host].instance_dir(self.vms[ins.vm])
        keep = src_dir.with_name(src_dir.name + "_resize")
        src_dir.rename(keep)
        self.resizing[ins.vm] = keep

    @execute.register
    def _(self, ins: RemoveResize) -> None:
        shutil.rmtree(self.resizing.pop(ins.vm))

    @execute.register
    def _(self, ins: RemoveInstance) -> None:
        shutil.rmtree(self.layouts[ins.host].instance_dir(self.vms[ins.vm]))
        if self.instances[ins.vm].host == ins.host:
            del self.instances[ins.vm]

    def _live_copy(self, inst: RealInstance, backing_file: tuple[Path, str], src_dir: Path,
                   dest_dir: Path) -> int:
        top = src_dir / "disk"
        moved = sum(int(e["length"]) for e in qemu_img_map(top, inst.fmt, log=self.log)
                    if e.get("depth") == 0 and e.get("data"))
        backing, fmt = backing_file
        # the destination's disk is made as every disk of the strategy is (extended_l2 ...)
        run(["qemu-img", "convert", "-f", inst.fmt, "-O", "qcow2", "-B",
             os.path.relpath(backing, dest_dir), "-F", fmt, "-o",
             overlay_options(self.s.strategy_of(inst.vm), None),
             str(top), str(dest_dir / "disk")], log=self.log, label="live-migrate", timeout=3600)
        return moved

    def _base_file(self, host: str, base: Base) -> tuple[Path, str]:
        """``host``'s file of ``base`` and its format (a resized copy: raw, whatever the
        base)."""
        raw = base.resized or base.is_local
        return self._base_path(host, base), "raw" if raw else self.base_fmt(base.image)

    def _copy_files(self, inst: RealInstance, src_dir: Path, dest_dir: Path,
                    transport: str) -> int:
        transfer = 0
        for name in [*inst.layers, *(b.disk_name for b in inst.local)]:
            src = src_dir / name
            transfer += src.stat().st_size
            if transport == "rsync":
                run(["rsync", "--sparse", str(src), str(dest_dir / name)], log=self.log,
                    label="rsync")
            else:
                copy_file(src, dest_dir / name, False, self.log, "scp-copy")
        return transfer

    def _repoint(self, inst: RealInstance, base: tuple[Path, str] | None,
                 dest_dir: Path) -> None:
        """Re-point copied files at the destination's ``base`` (None: the bottom names none)
        and at their copied lower layers."""
        for i, name in enumerate(inst.layers):
            if i == 0 and base is None:
                continue
            if i == 0:
                assert base is not None
                backing, fmt = base
            else:
                backing, fmt = dest_dir / inst.layers[i - 1], "qcow2"
            self._repoint_file(dest_dir / name, (backing, fmt), dest_dir)

    def _repoint_file(self, path: Path, base: tuple[Path, str], dest_dir: Path) -> None:
        """Re-point one copied qcow2 file at ``base`` (path, format), named relative to
        ``dest_dir``, unless it names it already."""
        backing, fmt = base
        rel = os.path.relpath(backing, dest_dir)  # as real.storage.strategies names backings
        if self._backing_of(path) == (rel, fmt):
            # already so (a host's layout mirrors the others'), as Nova's copies are: a
            # rebase would rewrite the header's whole cluster, allocating the holes
            # rsync --sparse left in it, which no real migration does
            return
        run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", rel, "-F", fmt, str(path)],
            log=self.log, label="rebase-unsafe")

    def _backing_of(self, path: Path) -> tuple[str, str] | None:
        info = qemu_img_info(path, log=self.log)
        # as written in the header: relative to the overlay's directory
        # (real.storage.strategies), so it names the same file for a delta made beside it
        name = info.get("backing-filename")
        if not name:
            return None
        return str(name), str(info.get("backing-filename-format", "raw"))

    @execute.register
    def _(self, ins: GrowDisk) -> None:
        inst = self.instances[ins.vm]
        run(["qemu-img", "resize", "-q", "-f", inst.fmt, str(inst.paths(self.layouts)[-1]),
             str(ins.size)], log=self.log, label=f"qemu-img-resize-{ins.vm}")
        inst.root_size = ins.size

    @execute.register
    def _(self, ins: Sample) -> None:
        """Every figure at ``t`` (``None``: the end, with data clusters from ``qemu-img check``
        and a reflink copy's shared and exclusive bytes)."""
        t = ins.t
        if self.mnt is not None:
            collect_cow_reservations(self.mnt, self.log)
        # delayed allocation settles: st_blocks then counts what the copy allocated
        sync_files(*(lay.root for lay in self.layouts.values()), *self.snapshots.values())
        rec = self.rec
        self._sample_hosts(t)
        record_claims(self.s, rec, self.machine, t)  # a fleet's figures, if it is one
        for name, inst in self.instances.items():
            alloc = size = 0
            for p in inst.files(self.layouts):
                st = p.stat()
                alloc += st.st_blocks * 512
                size += st.st_size
            rec.add(f"vm:{name}", "allocated_bytes", alloc, t)
            rec.add(f"vm:{name}", "file_bytes", size, t)
        if t is None:
            self._end_figures()
        for name, path in self.snapshots.items():
            st = path.stat()
            rec.add(f"snapshot:{name}", "allocated_bytes", st.st_blocks * 512, t)
            rec.add(f"snapshot:{name}", "file_bytes", st.st_size, t)

    def _sample_hosts(self, t: float | None) -> None:
        """Every host's ``_base`` and instance tree at ``t``: the tree's ``allocated_bytes``
        (every file's st_blocks, a reflink clone's shared extents counted in each) and its
        ``used_bytes`` (FIEMAP: shared extents counted once, ``real.measure.extents``)."""
        for host, layout in self.layouts.items():
            if self.timed or layout.base_dir.exists():  # as the plain VMs always recorded it
                alloc, size = _tree(layout.base_dir)
                self.rec.add(f"cache:{host}", "allocated_bytes", alloc, t)
                self.rec.add(f"cache:{host}", "file_bytes", size, t)
            alloc, used, _ = tree_space(layout.instances)
            self.rec.add(f"host:{host}", "allocated_bytes", alloc, t)
            self.rec.add(f"host:{host}", "used_bytes", used, t)

    def _end_figures(self) -> None:
        """Each VM's data clusters (every ``qemu-img check`` at once) and a reflink copy's shared
        and exclusive bytes."""
        tops = {n: i.paths(self.layouts)[-1] for n, i in self.instances.items()}
        qcow2 = [n for n, i in self.instances.items() if i.fmt == "qcow2"]
        outs = self.check.check_all([(f"vm:{n}", tops[n], "qcow2", False) for n in qcow2])
        for name, out in zip(qcow2, outs, strict=True):
            self.rec.add(f"vm:{name}", "data_clusters", out.get("allocated-clusters", 0))
        for name, inst in self.instances.items():
            if self.s.strategy_of(inst.vm).kind == "reflink_copy":
                shared, exclusive = shared_exclusive(tops[name], self.log)
                self.rec.add(f"vm:{name}", "shared_bytes", shared)
                self.rec.add(f"vm:{name}", "exclusive_bytes", exclusive)


def _write_disk_info(inst: RealInstance, layouts: dict[str, HostLayout]) -> None:
    """The instance's ``disk.info``: each disk file's path (as the kernel names it) and format
    (Nova's: the root disk's, ``disk.local`` and ``disk.swap`` qcow2)."""
    d = inst.dir(layouts)
    info = {os.path.realpath(d / "disk"): inst.fmt,
            **{os.path.realpath(d / b.disk_name): "qcow2" for b in inst.local}}
    (d / "disk.info").write_text(json.dumps(info))


def _touch(path: Path, t: float) -> None:
    os.utime(path, (EPOCH + t, EPOCH + t))


def _tree(root: Path) -> tuple[int, int]:
    alloc = size = 0
    if not root.exists():
        return 0, 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = (Path(dirpath) / f).stat()
            alloc += st.st_blocks * 512
            size += st.st_size
    return alloc, size
