"""Host disk use as a planner reads it: percentile bands, time to full, the Monte Carlo headline.

Bands are taken, at each time (or once, for end-of-run figures), over every host sample of a
group (hosts x seeds x replications x sweep points sharing the group's knobs): p5, p50 and p95
(numpy's linear interpolation), with min and max.

Time to full is where a host's ``allocated_bytes`` reaches **its own** capacity for instances
(hosts of a point may differ in size: each host's ``capacity_bytes`` less its
``reserved_host_disk_bytes``, the disk Nova keeps for the host's own use; the model's
``time_to_full_s`` records and every share of capacity count the same), interpolated between
the two samples around the crossing. It is never extrapolated past the
last sample: a host that has not filled by the end of the simulation is **censored** (``how``
``not full``, ``t_full_s`` NaN): all one knows is "later than the horizon", which a report shows
as ``> 730 d``. End-of-run figures alone carry no crossing, so their time to full is
``unknown``.

The Monte Carlo headline is per group (the points sharing every knob but the seed): the time
the **first** host of each replication fills, its median with a distribution-free interval
(:func:`cowbench.montecarlo.median_ci`, censored replications counted as "later"), the fullest
host's peak against its own capacity (the highest share), all hosts' demand summed against
their capacities summed (the fleet's fill), and the VMs placement refused (NoValidHost).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .compare import nth
from .montecarlo import time_to_full_summary
from .units import format_duration

QUANTILES = (5, 50, 95)
BAND_COLUMNS = ["t_s", "n", "min", "p5", "p50", "p95", "max"]
#: What tells one replication's host series from another's.
REPLICATION_KEYS = ("point", "backend", "seed", "replication")
DAY = 86400.0


def host_disk(records: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The records of ``metric`` for ``host:`` entities; by default each host's disk use as
    capacity sees it (:func:`host_space`)."""
    if records.empty:
        return records
    if metric is None:
        return host_space(records)
    keep = records["entity"].astype(str).str.startswith("host:") & (records["metric"] == metric)
    return records[keep].reset_index(drop=True)


def host_space(records: pd.DataFrame) -> pd.DataFrame:
    """Each host's disk use as capacity sees it: its ``used_bytes`` (its files' physical
    space, the extents reflink copies share with their base counted once), and
    ``allocated_bytes`` (every file's st_blocks, shared extents counted in each file) for a
    host whose run recorded no ``used_bytes`` (a fleet, whose disks share no extents; records
    written before the figure existed). Summing ``allocated_bytes`` over a host's files counts
    a base shared by N reflink clones N + 1 times: a host of clones looks as full as one of
    full copies."""
    if records.empty:
        return records
    host = records[records["entity"].astype(str).str.startswith("host:")]
    used = host[host["metric"] == "used_bytes"]
    alloc = host[host["metric"] == "allocated_bytes"]
    if used.empty:
        return alloc.reset_index(drop=True)
    ids = [c for c in host.columns if c not in ("t_s", "metric", "value", "unit")]
    known = set(map(tuple, used[ids].astype(str).to_numpy().tolist()))
    rest = [tuple(r) not in known for r in alloc[ids].astype(str).to_numpy().tolist()]
    return pd.concat([used, alloc[rest]]).sort_index().reset_index(drop=True)


def bands(samples: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Percentile bands of ``value`` per ``by`` group and ``t_s`` (NaN ``t_s`` = end of run).
    Series sampled at different instants (a timeline's hosts, sampled at each one's own
    operations, another seed's at other times) are first held at their last value at every
    instant of their group (:func:`held`)."""
    keys = [*(by or []), "t_s"]
    d = samples.dropna(subset=["value"]) if not samples.empty else samples
    if d.empty:
        return pd.DataFrame(columns=[*(by or []), *BAND_COLUMNS])
    d = held(d, by or [])
    # end-of-run figures (t_s NaN) as -inf while grouping: NaN keys do not align in quantile
    d = d.assign(t_s=d["t_s"].fillna(-np.inf))
    g = d.groupby(keys, sort=True)["value"]
    q = g.quantile(np.array([p / 100 for p in QUANTILES])).unstack()
    q.columns = [f"p{p}" for p in QUANTILES]
    out = pd.concat([g.size().rename("n"), g.min().rename("min"), q, g.max().rename("max")],
                    axis=1).reset_index()
    out["t_s"] = out["t_s"].replace(-np.inf, np.nan)
    return out[[*(by or []), *BAND_COLUMNS]]


def held(samples: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``samples`` where every series (one entity of one replication) of a ``by`` group has a
    value at every instant any series of that group was sampled: its last value before it
    (disk use holds between samples), none before its first sample; at an instant sampled
    twice (before and after an operation) the later. A band over series sampled at different
    instants is otherwise a band over whichever few were sampled at each one. Samples already
    on one grid (a fleet's) are returned as they are."""
    series = [k for k in (*REPLICATION_KEYS, "entity") if k in samples.columns]
    timed = samples[samples["t_s"].notna()]
    if timed.empty or not series:
        return samples
    grids = timed.groupby(series, dropna=False, sort=False)["t_s"].agg(
        lambda t: hash(tuple(np.unique(t.to_numpy()))))
    if grids.nunique() <= 1:
        return samples
    out = [samples[samples["t_s"].isna()]]
    groups = timed.groupby(by, dropna=False, sort=False) if by else [((), timed)]
    for _, g in groups:
        last = g.drop_duplicates([*series, "t_s"], keep="last")
        ids = last[series].astype(str).agg("\x1f".join, axis=1)
        wide = pd.DataFrame({"id": ids.to_numpy(), "t_s": last["t_s"].to_numpy(),
                             "value": last["value"].to_numpy()}).pivot(
            index="t_s", columns="id", values="value").sort_index().ffill()
        long = wide.reset_index().melt(id_vars="t_s", var_name="id", value_name="value")
        long = long.dropna(subset=["value"])
        first = last.assign(id=ids.to_numpy()).drop_duplicates("id").set_index("id")
        cols = [c for c in samples.columns if c not in ("t_s", "value")]
        long = long.join(first[cols], on="id")
        out.append(long[samples.columns])
    return pd.concat(out, ignore_index=True)


def _usable(host: dict[str, Any], value: float) -> float:
    """A host's disk for instances: ``value`` (its capacity) less ``reserved_host_disk_bytes``
    (``reserved_host_disk_mb``: Nova's reserve for the host's own files, which no instance may
    claim), as ``cowbench.nova.schema.HostDisk.weighed_disk``."""
    reserved = host.get("reserved_host_disk_bytes", 0)
    return value - float(reserved) if isinstance(reserved, int | float) else value


def scenario_capacity(scenario: dict[str, Any]) -> float | None:
    """A host's disk for instances as a resolved scenario states it: a fleet's
    ``capacity_bytes`` its hosts give less each one's ``reserved_host_disk_bytes`` (the
    smallest), or in results written before hosts were described once,
    ``fleet.hosts.capacity_bytes`` (``capacity`` before it was renamed)."""
    fleet = scenario.get("fleet")
    if isinstance(fleet, dict) and isinstance(fleet.get("hosts"), dict):
        cap = fleet["hosts"].get("capacity_bytes", fleet["hosts"].get("capacity"))
        return float(cap) if isinstance(cap, int | float) and cap > 0 else None
    caps = []
    for host in scenario.get("hosts") or []:
        value = host.get("capacity_bytes", host.get("capacity")) if isinstance(host, dict) \
            else None
        if isinstance(value, int | float) and value > 0:
            caps.append(_usable(host, float(value)))
    return min(caps) if caps else None


def host_claimables(scenario: dict[str, Any]) -> dict[str, float]:
    """Each host's DISK_GB inventory by name, what placement may give its VMs' claims:
    ``(capacity - reserved) x disk_allocation_ratio`` (``cowbench.nova.claims.inventory``),
    for the hosts a resolved scenario gives a capacity."""
    from .nova.claims import inventory

    out = {}
    for h in scenario.get("hosts") or []:
        if isinstance(h, dict) and isinstance(h.get("capacity_bytes"), int | float):
            ratio = h.get("disk_allocation_ratio", 1.0)
            reserved = h.get("reserved_host_disk_bytes", 0)
            out[str(h.get("name"))] = inventory(
                int(h["capacity_bytes"]), float(ratio) if isinstance(ratio, int | float)
                else 1.0, int(reserved) if isinstance(reserved, int | float) else 0)
    return out


def host_reserves(scenario: dict[str, Any]) -> dict[str, float]:
    """Each host's ``reserved_host_disk_bytes`` by name (0 where it sets none), as a resolved
    scenario states it: what a what-if capacity (``cowbench report --capacity``) loses to the
    host's own files, as the host's own capacity does."""
    out = {}
    for h in scenario.get("hosts") or []:
        if isinstance(h, dict):
            reserved = h.get("reserved_host_disk_bytes", 0)
            out[str(h.get("name"))] = float(reserved) if isinstance(reserved, int | float) \
                else 0.0
    return out


def host_capacities(scenario: dict[str, Any]) -> dict[str, float]:
    """Each host's own disk for instances by name (capacity less reserved), as a resolved
    scenario states it (hosts may differ); ``*``: the capacity of a host not listed (results
    written before hosts were described once)."""
    caps = {str(h.get("name")): _usable(h, float(h["capacity_bytes"]))
            for h in scenario.get("hosts") or []
            if isinstance(h, dict) and isinstance(h.get("capacity_bytes"), int | float)}
    cap = scenario_capacity(scenario)
    return {**caps, "*": math.nan if cap is None else cap}


def ceph_parent_bytes(scenario: dict[str, Any]) -> float:
    """The bytes the RBD parent images of a resolved scenario's RBD clones take in the Ceph
    pool: each image an ``rbd_clone`` VM uses, once however many clones it has, by its data
    (its synthetic or mapped data extents: a parent imported thin, as ``rbd import`` and
    Glance's ``rbd_thin_provisioning`` write it). The model records none of it (a clone's
    records are its own objects), and no host holds it; 0 where no VM is an RBD clone."""
    default = scenario.get("strategy") if isinstance(scenario.get("strategy"), dict) else {}
    used = {str(vm.get("image")) for vm in scenario.get("vms") or [] if isinstance(vm, dict)
            and ((vm.get("strategy") if isinstance(vm.get("strategy"), dict) else default)
                 or {}).get("kind") == "rbd_clone"}
    total = 0.0
    for image in scenario.get("images") or []:
        if not isinstance(image, dict) or str(image.get("name")) not in used:
            continue
        synthetic = image.get("synthetic")
        extents = synthetic.get("data") if isinstance(synthetic, dict) else image.get("data_map")
        total += sum(float(e.get("length") or 0) for e in extents or [] if isinstance(e, dict))
    return total


def _keys(frame: pd.DataFrame) -> list[str]:
    return [k for k in REPLICATION_KEYS if k in frame.columns]


def times_to_full(hosts: pd.DataFrame, capacity: pd.Series | float,
                  horizon: pd.Series | float | None = None) -> pd.DataFrame:
    """Per host series (point, backend, seed, replication, entity): when it reaches its
    capacity (``capacity`` per host, a Series indexed by ``(point, entity)``; per point, by
    ``point``; or one number for all), its final and peak bytes. Vectorised: one sort, one
    shift, one ``drop_duplicates``.

    ``how`` is ``reached``, ``not full`` (censored at ``horizon_s``: the point's horizon, else
    its last sample) or ``unknown`` (no timed sample)."""
    keys = [*_keys(hosts), "entity"]
    cols = [*keys, "capacity_bytes", "horizon_s", "final_bytes", "peak_bytes", "t_full_s",
            "how"]
    h = hosts[hosts["t_s"].notna()] if not hosts.empty else hosts
    if h.empty:
        return pd.DataFrame(columns=cols)
    h = h.sort_values([*keys, "t_s"], kind="stable")
    h = h.assign(_cap=pd.to_numeric(_capacity_of(h, capacity), errors="coerce").astype(float))
    g = h.groupby(keys, sort=False, dropna=False)
    h = h.assign(_pt=g["t_s"].shift(), _pv=g["value"].shift())
    out = g.agg(capacity_bytes=("_cap", "first"), last_t=("t_s", "max"),
                final_bytes=("value", "last"), peak_bytes=("value", "max")).reset_index()
    cross = h[h["value"] >= h["_cap"]].drop_duplicates(keys, keep="first")
    frac = ((cross["_cap"] - cross["_pv"]) / (cross["value"] - cross["_pv"])).clip(0, 1)
    t_full = (cross["_pt"] + frac * (cross["t_s"] - cross["_pt"])).fillna(cross["t_s"])
    out = out.merge(cross[keys].assign(t_full_s=t_full.to_numpy()), on=keys, how="left")
    hz = out["point"].map(horizon) if isinstance(horizon, pd.Series) else horizon
    out["horizon_s"] = pd.to_numeric(pd.Series(hz, index=out.index), errors="coerce") \
        .fillna(out["last_t"]).astype(float)
    out["how"] = np.where(out["t_full_s"].notna(), "reached",
                          np.where(out["capacity_bytes"].notna(), "not full", "unknown"))
    return out[cols]


def _capacity_of(h: pd.DataFrame, capacity: pd.Series | float) -> pd.Series:
    """Each row's capacity: by ``(point, entity)``, by ``point`` or one for all."""
    if not isinstance(capacity, pd.Series):
        return pd.Series(capacity, index=h.index)
    if capacity.index.nlevels == 2:
        at = pd.MultiIndex.from_arrays([h["point"], h["entity"]])
        return pd.Series(capacity.reindex(at).to_numpy(), index=h.index)
    return h["point"].map(capacity)


def time_to_full(t: np.ndarray, y: np.ndarray, capacity: float,
                 ceiling: float = math.inf) -> tuple[float, str]:
    """When one series ``y(t)`` reaches ``capacity``, and how that was found: the estimate
    ``cowbench show`` prints and labels ``extrapolated`` when the series has not reached it.
    Reports never use it: they censor at the horizon (:func:`times_to_full`).

    ``ceiling`` is the most the series can ever be (a host: what its VMs' disks and bases can
    hold, :func:`cowbench.ceiling.demand_ceiling`). A line drawn through growth knows nothing
    of it: a host holding the two VMs it has room for grows until their disks are full, then
    stops. So a series that has not reached ``capacity`` and whose ceiling is below it never
    fills (``bounded``); a ceiling at or above ``capacity`` (an allocation ratio over 1) leaves
    the extrapolation as it is (the line meets ``capacity`` before the ceiling). A ceiling the
    series already passed is no ceiling: it is ignored.

    Returns ``(t_full, how)`` with ``how`` one of ``reached`` (interpolated between the two
    samples around the crossing), ``extrapolated`` (linear growth of the series' second half),
    ``bounded`` (``inf``: the ceiling is under ``capacity``), ``never`` (no growth) or
    ``unknown`` (fewer than two timed samples).
    """
    ok = ~(np.isnan(t) | np.isnan(y))
    t, y = t[ok], y[ok]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if t.size and y[0] >= capacity:
        return float(t[0]), "reached"
    above = np.nonzero(y >= capacity)[0]
    if above.size:
        i = int(above[0])
        frac = (capacity - y[i - 1]) / (y[i] - y[i - 1])
        return float(t[i - 1] + frac * (t[i] - t[i - 1])), "reached"
    if ceiling < capacity and (not y.size or float(y.max()) <= ceiling):
        return math.inf, "bounded"
    if t.size < 2:
        return math.nan, "unknown"
    half = t.size // 2
    tt, yy = t[half - 1 if half else 0:], y[half - 1 if half else 0:]
    if tt[-1] <= tt[0]:
        return math.nan, "unknown"
    rate = float(np.polyfit(tt, yy, 1)[0]) if tt.size > 2 else (yy[-1] - yy[0]) / (tt[-1] - tt[0])
    # growth below a billionth of the level over the whole window is float noise, not growth
    if rate * (tt[-1] - tt[0]) <= 1e-9 * max(float(np.abs(yy).max()), 1.0):
        return math.inf, "never"
    return float(t[-1] + (capacity - y[-1]) / rate), "extrapolated"


def first_full(ttf: pd.DataFrame, by: list[str],
               fill: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per replication (and ``by`` group): the first host's time to full (NaN: no host filled
    within the horizon), the fullest host's peak and its capacity (the highest peak as a share
    of its own capacity), the horizon, and from ``fill`` (:func:`fleet_fill`) all hosts' peak
    and their capacity."""
    keys = _replication(ttf, by)
    cols = [*keys, "t_first_full_s", "peak_bytes", "capacity_bytes", "horizon_s"]
    if ttf.empty:
        return pd.DataFrame(columns=cols)
    share = ttf.assign(_share=ttf["peak_bytes"] / ttf["capacity_bytes"])
    fullest = share.sort_values(["_share", "peak_bytes"], na_position="first", kind="stable") \
        .drop_duplicates(keys, keep="last").set_index(keys)
    g = ttf.groupby(keys, sort=True, dropna=False)
    out = g.agg(t_first_full_s=("t_full_s", "min"), horizon_s=("horizon_s", "first"))
    out = out.join(fullest[["peak_bytes", "capacity_bytes"]]).reset_index()[cols]
    return out if fill is None else out.merge(fill, on=keys, how="left")


def _replication(frame: pd.DataFrame, by: list[str]) -> list[str]:
    return [*by, *[k for k in REPLICATION_KEYS if k in frame.columns and k not in by]]


def fleet_fill(hosts: pd.DataFrame, ttf: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per replication (and ``by`` group): the peak of all its hosts' demand summed at each
    sample (``fleet_peak_bytes``) and their capacities summed (``fleet_capacity_bytes``)."""
    keys = _replication(hosts, by)
    h = hosts[hosts["t_s"].notna()] if not hosts.empty else hosts
    if h.empty or ttf.empty:
        return pd.DataFrame(columns=[*keys, "fleet_peak_bytes", "fleet_capacity_bytes"])
    # a lifecycle samples every host after each operation: the k-th sample of each host at
    # one instant is one state of the fleet (two samples of a host there are not summed)
    h = h.assign(_nth=nth(h, [*keys, "entity", "t_s"]))
    total = h.groupby([*keys, "t_s", "_nth"], sort=True, dropna=False)["value"].sum()
    peak = total.groupby(level=keys, dropna=False).max().rename("fleet_peak_bytes")
    caps = ttf.groupby(keys, sort=True, dropna=False)["capacity_bytes"].sum(min_count=1)
    return pd.concat([peak, caps.rename("fleet_capacity_bytes")], axis=1).reset_index()


def headline(first: pd.DataFrame, rejected: pd.DataFrame, group: str,
             level: float = 0.95) -> pd.DataFrame:
    """Per group: replications, how many filled, the first host's median time to full with
    its interval (``inf``: censored; NaN with too few replications), the fullest host's peak
    and its share of its capacity (medians over replications), all hosts' peak against their
    summed capacity (when ``first`` has them), and the VMs refused (median total)."""
    rows = []
    for name, g in first.groupby(group, sort=False):
        horizon = float(g["horizon_s"].max())
        s = time_to_full_summary(g["t_first_full_s"].to_numpy(float), horizon, level)
        rej = rejected[rejected[group] == name]["value"].to_numpy(float) \
            if not rejected.empty else np.array([])
        rows.append({group: name, "capacity_bytes": float(g["capacity_bytes"].iloc[0]),
                     "horizon_s": horizon, **s, **_peaks(g),
                     "rejected_vms": float(np.median(rej)) if len(rej) else math.nan})
    return pd.DataFrame(rows)


def _peaks(g: pd.DataFrame) -> dict[str, float]:
    """Medians over a group's replications: the fullest host's peak and its share of its
    capacity; all hosts' peak, their capacity and the share."""
    out = {"peak_bytes": float(g["peak_bytes"].median()),
           "peak_of_capacity": _median_share(g["peak_bytes"], g["capacity_bytes"])}
    if "fleet_peak_bytes" in g.columns:
        out.update(fleet_peak_bytes=float(g["fleet_peak_bytes"].median()),
                   fleet_capacity_bytes=float(g["fleet_capacity_bytes"].median()),
                   fleet_peak_of_capacity=_median_share(g["fleet_peak_bytes"],
                                                        g["fleet_capacity_bytes"]))
    return out


def _median_share(num: pd.Series, den: pd.Series) -> float:
    share = (num.astype(float) / den.astype(float).where(den > 0)).to_numpy(float)
    return float(np.median(share)) if not np.isnan(share).all() else math.nan


def days_text(seconds: float, horizon_s: float | None = None) -> str:
    """``3.1e7`` -> ``358.8 d``; censored (``inf``, NaN, past the horizon) -> ``> 730 d``;
    under a day as people read it (``12 min 30 s``, ``> 20 min``: a lifecycle of minutes is
    not ``0.00 d``)."""
    if horizon_s is not None and (not math.isfinite(seconds) or seconds > horizon_s):
        if horizon_s < DAY:
            return f"> {format_duration(horizon_s)}"
        return f"> {horizon_s / DAY:.3g} d"
    if not math.isfinite(seconds):
        return "-"
    if seconds < DAY:
        return format_duration(seconds)
    days = seconds / DAY
    return f"{days:.2f} d" if days < 10 else f"{days:.1f} d" if days < 1000 else f"{days:.0f} d"


def interval_text(row: Mapping[Any, Any] | pd.Series) -> str:
    """``363.8 d to 427.0 d``, ``363.8 d to > 730 d``, ``both ends > 730 d``, or why there is
    none.

    The interval's ends are order statistics (:func:`cowbench.montecarlo.median_ci`): with 10
    replications, the 2nd and the 9th time. So one replication of ten filling puts neither end
    within the horizon: the 2nd time is censored too. That says the *median* is later than
    the horizon, with 95% confidence, not that every replication is: the text names the ends
    ("both ends"), never "all", which a reader took for "no replication filled" next to a
    filled one."""
    lo, hi, horizon = row["median_ci_low_s"], row["median_ci_high_s"], row["horizon_s"]
    if math.isnan(lo) or math.isnan(hi):
        return (f"needs {int(row['seeds_needed'])} seeds for a {row['level']:.0%} interval "
                f"(has {int(row['replications'])})")
    if not math.isfinite(lo):
        return f"both ends {days_text(lo, horizon)} (later than the horizon)"
    high = days_text(hi, horizon)
    return f"{days_text(lo, horizon)} to {high}"
