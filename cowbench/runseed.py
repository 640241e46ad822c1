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


def fixed_offsets(s: Scenario) -> list[str]:
    """The random workloads whose offsets no seed changes, each with why: ``w (randseed 7)``
    or ``w (randrepeat on)``. fio pins a job's offsets with ``randrepeat`` on (its default;
    even with a ``randseed``, sim/workload/fiorand.py) or with a ``randseed`` of its own; a
    replayed ``iolog`` and a job without random offsets have none to vary. Empty for a fleet
    (its model draws from the seed itself)."""
    if s.fleet is not None:
        return []
    tl = s.timeline
    used = {vm.workload for vm in s.vms} | {
        e.workload for e in (tl.events if tl is not None else [])} | {
        a.workload for a in (tl.arrivals if tl is not None else [])}
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


def seed_warning(fixed: list[str]) -> str | None:
    """One line saying that ``fixed`` (:func:`fixed_offsets`) issue the same offsets under
    every seed, and how to let replications differ; ``None`` when there is none."""
    if not fixed:
        return None
    return (f"workload(s) {', '.join(fixed)} issue the same offsets under every seed, as fio "
            "does (randrepeat on, or a fixed randseed): replications with other seeds do not "
            "vary them; for varied replications set randrepeat: false and no randseed in "
            "them (each run then takes a seed of its own, drawn from the run's seed)")
