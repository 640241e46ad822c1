"""Drift: how far this machine's I/O has moved since its calibration profile was made.

The model predicts I/O with the parameters fitted to a profile's probes; if the machine has
since changed speed (a neighbour on the hypervisor, a kernel, a fuller disk), an error in the
comparison says as much about the machine as about the model. So every ``cowbench run
--backend both`` measures a handful of the profile's probes again right after its real run,
one round each with the profile's own settings, and records in run.json's ``drift`` how far
each moved; ``cowbench calibrate --check PROFILE`` does the same on demand.

Which probes: the ones the run's VMs resemble most. Each VM asks of its host reads, writes
or both (``rw``, ``rwmixread``), of a block size, with ``iodepth x numjobs`` in flight,
against a raw file (``full_copy``, ``reflink_copy``) or a qcow2 overlay (first writes copy
on write: ``cow`` probes; reads fall through its layers to the base: ``chain`` probes), beside
the other VMs of its host (``exports``). Each VM's reads and writes vote for the probe of the
same direction nearest to them (:func:`distance`), and the :data:`MAX_PROBES` probes with
the most votes are measured: 9.8 s after a quickstart here at load 6, 11 to 14 s at load 12
to 17 (writing and reading back the 1 GiB raw image the probes run on, 4 s, then one
throwaway probe and four probes of 0.5 s, each about 1.1 s with its qemu-nbd). Probes of the
allocated qcow2 image are never chosen: converting it would add 5 s.

The block, in run.json and as ``calibrate --check`` prints it::

    {"measured": true, "profile": PATH, "profile_created": ..., "profile_age_s": ...,
     "dir": where measured, "same_storage": the fingerprint of "dir" is the profile's,
     "duration_s": ..., "load": [1, 5, 15 min],
     "probes": [{"probe", "stands_for": [vm names], "profile_iops", "profile_iops_min",
                 "profile_iops_max", "iops", "iops_min", "iops_max" (the rounds' range now),
                 "iops_change", "profile_lat_mean_s",
                 "lat_mean_s", "lat_mean_change", "within_profile_rounds",
                 "profile_steal_share", "steal_share"}],
     "median_abs_change": {"iops": ..., "lat_mean_s": ...},
     "steal_share": {"profile": ..., "now": ...}}

``*_change = (now - profile) / profile``; ``within_profile_rounds``: the IOPS now lies within
the range of the profile's own rounds. ``steal_share``: the share of the machine's core-time
the hypervisor took while those probes ran (``Probe.steal_share``), median over the probes, at
calibration and now (None where a profile predates it): on a virtual machine its host's
other work is a common reason a machine moves, and this says how much of it there was. Or
``{"measured": false, "reason": ...}``; when hosts rest on different profiles,
``{"measured": "per profile", "profiles": [block, ...]}``.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .backends import get_backend
from .errors import CowbenchError, Interrupted, UsageError
from .lease import Lease, held
from .lifecycle import boot_hosts
from .probe_limits import missing
from .profile import Probe, Profile, load_profile
from .profile_cache import fingerprint, fingerprint_key
from .scenario import Scenario

#: most probes a run measures again
MAX_PROBES = 4
#: below this share of the cores taken by the hypervisor (then and now), it is not mentioned
STEAL_SHOWN = 0.01
#: what ``calibrate --check`` measures without a scenario: the path's latency, the device's
#: bandwidth, small writes under load, first writes (allocation) and four exports at once
CHECK_PROBES = ("raw-randread-4k-qd1-x1", "raw-randread-64k-qd32-x1",
                "raw-randwrite-4k-qd32-x1", "cow-write-4k-qd8-x1", "raw-randread-4k-qd4-x4")
#: probes a run does not measure again: those that stand for no VM's I/O (the storage alone,
#: an undersized L2 cache, holes), and those of the fully allocated qcow2 image, which would
#: cost converting it (5 s here): a VM's overlay is stood for by first writes and by reads
#: through its layers
_NOT_A_VM = ("device", "l2miss", "hole", "qcow2", "trim")

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Need:
    """What one VM asks of its host in one direction."""

    vm: str
    host: str
    read: bool
    bs: int
    inflight: int
    target: str  # raw, cow (first writes into an overlay) or chain (reads through layers)
    depth: int
    exports: int


def vm_needs(scenario: Scenario) -> list[Need]:
    """Every VM's reads and writes, as :class:`Need` s (VMs without a workload ask nothing)."""
    vms = [vm for vm in scenario.vms
           if not scenario.model_only(vm) and scenario.workload_of(vm) is not None]
    booted = boot_hosts(scenario)  # the scheduler's hosts for VMs that name none
    vms = [vm for vm in vms if vm.name in booted]  # a VM refused at boot does no I/O
    needs = []
    for vm in vms:
        wl = scenario.workload_of(vm)
        assert wl is not None
        host = booted[vm.name]
        beside = sum(booted[v.name] == host for v in vms)
        strategy = scenario.strategy_of(vm)
        raw = strategy.kind in ("full_copy", "reflink_copy")
        depth = strategy.chain_depth if strategy.kind == "snapshot_chain" else 1
        mixed = wl.rw in ("rw", "readwrite", "randrw")
        reads = wl.rw in ("read", "randread") or (mixed and wl.rwmixread > 0)
        writes = wl.rw in ("write", "randwrite", "trimwrite") or (mixed and wl.rwmixread < 100)
        for is_read in [d for d, on in ((True, reads), (False, writes)) if on]:
            target = "raw" if raw else ("chain" if is_read else "cow")
            needs.append(Need(vm.name, host, is_read, wl.bs, wl.iodepth * wl.numjobs, target,
                              depth, beside))
    return needs


def _log2(a: float, b: float) -> float:
    return abs(math.log2(max(a, 1) / max(b, 1)))


def _target_cost(need: Need, probe: Probe) -> float:
    if probe.target == need.target or (need.target == "cow" and probe.target == "cow_ext"):
        return 0.25 * _log2(need.depth, probe.depth) if need.target == "chain" else 0.0
    if probe.target == "raw":
        return 1.5
    return 3.0


def distance(need: Need, probe: Probe) -> float:
    """How unlike ``probe`` is to ``need`` (same direction only: other probes are infinitely
    far): a doubling of the block size counts 1, of the I/Os in flight or of the exports 0.5,
    the raw file for an overlay 1.5, another kind of image 3."""
    if probe.target in _NOT_A_VM or probe.beside is not None or \
            (probe.rw == "randread") != need.read:
        return math.inf
    return (_log2(need.bs, probe.bs) + 0.5 * _log2(need.inflight, probe.iodepth)
            + 0.5 * _log2(need.exports, probe.exports) + _target_cost(need, probe))


def choose_probes(needs: Sequence[Need], probes: Sequence[Probe],
                  most: int = MAX_PROBES) -> list[tuple[Probe, list[str]]]:
    """The probes the needs vote for (each its nearest), most votes first, at most ``most``,
    each with the VMs that voted for it."""
    votes: dict[str, list[str]] = {}
    for need in needs:
        best = min(probes, key=lambda p: distance(need, p), default=None)
        if best is not None and math.isfinite(distance(need, best)):
            votes.setdefault(best.name, [])
            if need.vm not in votes[best.name]:
                votes[best.name].append(need.vm)
    order = {p.name: i for i, p in enumerate(probes)}
    ranked = sorted(votes, key=lambda n: (-len(votes[n]), order[n]))[:most]
    by_name = {p.name: p for p in probes}
    return [(by_name[n], votes[n]) for n in ranked]


def check_probes(probes: Sequence[Probe]) -> list[tuple[Probe, list[str]]]:
    """What ``calibrate --check`` measures: :data:`CHECK_PROBES` that the profile holds."""
    by_name = {p.name: p for p in probes}
    chosen = [by_name[n] for n in CHECK_PROBES if n in by_name]
    if not chosen:  # a profile of another matrix: its first probes that stand for a VM
        chosen = [p for p in probes if p.target not in _NOT_A_VM][:MAX_PROBES + 1]
    return [(p, []) for p in chosen]


def _change(now: float, then: float) -> float | None:
    return None if then <= 0 else round((now - then) / then, 4)


def probe_row(then: Probe, now: Probe, stands_for: list[str]) -> dict[str, Any]:
    lo, hi = then.iops_min, then.iops_max
    return {"probe": then.name, "stands_for": stands_for,
            "profile_iops": then.iops, "profile_iops_min": lo, "profile_iops_max": hi,
            "iops": now.iops, "iops_min": now.iops_min, "iops_max": now.iops_max,
            "iops_change": _change(now.iops, then.iops),
            "profile_lat_mean_s": then.lat_mean_s, "lat_mean_s": now.lat_mean_s,
            "lat_mean_change": _change(now.lat_mean_s, then.lat_mean_s),
            "within_profile_rounds": None if lo is None or hi is None
            else bool(lo <= now.iops <= hi),
            "profile_steal_share": then.steal_share, "steal_share": now.steal_share}


def _median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return round(statistics.median(vals), 4) if vals else None


def _median_abs(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [abs(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 4) if vals else None


def _age_s(created: str) -> float | None:
    try:
        return round((datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds(), 1)
    except ValueError:
        return None


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def measure_drift(path: Path, profile: Profile, chosen: list[tuple[Probe, list[str]]],
                  directory: Path, progress: Progress | None = None,
                  lease: Lease | None = None, rounds: int = 1) -> dict[str, Any]:
    """Measure ``chosen`` probes of ``profile`` again on ``directory`` (``rounds`` rounds,
    the profile's settings) and return the block of the module docstring."""
    real = get_backend("real")
    s = profile.settings
    settings = replace(real.probe_settings(profile.matrix, int(s.get("max_exports", 4)),
                                           profile.aio),
                       runtime_s=float(s["runtime_s"]), ramp_s=float(s["ramp_s"]),
                       span=int(s["span_bytes"]), rounds=rounds,
                       unsteady_rounds=0)  # the check's rule reads the rounds it planned
    t0 = time.monotonic()
    # the run just removed its trees: commit the journal (and, on a filesystem mounted with
    # `discard`, as this machine's is, the discards of those blocks) before measuring
    os.sync()
    with held(directory, lease) as holder:  # the run's lease, else its own
        now = real.measure_again(directory, settings, [p for p, _ in chosen], progress, holder)
    rows = [probe_row(then, again, vms)
            for (then, vms), again in zip(chosen, now, strict=True)]
    same = None if profile.fingerprint is None else \
        fingerprint_key(profile.fingerprint) == fingerprint_key(fingerprint(directory))
    return {"measured": True, "profile": str(path), "profile_created": profile.created,
            "profile_age_s": _age_s(profile.created), "dir": str(directory),
            "same_storage": same,
            "duration_s": round(time.monotonic() - t0, 1), "load": _load(), "probes": rows,
            "median_abs_change": {"iops": _median_abs(rows, "iops_change"),
                                  "lat_mean_s": _median_abs(rows, "lat_mean_change")},
            "steal_share": {"profile": _median_of(rows, "profile_steal_share"),
                            "now": _median_of(rows, "steal_share")}}


def check_profile(path: Path, directory: Path | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """``cowbench calibrate --check PROFILE``: :data:`CHECK_PROBES` measured again on
    ``directory`` (default: where the profile was measured)."""
    profile = load_profile(path)
    where = directory if directory is not None else Path(profile.dir)
    if not where.is_dir():
        flag = "--dir" if directory is not None else f"the profile's dir ({profile.dir})"
        raise UsageError(f"{flag}: not a directory here; name one on the storage to check "
                         "with --dir")
    lacks = missing(profile.settings)
    if lacks is not None:  # a hand-made profile: a run goes on without the check
        raise UsageError(f"{path}: settings.{lacks}")
    return measure_drift(path, profile, check_probes(profile.probes), where, progress)


def _profiles_of(scenario: Scenario, run_dir: Path) -> dict[str, tuple[Path, list[str]]]:
    """Profile file -> (where its hosts' disks were, its hosts); hosts with inline parameters
    or none are left out."""
    out: dict[str, tuple[Path, list[str]]] = {}
    for host in scenario.hosts:
        src = host.profile if host.calibrated is not None else (
            scenario.device.profile if scenario.device.calibrated is not None else None)
        if src:
            where = Path(host.storage_dir) if host.storage_dir else run_dir
            out.setdefault(src, (where, []))[1].append(host.name)
    return out


def run_drift(scenario: Scenario, run_dir: Path,
              progress: Callable[[str], None] = lambda _: None,
              lease: Lease | None = None) -> dict[str, Any]:
    """run.json's ``drift`` block for a real run of ``scenario`` just finished; the probes'
    private directory is recorded in the run's ``lease`` (`cowbench gc` after a kill)."""
    profiles = _profiles_of(scenario, run_dir)
    if not profiles:
        return {"measured": False, "reason": "no calibration profile file: nothing to "
                "compare with (uncalibrated, or parameters given inline)"}
    blocks = [_one_profile(scenario, path, where, hosts, progress, lease)
              for path, (where, hosts) in profiles.items()]
    return blocks[0] if len(blocks) == 1 else {"measured": "per profile", "profiles": blocks}


def _one_profile(scenario: Scenario, path: str, where: Path, hosts: list[str],
                 progress: Callable[[str], None], lease: Lease | None) -> dict[str, Any]:
    try:
        profile = load_profile(Path(path))
        on = [n for n in vm_needs(scenario) if n.host in hosts]
        chosen = choose_probes(on, profile.probes)
        if not chosen:
            return {"measured": False, "profile": path,
                    "reason": "no VM does I/O that a probe of the profile resembles"}

        def say(_i: int, _n: int, msg: str) -> None:
            progress(f"drift: {msg}")

        return measure_drift(Path(path), profile, chosen, where, say, lease)
    except Interrupted:
        raise
    except CowbenchError as err:  # the run's figures stand; the drift is unknown
        return {"measured": False, "profile": path, "reason": str(err)}


def blocks(drift: dict[str, Any] | None, key: str = "measured") -> list[dict[str, Any]]:
    """The per-profile blocks of a ``drift`` block (one, or those of ``per profile``); ``key``:
    the field that says ``per profile`` (``checked`` in a ``profile_check`` block)."""
    if not isinstance(drift, dict):
        return []
    if drift.get(key) == "per profile":
        return [b for b in drift.get("profiles") or [] if isinstance(b, dict)]
    return [drift]


def describe(drift: dict[str, Any] | None) -> str:
    """One sentence (no final stop): how far the machine moved since its profile."""
    found = blocks(drift)
    if not found:
        return "drift: not measured (this run did not record it)"
    parts = []
    for b in found:
        if b.get("measured") is not True:
            parts.append(f"not measured ({b.get('reason', 'unknown')})")
            continue
        med = (b.get("median_abs_change") or {})
        iops, lat = med.get("iops"), med.get("lat_mean_s")
        n = len(b.get("probes") or [])
        parts.append(f"{n} probe(s) of the profile measured again moved by "
                     f"{_pct(iops)} in IOPS and {_pct(lat)} in mean latency (median |change|)"
                     + _stolen(b.get("steal_share")))
    return "drift since the calibration: " + "; ".join(parts)


def describe_machine(real_runs: object) -> str | None:
    """One sentence (no final stop) on the hypervisor's share of the cores during the real
    runs (run.json's ``real_runs.machine``, ``cowbench.tools.CpuSpan``), or None when it took
    less than :data:`STEAL_SHOWN` in every run (bare metal) or nothing was recorded."""
    runs = real_runs.get("machine") if isinstance(real_runs, dict) else None
    shares = [r["steal_share"] for r in runs or [] if isinstance(r, dict)
              and isinstance(r.get("steal_share"), int | float)]
    if not shares or max(shares) < STEAL_SHOWN:
        return None
    each = "" if len(shares) == 1 else \
        f" (runs: {', '.join(f'{x:.0%}' for x in shares)})"
    return (f"the hypervisor took {statistics.median(shares):.0%} of this machine's cores "
            f"during the real run{'s' if len(shares) > 1 else ''}{each}: a virtual machine's "
            "host was busy, and the measured I/O rests on what it left")


def _stolen(steal: object) -> str:
    """The hypervisor's share of the cores during the probes, then and now, when it took
    any (nothing on bare metal, or for a profile that predates the figure)."""
    if not isinstance(steal, dict):
        return ""
    then, now = steal.get("profile"), steal.get("now")
    if not isinstance(now, int | float) or (now < STEAL_SHOWN and not (
            isinstance(then, int | float) and then >= STEAL_SHOWN)):
        return ""
    was = f", {then:.0%} at calibration" if isinstance(then, int | float) else ""
    return f"; the hypervisor took {now:.0%} of the cores while they ran{was}"


def _pct(x: object) -> str:
    return f"{x:.1%}" if isinstance(x, int | float) else "-"
