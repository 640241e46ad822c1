"""How big a scenario or a sweep may grow, checked on the numbers *before* anything is expanded.

A scenario file of a few lines can ask for a million VMs (``count``), a sample every
microsecond for a year, or a disk of 2 PiB whose exact allocation map alone is tens of GiB; a
sweep can ask for 10^10 seeds. Each such number is checked here on the file's own figures
(counts, intervals, sizes), so the refusal comes before a list, a grid or an array is built,
names the key, and gives the figure it would have reached. When a scenario is large but
admitted, :func:`estimate` says how much memory and time the model will take.

The exact model keeps, per disk, an allocation map of about 11 bytes per cluster (three flag
arrays and the cluster's place in the file, ``sim.storage.disk``), per cached base one byte per
4 KiB block, and per VM about 8 KiB of objects and records. Measured (``/usr/bin/time -v``):
359 KiB per VM of 2 GiB with 64 KiB clusters (352 KiB estimated); 1.72 GiB peak for 10^5 VMs
of 64 MiB (1.7 GiB estimated) in 28 s of CPU; 7.63 GiB for 10^5 VMs of 416 MiB, the largest
exact scenario these caps admit (7.6 GiB estimated), in 37 s of CPU
(``benchmarks/largest_scenario.py``). The fleet model evaluates its disks a chunk of VMs at a
time and keeps no record per VM: ``cowbench run`` peaked at 0.24 GiB for 10^4 arrivals on 10
hosts (0.26 GiB estimated), 0.32 GiB for the fleet-year (10^5 on 100; 0.34 estimated) and
1.09 GiB for fleet-region (10^6 on 1,000; 1.15 estimated), 77 s of CPU. The time figure
(0.3 ms per VM, 10 us per simulated I/O) is a rough guide, not a promise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .nova.tenancy import root_bytes
from .profile import MIN_PATH_S
from .units import parse_size

if TYPE_CHECKING:
    from .fleet import Fleet
    from .scenario import Scenario, Workload

GIB = 1 << 30
MIB = 1 << 20
#: VMs one scenario may list (``vms`` counts and ``timeline.arrivals`` together); a fleet
#: section describes more.
MAX_VMS = 100_000
#: VMs one ``timeline.arrivals`` entry may bring.
MAX_ARRIVALS = 10_000
#: Operations a timeline may expand to (events, boots, runs, snapshots, migrations, deletes).
MAX_TIMELINE_OPS = 1_000_000
#: Sample instants (timeline ``sample_interval_s``, fleet ``sample_interval_s``) and cache
#: manager passes over a scenario.
MAX_SAMPLES = 1_000_000
#: Sampled values: sample instants times the entities sampled each time.
MAX_SAMPLE_VALUES = 50_000_000
#: Memory the model may plan to use; above it a scenario is refused (exact mode names fleet).
#: A machine with more memory to give one run says so in ``COWBENCH_MODEL_MEMORY`` (a size).
MODEL_MEMORY_BUDGET = 8 * GIB
MEMORY_ENV = "COWBENCH_MODEL_MEMORY"
#: Above this, ``validate`` shows the expected memory and time.
SHOW_ABOVE = 256 * MIB
#: Points one sweep may have (grid cells times seeds).
MAX_SWEEP_POINTS = 10_000
#: VMs a sweep validates up front (grid cells times the scenario's VMs).
MAX_SWEEP_VMS = 2_000_000

CLUSTER_MAP_BYTES = 11  # allocated, zeroed, shared (bool) + data_host (int64)
BLOCK_MAP_BYTES = 1  # one bool per 4 KiB block of a raw file
RANDOM_MAP_BYTES = 8  # fio's random map: a next-free int64 per block (sim/workload/fiooffs.py)
PER_VM_S = 3e-4
PER_VM_BYTES = 8 << 10
PER_IO_S = 1e-5
#: memory the model keeps per simulated I/O: its latency, in the VM's list and its clone's
IO_RECORD_BYTES = 32
FLEET_FIXED_BYTES = 256 * MIB  # the interpreter, numpy, pandas, simpy; a chunk's evaluation
FLEET_VM_BYTES = 600  # draws, placements, events of the living, end-of-life figures
FLEET_HOST_SAMPLE_BYTES = 900  # 8 records per host and sample, while the frame is built


def _count(item: Any) -> int | None:
    """A raw ``count`` that is a plain int, else None (pydantic reports the rest)."""
    c = item.get("count", 1) if isinstance(item, dict) else 1
    return c if isinstance(c, int) and not isinstance(c, bool) else None


def raw_vm_count(data: Any) -> int:
    """VMs a raw scenario mapping asks for, counted without expanding anything (entries
    whose own count is over its cap are left out: their key reports them)."""
    if not isinstance(data, dict):
        return 0
    vms = data.get("vms")
    total = sum(c for c in map(_count, vms if isinstance(vms, list) else [])
                if c is not None and 0 < c <= MAX_VMS)
    tl = data.get("timeline")
    arrivals = tl.get("arrivals") if isinstance(tl, dict) else None
    total += sum(c for c in map(_count, arrivals if isinstance(arrivals, list) else [])
                 if c is not None and 0 < c <= MAX_ARRIVALS)
    return total


def too_many_vms(data: Any) -> str | None:
    total = raw_vm_count(data)
    if total <= MAX_VMS:
        return None
    return (f"vms and timeline.arrivals ask for {total} VMs; at most {MAX_VMS} (describe a "
            "'fleet' section for more: the fleet model)")


def _qcow2_map(size: int, cluster: int) -> int:
    return -(-size // cluster) * CLUSTER_MAP_BYTES


def _root(s: Scenario, vm: Any) -> int:
    """The VM's disk size, or 0 while a path image is not resolved yet."""
    return int(root_bytes(s, vm))


def _disk_bytes(s: Scenario, vm: Any) -> int:
    st = s.strategy_of(vm)
    size = _root(s, vm)
    if st.kind in ("full_copy", "reflink_copy"):
        return -(-size // 4096) * BLOCK_MAP_BYTES
    if st.kind == "rbd_clone":
        return -(-size // st.object_size) * CLUSTER_MAP_BYTES
    depth = st.chain_depth if st.kind == "snapshot_chain" else 1
    extra = -(-size // 4096) if st.kind == "resized_base" else 0
    # the flavor's disk.local and disk.swap: an overlay's map each (cowbench.nova.machine)
    fl = next((f for f in s.flavors if f.name == vm.flavor), None)
    local = sum(_qcow2_map(z, st.cluster_size) for z in (fl.ephemeral, fl.swap) if z) \
        if fl is not None else 0
    return depth * _qcow2_map(size, st.cluster_size) + extra + local


def _job_bytes(s: Scenario, vm: Any) -> tuple[int, float]:
    """fio's random map and the I/O count of the VM's job (memory, I/Os): a job bounded by its
    bytes issues ``io_size`` (or its region) over ``bs`` per clone and loop; a time-based one
    as many as its runtime lets it, the count its run is bounded by (:func:`timed_job_ios`),
    whatever its size (until the profile that gives its rate is loaded: by its bytes)."""
    group = s.workload_of(vm)
    mem, ios = 0, 0.0
    for wl in group.parts if group is not None else []:  # several jobs of one VM: their sum
        region = wl.size or max(_root(s, vm) - wl.offset, 0)
        blocks = region // wl.bs
        timed = timed_job_ios(s, vm, wl) if wl.time_based else None
        job_ios = timed[0] if timed is not None else \
            (wl.io_size or region) / wl.bs * wl.numjobs * wl.loops
        mem += blocks * RANDOM_MAP_BYTES * wl.numjobs if wl.random_map else 0
        ios += job_ios
    return mem, ios


def exact_cost(s: Scenario) -> tuple[int, float]:
    """(bytes of memory, seconds) the exact model is expected to take for ``s``."""
    mem, ios = 0, 0.0
    for vm in s.vms:
        job_mem, job_ios = _job_bytes(s, vm)
        mem += PER_VM_BYTES + _disk_bytes(s, vm) + job_mem + int(job_ios * IO_RECORD_BYTES)
        ios += job_ios
    for img in s.images:  # the cache's raw base per host, and the image as uploaded
        if img.virtual_size:
            mem += len(s.hosts) * -(-img.virtual_size // 4096) * BLOCK_MAP_BYTES
            mem += _qcow2_map(img.virtual_size, 65536)
    return mem, len(s.vms) * PER_VM_S + ios * PER_IO_S


def fleet_cost(f: Fleet, hosts: int, duration: float,
               pass_interval: float) -> tuple[int, float]:
    """(bytes, seconds) of the fleet model: per VM, per (VM, sample) pair, per host and
    sample, per snapshot and migration; rough, and on the safe side."""
    samples = duration / f.sample_interval_s
    life = min(f.lifetime.mean_s, duration)
    pairs = f.vms * (life / f.sample_interval_s + 1)
    snaps = f.vms * f.snapshots.share * life / f.snapshots.every_s
    migs = f.vms * f.migrations.share * life / f.migrations.every_s
    passes = duration / pass_interval
    # the disks are evaluated a chunk of VMs at a time, but one VM's instants all at once
    one_vm = duration / f.sample_interval_s + (duration / f.snapshots.every_s
                                            if f.snapshots.share else 0.0)
    mem = (FLEET_FIXED_BYTES + f.vms * FLEET_VM_BYTES + samples * hosts
           * FLEET_HOST_SAMPLE_BYTES + migs * 200 + one_vm * 150)
    # measured at 404d17e on the 2-core box: fleet-region 7.3 s in the model, 10.5 s in all
    # (estimate 19 s); fleet-year 0.9 s (estimate 1.9 s): under 2x, on the safe side
    secs = f.vms * 4e-6 + pairs * 5e-8 + (snaps + migs) * 5e-7 + passes * hosts * 2e-7
    return int(mem), secs


def fleet_problems(f: Fleet, hosts: int, duration: float,
                   pass_interval: float) -> list[tuple[str, str]]:
    """Sample streams and event streams of a fleet, sized before the model builds them."""
    out: list[tuple[str, str]] = []
    samples = duration / f.sample_interval_s
    if samples > MAX_SAMPLES or samples * hosts > MAX_SAMPLE_VALUES:
        out.append(("fleet.sample_interval_s", f"{samples:.3g} samples of {hosts} "
                    f"host(s) over the duration; at most {MAX_SAMPLES} samples and "
                    f"{MAX_SAMPLE_VALUES:.0e} host samples"))
    passes = duration / pass_interval
    if passes > MAX_SAMPLES:
        out.append(("nova.image_cache.manager_interval_s", f"{passes:.3g} cache manager passes "
                    f"over the duration; at most {MAX_SAMPLES}"))
    mem, secs = fleet_cost(f, hosts, duration, pass_interval)
    budget = model_memory_budget()
    if not out and mem > budget:
        out.append(("fleet", f"the fleet model would need about {_size(mem)} of memory "
                    f"({f.vms} VMs, their snapshots and migrations, samples); at most "
                    f"{_size(budget)} ({MEMORY_ENV} to give it more): lengthen the "
                    "intervals or shorten the duration"))
    return out


def model_memory_budget() -> int:
    """The memory a model run may plan to use: ``COWBENCH_MODEL_MEMORY`` (a size, e.g.
    ``20GiB`` on a worker with 24 GiB to give it) or 8 GiB. Bounded by the machine's memory:
    a budget larger than the machine has is refused, not trusted."""
    value = os.environ.get(MEMORY_ENV)
    if value is None:
        return MODEL_MEMORY_BUDGET
    try:
        budget = parse_size(value.strip())
    except ValueError as e:
        raise UsageError(f"{MEMORY_ENV}: {e}") from None
    total = _machine_memory()
    if budget <= 0 or (total is not None and budget > total):
        raise UsageError(f"{MEMORY_ENV}: {value!r} is not between 1 byte and this machine's "
                         f"memory ({_size(total or 0)})")
    return budget


def _machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def fastest_io_s(s: Scenario, vm: Any) -> tuple[float, float, str] | None:
    """(the least simulated time one guest I/O of ``vm`` takes in the model, the most I/Os a
    second the VM's disk can complete whatever its iodepth, where the figures come from), or
    None while the VM's profile is named but not loaded (checked again once it is).

    Uncalibrated (``sim.perf.device.Device``): every guest I/O is a request served by its
    host's queue, ``channels`` at once, each for at least ``device.metadata_latency_s``.
    Calibrated (``sim.perf.demand``, ``sim.perf.host``): at least ``client_s`` plus the path,
    which is the smallest figure of the profile's path tables (flat past their ends; a hole's
    path is the smallest size's less ``hole_read_s``) plus any negative qcow2 figure, never
    under :data:`cowbench.profile.MIN_PATH_S`; with a host scheduler, each I/O also runs its
    issuer's and its server's CPU (``sched``, the cheapest kind's) on that VM's two
    processes, one I/O at a time each."""
    host = next((h for h in s.hosts if h.name == (vm.host or s.hosts[0].name)), None)
    cal = host.calibrated if host is not None and host.calibrated is not None \
        else s.device.calibrated
    if cal is None:
        if s.device.profile is not None or (host is not None and host.profile is not None):
            return None
        t = s.device.metadata_latency_s
        return t, s.device.channels / t if t > 0 else math.inf, "device.metadata_latency_s"
    path = min(v for table in (cal.read_path_s, cal.write_path_s) for _, v in table)
    hole = cal.read_path_s[0][1] - cal.hole_read_s
    extra = min(0.0, cal.qcow2_read_s + min(0.0, cal.chain_base_s), cal.qcow2_write_s)
    t = cal.client_s + max(MIN_PATH_S, min(path, hole) + extra)
    sched = cal.sched
    if sched is None:
        return t, math.inf, "the profile's path"
    kinds = [(sched.issuer_io_s, sched.server_io_s), *((k.issuer_io_s, k.server_io_s)
                                                      for k in (sched.hole, sched.alloc)
                                                      if k is not None)]
    cpu = max(min(i for i, _ in kinds), min(o for _, o in kinds))
    return t, 1 / cpu if cpu > 0 else math.inf, "the profile's path and CPU"


def _runs_of(s: Scenario) -> list[tuple[Any, str]]:
    """(VM, workload name) of every workload run, at most: each VM's own (those arrivals
    bring among them) and each timeline ``run`` event's, counted on the file's own events
    (``cowbench.lifecycle`` expands them, and imports this module)."""
    vms = {vm.name: vm for vm in s.vms}
    runs = [(vm, vm.workload) for vm in s.vms if vm.workload is not None]
    for e in s.timeline.events if s.timeline is not None else []:
        vm = vms.get(e.vm)
        name = e.workload or (vm.workload if vm is not None else None)
        if e.op == "run" and vm is not None and name is not None:
            runs.append((vm, name))
    return runs


def timed_ios(s: Scenario) -> dict[str, tuple[float, str]]:
    """For each time-based workload, the most I/Os its runs could make the model simulate
    (:func:`timed_job_ios` of each run of each of its jobs, summed), with how that figure was
    reached. A job bounded by its bytes is counted by :func:`exact_cost`; a time-based one
    repeats its region until its time is up."""
    out: dict[str, tuple[float, str]] = {}
    for vm, name in _runs_of(s):
        group = s.workloads.get(name)
        for wl in group.parts if group is not None else []:
            timed = timed_job_ios(s, vm, wl) if wl.time_based else None
            if timed is None:
                continue
            n, why = timed
            total, _ = out.get(name, (0.0, why))
            out[name] = (total + n, why)
    return out


def timed_job_ios(s: Scenario, vm: Any, wl: Workload) -> tuple[float, str] | None:
    """The most I/Os one run of the time-based job ``wl`` on ``vm`` could make the model
    simulate, and how: a rate times its ramp and runtime (cut to the scenario's ``duration``)
    and a second. The rate is the I/Os in flight (``iodepth`` of each clone) over the fastest
    I/O the model gives, at most what the VM's disk can complete a second
    (:func:`fastest_io_s`), or ``rate_iops`` where that is less. None while the VM's profile
    is named but not loaded."""
    fastest = fastest_io_s(s, vm)
    if fastest is None:
        return None
    t_min, cap, where = fastest
    runtime = min(wl.runtime, s.duration) if s.duration is not None and wl.runtime \
        else wl.runtime or s.duration or 0.0
    runtime += wl.ramp_s
    depth = wl.iodepth * wl.numjobs
    rate = min(depth / t_min if t_min > 0 else math.inf, cap)
    if wl.rate_cap is not None and wl.rate_cap * wl.numjobs < rate:
        rate, why = wl.rate_cap * wl.numjobs, f"rate_iops {wl.rate_cap} a clone"
    else:
        why = (f"{depth} I/O(s) in flight, each at least {t_min * 1e6:.3g} us, at "
               f"most {rate:.3g} a second ({where})")
    return rate * (runtime + 1), f"{why}, for {_duration(runtime)} a run"


def timed_problems(s: Scenario) -> list[tuple[str, str]]:
    """A time-based job's I/Os bounded before the model runs: each simulated I/O keeps
    :data:`IO_RECORD_BYTES` (its latencies), so the most a run could simulate must fit the
    memory budget; refused at the runtime of the job that would simulate the most."""
    ios = timed_ios(s)
    if not ios:
        return []
    total = sum(n for n, _ in ios.values())
    budget = model_memory_budget()
    if total * IO_RECORD_BYTES <= budget:
        return []
    name, (n, why) = max(ios.items(), key=lambda kv: kv[1][0])
    return [(f"workloads.{name}.runtime", f"a time-based job the model could run for up to "
             f"{n:.3g} I/Os ({why}), {_size(total * IO_RECORD_BYTES)} of memory with the "
             f"scenario's other time-based jobs; at most {_size(budget)} ({MEMORY_ENV} to "
             "give it more): shorten the runtime or set rate_iops")]


def exact_problems(s: Scenario) -> list[tuple[str, str]]:
    timed = timed_problems(s)
    if timed:
        return timed
    mem, _ = exact_cost(s)
    budget = model_memory_budget()
    if mem <= budget:
        return []
    return [("vms", f"the exact model would need about {_size(mem)} of memory for "
                    f"{len(s.vms)} VM(s) (allocation maps of the disks and bases, fio's "
                    f"random maps); at most {_size(budget)}: use a 'fleet' "
                    "section (the fleet model) for fleets, or smaller disks")]


def estimate(s: Scenario) -> str | None:
    """One line on the memory and time the model will take, when that is large."""
    if s.fleet is not None:
        assert s.duration is not None
        mem, secs = fleet_cost(s.fleet, len(s.hosts), s.duration,
                               s.nova.image_cache.manager_interval_s)
    else:
        mem, secs = exact_cost(s)
    if mem < SHOW_ABOVE and secs < 60:
        return None
    return f"expected: about {_size(mem)} of memory and {_duration(secs)} in the model"


def product(lengths: Iterable[int]) -> int:
    out = 1
    for n in lengths:
        out *= n
    return out


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _duration(secs: float) -> str:
    if secs < 120:
        return f"{secs:.0f} s"
    if secs < 7200:
        return f"{secs / 60:.0f} min"
    return f"{secs / 3600:.1f} h"
