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

import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cowbench.backends import Backend, Checks
from cowbench.fdtree import PrivateDir
from cowbench.lease import Lease
from cowbench.records import Recorder, import_in_background
from cowbench.scenario import VM, Scenario
from cowbench.tools import RawLog, require_tools
from real.measure.integrity import Integrity
from real.storage.reflink import (
    collect_cow_reservations,
    require_loop_mount,
    shared_exclusive,
    xfs_mount,
)
from real.storage.strategies import vm_files
from real.workload.fio import FioResult
from real.world.backend import (
    Progress,
    allocated,
    check_images,
    create_disk,
    fetch_to_cache,
    real_vms,
    record_fio,
    run_workloads,
    sync_files,
    synthetic_digest,
    write_images,
)
from real.world.containment import WorkTrees, check_storage_dirs
from real.world.layout import HostLayout, glance_path
from real.world.lifecycle import execute_timeline

if TYPE_CHECKING:
    import pandas as pd

    from cowbench.profile import Probe
    from real.measure.calibrate import Settings


def _quiet(_: str) -> None:
    pass


def _nothing(_: PrivateDir) -> None:
    pass


def _tree_allocated(root: Path) -> tuple[int, int]:
    alloc = size = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            a, s = allocated(Path(dirpath) / f)
            alloc += a
            size += s
    return alloc, size


def execute(scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
            progress: Progress = _quiet, seed: int | None = None, step_done: Progress = _quiet,
            integrity: Integrity | None = None, lease: Lease | None = None) -> pd.DataFrame:
    """Build and run the scenario for real; return the measured records (backend ``real``).

    ``step_done`` is told each step as it completes (``real:images``, ``real:bases``,
    ``real:disks``, ``real:workloads``, ``real:measure``, ``real:integrity``). ``integrity``
    collects the checks and checksums (see ``real.measure.integrity``); a damaged image or a
    changed base raises :class:`~real.measure.integrity.IntegrityError` once everything is
    measured.

    Every directory written into is one this call created (``real.world.containment``),
    recorded in the run's ``lease`` (``cowbench.lease``), as is the mount of a reflink run;
    all of them are removed at the end unless the run completed and ``real.keep_images`` is
    set: a failed or interrupted run never leaves a half-built tree.
    """
    require_tools()
    rec = Recorder("real", scenario.seed if seed is None else seed)
    check = integrity if integrity is not None else Integrity(log)
    trees = WorkTrees(work, run_id, on_create=lease.add_tree if lease else _nothing)
    finished: list[bool] = []
    with ExitStack() as stack:
        # registered first, so it runs last: after the reflink XFS is detached
        stack.callback(lambda: trees.remove(keep_images=bool(finished)
                                            and scenario.real.keep_images))
        roots = trees.create(scenario)
        work = trees.path  # from here on, the work tree only through its descriptor
        mnt = None
        if any(scenario.strategy_of(vm).kind == "reflink_copy" for vm in real_vms(scenario)):
            # the hosts live on a loop-mounted reflink XFS inside the work directory
            mnt = stack.enter_context(xfs_mount(work, _reflink_fs_size(scenario), log, lease))
            roots = {h: mnt / "hosts" / h for h in roots}
        stack.callback(check.close)  # no digest still reading what is unmounted or removed
        import_in_background()  # for the records, at the end: beside the first tools
        _execute(scenario, work, log, roots, rec, progress, step_done, check, trees.sockets,
                 mnt)
        finished.append(True)
    return rec.frame()


def _reflink_fs_size(scenario: Scenario) -> int:
    """A sparse image roomy enough: every base and every disk fully written, twice, >= 2 GiB."""
    need = sum(img.virtual_size or 0 for img in scenario.images) * len(scenario.hosts)
    need += sum(scenario.root_size(vm) for vm in scenario.vms)
    return max(2 << 30, 2 * need)


def _execute(scenario: Scenario, work: Path, log: RawLog, roots: dict[str, Path],
             rec: Recorder, progress: Progress, step_done: Progress, check: Integrity,
             sockets: Path, mnt: Path | None = None) -> None:
    if scenario.timeline is not None:
        execute_timeline(scenario, work, log, roots, rec, progress, check, sockets)
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
            key, src, base = f"cache:{host.name}/{name}", glance_path(work, image), \
                layout.cache_file(image)
            if image.synthetic is not None:  # its content is known: no need to read it now
                check.expect(key, base, synthetic_digest(image),
                             f"images[{scenario.images.index(image)}].synthetic")
            fetch_to_cache(src, image.format, base, log, untrusted=image.path is not None)
            if image.synthetic is None:
                check.hash_before(key, base)
    step_done("real:bases")
    for host in scenario.hosts:
        for vm in _vms_on(scenario, host.name):
            disks[vm.name] = create_disk(scenario, vm, layouts[host.name], log)
    step_done("real:disks")
    jobs = [(vm, wl, *disks[vm.name]) for vm in real_vms(scenario)
            if (wl := scenario.workload_of(vm)) is not None]
    progress("hashing bases")
    check.settle()  # no hashing beside fio
    results, host_io = run_workloads(scenario, jobs, log, progress, sockets,
                                     fio_done=check.hash_after)
    step_done("real:workloads")
    if mnt is not None:
        collect_cow_reservations(mnt, log)
    progress("measuring")
    sync_files(*roots.values())  # buffered copies (cp) settle before st_blocks is read
    _measure(scenario, rec, layouts, disks, results, host_io, check)
    step_done("real:measure")
    progress("checking images and bases")
    done_with = None if scenario.real.keep_images else \
        [f for vm in real_vms(scenario) for f in vm_files(disks[vm.name][0])]
    check_images(scenario, work, check, done_with)  # measured and checked: unlinked beside
    step_done("real:integrity")


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
    vms = real_vms(scenario)
    qcow2 = [vm for vm in vms if disks[vm.name][1] == "qcow2"]
    outs = check.check_all([(f"vm:{vm.name}", disks[vm.name][0], "qcow2", False)
                            for vm in qcow2])
    checked = {vm.name: out for vm, out in zip(qcow2, outs, strict=True)}
    for vm in vms:
        _measure_vm(rec, scenario, vm, disks[vm.name], results.get(vm.name),
                    host_io.get(vm.name), check, checked.get(vm.name))


def _measure_vm(rec: Recorder, scenario: Scenario, vm: VM, disk: tuple[Path, str],
                result: FioResult | None, io: dict[str, int] | None, check: Integrity,
                checked: dict[str, Any] | None) -> None:
    """Record the VM's allocation, its data clusters (``checked``: its ``qemu-img check``
    JSON, qcow2 only) and fio's figures."""
    entity = f"vm:{vm.name}"
    path, fmt = disk
    alloc = size = 0
    for f in vm_files(path):
        a, n = allocated(f)
        alloc, size = alloc + a, size + n
    if scenario.strategy_of(vm).kind == "reflink_copy":
        shared, exclusive = shared_exclusive(path, check.log)
        rec.add(entity, "shared_bytes", shared)
        rec.add(entity, "exclusive_bytes", exclusive)
    rec.add(entity, "allocated_bytes", alloc)
    rec.add(entity, "file_bytes", size)
    if checked is not None:
        rec.add(entity, "data_clusters", checked.get("allocated-clusters", 0))
    wl = scenario.workload_of(vm)
    if result is not None and wl is not None:
        record_fio(rec, entity, wl, result, io)



class RealBackend(Backend):
    """The real backend, as the core finds it (``cowbench.backends``, entry point ``real``)."""

    name = "real"

    def check(self, scenario: Scenario) -> None:
        """The tools (rsync when cold migrations copy with it), loop devices for reflink copies,
        and every ``storage_dir``."""
        require_tools()
        if scenario.timeline is not None and scenario.nova.remote_filesystem_transport == "rsync":
            require_tools(("rsync",))  # cold migrations copy with it
        if any(scenario.strategy_of(vm).kind == "reflink_copy" for vm in scenario.vms):
            require_loop_mount()
        check_storage_dirs(scenario)

    def integrity(self, log: RawLog) -> Integrity:
        return Integrity(log)

    def execute(self, scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
                progress: Progress = _quiet, seed: int | None = None,
                step_done: Progress = _quiet, integrity: Checks | None = None,
                lease: Lease | None = None) -> pd.DataFrame:
        assert integrity is None or isinstance(integrity, Integrity)
        return execute(scenario, work, log, run_id=run_id, progress=progress, seed=seed,
                       step_done=step_done, integrity=integrity, lease=lease)

    def probe_settings(self, matrix: str, exports: int) -> Settings:
        from real.measure import calibrate  # a calibration's, not a run's

        return calibrate.settings(matrix, exports)  # type: ignore[arg-type]

    def measure_probes(self, directory: Path, settings: Any,
                       progress: Any = None) -> list[Probe]:
        from real.measure import calibrate

        return calibrate.measure(directory, settings, progress=progress)

    def measure_again(self, directory: Path, settings: Any, probes: Sequence[Probe],
                      progress: Any = None, lease: Lease | None = None) -> list[Probe]:
        from real.measure import calibrate

        specs = [calibrate.spec_of(p) for p in probes]
        return calibrate.measure(directory, settings, specs, progress=progress,
                                 on_create=lease.add_tree if lease else _nothing)
