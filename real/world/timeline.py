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

import time
from collections.abc import Callable
from pathlib import Path

from cowbench.nova.instructions import FetchBase, Sample
from cowbench.records import Recorder
from cowbench.runseed import for_run
from cowbench.scenario import Scenario
from cowbench.tools import RawLog
from cowbench.units import format_duration
from cowbench.walk import Operations, Runs, walk
from real.measure.integrity import Integrity

from .backend import (
    Job,
    check_images,
    record_fio,
    run_workloads,
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
                      sockets, progress, mnt)
    for stage in walk(s, world.machine, lambda op: not s.model_only(world.vms[op.vm])):
        if isinstance(stage, Runs):
            _run_batch(world, stage, progress)
        elif isinstance(stage, Operations):
            _apply(world, stage, step_done)
        else:
            if Sample(None) in stage:  # the end
                _step(world, step_done, "real:workloads")
                _step(world, step_done, "real:timeline", timed=True)
                progress("measuring")
            for ins in stage:
                world.execute(ins)
    step_done("real:measure")
    progress("checking images and bases")
    done_with = None if s.real.keep_images else \
        [p for inst in world.instances.values() for p in inst.files(world.layouts)]
    check_images(s, work, check, done_with)  # measured and checked: unlinked beside
    step_done("real:integrity")


def _step(world: RealWorld, step_done: Progress, name: str, timed: bool = False) -> None:
    """A step a scenario of its kind reports (see the module's docstring)."""
    if world.timed == timed:
        step_done(name)


def _apply(world: RealWorld, stage: Operations, step_done: Progress) -> None:
    """Operations one after the other, as the machine instructs; a scenario without a
    timeline fetches every base before it makes the disks (its ``bases`` step)."""
    planned, t = stage.planned, stage.t
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


def _run_batch(world: RealWorld, stage: Runs, progress: Progress) -> None:
    s, ops = world.s, stage.ops
    if not ops:
        return
    jobs: list[Job] = []
    for op, run in zip(ops, stage.runs, strict=True):
        inst = world.instances[op.vm]
        # seeded for this run when fio would seed it at random, as the model's (cowbench.runseed)
        wl = for_run(s.workloads[run.workload], s.seed, op.vm, world.run_number[op.index])
        jobs.append((inst.vm, wl, inst.paths(world.layouts)[-1], inst.fmt))
    progress("hashing bases")
    world.check.settle()  # no hashing beside fio
    t0 = time.monotonic()
    # one instant only: the bases' last digests may start as soon as fio is done
    done = None if world.timed else world.check.hash_after
    results, host_io, busy = run_workloads(s, jobs, world.log, progress, world.sockets,
                                           fio_done=done)
    for op, (vm, wl, _, _) in zip(ops, jobs, strict=True):
        record_fio(world.rec, f"vm:{vm.name}", wl, results[vm.name], host_io[vm.name],
                   op.t if world.timed else None)
        world.op_done(op, None, t0)
    hosts = {run.host for run in stage.runs}
    if busy is not None and len(hosts) == 1:  # this machine is every host: one at a time
        world.rec.add(f"host:{hosts.pop()}", "cpu_busy_share", busy,
                      ops[0].t if world.timed else None)
