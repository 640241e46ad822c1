"""A timeline's placement and capacity figures, recorded as a fleet records them.

A fleet (``sim.fleet``) writes, beside its hosts' demand, what placement decided and when hosts
fill: ``host:<h>`` ``provisioned_bytes`` (the DISK_GB claimed there) and ``vm_count`` per
sample; ``fleet:all`` the hosts' sums per sample, ``rejected_vms`` per interval ending at a
sample (arrivals placement refused, NoValidHost), and at the end ``arrived_vms``,
``rejected_vms`` (the total) and ``time_to_full_s`` (the first host to fill; each host's own
too, where it filled). The capacity report, a sweep's ``summary.csv`` and ``cowbench show``
read these names (``cowbench.sweep_points.point_figures``, ``cowbench.capacity_view``).

A timeline whose arrivals are placed by the scheduler, or whose hosts have a capacity, is a
small fleet: both backends record the same figures under the same names, so one reader serves
both. The claims are Nova's state machine's (:meth:`cowbench.nova.machine.Machine.claims`),
recorded by each backend at each of its samples (:func:`record_claims`); the refusals are the
scheduler's walk (:func:`cowbench.lifecycle.timeline_plan`), the same for both backends; the
sums and the times to full are taken from the backend's own host samples at the end of its run
(:func:`record_fleet`), each host against its own disk for instances (its capacity less its
reserve, :attr:`cowbench.nova.schema.HostDisk.weighed_disk`).

A timeline samples every host after each step, so several samples may share an instant: the
k-th sample of each host there is one state of the hosts, and the sums are taken per state
(as ``cowbench.capacity.fleet_fill`` does), never across two.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .lifecycle import schedule, timeline_plan

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .nova.machine import Machine
    from .records import Recorder
    from .scenario import Scenario

FLEET = "fleet:all"
#: host figures recorded over time that ``fleet:all`` sums per sample, as a fleet's
SUMMED = ("allocated_bytes", "provisioned_bytes", "vm_count")


def applies(s: Scenario) -> bool:
    """Whether ``s`` records a fleet's figures: a timeline (no ``fleet`` section: that one
    records its own) with arrivals the scheduler places, or with hosts of a given capacity."""
    tl = s.timeline
    return s.fleet is None and tl is not None and (
        bool(tl.arrivals) or any(h.capacity_bytes for h in s.hosts))


def record_claims(s: Scenario, rec: Recorder, machine: Machine, t: float | None) -> None:
    """At a timed sample of ``s`` (both backends, beside each host's demand): each host's
    ``provisioned_bytes`` (DISK_GB claimed: its VMs and the ``_resize`` copies left there) and
    ``vm_count``, from Nova's state machine."""
    if t is None or not applies(s):
        return
    for host, (need, count) in machine.claims().items():
        rec.add(f"host:{host}", "provisioned_bytes", need, t)
        rec.add(f"host:{host}", "vm_count", count, t)


def record_fleet(s: Scenario, rec: Recorder) -> None:
    """At the end of a backend's run of ``s``: the ``fleet:all`` figures and the hosts'
    ``time_to_full_s``, from the scheduler's plan and the host samples ``rec`` holds."""
    if not applies(s):
        return
    import numpy as np  # at the end of a run: a real run starts without them

    from .compare import nth

    frame = rec.frame()
    hosts = frame[frame["entity"].str.startswith("host:") & frame["t_s"].notna()]
    for metric in SUMMED:
        h = hosts[hosts["metric"] == metric]
        h = h.assign(_nth=nth(h, ["entity", "t_s"]).to_numpy())
        sums = h.groupby(["t_s", "_nth"], sort=True)["value"].sum()
        for t, value in zip(sums.index.get_level_values("t_s").tolist(), sums.tolist(),
                            strict=True):
            rec.add(FLEET, metric, float(value), float(t))
    ops, refused = timeline_plan(s)
    boots = sum(op.op == "boot" for op in ops)
    rec.add(FLEET, "arrived_vms", float(boots + len(refused)))
    rec.add(FLEET, "rejected_vms", float(len(refused)))
    samples = _grid(s, hosts["t_s"].to_numpy(float))
    if samples.size:  # each refusal in the interval (t_{s-1}, t_s] that holds it, as a fleet's
        at = np.minimum(np.searchsorted(samples, [t for _, t in refused], side="left"),
                        samples.size - 1)
        for t, n in zip(samples.tolist(), np.bincount(at, minlength=samples.size).tolist(),
                        strict=True):
            rec.add(FLEET, "rejected_vms", float(n), t)
    _record_full(s, rec, frame)


def _grid(s: Scenario, sampled: np.ndarray) -> np.ndarray:
    """The instants refusals are counted at: the timeline's periodic samples
    (``sample_interval_s``), one grid for every seed, as a fleet's, so that replications line
    up (their operations, and the samples after each, fall at instants of their own: counted
    there, a band over replications took one replication's count at each); a timeline
    without periodic samples, the instants its hosts were sampled at."""
    import numpy as np

    ticks = [t for t, kind, _ in schedule(s) if kind == "sample"]
    return np.unique(np.asarray(ticks if ticks else sampled, dtype=np.float64))


def _record_full(s: Scenario, rec: Recorder, frame: pd.DataFrame) -> None:
    """Each host's ``time_to_full_s`` where its disk use (``used_bytes``, else
    ``allocated_bytes``: ``cowbench.capacity.host_space``) reached its disk for instances
    between two samples (interpolated, never extrapolated), and the first of them as
    ``fleet:all``'s; nothing where no host has a capacity."""
    from .capacity import host_space, time_to_full

    caps = {h.name: h.weighed_disk for h in s.hosts if h.capacity_bytes}
    if not caps:
        return
    space = host_space(frame)
    space = space[space["t_s"].notna()]
    first = math.inf
    for entity, g in space.groupby("entity", sort=True):
        cap = caps.get(str(entity).removeprefix("host:"), math.inf)
        if not math.isfinite(cap):
            continue
        t_full, how = time_to_full(g["t_s"].to_numpy(float), g["value"].to_numpy(float), cap)
        if how == "reached":
            rec.add(str(entity), "time_to_full_s", t_full)
            first = min(first, t_full)
    if math.isfinite(first):
        rec.add(FLEET, "time_to_full_s", first)
