"""The real backend: the scenario built on this machine with qemu-img, qemu-nbd and fio.

``execute(scenario, work, log)`` writes each image as uploaded to Glance, converts it into each
host's ``_base`` as Nova does (``qemu-img convert -t none -O raw``), makes every VM's root disk by
the strategy (a qcow2 overlay ``-b <base> -F raw`` of the VM's root size, or a sparse copy resized
to it), exports each disk with its own qemu-nbd, runs one fio per VM concurrently, and measures:
file sizes and allocation (``os.stat``), data clusters (``qemu-img check``), host I/O of each
qemu-nbd (``/proc/PID/io``) and guest I/O (fio JSON); then checks every qcow2 image and that no
base changed (``real.measure.integrity``). Whatever it starts it stops and whatever it creates it
removes (unless a completed run sets ``real.keep_images``), on success, failure or interrupt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from cowbench.errors import UsageError
from cowbench.records import Recorder
from cowbench.resolve import resolve
from cowbench.scenario import VM, Image, Scenario, Workload
from cowbench.signals import shielded
from cowbench.tools import RawLog, require_tools, run
from real.measure.integrity import Integrity
from real.storage.reflink import collect_cow_reservations, shared_exclusive, xfs_mount
from real.storage.strategies import make_root_disk, vm_files
from real.workload.fio import FioResult, FioRun
from real.workload.nbd import NbdExport, stop_servers_in

from .containment import WorkTrees
from .layout import HostLayout, glance_path

Progress = Callable[[str], None]
WRITE_CHUNK = 64 << 20
_PROC_IO_KEYS = ("read_bytes", "write_bytes")


def _quiet(_: str) -> None:
    pass


def _pattern(image: Image, index: int) -> int:
    """A deterministic, non-zero fill byte per image extent (zeros would be skipped as holes)."""
    return 1 + (sum(image.name.encode()) * 31 + index * 17) % 255


def _supports_o_direct(directory: Path) -> bool:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".odirect-")
    os.close(fd)
    try:
        os.close(os.open(name, os.O_RDONLY | getattr(os, "O_DIRECT", 0)))
        return True
    except OSError:
        return False
    finally:
        os.unlink(name)


def write_synthetic(image: Image, path: Path, log: RawLog) -> None:
    """Create ``path`` in the image's format and fill its data extents with qemu-io."""
    assert image.synthetic is not None and image.virtual_size is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["qemu-img", "create", "-q", "-f", image.format, str(path), str(image.virtual_size)],
        log=log, label=f"qemu-img-create-{image.name}")
    cmds: list[str] = []
    for i, (off, length) in enumerate(image.data_extents()):
        pat = _pattern(image, i)
        for start in range(off, off + length, WRITE_CHUNK):
            n = min(WRITE_CHUNK, off + length - start)
            cmds += ["-c", f"write -q -P {pat} {start} {n}"]
    run(["qemu-io", "-f", image.format, *cmds, str(path)], log=log,
        label=f"qemu-io-fill-{image.name}", timeout=3600)


def fetch_to_cache(src: Path, fmt: str, dest: Path, log: RawLog) -> None:
    """Nova's fetch_to_raw: convert into ``<sha1>.converted``, then rename into place.

    A convert that fails or is interrupted leaves no partial ``.converted`` behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".converted")
    cache_mode = "none" if _supports_o_direct(dest.parent) else "writeback"
    try:
        run(["qemu-img", "convert", "-t", cache_mode, "-O", "raw", "-f", fmt, str(src),
             str(tmp)], log=log, label="qemu-img-convert-to-base", timeout=3600)
        tmp.rename(dest)
    except BaseException:
        with shielded():
            tmp.unlink(missing_ok=True)
        raise


def create_disk(scenario: Scenario, vm: VM, layout: HostLayout, log: RawLog) -> tuple[Path, str]:
    image = scenario.image(vm.image)
    base = layout.cache_file(image)
    disk = layout.disk(vm)
    disk.parent.mkdir(parents=True, exist_ok=True)
    fmt = make_root_disk(scenario.strategy_of(vm), base, disk, scenario.root_size(vm), log,
                         vm.name)
    (disk.parent / "disk.info").write_text(json.dumps({str(disk): fmt}))
    return disk, fmt


def real_vms(scenario: Scenario) -> list[VM]:
    """The VMs this machine can build (Ceph RBD clones are model only)."""
    return [vm for vm in scenario.vms if not scenario.model_only(vm)]


def _allocated(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_blocks * 512, st.st_size


def _tree_allocated(root: Path) -> tuple[int, int]:
    alloc = size = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            a, s = _allocated(Path(dirpath) / f)
            alloc += a
            size += s
    return alloc, size


def execute(scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
            progress: Progress = _quiet, seed: int | None = None, step_done: Progress = _quiet,
            integrity: Integrity | None = None) -> pd.DataFrame:
    """Build and run the scenario for real; return the measured records (backend ``real``).

    ``step_done`` is told each step as it completes (``real:images``, ``real:bases``,
    ``real:disks``, ``real:workloads``, ``real:measure``, ``real:integrity``). ``integrity``
    collects the checks and checksums (see ``real.measure.integrity``); a damaged image or a changed
    base raises :class:`~real.measure.integrity.IntegrityError` once everything is measured.

    Every directory written into is one this call created (``real.world.containment``); all of them
    are removed at the end unless the run completed and ``real.keep_images`` is set: a failed
    or interrupted run never leaves a half-built tree.
    """
    require_tools()
    _reinspect(scenario)
    rec = Recorder("real", scenario.seed if seed is None else seed)
    check = integrity if integrity is not None else Integrity(log)
    trees = WorkTrees(work, run_id)
    finished = False
    with ExitStack() as stack:
        try:
            roots = trees.create(scenario)
            mnt = None
            if any(scenario.strategy_of(vm).kind == "reflink_copy" for vm in real_vms(scenario)):
                # the hosts live on a loop-mounted reflink XFS inside the work directory
                mnt = stack.enter_context(xfs_mount(work, _reflink_fs_size(scenario), log))
                roots = {h: mnt / "hosts" / h for h in roots}
            _execute(scenario, work, log, roots, rec, progress, step_done, check, mnt)
            finished = True
        finally:
            if not (finished and scenario.real.keep_images):
                trees.remove()
    return rec.frame()


def _reflink_fs_size(scenario: Scenario) -> int:
    """A sparse image roomy enough: every base and every disk fully written, twice, >= 2 GiB."""
    need = sum(img.virtual_size or 0 for img in scenario.images) * len(scenario.hosts)
    need += sum(scenario.root_size(vm) for vm in scenario.vms)
    return max(2 << 30, 2 * need)


def write_images(scenario: Scenario, work: Path, log: RawLog, rec: Recorder,
                 progress: Progress, check: Integrity) -> None:
    """Write every synthetic image the VMs use, as uploaded to Glance; record its size and
    checksum it (an image must never change)."""
    used = {vm.image for vm in real_vms(scenario)}
    for image in scenario.images:
        if image.name not in used:
            continue
        path = glance_path(work, image)
        if image.synthetic is not None:
            progress(f"writing image {image.name}")
            write_synthetic(image, path, log)
            alloc, size = _allocated(path)
            rec.add(f"image:{image.name}", "allocated_bytes", alloc)
            rec.add(f"image:{image.name}", "file_bytes", size)
        check.hash_before(f"image:{image.name}", path)


def check_images(scenario: Scenario, work: Path, check: Integrity) -> None:
    """``qemu-img check`` every qcow2 image used, compare every checksum, fail if damaged."""
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.format == "qcow2":
            check.check(f"image:{image.name}", glance_path(work, image),
                        untrusted=image.path is not None)
    check.hash_after()
    check.raise_if_bad()


def _execute(scenario: Scenario, work: Path, log: RawLog, roots: dict[str, Path],
             rec: Recorder, progress: Progress, step_done: Progress, check: Integrity,
             mnt: Path | None = None) -> None:
    if scenario.timeline is not None:
        from .lifecycle import execute_timeline

        execute_timeline(scenario, work, log, roots, rec, progress, check)
        step_done("real:timeline")
        check_images(scenario, work, check)
        step_done("real:integrity")
        return
    write_images(scenario, work, log, rec, progress, check)
    step_done("real:images")
    layouts = {name: HostLayout(root) for name, root in roots.items()}
    disks: dict[str, tuple[Path, str]] = {}
    for host in scenario.hosts:
        layout = layouts[host.name]
        for name in sorted({vm.image for vm in _vms_on(scenario, host.name)}):
            image = scenario.image(name)
            progress(f"{host.name}: caching {name} in _base")
            fetch_to_cache(glance_path(work, image), image.format, layout.cache_file(image), log)
            check.hash_before(f"cache:{host.name}/{name}", layout.cache_file(image))
    step_done("real:bases")
    for host in scenario.hosts:
        for vm in _vms_on(scenario, host.name):
            disks[vm.name] = create_disk(scenario, vm, layouts[host.name], log)
    step_done("real:disks")
    jobs = [(vm, wl, *disks[vm.name]) for vm in real_vms(scenario)
            if (wl := scenario.workload_of(vm)) is not None]
    results, host_io = _run_workloads(scenario, jobs, log, progress)
    step_done("real:workloads")
    if mnt is not None:
        collect_cow_reservations(mnt, log)
    progress("measuring")
    os.sync()  # buffered copies (cp) settle their delayed allocation before st_blocks is read
    _measure(scenario, rec, layouts, disks, results, host_io, check)
    step_done("real:measure")
    progress("checking images and bases")
    check_images(scenario, work, check)
    step_done("real:integrity")


def _reinspect(scenario: Scenario) -> None:
    """Inspect user-supplied images again, just before they are used: a file swapped since the
    scenario was resolved (a backing file added, other content) is refused, not followed."""
    if all(img.path is None for img in scenario.images):
        return
    stripped = scenario.model_copy(update={"images": [
        img.model_copy(update={"data_map": None}) for img in scenario.images]})
    again = resolve(stripped)
    if again.images != scenario.images:
        changed = [img.name for img, new in zip(scenario.images, again.images, strict=True)
                   if img != new]
        raise UsageError(f"image(s) {', '.join(changed)} changed since the scenario was "
                         "resolved; refused")


def _vms_on(scenario: Scenario, host: str) -> list[VM]:
    return [vm for vm in real_vms(scenario) if scenario.host_of(vm).name == host]


def _measure(scenario: Scenario, rec: Recorder, layouts: dict[str, HostLayout],
             disks: dict[str, tuple[Path, str]], results: dict[str, FioResult],
             host_io: dict[str, dict[str, int]], check: Integrity) -> None:
    for host in scenario.hosts:
        layout = layouts[host.name]
        if layout.base_dir.exists():
            alloc, size = _tree_allocated(layout.base_dir)
            rec.add(f"cache:{host.name}", "allocated_bytes", alloc)
            rec.add(f"cache:{host.name}", "file_bytes", size)
        alloc, _ = _tree_allocated(layout.instances)
        rec.add(f"host:{host.name}", "allocated_bytes", alloc)
    for vm in real_vms(scenario):
        _measure_vm(rec, scenario, vm, disks[vm.name], results.get(vm.name),
                    host_io.get(vm.name), check)


Job = tuple[VM, Workload, Path, str]


def _run_workloads(scenario: Scenario, jobs: list[Job], log: RawLog, progress: Progress
                   ) -> tuple[dict[str, FioResult], dict[str, dict[str, int]]]:
    """Export each job's disk, run every fio at once, flush, and read each qemu-nbd's I/O."""
    results: dict[str, FioResult] = {}
    host_io: dict[str, dict[str, int]] = {}
    if not jobs:
        return results, host_io
    with ExitStack() as stack:
        with shielded():  # an interrupt cannot fall between making the directory and its cleanup
            sock_dir = Path(tempfile.mkdtemp(prefix="cowbench-"))
            stack.callback(_remove_tree, sock_dir)
            stack.callback(stop_servers_in, sock_dir)
        exports: dict[str, NbdExport] = {}
        for vm, _, path, fmt in jobs:
            exports[vm.name] = stack.enter_context(
                NbdExport(path, fmt, sock_dir, vm.name, cache=scenario.real.cache,
                          aio=scenario.real.aio, log=log,
                          discard=scenario.strategy_of(vm).discard,
                          detect_zeroes=scenario.strategy_of(vm).detect_zeroes))
        before = {n: e.io_counters() for n, e in exports.items()}
        runs = {vm.name: FioRun(vm.name, exports[vm.name].uri, wl, sock_dir,
                                runtime_cap=scenario.duration, log=log)
                for vm, wl, _, _ in jobs}
        for r in runs.values():
            stack.callback(r.stop)
        for r in runs.values():
            r.start()
        _wait_all(runs, progress)
        for name, r in runs.items():
            results[name] = r.wait()
        progress("flushing exports")
        for name, e in exports.items():
            e.flush()
            after = e.io_counters()
            host_io[name] = {k: after[k] - before[name][k] for k in _PROC_IO_KEYS}
    return results, host_io


def _remove_tree(path: Path) -> None:
    with shielded():
        shutil.rmtree(path, ignore_errors=True)


def _wait_all(runs: dict[str, FioRun], progress: Progress) -> None:
    """Wait for every fio; if one fails, the others are stopped (by the caller's exit stack)."""
    t0 = time.monotonic()
    pending = dict(runs)
    while pending:
        for name, r in list(pending.items()):
            rc = r.poll()
            if rc is None:
                continue
            del pending[name]
            if rc != 0:
                r.wait()  # raises ToolError with fio's own message
        progress(f"fio: {len(runs) - len(pending)}/{len(runs)} VMs done, "
                 f"{time.monotonic() - t0:.0f} s")
        time.sleep(0.1)


def _measure_vm(rec: Recorder, scenario: Scenario, vm: VM, disk: tuple[Path, str],
                result: FioResult | None, io: dict[str, int] | None, check: Integrity) -> None:
    entity = f"vm:{vm.name}"
    path, fmt = disk
    alloc = size = 0
    for f in vm_files(path):
        a, n = _allocated(f)
        alloc, size = alloc + a, size + n
    if scenario.strategy_of(vm).kind == "reflink_copy":
        shared, exclusive = shared_exclusive(path, check.log)
        rec.add(entity, "shared_bytes", shared)
        rec.add(entity, "exclusive_bytes", exclusive)
    rec.add(entity, "allocated_bytes", alloc)
    rec.add(entity, "file_bytes", size)
    if fmt == "qcow2":
        out = check.check(entity, path, "qcow2")
        rec.add(entity, "data_clusters", out.get("allocated-clusters", 0))
    wl = scenario.workload_of(vm)
    if result is not None and wl is not None:
        record_fio(rec, entity, wl, result, io)


def record_fio(rec: Recorder, entity: str, wl: Workload, result: FioResult,
               io: dict[str, int] | None, t_s: float | None = None) -> None:
    """fio's figures for the directions the workload does, and qemu-nbd's host I/O."""
    if io is not None:
        rec.add(entity, "host_read_bytes", io["read_bytes"], t_s)
        rec.add(entity, "host_write_bytes", io["write_bytes"], t_s)
    reads = wl.read_fraction > 0 or wl.verifies  # fio counts its verify reads as reads
    kinds = [k for k, on in (("read", reads), ("write", wl.read_fraction < 1)) if on]
    for kind in kinds:
        for metric, value in result.figures(kind).items():
            rec.add(entity, metric, value, t_s)
