"""Every scenario as a timeline, built for real: the operations of ``cowbench.lifecycle``'s
schedule carried out in order by a ``RealWorld`` (``real.world.lifecycle``), the workload runs
of one instant together (one qemu-nbd and one fio per VM, ``real.world.backend``), every figure
measured at each sample and at the end.

A scenario without a timeline is one too: its VMs boot at t=0 and run their workloads then. It
records only end-of-run figures, and reports its steps as it always did (``images``, ``bases``,
``disks``, ``workloads``, ``measure``, ``integrity``); a timeline reports ``images``,
``timeline``, ``measure`` and ``integrity``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from cowbench.lifecycle import Op, batches, schedule, typed
from cowbench.nova.instructions import FetchBase, RunWorkload, only
from cowbench.records import Recorder
from cowbench.scenario import Scenario
from cowbench.tools import RawLog
from cowbench.units import format_duration
from real.measure.integrity import Integrity
from real.storage.reflink import collect_cow_reservations, shared_exclusive

from .backend import (
    Job,
    check_images,
    record_fio,
    run_workloads,
    sync_files,
    write_images,
)
from .layout import HostLayout
from .lifecycle import RealWorld

Progress = Callable[[str], None]


def execute_timeline(s: Scenario, work: Path, log: RawLog, roots: dict[str, Path],
                     rec: Recorder, progress: Progress, step_done: Progress, check: Integrity,
                     sockets: Path, mnt: Path | None = None) -> None:
    """Carry out the scenario's whole timeline on this machine, recording as it goes; every
    VM's disk gets ``qemu-img check`` at the end and every base its last checksum (``check``
    fails the run on damage). ``mnt``: the reflink XFS the hosts live on, if any."""
    write_images(s, work, log, rec, progress, check)
    step_done("real:images")
    world = RealWorld(s, work, {h: HostLayout(r) for h, r in roots.items()}, log, rec, check,
                      sockets, progress)
    for t, kind, ops in schedule(s):
        if kind == "pass":
            world.cache_pass(t)
        for is_run, batch in batches(ops):
            batch = [op for op in batch if not s.model_only(world.vms[op.vm])]
            if is_run:
                _run_batch(world, batch, progress)
            else:
                _apply(world, batch, t, step_done)
        sample(world, t, mnt)
    _step(world, step_done, "real:workloads")
    _step(world, step_done, "real:timeline", timed=True)
    progress("measuring")
    sample(world, None, mnt)
    step_done("real:measure")
    progress("checking images and bases")
    done_with = None if s.real.keep_images else \
        [p for inst in world.instances.values() for p in inst.paths(world.layouts)]
    check_images(s, work, check, done_with)  # measured and checked: unlinked beside
    step_done("real:integrity")


def _step(world: RealWorld, step_done: Progress, name: str, timed: bool = False) -> None:
    """A step a scenario of its kind reports (see the module's docstring)."""
    if world.timed == timed:
        step_done(name)


def _apply(world: RealWorld, ops: list[Op], t: float, step_done: Progress) -> None:
    """Operations one after the other, as the machine instructs; a scenario without a
    timeline fetches every base before it makes the disks (its ``bases`` step)."""
    typed_ops = [typed(op) for op in ops]
    planned = [(op, world.machine.apply(op)) for op in typed_ops]
    if not world.timed:
        for _, instructions in planned:
            for ins in instructions:
                if isinstance(ins, FetchBase):
                    world.execute(ins)
        step_done("real:bases")
    for op, instructions in planned:
        if world.timed:
            world.progress(f"t={format_duration(t)}: {op.op} {op.vm}")
        world.carry_out(op, [i for i in instructions
                             if world.timed or not isinstance(i, FetchBase)])
    _step(world, step_done, "real:disks")


def _run_batch(world: RealWorld, ops: list[Op], progress: Progress) -> None:
    s = world.s
    if not ops:
        return
    jobs: list[Job] = []
    for op in ops:
        inst = world.instances[op.vm]
        wl = s.workloads[only(world.machine.apply(typed(op)), RunWorkload).workload]
        jobs.append((inst.vm, wl, inst.paths(world.layouts)[-1], inst.fmt))
    progress("hashing bases")
    world.check.settle()  # no hashing beside fio
    t0 = time.monotonic()
    # one instant only: the bases' last digests may start as soon as fio is done
    done = None if world.timed else world.check.hash_after
    results, host_io = run_workloads(s, jobs, world.log, progress, world.sockets, fio_done=done)
    for op, (vm, wl, _, _) in zip(ops, jobs, strict=True):
        record_fio(world.rec, f"vm:{vm.name}", wl, results[vm.name], host_io[vm.name],
                   op.t if world.timed else None)
        world.op_done(op, None, t0)


def sample(world: RealWorld, t: float | None, mnt: Path | None) -> None:
    """Every figure at ``t`` (``None``: the end, with data clusters from ``qemu-img check``
    and a reflink copy's shared and exclusive bytes); a scenario without a timeline has only
    that."""
    if t is not None and not world.timed:
        return
    if mnt is not None:
        collect_cow_reservations(mnt, world.log)
    # delayed allocation settles: st_blocks then counts what the copy allocated
    sync_files(*(lay.root for lay in world.layouts.values()), *world.snapshots.values())
    rec = world.rec
    for host, layout in world.layouts.items():
        if world.timed or layout.base_dir.exists():  # as the plain VMs always recorded it
            alloc, size = _tree(layout.base_dir)
            rec.add(f"cache:{host}", "allocated_bytes", alloc, t)
            rec.add(f"cache:{host}", "file_bytes", size, t)
        rec.add(f"host:{host}", "allocated_bytes", _tree(layout.instances)[0], t)
    for name, inst in world.instances.items():
        alloc = size = 0
        for p in inst.paths(world.layouts):
            st = p.stat()
            alloc += st.st_blocks * 512
            size += st.st_size
        rec.add(f"vm:{name}", "allocated_bytes", alloc, t)
        rec.add(f"vm:{name}", "file_bytes", size, t)
    if t is None:
        _end_figures(world)
    for name, path in world.snapshots.items():
        st = path.stat()
        rec.add(f"snapshot:{name}", "allocated_bytes", st.st_blocks * 512, t)
        rec.add(f"snapshot:{name}", "file_bytes", st.st_size, t)


def _end_figures(world: RealWorld) -> None:
    """Each VM's data clusters (every ``qemu-img check`` at once) and a reflink copy's shared
    and exclusive bytes."""
    tops = {n: i.paths(world.layouts)[-1] for n, i in world.instances.items()}
    qcow2 = [n for n, i in world.instances.items() if i.fmt == "qcow2"]
    outs = world.check.check_all([(f"vm:{n}", tops[n], "qcow2", False) for n in qcow2])
    for name, out in zip(qcow2, outs, strict=True):
        world.rec.add(f"vm:{name}", "data_clusters", out.get("allocated-clusters", 0))
    for name, inst in world.instances.items():
        if world.s.strategy_of(inst.vm).kind == "reflink_copy":
            shared, exclusive = shared_exclusive(tops[name], world.log)
            world.rec.add(f"vm:{name}", "shared_bytes", shared)
            world.rec.add(f"vm:{name}", "exclusive_bytes", exclusive)


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
