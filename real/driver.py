"""The real backend: the scenario built on this machine with qemu-img, qemu-nbd and fio.

``execute(scenario, work, log)`` carries out the scenario's timeline (``real.world.timeline``): it
writes each image as uploaded to Glance, converts it into each host's ``_base`` as Nova does
(``qemu-img convert -O raw``), makes every VM's root disk by its strategy
(``real.storage.strategies``), exports each disk with its own qemu-nbd, runs one fio per VM of
an instant concurrently, applies Nova's other operations in order, and measures:
file sizes and allocation (``os.stat``), data clusters (``qemu-img check``), host I/O of each
qemu-nbd (``/proc/PID/io``) and guest I/O (fio JSON); then checks every qcow2 image and that no
base changed (``real.measure.integrity``). Whatever it starts it stops and whatever it creates it
removes (unless a completed run sets ``real.keep_images``), on success, failure or interrupt.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cowbench.backends import Backend, Checks
from cowbench.diskfs import on_reflink_xfs
from cowbench.fdtree import PrivateDir
from cowbench.lease import Lease
from cowbench.records import Recorder, import_in_background
from cowbench.scenario import Scenario
from cowbench.timeline_fleet import record_fleet
from cowbench.tools import RawLog, require_tools
from real.measure.integrity import Integrity
from real.storage.reflink import require_loop_mount, xfs_mount
from real.world.backend import Progress, real_vms
from real.world.concurrency import check_concurrency
from real.world.containment import WorkTrees, check_storage_dirs
from real.world.openfiles import plan, raised_limit
from real.world.timeline import execute_timeline

if TYPE_CHECKING:
    import pandas as pd

    from cowbench.profile import Probe
    from real.measure.calibrate import Settings


def _quiet(_: str) -> None:
    pass


def _nothing(_: PrivateDir) -> None:
    pass


def execute(scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
            progress: Progress = _quiet, seed: int | None = None, step_done: Progress = _quiet,
            integrity: Integrity | None = None, lease: Lease | None = None) -> pd.DataFrame:
    """Build and run the scenario for real; return the measured records (backend ``real``).

    Every scenario is a timeline (``real.world.timeline``; one without a ``timeline`` section
    boots its VMs at t=0 and runs their workloads then). ``step_done`` is told each step as
    it completes (``real:images``, ``real:bases``, ``real:disks``, ``real:workloads``,
    ``real:measure``, ``real:integrity``; for a timeline ``real:images``, ``real:timeline``,
    ``real:measure``, ``real:integrity``). ``integrity``
    collects the checks and checksums (see ``real.measure.integrity``); a damaged image or a
    changed base raises :class:`~real.measure.integrity.IntegrityError` once everything is
    measured.

    A process of the run that would hold more descriptors than this process's soft limit of
    open files allows (a deep chain: ``real.world.openfiles``) has the limit raised to the
    hard one for the run; past the hard one, the run is refused before anything is made.

    Every directory written into is one this call created (``real.world.containment``),
    recorded in the run's ``lease`` (``cowbench.lease``), as is the mount of a reflink run;
    all of them are removed at the end unless the run completed and ``real.keep_images`` is
    set: a failed or interrupted run never leaves a half-built tree.
    """
    require_tools()
    files = plan(scenario)  # refused here if the hard limit is too low (as in check)
    rec = Recorder("real", scenario.seed if seed is None else seed)
    check = integrity if integrity is not None else Integrity(log)
    trees = WorkTrees(work, run_id, on_create=lease.add_tree if lease else _nothing)
    finished: list[bool] = []
    with ExitStack() as stack:
        # entered first, so left last: every tool the run starts is stopped by then
        stack.enter_context(raised_limit(files))
        if files.raise_to is not None:
            progress(f"open files: soft limit raised from {files.soft} to {files.raise_to} "
                     "for this run")
        # registered first, so it runs last: after the reflink XFS is detached
        stack.callback(lambda: trees.remove(keep_images=bool(finished)
                                            and scenario.real.keep_images))
        roots = trees.create(scenario)
        work = trees.path  # from here on, the work tree only through its descriptor
        mnt = None
        if on_reflink_xfs(scenario):
            # the hosts live on a loop-mounted reflink XFS inside the work directory
            mnt = stack.enter_context(xfs_mount(
                work, _reflink_fs_size(scenario), log, lease,
                keep=lambda: bool(finished) and scenario.real.keep_images))
            roots = {h: mnt / "hosts" / h for h in roots}
        stack.callback(check.close)  # no digest still reading what is unmounted or removed
        import_in_background()  # for the records, at the end: beside the first tools
        execute_timeline(scenario, work, log, roots, rec, progress, step_done, check,
                         trees.sockets, mnt)
        finished.append(True)
    record_fleet(scenario, rec)  # a timeline's placement and capacity figures, as a fleet's
    return rec.frame()


def _reflink_fs_size(scenario: Scenario) -> int:
    """A sparse image roomy enough: every base and every disk fully written, twice, >= 2 GiB."""
    need = sum(img.virtual_size or 0 for img in scenario.images) * len(scenario.hosts)
    need += sum(scenario.root_size(vm) for vm in real_vms(scenario))
    return max(2 << 30, 2 * need)


class RealBackend(Backend):
    """The real backend, as the core finds it (``cowbench.backends``, entry point ``real``)."""

    name = "real"

    def check(self, scenario: Scenario) -> None:
        """The tools (rsync when cold migrations copy with it), loop devices for reflink copies,
        every ``storage_dir``, the machine's room for the VMs that run at once, and its hard
        limit of open files for the deepest chain."""
        require_tools()
        if scenario.timeline is not None and scenario.nova.remote_filesystem_transport == "rsync":
            require_tools(("rsync",))  # cold migrations copy with it
        if on_reflink_xfs(scenario):
            require_loop_mount()
        check_storage_dirs(scenario)
        check_concurrency(scenario)
        plan(scenario)  # the open files of the deepest chain, within the hard limit

    def limits(self, scenario: Scenario) -> dict[str, Any]:
        """run.json's ``open_files``: the most descriptors one process of the run holds,
        which, the soft and hard limits, and the soft limit the run raised it to (None: it
        did not)."""
        return {"open_files": plan(scenario).facts()}

    def integrity(self, log: RawLog) -> Integrity:
        return Integrity(log)

    def execute(self, scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
                progress: Progress = _quiet, seed: int | None = None,
                step_done: Progress = _quiet, integrity: Checks | None = None,
                lease: Lease | None = None) -> pd.DataFrame:
        assert integrity is None or isinstance(integrity, Integrity)
        return execute(scenario, work, log, run_id=run_id, progress=progress, seed=seed,
                       step_done=step_done, integrity=integrity, lease=lease)

    def probe_settings(self, matrix: str, exports: int, aio: str = "threads") -> Settings:
        from real.measure import calibrate  # a calibration's, not a run's

        return calibrate.settings(matrix, exports, aio)  # type: ignore[arg-type]

    def measure_probes(self, directory: Path, settings: Any,
                       progress: Any = None, lease: Lease | None = None) -> list[Probe]:
        from real.measure import calibrate

        return calibrate.measure(directory, settings, progress=progress,
                                 on_create=lease.add_tree if lease else _nothing)

    def measure_again(self, directory: Path, settings: Any, probes: Sequence[Probe],
                      progress: Any = None, lease: Lease | None = None) -> list[Probe]:
        from real.measure import calibrate

        specs = [calibrate.spec_of(p) for p in probes]
        return calibrate.measure(directory, settings, specs, progress=progress,
                                 on_create=lease.add_tree if lease else _nothing)
