"""Every scenario as a timeline, in the model: operations applied in order to a ``World``
(``sim.world.timeline``), workload runs of one instant together in SimPy.

A scenario without a timeline is one too: its VMs boot at t=0 and run their workloads then
(``cowbench.lifecycle.expand_timeline``); it records only end-of-run figures. Each VM's I/O is
applied to the exact allocation map of the top file of its disk (``sim.storage``), and the host
I/O it causes is served by the host's shared ``Device`` (``sim.perf.device``). A fresh
``simpy.Environment`` (``sim.perf.loop.EventLoop``) per run, no module state, no files: the
caller writes results (STYLE.md point 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cowbench.diskfs import glance_filesystem
from cowbench.iolog import Trace
from cowbench.lifecycle import Op, schedule, stream_key, typed
from cowbench.nova.instructions import RunWorkload
from cowbench.records import CPU_METRICS, Recorder
from cowbench.runseed import for_run, varies_per_run
from cowbench.scenario import Scenario, Workload
from cowbench.walk import Operations, Runs, walk
from sim.perf.device import CalibratedDevice, make_device
from sim.perf.loop import EventLoop
from sim.storage.disk import Qcow2Image
from sim.storage.images import glance_file
from sim.storage.strategies import ChainDisk, configure_io, guest_write
from sim.workload.fio import io_stream, job_seed

from .lifecycle import run_disk
from .timeline import World
from .vm import IoEvents, VmStats, record_io, run_vm

Traces = Mapping[str, Sequence[Trace]]
Events = dict[str, IoEvents]


def _trace(world: World, op: Op, run: RunWorkload, traces: Traces | None
           ) -> Sequence[Trace] | None:
    """The exact stream handed in for this run (``cowbench.lifecycle.stream_key``: the VM's
    workload, or another one of a later ``run`` event, on the disk's size then; a workload
    seeded per run takes its run's own, else the one stream of the key, e.g. a real run's
    record)."""
    if traces is None:
        return None
    vm = world.s.vms[world.vm_index[run.vm]]
    key = stream_key(world.s, vm, run.workload, run.size)
    if varies_per_run(world.s.workloads[run.workload]):
        own = traces.get(stream_key(world.s, vm, run.workload, run.size,
                                    world.run_number[op.index]))
        if own is not None:
            return own
    return traces.get(key)


def _workload(world: World, op: Op, run: RunWorkload) -> Workload:
    """What the run issues: its workload, seeded for this run when fio would seed it at
    random (``cowbench.runseed``)."""
    return for_run(world.s.workloads[run.workload], world.s.seed, op.vm,
                   world.run_number[op.index])


def run_group(world: World, stage: Runs, traces: Traces | None = None,
              events: Events | None = None) -> None:
    """Workload runs that start at the same instant, together, contending per host; started
    in the scenario's order of VMs. ``events`` receives, per VM, every guest I/O and each
    clone's log origin (:class:`sim.world.vm.IoEvents`)."""
    s = world.s
    env = EventLoop()
    own = {h.name: h.calibrated for h in s.hosts}
    devices = {h: make_device(env, s.device, s.seed, i, own.get(h))
               for i, h in enumerate(world.hosts)}
    stats: dict[int, VmStats] = {}
    disks: dict[int, object] = {}
    ops = stage.ops
    runs = {op.index: run for op, run in zip(ops, stage.runs, strict=True)}
    for op in sorted(ops, key=lambda o: (world.vm_index[o.vm], o.index)):
        vm = s.vms[world.vm_index[op.vm]]
        run = runs[op.index]
        wl = _workload(world, op, run)
        inst = world.instance(op.vm, run.host)
        log = None if events is None else events.setdefault(op.vm, IoEvents())
        st = stats[op.index] = VmStats(events=log,
                                       written=None if wl.zero_buffers else inst.top.written)
        disk = disks[op.index] = run_disk(inst, s.strategy_of(vm).discard == "unmap")
        # each run exports the disk with a fresh qemu-nbd, which opens every layer anew
        if isinstance(disk, ChainDisk):
            disk.open()
        elif isinstance(inst.top.image, Qcow2Image):
            inst.top.image.open()
        env.process(run_vm(env, s, vm, world.vm_index[op.vm], disk, devices[run.host],
                           st, wl, _trace(world, op, run, traces), size=run.size))
    env.run()
    for op in ops:
        wl = s.workloads[runs[op.index].workload]
        st = stats[op.index]
        record_io(world.rec, f"vm:{op.vm}", st, wl, op.t if world.timed else None)
        device = devices[runs[op.index].host]
        cpu = device.cpu_of(disks[op.index]) if isinstance(device, CalibratedDevice) else None
        if cpu is not None:  # the VM's processes on the host's cores (a host scheduler's)
            for metric, seconds in zip(CPU_METRICS, cpu, strict=True):
                world.rec.add(f"vm:{op.vm}", metric, seconds, op.t if world.timed else None)
        elapsed = st.last_done - st.first_issue if st.last_done > st.first_issue else math.nan
        world.op_done(op, None, elapsed)
    for host, device in devices.items():
        busy = _busy_share(device, [stats[op.index] for op in ops
                                    if runs[op.index].host == host])
        if busy is not None:
            world.rec.add(f"host:{host}", "cpu_busy_share", busy,
                          min(op.t for op in ops) if world.timed else None)


def _busy_share(device: object, stats: Sequence[VmStats]) -> float | None:
    """The share of a host's cores its processes were given (every VM's issuer and server and
    the host's kernel) from the first I/O of its VMs to the last one done; None without a host
    scheduler or I/O."""
    if not isinstance(device, CalibratedDevice) or device.host.cores is None:
        return None
    first = min((st.first_issue for st in stats), default=math.inf)
    last = max((st.last_done for st in stats), default=0.0)
    if not last > first:
        return None
    used = sum(task.cpu_s for _, task in device.host.named_tasks())
    return used / (device.host.cores.capacity * (last - first))


def record_images(scenario: Scenario, rec: Recorder) -> None:
    """Each synthetic image the VMs use, as uploaded to Glance (its store on the filesystem
    the run decided: ``cowbench.diskfs.glance_filesystem``)."""
    used = {vm.image for vm in scenario.vms}
    fs = glance_filesystem(scenario)
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            g = glance_file(image, fs)
            rec.add(f"image:{image.name}", "allocated_bytes", g.allocated_bytes)
            rec.add(f"image:{image.name}", "file_bytes", g.file_bytes)


def simulate_timeline(scenario: Scenario, rec: Recorder, traces: Traces | None = None,
                      events: Events | None = None) -> None:
    """Apply the scenario's whole timeline to a fresh world, recording as it goes.

    ``traces`` gives, per run (``cowbench.lifecycle.stream_key``: the VM's name for its own
    workload), the exact I/O stream of each fio clone (fio's null engine, an ``iolog``, or a
    finished real run's record); other runs generate their offsets."""
    record_images(scenario, rec)
    world = World(scenario, rec)
    for stage in walk(scenario, world.machine):
        if isinstance(stage, Runs):
            run_group(world, stage, traces, events)
        elif isinstance(stage, Operations):
            for op, instructions in stage.planned:
                world.carry_out(op, instructions)
        else:
            for ins in stage:
                world.execute(ins)


def untimed_is_upper_bound(scenario: Scenario) -> bool:
    """Does :func:`place_vms` allocate at least what :func:`simulate_timeline` does? Yes for a
    scenario without a timeline when every write only adds (no trims, no zero writes that may
    unmap) and every job is bounded by its I/O count, not by time: then writing all of it, in
    any order, allocates the same clusters the clock would let through, or more (a runtime
    that cuts a job short only removes writes)."""
    if scenario.timeline is not None or scenario.fleet is not None:
        return False
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None:
            continue
        if any(p.time_based or "trim" in p.rw for p in wl.parts) or (
                wl.zero_buffers and scenario.strategy_of(vm).detect_zeroes != "off"):
            return False
    return True


def place_vms(scenario: Scenario, rec: Recorder) -> None:
    """The VMs' space without the clock: the timeline's operations applied, each run's writes
    clone after clone, no device, no timing; add the allocation records to ``rec`` (no I/O
    figures). For the free-space check before a real run, where it is an upper bound of
    :func:`simulate_timeline`'s allocation (see :func:`untimed_is_upper_bound`) at a fraction
    of its cost."""
    record_images(scenario, rec)
    world = World(scenario, rec)
    for _, _, ops in schedule(scenario):
        for op in ops:
            if op.op != "run":
                world.apply(typed(op))
                continue
            _write_untimed(world, op)
    world.sample(None)


def _write_untimed(world: World, op: Op) -> None:
    s = world.s
    vm = s.vms[world.vm_index[op.vm]]
    run = world.run_of(op)
    wl = _workload(world, op, run)
    disk = run_disk(world.instance(op.vm, run.host), s.strategy_of(vm).discard == "unmap")
    configure_io(disk, s.strategy_of(vm), wl)
    for part, clone in ((p, k) for p in wl.parts for k in range(p.numjobs)):
        seed = job_seed(part, clone, s.seed, world.vm_index[op.vm], op.vm)
        for chunk in io_stream(part, run.size, seed):
            w = chunk.is_write
            for off, length in zip(chunk.offsets[w].tolist(), chunk.lengths[w].tolist(),
                                   strict=True):
                guest_write(disk, off, length)
    disk.flush()
