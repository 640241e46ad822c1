"""Everything the capacity notebook shows, computed once from a run or sweep (vectorised).

The notebook reads and plots; this module does the reading: each point's group label and its
own capacity and horizon, each host's time to full against that capacity, each replication's
first host and fullest host, the headline per group, and the bands drawn over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from . import capacity as cap
from .knobs import label_order, point_labels, size_text
from .results import SweepResults, end_of_run

GROUP = "group"


@dataclass
class CapacityView:
    records: pd.DataFrame  # every record, with its group label
    final: pd.DataFrame  # end-of-run figures (computed once)
    hosts: pd.DataFrame  # host allocated_bytes samples
    order: list[str]  # group labels in knob order
    capacity: pd.Series  # per group: the host capacity (bytes)
    ttf: pd.DataFrame  # per host series: time to full (censored), final and peak bytes
    first: pd.DataFrame  # per replication: first host's time to full, fullest host's peak
    head: pd.DataFrame  # per group: the Monte Carlo headline
    disk_band: pd.DataFrame  # per group and time: host demand percentiles
    rejected_band: pd.DataFrame  # per group and time: cumulative VMs refused


def _groups(res: SweepResults) -> tuple[pd.Series, list[str]]:
    if res.knobs:
        return point_labels(res.points, res.knobs), label_order(res.points, res.knobs)
    labels = pd.Series("all hosts", index=res.points["point"].to_numpy(), dtype=object)
    return labels, ["all hosts"]


def _rejected(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cumulative VMs refused over time per replication, its bands, and the end totals."""
    rej = records[(records["entity"] == "fleet:all") & (records["metric"] == "rejected_vms")]
    timed = rej[rej["t_s"].notna()].sort_values("t_s", kind="stable")
    keys = [k for k in cap.REPLICATION_KEYS if k in timed.columns]
    cum = timed.assign(value=timed.groupby(keys, dropna=False)["value"].cumsum())
    band = cap.bands(cum, by=[GROUP]) if not cum.empty else pd.DataFrame()
    return band, rej[rej["t_s"].isna()]


def capacity_view(res: SweepResults, capacity_bytes: float | None = None) -> CapacityView:
    """The capacity report's data; ``capacity_bytes`` replaces every point's own capacity."""
    labels, order = _groups(res)
    records = res.records.assign(**{GROUP: res.records["point"].map(labels)})
    points = res.points.assign(**{GROUP: res.points["point"].map(labels)})
    caps = pd.Series(capacity_bytes if capacity_bytes else points["capacity_bytes"].to_numpy(),
                     index=points["point"].to_numpy(), dtype=float)
    horizon = pd.Series(points["horizon_s"].to_numpy(), index=points["point"].to_numpy(),
                        dtype=float)
    hosts = cap.host_disk(records)
    ttf = cap.times_to_full(hosts, caps, horizon)
    ttf[GROUP] = ttf["point"].map(labels)
    first = cap.first_full(ttf, [GROUP])
    band, rejected_end = _rejected(records)
    head = cap.headline(first, rejected_end, GROUP) if not first.empty else pd.DataFrame()
    group_cap = pd.Series(caps.to_numpy(), index=labels.reindex(caps.index).to_numpy()) \
        .groupby(level=0).first()
    return CapacityView(records, end_of_run(records), hosts, order, group_cap, ttf, first,
                        head, cap.bands(hosts, by=[GROUP]), band)


def headline_table(view: CapacityView) -> pd.DataFrame:
    """The headline as a reader reads it: one row per group, days, sizes, shares."""
    h = view.head
    if h.empty:
        return pd.DataFrame()
    h = h.set_index(GROUP).reindex([o for o in view.order if o in set(h[GROUP])]).reset_index()
    return pd.DataFrame({
        "group": h[GROUP],
        "capacity": [size_text(c) if math.isfinite(c) else "-" for c in h["capacity_bytes"]],
        "replications filled": [f"{int(f)} of {int(n)}"
                                for f, n in zip(h["filled"], h["replications"], strict=True)],
        "first host full, median": [cap.days_text(m, hz) for m, hz in
                                    zip(h["median_s"], h["horizon_s"], strict=True)],
        "95% interval of the median": [cap.interval_text(r) for r in h.to_dict("records")],
        "fullest host's peak": [f"{size_text(p)} ({s:.0%} of capacity)" for p, s in
                                zip(h["peak_bytes"], h["peak_of_capacity"], strict=True)],
        "VMs refused (median)": ["-" if math.isnan(r) else f"{r:.0f}"
                                 for r in h["rejected_vms"]]})


def host_table(view: CapacityView) -> pd.DataFrame:
    """Per host and replication: final and peak bytes, time to full (censored), as text."""
    t = view.ttf.copy()
    if t.empty:
        return t
    t = t.sort_values([GROUP, "point", "entity"], kind="stable")
    return pd.DataFrame({
        "group": t[GROUP], "point": t["point"], "host": t["entity"].str.removeprefix("host:"),
        "final": [size_text(v) for v in t["final_bytes"]],
        "peak": [size_text(v) for v in t["peak_bytes"]],
        "time to full": [cap.days_text(x, hz) if how != "unknown" else "unknown"
                         for x, hz, how in zip(t["t_full_s"], t["horizon_s"], t["how"],
                                               strict=True)]})
