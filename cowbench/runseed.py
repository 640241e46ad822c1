"""Each workload run's own seed, for jobs fio would seed at random.

fio with ``randrepeat=0`` and no ``randseed`` reads /dev/urandom at every start: each
invocation issues new offsets. cowbench keeps the model and the real run on one stream by
giving such a job a ``randseed``; to keep fio's behaviour of new offsets per invocation, the
seed is derived per *run*: from the run's scenario seed, the VM's name and the VM's run number
(0 for its first ``run`` of the timeline, 1 for the next, ...). The model's own offsets, fio's
null-engine stream and the real fio of that run all take the same ``randseed``, so they still
agree, and a VM that runs its random writer every hour writes new blocks every hour, as it
would under fio.

A job with ``randrepeat`` on (fio's default) or a ``randseed`` of its own is left alone: fio
repeats its offsets at every invocation, and so does cowbench.
"""

from __future__ import annotations

import hashlib

from .lifecycle import run_ops
from .scenario import Scenario, Workload


def unseeded(wl: Workload) -> bool:
    """Would fio seed ``wl`` at random (``randrepeat=0`` without ``randseed``)?"""
    return not wl.randrepeat and wl.randseed is None


def varies_per_run(wl: Workload) -> bool:
    """Does some job of ``wl`` take a new seed at each run?"""
    return any(unseeded(p) for p in wl.parts)


def run_seed(seed: int, vm: str, run: int) -> int:
    """The ``randseed`` of ``vm``'s run number ``run`` (from 0) in a run seeded ``seed``: a
    63-bit draw of a ``numpy`` ``SeedSequence`` of the three (the VM by a hash of its name,
    so adding a VM leaves the others' seeds as they were)."""
    import numpy as np  # here: a real run starts without numpy (tests/test_spacebound.py)

    name = int.from_bytes(hashlib.blake2b(vm.encode(), digest_size=8).digest(), "little")
    state = np.random.SeedSequence([seed, name, run]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def seeded(wl: Workload, randseed: int) -> Workload:
    """``wl`` and each of its jobs fio would seed at random with ``randseed`` (fio seeds a
    job of several by the seed and its number, so they stay apart)."""
    jobs = [j.model_copy(update={"randseed": randseed}) if unseeded(j) else j for j in wl.jobs]
    return wl.model_copy(update={"jobs": jobs,
                                 **({"randseed": randseed} if unseeded(wl) else {})})


def for_run(wl: Workload, seed: int, vm: str, run: int) -> Workload:
    """What ``vm``'s run number ``run`` of ``wl`` issues: ``wl`` seeded with
    :func:`run_seed` when fio would seed it at random, else ``wl`` itself."""
    return seeded(wl, run_seed(seed, vm, run)) if varies_per_run(wl) else wl


def run_numbers(s: Scenario) -> dict[int, int]:
    """Per workload run of the expanded timeline (by its operation's index), the VM's run
    number: 0 for its first, 1 for its second, ..."""
    count: dict[str, int] = {}
    out: dict[int, int] = {}
    for op, run in run_ops(s):
        out[op.index] = count.get(run.vm, 0)
        count[run.vm] = out[op.index] + 1
    return out


def _used(s: Scenario) -> set[str]:
    """The workloads some VM, event or arrival group of ``s`` runs."""
    tl = s.timeline
    return {vm.workload for vm in s.vms if vm.workload} | {
        e.workload for e in (tl.events if tl is not None else []) if e.workload} | {
        a.workload for a in (tl.arrivals if tl is not None else []) if a.workload}


def fixed_offsets(s: Scenario) -> list[str]:
    """The random workloads whose offsets no seed changes, each with why: ``w (randseed 7)``
    or ``w (randrepeat on)``. fio pins a job's offsets with ``randrepeat`` on (its default;
    even with a ``randseed``, sim/workload/fiorand.py) or with a ``randseed`` of its own; a
    replayed ``iolog`` and a job without random offsets have none to vary. Empty for a fleet
    (its model draws from the seed itself)."""
    if s.fleet is not None:
        return []
    used = _used(s)
    out = []
    for name, wl in s.workloads.items():
        random = [p for p in wl.parts if p.is_random]
        if name not in used or wl.offsets == "iolog" or not random:
            continue
        pinned = [p for p in random if not unseeded(p)]
        if pinned:
            p = pinned[0]
            why = ["randrepeat on"] if p.randrepeat else []
            why += [] if p.randseed is None else [f"randseed {p.randseed}"]
            out.append(f"{name} ({', '.join(why)})")
    return out


def _draws(p: Workload) -> bool:
    """Does job ``p``, seeded at random, draw anything from its seed: random offsets, the
    read/write choice of a mix, or a start delay within a range (sim/workload/fio.py)?"""
    low, high = p.startdelay_range
    return unseeded(p) and (p.is_random or 0.0 < p.read_fraction < 1.0 or low != high)


def calibrated(s: Scenario) -> bool:
    """Does the model of ``s`` rest on a calibration profile (the scenario's or a host's,
    as ``cowbench.autoprofile`` left them)?"""
    return s.device.calibrated is not None or any(h.calibrated is not None for h in s.hosts)


def seed_draws(s: Scenario, calibrated: bool | None = None) -> list[str]:
    """What of ``s``'s figures another seed changes, in words: each arrival group's arrival
    times (and lifetimes, unless ``fixed``), the workloads fio would seed at random (each run
    takes a seed drawn from the run's, :func:`for_run`), and the calibrated I/O model's
    service times (``sim.perf.host`` draws each stage's time of each I/O; IOPS and latency
    moved by 0.2% between seeds 1 and 2 of one random writer, and nothing moved
    uncalibrated). ``calibrated``: whether the model rests on a profile, ``None`` when not
    known yet (``validate``; a run chooses its profile when it starts). A fleet draws
    everything from the seed. Empty when no seed can change a figure.

    The SRE's sweep of ``fleet-arrivals.yaml`` over seeds 1 and 2 (Poisson arrivals of a
    ``randrepeat``-on writer) was warned that its seeds "cannot change the figures"; they gave
    2.2 GiB against 2.8 GiB on the hosts and 16 against 14 VMs refused."""
    if s.fleet is not None:
        return ["the fleet's arrivals, lifetimes, mixes and policies"]
    out = []
    tl = s.timeline
    for j, a in enumerate(tl.arrivals if tl is not None else []):
        lives = a.lifetime is not None and a.lifetime.distribution != "fixed"
        out.append(f"timeline.arrivals[{j}] ({a.prefix})'s arrival times"
                   f"{' and lifetimes' if lives else ''}")
    used = _used(s)
    varied = [n for n, wl in s.workloads.items()
              if n in used and wl.offsets != "iolog" and any(_draws(p) for p in wl.parts)]
    if varied:
        out.append(f"the workload(s) {', '.join(varied)} fio seeds at random (a seed per run)")
    if used and calibrated is not False:
        out.append("the calibrated I/O model's service times (IOPS, latency)" if calibrated
                   else "the I/O model's service times when it is calibrated (IOPS, latency; "
                   "not with --uncalibrated)")
    return out


def seed_warning(fixed: list[str], draws: list[str] | None = None) -> str | None:
    """One line saying that ``fixed`` (:func:`fixed_offsets`) issue the same offsets under
    every seed, what varies with the seed all the same (``draws``, :func:`seed_draws`), and
    how to let their offsets vary too; ``None`` when there is no fixed workload."""
    if not fixed:
        return None
    rest = (f"; the rest varies with the seed: {'; '.join(draws)}" if draws else
            "; nothing else in the scenario draws from the seed")
    return (f"workload(s) {', '.join(fixed)} issue the same offsets under every seed, as fio "
            f"does (randrepeat on, or a fixed randseed){rest}; for their offsets to vary too, "
            "set randrepeat: false and no randseed in them (each run then takes a seed of its "
            "own, drawn from the run's seed)")
