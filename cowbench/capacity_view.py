"""Everything the capacity notebook shows, computed once from a run or sweep (vectorised).

The notebook reads and plots; this module does the reading: each point's group label and
horizon, each host's own capacity (hosts may differ in size) and its time to full against it,
each replication's first host, fullest host and all hosts' fill against their summed capacity,
the headline per group, and the bands drawn over time. A run or sweep of both backends has
each group twice, its predicted and its measured hosts apart (``..., predicted``, ``...,
measured``): pooled, the measured hosts would count as one more replication of the model's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from . import capacity as cap
from . import vmdist
from .capacity_plots import FEW_HOSTS, host_series
from .knobs import label_order, point_labels, size_text
from .results import SweepResults, end_of_run

GROUP = "group"


@dataclass
class CapacityView:
    records: pd.DataFrame  # every record, with its group label
    final: pd.DataFrame  # end-of-run figures (computed once)
    hosts: pd.DataFrame  # host allocated_bytes samples
    order: list[str]  # group labels in knob order
    capacity: pd.Series  # per group: each host capacity its hosts have (bytes; a row each)
    ttf: pd.DataFrame  # per host series: time to full (censored), final and peak bytes
    first: pd.DataFrame  # per replication: first host's time to full, fullest host's peak
    head: pd.DataFrame  # per group: the Monte Carlo headline
    disk_band: pd.DataFrame  # per group and time: host demand percentiles
    rejected_band: pd.DataFrame  # per group and time: cumulative VMs refused
    #: per group: the most any of its hosts can ever hold where none can fill (its VMs' disks
    #: and bases under its own capacity, :func:`cowbench.ceiling.demand_ceiling`), else absent
    never: pd.Series | None = None
    #: per replication: its most claimed host's DISK_GB claims at their highest share of its
    #: inventory (:func:`claims`), with the group
    claimed: pd.DataFrame | None = None
    #: the capacity ``--capacity`` / ``capacity_bytes`` gave every host (a what-if read of the
    #: run), else None
    what_if: float | None = None
    #: per group: the capacities the run placed its VMs at (as :attr:`capacity`, before a
    #: what-if replaced them)
    run_capacity: pd.Series | None = None


#: How a group of each backend's hosts is named where both ran.
BACKEND_WORDS = {"sim": "predicted", "real": "measured"}


def _groups(res: SweepResults) -> tuple[pd.Series, list[str]]:
    if res.knobs:
        labels, order = point_labels(res.points, res.knobs), label_order(res.points, res.knobs)
    else:
        labels = pd.Series("all hosts", index=res.points["point"].to_numpy(), dtype=object)
        order = ["all hosts"]
    if "backend" not in res.points.columns:
        return labels, order
    words = pd.Series(res.points["backend"].to_numpy(), index=res.points["point"].to_numpy())
    labels = labels + ", " + words.reindex(labels.index)
    return labels, [f"{o}, {w}" for o in order for w in BACKEND_WORDS.values()
                    if f"{o}, {w}" in set(labels)]


def split_backends(res: SweepResults) -> SweepResults:
    """Where both backends ran, each point as two: ``<point>@predicted`` with the model's
    records and ``<point>@measured`` with the real run's, each with the point's own row
    (capacities, horizon) and a ``backend`` column naming which; else ``res`` as it is."""
    present = [b for b in BACKEND_WORDS if (res.records["backend"] == b).any()] \
        if not res.records.empty else []
    if len(present) < 2:
        return res
    word = res.records["backend"].map(BACKEND_WORDS).fillna(res.records["backend"])
    records = res.records.assign(point=res.records["point"].astype(str) + "@" + word)
    points = pd.concat([res.points.assign(point=res.points["point"].astype(str) + "@" +
                                          BACKEND_WORDS[b], backend=BACKEND_WORDS[b])
                        for b in present], ignore_index=True)
    return replace(res, points=points, records=records)


def _rejected(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cumulative VMs refused over time per replication, its bands, and the end totals."""
    rej = records[(records["entity"] == "fleet:all") & (records["metric"] == "rejected_vms")]
    timed = rej[rej["t_s"].notna()].sort_values("t_s", kind="stable")
    keys = [k for k in cap.REPLICATION_KEYS if k in timed.columns]
    cum = timed.assign(value=timed.groupby(keys, dropna=False)["value"].cumsum())
    band = cap.bands(cum, by=[GROUP]) if not cum.empty else pd.DataFrame()
    return band, rej[rej["t_s"].isna()]


def host_capacity(hosts: pd.DataFrame, points: pd.DataFrame) -> pd.Series:
    """Each host's own capacity by ``(point, entity)``: its point's ``host_capacities`` by
    name, else the point's capacity (a host not listed, results before hosts were listed)."""
    pairs = hosts[["point", "entity"]].drop_duplicates() if not hosts.empty else \
        pd.DataFrame(columns=["point", "entity"])
    per_point = dict(zip(points["point"], points.get("host_capacities", pd.Series(
        [None] * len(points))), strict=True))
    fallback = dict(zip(points["point"], points["capacity_bytes"], strict=True))
    values = [_own(per_point.get(p), str(e).removeprefix("host:"), fallback.get(p))
              for p, e in zip(pairs["point"], pairs["entity"], strict=True)]
    index = pd.MultiIndex.from_arrays([pairs["point"], pairs["entity"]])
    return pd.Series(values, index=index, dtype=float)


def host_reserve(index: pd.MultiIndex | pd.Index, points: pd.DataFrame) -> pd.Series:
    """Each ``(point, entity)``'s ``reserved_host_disk_bytes`` (the points' ``host_reserves``;
    0 for a host not listed and for results written before they were)."""
    per_point = dict(zip(points["point"], points.get("host_reserves", pd.Series(
        [None] * len(points))), strict=True))
    values = [_own(per_point.get(p), str(e).removeprefix("host:"), 0.0) for p, e in index]
    return pd.Series(values, index=index, dtype=float).fillna(0.0)


def _own(caps: object, host: str, fallback: object) -> float:
    known = caps if isinstance(caps, dict) else {}
    value = known.get(host, known.get("*", fallback))
    return float(value) if isinstance(value, int | float) else math.nan


def capacity_view(res: SweepResults, capacity_bytes: float | None = None) -> CapacityView:
    """The capacity report's data; ``capacity_bytes`` replaces every host's own capacity."""
    res = split_backends(res)
    labels, order = _groups(res)
    records = res.records.assign(**{GROUP: res.records["point"].map(labels)})
    points = res.points.assign(**{GROUP: res.points["point"].map(labels)})
    horizon = pd.Series(points["horizon_s"].to_numpy(), index=points["point"].to_numpy(),
                        dtype=float)
    hosts = cap.host_disk(records)
    caps = host_capacity(hosts, points)
    run_caps = _group_capacities(caps.copy(), labels)
    if capacity_bytes:  # each host's disk for instances at that size: less its own reserve
        caps[:] = float(capacity_bytes) - host_reserve(caps.index, points).to_numpy()
    ttf = cap.times_to_full(hosts, caps, horizon)
    ttf[GROUP] = ttf["point"].map(labels)
    first = cap.first_full(ttf, [GROUP], cap.fleet_fill(hosts, ttf, [GROUP]))
    band, rejected_end = _rejected(records)
    head = cap.headline(first, rejected_end, GROUP) if not first.empty else pd.DataFrame()
    return CapacityView(records, end_of_run(records, present_only=True), hosts, order,
                        _group_capacities(caps, labels), ttf, first, head,
                        cap.bands(hosts, by=[GROUP]), band, _never(caps, points),
                        claims(records, points, capacity_bytes),
                        float(capacity_bytes) if capacity_bytes else None, run_caps)


def claims(records: pd.DataFrame, points: pd.DataFrame,
           capacity_bytes: float | None = None) -> pd.DataFrame:
    """Per replication: the host whose DISK_GB claims (``provisioned_bytes``: its VMs' root,
    ephemeral and swap as placement counts them) came nearest its inventory (``(capacity -
    reserved) x disk_allocation_ratio``, the points' ``host_claimables``): the claims then,
    the inventory and the share. Placement refuses a VM by claims, not by bytes written: a
    host can refuse VMs while its disk is nearly empty.

    ``capacity_bytes`` (a what-if: every host's disk for instances, as ``--capacity`` gives
    it) sets each inventory to that capacity times the host's own allocation ratio (its
    inventory over its disk for instances, ``host_capacities``): the run's claims against
    the inventory such a host would have had (17 GiB claimed of an 8 GiB host at ratio 1.5 is
    142% of 12 GiB), not against the run's own."""
    cols = [GROUP, "claimed_bytes", "inventory_bytes", "claimed_share"]
    d = records[(records["metric"] == "provisioned_bytes") & records["t_s"].notna()
                & records["entity"].astype(str).str.startswith("host:")]
    if d.empty or "host_claimables" not in points.columns:
        return pd.DataFrame(columns=cols)
    inventory = {(p, f"host:{h}"): float(v)
                 for p, row in zip(points["point"], points["host_claimables"], strict=True)
                 if isinstance(row, dict) for h, v in row.items()}
    if capacity_bytes:  # (what-if - reserve) x the host's own ratio
        own = dict(zip(points["point"], points.get("host_capacities", pd.Series(
            [None] * len(points))), strict=True))
        reserve = host_reserve(pd.MultiIndex.from_tuples(list(inventory)), points) \
            if inventory else pd.Series(dtype=float)
        inventory = {(p, e): v / usable * (float(capacity_bytes) - reserve[(p, e)])
                     if usable > 0 else math.nan
                     for (p, e), v in inventory.items()
                     for usable in [_own(own.get(p), e.removeprefix("host:"), math.nan)]}
    inv = np.array([inventory.get((p, e), math.nan)
                    for p, e in zip(d["point"], d["entity"].astype(str), strict=True)])
    ok = np.isfinite(inv) & (inv > 0)
    d = d.assign(inventory_bytes=inv)[ok]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(claimed_bytes=d["value"].astype(float),
                 claimed_share=d["value"].astype(float) / d["inventory_bytes"])
    keys = [k for k in cap.REPLICATION_KEYS if k in d.columns]
    top = d.loc[d.groupby(keys, dropna=False, sort=False)["claimed_share"].idxmax()]
    return pd.DataFrame(top[cols]).reset_index(drop=True)


def _never(caps: pd.Series, points: pd.DataFrame) -> pd.Series:
    """Per group whose every host can never fill (its ceiling under its own capacity, as
    ``caps`` has it: ``--capacity`` included), the highest ceiling of its hosts."""
    if caps.empty or "host_ceilings" not in points.columns:
        return pd.Series(dtype=float)
    ceilings = dict(zip(points["point"], points["host_ceilings"], strict=True))
    group = dict(zip(points["point"], points[GROUP], strict=True))
    most: dict[str, float] = {}
    pairs = zip(caps.index.get_level_values(0), caps.index.get_level_values(1),
                caps.to_numpy(float), strict=True)
    for point, entity, c in pairs:
        known = ceilings.get(point)
        top = known.get(str(entity).removeprefix("host:"), math.inf) \
            if isinstance(known, dict) else math.inf
        g = str(group.get(point))
        most[g] = max(most.get(g, -math.inf), top if top < c else math.inf)
    out = pd.Series(most, dtype=float)
    return out[np.isfinite(out)]


def _group_capacities(caps: pd.Series, labels: pd.Series) -> pd.Series:
    """Per group label, each distinct host capacity (NaN: none known), smallest first."""
    if caps.empty:
        return pd.Series(dtype=float)
    group = labels.reindex(caps.index.get_level_values(0)).to_numpy()
    frame = pd.DataFrame({GROUP: group, "c": caps.to_numpy(float)})
    frame = frame.drop_duplicates().sort_values([GROUP, "c"], kind="stable")
    return pd.Series(frame["c"].to_numpy(), index=frame[GROUP].to_numpy(), dtype=float)


def capacity_text(capacity: pd.Series, group: str) -> str:
    """A group's host capacity: ``64 GiB``, or ``12 GiB to 40 GiB`` when hosts differ."""
    values = [float(c) for c in capacity[capacity.index == group] if math.isfinite(c)]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return size_text(lo) if lo == hi else f"{size_text(lo)} to {size_text(hi)}"


def headline_table(view: CapacityView) -> pd.DataFrame:
    """The headline as a reader reads it: one row per group, days, sizes, shares."""
    h = view.head
    if h.empty:
        return pd.DataFrame()
    h = h.set_index(GROUP).reindex([o for o in view.order if o in set(h[GROUP])]).reset_index()
    return pd.DataFrame({
        "group": h[GROUP],
        "capacity": [capacity_text(view.capacity, g) for g in h[GROUP]],
        "replications filled": [f"{int(f)} of {int(n)}"
                                for f, n in zip(h["filled"], h["replications"], strict=True)],
        "first host full, median": [_median_text(view, g, m, hz, f) for g, m, hz, f in
                                    zip(h[GROUP], h["median_s"], h["horizon_s"], h["filled"],
                                        strict=True)],
        "95% interval of the median": [cap.interval_text(r) for r in h.to_dict("records")],
        "fullest host's peak (median)": [f"{size_text(p)} ({s:.0%} of capacity)" for p, s in
                                         zip(h["peak_bytes"], h["peak_of_capacity"],
                                             strict=True)],
        "all hosts' peak (median)": [_fill_text(r) for r in h.to_dict("records")],
        "most claimed host (median)": [_claims_text(view, g) for g in h[GROUP]],
        "VMs refused (median)": ["-" if math.isnan(r) else f"{r:.0f}"
                                 for r in h["rejected_vms"]]})


def _claims_text(view: CapacityView, group: str) -> str:
    """``26 GiB claimed of 26 GiB (100%)``: the medians over the group's replications of the
    most claimed host's DISK_GB claims, its inventory and their share; ``-`` where unknown."""
    c = view.claimed
    g = c[c[GROUP] == group] if c is not None and not c.empty else pd.DataFrame()
    if g.empty:
        return "-"
    return (f"{size_text(float(g['claimed_bytes'].median()))} claimed of "
            f"{size_text(float(g['inventory_bytes'].median()))} "
            f"({float(g['claimed_share'].median()):.0%})")


def _median_text(view: CapacityView, group: str, median: float, horizon: float,
                 filled: float) -> str:
    """``17.8 d``, ``> 20 d``, or where no host of the group can ever fill, ``never (its VMs'
    disks hold at most 51 GiB)``: later than the horizon is true but says less."""
    never = view.never if view.never is not None else pd.Series(dtype=float)
    if group in never.index and not filled:
        return f"never (its VMs' disks hold at most {size_text(float(never[group]))})"
    return cap.days_text(median, horizon)


def overfull_note(view: CapacityView) -> str | None:
    """What a peak past 100% of capacity means, or None where no host went past its own:
    the model charges every write to the host's disk and keeps going when it is full, where
    a real host would have failed the writes (with QEMU's default ``werror=enospc``, which
    Nova leaves as it is, the guest is paused on ENOSPC). Its demand past the capacity is
    what the VMs asked for, not what a host could have held."""
    first = view.first
    if first.empty:
        return None
    share = (first["peak_bytes"] / first["capacity_bytes"]).astype(float)
    over = first[share > 1.0]
    if over.empty:
        return None
    groups = [g for g in view.order if g in set(over[GROUP])]
    worst = float(share.max())
    counts = over.groupby(GROUP).size()
    where = "; ".join(f"`{g}`: {counts[g]} of {int((first[GROUP] == g).sum())}"
                      for g in groups)
    return (f"**The fullest host's peak passes 100% of its capacity** (up to {worst:.0%}) "
            f"in some replications ({where}): the model keeps writing past a full disk, "
            "charging every guest write to the host. A real host would have failed those "
            "writes there (QEMU pauses a guest whose write finds no space); read such a peak "
            "as the demand the VMs had, not as bytes a host held.")


def _fill_text(row: Mapping[Any, Any]) -> str:
    """All hosts' peak demand against their summed capacity: ``28.8 GiB of 52 GiB (55%)``."""
    peak, total = row.get("fleet_peak_bytes", math.nan), row.get("fleet_capacity_bytes", math.nan)
    if not math.isfinite(peak):
        return "-"
    if not math.isfinite(total):
        return size_text(peak)
    return f"{size_text(peak)} of {size_text(total)} ({row['fleet_peak_of_capacity']:.0%})"


def host_table(view: CapacityView) -> pd.DataFrame:
    """Per host and replication: final and peak bytes, time to full (censored), as text."""
    t = view.ttf.copy()
    if t.empty:
        return t
    t = t.sort_values([GROUP, "point", "entity"], kind="stable")
    out = pd.DataFrame({
        "group": t[GROUP], "point": t["point"], "host": t["entity"].str.removeprefix("host:"),
        "final": [size_text(v) for v in t["final_bytes"]],
        "peak": [size_text(v) for v in t["peak_bytes"]],
        "time to full": [cap.days_text(x, hz) if how != "unknown" else "unknown"
                         for x, hz, how in zip(t["t_full_s"], t["horizon_s"], t["how"],
                                               strict=True)]})
    # one run directory is one point, named "." (the run itself): no column to read then
    return out.drop(columns="point") if set(out["point"]) <= {"."} else out


def what_if_note(view: CapacityView) -> str | None:
    """What a what-if capacity (``--capacity``, the notebook's ``capacity_bytes``) reads and
    what it cannot, or None where the run is read at its own capacity. The run's disk use and
    claims are re-read against the new size; placement was decided at the run's capacity, so
    which host each VM went to, its claims and the VMs refused are the run's: a smaller host
    would have refused VMs sooner, and filled otherwise. Only a run at that capacity answers
    that (a sweep over it)."""
    if view.what_if is None:
        return None
    new = size_text(view.what_if)
    run = view.run_capacity if view.run_capacity is not None else pd.Series(dtype=float)
    sizes = sorted({capacity_text(run, g) for g in view.order})
    ran = sizes[0] if len(sizes) == 1 else "; ".join(
        f"`{g}`: {capacity_text(run, g)}" for g in view.order)
    return (f"**What-if capacity: every host read against {new}; the run placed its VMs on "
            f"hosts with {ran} for instances (their capacity less their reserve).** Time "
            f"to full, the shares of capacity and the claims' share "
            f"below are this run's disk use and claims read against {new} less each host's "
            f"reserve (`reserved_host_disk_bytes`, as the run's own capacity is; an inventory "
            f"of that times each host's allocation ratio). Placement is not re-run: which host "
            f"each VM went to, its claims and the VMs refused are the run's, decided at "
            f"{ran}; hosts of {new} would have refused VMs at other times and filled "
            f"otherwise. For what they would do, run the scenario at that capacity: a sweep "
            f"over `hosts[0].capacity_bytes`, as `sweeps/capacity.yaml` does.")


#: What the headline table holds, shown above it (only where it is drawn).
HEADLINE_TEXT = (
    "Per group, over its replications (seeds): when the **first** host's disk is full (median, "
    "with its distribution-free 95% interval from order statistics; a replication in which no "
    "host filled counts as \"later than the horizon\"), the **fullest host's peak** demand "
    "against its own capacity (hosts may differ in size), **all hosts' peak** demand against "
    "their capacities summed, the **most claimed host**'s DISK_GB claims against its "
    "inventory ((capacity − reserved) × allocation ratio: placement refuses a VM by its "
    "claim, not by the bytes it will write, so VMs are refused while the disks are nearly "
    "empty), and the VMs placement **refused** (NoValidHost); the last four are medians over "
    "the replications. The 95% interval's ends are order statistics (with 10 replications, "
    "the 2nd and the 9th time), so one replication filling can leave both ends later than "
    "the horizon.")


def over_time_text(view: CapacityView) -> str:
    """What the host-demand-over-time figure draws for this view's groups: each host of a
    small group, the median, band and fullest host of a large one; its capacity lines and
    the shading past them only where a capacity is known."""
    h = view.hosts[view.hosts["t_s"].notna()] if not view.hosts.empty else view.hosts
    counts = h.groupby(GROUP)[host_series(h)].apply(
        lambda g: len(g.drop_duplicates())) if not h.empty else pd.Series(dtype=int)
    few, many = (counts <= FEW_HOSTS).any(), (counts > FEW_HOSTS).any()
    parts = ["One panel per group."]
    if few:
        parts.append(f"A group of at most {FEW_HOSTS} host series (hosts × replications) "
                     "draws each host, named: a median of so few is no host's.")
    if many:
        parts.append("A larger group draws the median over hosts and replications, the band "
                     "from p5 to p95, and the fullest host's own line, which the band stops "
                     "short of.")
    if view.capacity.notna().any():
        parts.append("Each panel has its hosts' capacities (one line per host size); shaded "
                     "above one where a host passes it: the model keeps writing past a full "
                     "disk, where a host's writes would fail.")
    return " ".join(parts)


def vm_disk_title(final: pd.DataFrame) -> str:
    """The VM disk figure's title as its data are: a fleet's quantile grid holds every VM's
    figures at the end of its life, those deleted before the end of the run too (a fleet of
    70 VMs, 29 alive at the end, draws 70); one record per VM, the VMs alive at the end
    (a VM deleted during the run has no disk then)."""
    grid = not final.empty and final["entity"].astype(str).str.startswith(
        vmdist.PREFIX).any()
    if grid:
        return "disk use per VM at the end of its life (VMs deleted before the end included)"
    return "disk use per VM at the end (VMs alive at the end)"
