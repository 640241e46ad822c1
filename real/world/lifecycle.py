"""Nova's lifecycle, built for real: one directory tree per host, operations with real tools.

Each operation of the expanded timeline (``cowbench.lifecycle``) is carried out as Nova's libvirt
driver does it (FACTS.md section 1), with the hosts as directories on this machine:

- boot: the image is fetched into ``_base/<sha1>.part``, converted to raw (``qemu-img convert
  -t none -O raw``) into ``<sha1>.converted`` and renamed, unless cached; the disk is made by the
  strategy; the base's mtime is touched;
- snapshot ``live``: a delta overlay with the top's clusters (``qemu-img convert -B``, what
  libvirt's shallow blockRebase copies), flattened with ``qemu-img convert -O qcow2`` into Glance
  (upload bytes = its size), the delta deleted; ``external``: a new qcow2 on top of the chain;
- migrate ``cold``: the instance directory is renamed ``<uuid>_resize`` and its files copied to the
  destination (``ssh``: ``cp --sparse=never``, which writes holes out as scp does; ``rsync``:
  ``rsync --sparse``); ``live``: an empty overlay on the destination's base, then only the top
  overlay's clusters (``qemu-img convert -B``); ``flatten``: the whole image (2012 Nova);
- resize (``qemu-img resize``), confirm (the ``_resize`` copy removed), delete;
- the cache manager pass: bases in use get their mtime set to the pass time; unused bases older
  than the minimum age are removed.

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
from pathlib import Path

from cowbench.lifecycle import Op, batches, schedule
from cowbench.nova.imagecache import cache_pass
from cowbench.records import Recorder
from cowbench.scenario import VM, Scenario
from cowbench.tools import RawLog, convert_limits, qemu_img_map, run
from cowbench.units import format_duration
from real.measure.integrity import Integrity

from .backend import create_disk, record_fio, run_workloads, sync_files, write_images
from .layout import HostLayout, glance_path

EPOCH = 1_000_000_000.0  # logical t=0 as a file mtime


@dataclass
class RealInstance:
    vm: VM
    host: str
    image: str | None
    layers: list[str]  # file names in the instance directory, bottom to top
    fmt: str
    root_size: int

    def dir(self, layouts: dict[str, HostLayout]) -> Path:
        return layouts[self.host].instance_dir(self.vm)

    def paths(self, layouts: dict[str, HostLayout]) -> list[Path]:
        return [self.dir(layouts) / n for n in self.layers]


@dataclass
class RealWorld:
    s: Scenario
    work: Path
    layouts: dict[str, HostLayout]
    log: RawLog
    rec: Recorder
    check: Integrity
    sockets: Path  # qemu-nbd's socket directory (real.world.containment)
    instances: dict[str, RealInstance] = field(default_factory=dict)
    resizing: dict[str, tuple[str, Path]] = field(default_factory=dict)
    snapshots: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vms = {vm.name: vm for vm in self.s.vms}

    # -- the image cache ------------------------------------------------------------------
    def ensure_base(self, host: str, image_name: str, t: float) -> int:
        from .backend import keep_mode

        image = self.s.image(image_name)
        dest = self.layouts[host].cache_file(image)
        if dest.exists():
            _touch(dest, t)
            return 0
        src = glance_path(self.work, image)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, part)  # the download from Glance
        keep_mode(src, part)
        fetched = part.stat().st_size
        if self.s.nova.force_raw_images and image.format != "raw":
            conv = dest.with_name(dest.name + ".converted")
            limits = convert_limits(fetched) if image.path is not None else None
            run(["qemu-img", "convert", "-t", "none", "-O", "raw", "-f", image.format,
                 str(part), str(conv)], log=self.log, label="qemu-img-convert-fetch",
                timeout=3600, preexec_fn=limits)
            keep_mode(src, conv)
            part.unlink()
            conv.rename(dest)
        elif image.format == "raw":
            run(["cp", "--sparse=always", str(part), str(dest)], log=self.log, label="cp-fetch")
            keep_mode(src, dest)
            part.unlink()
        else:
            part.rename(dest)
        _touch(dest, t)
        return fetched

    def base_fmt(self, image_name: str) -> str:
        image = self.s.image(image_name)
        return "raw" if self.s.nova.force_raw_images or image.format == "raw" else image.format

    def cache_pass(self, t: float) -> None:
        ic = self.s.nova.image_cache
        for host, layout in self.layouts.items():
            if not layout.base_dir.exists():
                continue
            used = {i.image for i in self.instances.values() if i.host == host}
            used |= {self.s.vms[[v.name for v in self.s.vms].index(vm)].image
                     for vm, (h, _) in self.resizing.items() if h == host}
            by_file = {layout.cache_file(self.s.image(n)).name: n for n in
                       {img.name for img in self.s.images}}
            files = sorted(layout.base_dir.iterdir())
            in_use = [by_file.get(f.name) in used for f in files]
            _, removed = cache_pass(t, in_use, [f.stat().st_mtime - EPOCH for f in files], ic)
            for f, touch, gone in zip(files, in_use, removed.tolist(), strict=True):
                if touch:
                    _touch(f, t)
                elif gone:
                    f.unlink()

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, t: float | None) -> None:
        # delayed allocation settles: st_blocks then counts what the copy allocated
        sync_files(*(lay.root for lay in self.layouts.values()), *self.snapshots.values())
        for host, layout in self.layouts.items():
            alloc, size = _tree(layout.base_dir)
            self.rec.add(f"cache:{host}", "allocated_bytes", alloc, t)
            self.rec.add(f"cache:{host}", "file_bytes", size, t)
            self.rec.add(f"host:{host}", "allocated_bytes", _tree(layout.instances)[0], t)
        for name, inst in self.instances.items():
            alloc = size = 0
            for p in inst.paths(self.layouts):
                st = p.stat()
                alloc += st.st_blocks * 512
                size += st.st_size
            self.rec.add(f"vm:{name}", "allocated_bytes", alloc, t)
            self.rec.add(f"vm:{name}", "file_bytes", size, t)
            if t is None and inst.fmt == "qcow2":
                out = self.check.check(f"vm:{name}", inst.paths(self.layouts)[-1], "qcow2")
                self.rec.add(f"vm:{name}", "data_clusters", out.get("allocated-clusters", 0))
        for name, path in self.snapshots.items():
            st = path.stat()
            self.rec.add(f"snapshot:{name}", "allocated_bytes", st.st_blocks * 512, t)
            self.rec.add(f"snapshot:{name}", "file_bytes", st.st_size, t)

    def op_done(self, op: Op, transfer: int | None, started: float) -> None:
        if transfer is not None:
            self.rec.add(op.entity, "transfer_bytes", transfer, op.t)
        self.rec.add(op.entity, "duration_s", time.monotonic() - started, op.t)

    # -- operations -------------------------------------------------------------------------
    def boot(self, op: Op) -> None:
        t0 = time.monotonic()
        vm = self.vms[op.vm]
        host = op.to or self.s.host_of(vm).name  # the scheduler's choice for arrivals
        fetched = self.ensure_base(host, vm.image, op.t)
        _, fmt = create_disk(self.s, vm, self.layouts[host], self.log)
        self.instances[vm.name] = RealInstance(vm, host, vm.image, ["disk"], fmt,
                                               self.s.root_size(vm))
        self.op_done(op, fetched, t0)

    def snapshot(self, op: Op) -> None:
        t0 = time.monotonic()
        inst = self.instances[op.vm]
        name = op.name or f"{op.vm}-snap-{op.index}"
        top = inst.paths(self.layouts)[-1]
        if op.kind == "internal":
            run(["qemu-img", "snapshot", "-c", name, str(top)], log=self.log,
                label=f"qemu-img-snapshot-{name}")
            self.op_done(op, None, t0)
            return
        if op.kind == "external":
            older = top.with_name(f"disk.{name}")
            top.rename(older)  # nothing refers to the top, so renaming it breaks no chain
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                 f"backing_file={older.name},backing_fmt={inst.fmt},"
                 f"cluster_size={self.s.strategy.cluster_size}", str(top),
                 str(inst.root_size)], log=self.log, label=f"qemu-img-create-{name}")
            inst.layers = [*inst.layers[:-1], older.name, "disk"]
            inst.fmt = "qcow2"
            self.op_done(op, None, t0)
            return
        out = self.work / "glance" / "snapshots" / f"{name}.{self.s.nova.snapshot_image_format}"
        out.parent.mkdir(parents=True, exist_ok=True)
        delta = top.with_name(f"{name}.delta")
        backing = self._backing_of(top)
        if backing is not None and inst.fmt == "qcow2":
            path, fmt = backing
            run(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-B", path, "-F", fmt,
                 "-o", f"cluster_size={self.s.strategy.cluster_size}", str(top), str(delta)],
                log=self.log, label=f"snapshot-delta-{name}", timeout=3600)
            src, src_fmt = delta, "qcow2"
        else:
            src, src_fmt = top, inst.fmt
        run(["qemu-img", "convert", "-f", src_fmt, "-O", self.s.nova.snapshot_image_format,
             str(src), str(out)], log=self.log, label=f"snapshot-flatten-{name}", timeout=3600)
        delta.unlink(missing_ok=True)
        self.snapshots[name] = out
        self.op_done(op, out.stat().st_size, t0)

    def migrate(self, op: Op) -> None:
        t0 = time.monotonic()
        assert op.to is not None
        inst = self.instances[op.vm]
        src_dir = inst.dir(self.layouts)
        dest = RealInstance(inst.vm, op.to, inst.image, ["disk"], inst.fmt, inst.root_size)
        dest_dir = dest.dir(self.layouts)
        dest_dir.mkdir(parents=True)
        if op.kind == "flatten":
            flat = dest_dir / "disk"
            run(["qemu-img", "convert", "-f", inst.fmt, "-O", "qcow2", str(src_dir / "disk"),
                 str(flat)], log=self.log, label=f"flatten-{op.vm}", timeout=3600)
            dest.image, dest.fmt = None, "qcow2"
            transfer = flat.stat().st_size
            self._keep_resize(inst, src_dir)
        elif op.kind == "live":
            assert inst.image is not None
            self.ensure_base(op.to, inst.image, op.t)
            transfer = self._live_copy(inst, src_dir, dest_dir)
            shutil.rmtree(src_dir)
        else:
            assert inst.image is not None
            self.ensure_base(op.to, inst.image, op.t)
            transfer = self._copy_files(inst, src_dir, dest_dir)
            dest.layers = list(inst.layers)
            self._keep_resize(inst, src_dir)
        info = {os.path.realpath(dest_dir / "disk"): dest.fmt}  # as the kernel names it
        (dest_dir / "disk.info").write_text(json.dumps(info))
        self.instances[op.vm] = dest
        self.op_done(op, transfer, t0)

    def _keep_resize(self, inst: RealInstance, src_dir: Path) -> None:
        keep = src_dir.with_name(src_dir.name + "_resize")
        src_dir.rename(keep)
        self.resizing[inst.vm.name] = (inst.host, keep)

    def _live_copy(self, inst: RealInstance, src_dir: Path, dest_dir: Path) -> int:
        top = src_dir / "disk"
        moved = sum(int(e["length"]) for e in qemu_img_map(top, inst.fmt, log=self.log)
                    if e.get("depth") == 0 and e.get("data"))
        assert inst.image is not None
        base_file = self.layouts[self._host_of(dest_dir)].cache_file(self.s.image(inst.image))
        run(["qemu-img", "convert", "-f", inst.fmt, "-O", "qcow2", "-B",
             os.path.relpath(base_file, dest_dir), "-F",
             self.base_fmt(inst.image), "-o", f"cluster_size={self.s.strategy.cluster_size}",
             str(top), str(dest_dir / "disk")], log=self.log, label="live-migrate", timeout=3600)
        return moved

    def _host_of(self, path: Path) -> str:
        return next(h for h, lay in self.layouts.items() if lay.instances in path.parents)

    def _copy_files(self, inst: RealInstance, src_dir: Path, dest_dir: Path) -> int:
        transfer = 0
        for name in inst.layers:
            src = src_dir / name
            transfer += src.stat().st_size
            if self.s.nova.remote_filesystem_transport == "rsync":
                run(["rsync", "--sparse", str(src), str(dest_dir / name)], log=self.log,
                    label="rsync")
            else:
                run(["cp", "--sparse=never", str(src), str(dest_dir / name)], log=self.log,
                    label="scp-copy")
        self._repoint(inst, dest_dir)
        return transfer

    def _repoint(self, inst: RealInstance, dest_dir: Path) -> None:
        """Re-point copied files at the destination's base and at their copied lower layers."""
        host = self._host_of(dest_dir)
        for i, name in enumerate(inst.layers):
            if inst.fmt != "qcow2" and i == 0:
                continue
            if i == 0:
                if inst.image is None:
                    continue
                backing = self.layouts[host].cache_file(self.s.image(inst.image))
                fmt = self.base_fmt(inst.image)
            else:
                backing, fmt = dest_dir / inst.layers[i - 1], "qcow2"
            rel = os.path.relpath(backing, dest_dir)  # as real.storage.strategies names backings
            run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", rel, "-F", fmt,
                 str(dest_dir / name)], log=self.log, label="rebase-unsafe")

    def _backing_of(self, path: Path) -> tuple[str, str] | None:
        from cowbench.tools import qemu_img_info

        info = qemu_img_info(path, log=self.log)
        # as written in the header: relative to the overlay's directory
        # (real.storage.strategies), so it names the same file for a delta made beside it
        name = info.get("backing-filename")
        if not name:
            return None
        return str(name), str(info.get("backing-filename-format", "raw"))

    def resize(self, op: Op) -> None:
        t0 = time.monotonic()
        inst = self.instances[op.vm]
        assert op.root_size is not None
        run(["qemu-img", "resize", "-q", "-f", inst.fmt, str(inst.paths(self.layouts)[-1]),
             str(op.root_size)], log=self.log, label=f"qemu-img-resize-{op.vm}")
        inst.root_size = op.root_size
        self.op_done(op, None, t0)

    def confirm(self, op: Op) -> None:
        t0 = time.monotonic()
        kept = self.resizing.pop(op.vm, None)
        if kept is not None:
            shutil.rmtree(kept[1])
        self.op_done(op, None, t0)

    def delete(self, op: Op) -> None:
        t0 = time.monotonic()
        inst = self.instances.pop(op.vm)
        shutil.rmtree(inst.dir(self.layouts))
        kept = self.resizing.pop(op.vm, None)
        if kept is not None:
            shutil.rmtree(kept[1])
        self.op_done(op, None, t0)


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



def execute_timeline(s: Scenario, work: Path, log: RawLog, roots: dict[str, Path],
                     rec: Recorder, progress: Callable[[str], None], check: Integrity,
                     sockets: Path) -> None:
    """Carry out the scenario's whole timeline on this machine, recording as it goes; every
    VM's disk gets ``qemu-img check`` at the end (``check`` fails the run on damage)."""
    write_images(s, work, log, rec, progress, check)
    check.settle()  # no hashing beside the timeline's workloads
    world = RealWorld(s, work, {h: HostLayout(r) for h, r in roots.items()}, log, rec, check,
                      sockets)
    for t, kind, ops in schedule(s):
        if kind == "pass":
            world.cache_pass(t)
        for is_run, batch in batches(ops):
            if is_run:
                _run_batch(world, batch, progress)
            else:
                for op in batch:
                    progress(f"t={format_duration(t)}: {op.op} {op.vm}")
                    getattr(world, op.op)(op)
        world.sample(t)
    world.sample(None)


def _run_batch(world: RealWorld, ops: list[Op], progress: Callable[[str], None]) -> None:
    s = world.s
    jobs = []
    for op in ops:
        inst = world.instances[op.vm]
        wl = s.workloads[op.workload or str(inst.vm.workload)]
        jobs.append((inst.vm, wl, inst.paths(world.layouts)[-1], inst.fmt))
    t0 = time.monotonic()
    results, host_io = run_workloads(s, jobs, world.log, progress, world.sockets)
    for op, (vm, wl, _, _) in zip(ops, jobs, strict=True):
        record_fio(world.rec, f"vm:{vm.name}", wl, results[vm.name], host_io[vm.name], op.t)
        world.op_done(op, None, t0)
