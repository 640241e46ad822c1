"""Per-VM distributions of a run: from one record per VM, or from a fleet's quantile grid.

A fleet of 10^6 VMs does not keep one record per VM and figure unless asked
(``fleet.records: per_vm``): its VMs' end-of-life figures (``allocated_bytes``,
``data_clusters``, ``host_read_bytes``) are recorded as a fixed grid of quantiles, every percent
from 0 (the smallest VM) to 100 (the largest), as numpy's ``percentile`` computes them (linear
between order statistics). Quantile ``q`` of metric ``m`` is the record ``(entity="vms:p<q>",
metric=m, t_s=NaN)``: the metric names stay the contract's, the entity says which quantile.

This module reads either form back: a quantile of one run (the same number from both forms),
and the quantiles of several runs pooled (a mixture of their distributions, each run weighted
by its VMs, as one run of all their VMs would give within the grid's resolution).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: The grid's quantile levels, in percent: 0, 1, ..., 100.
LEVELS = np.arange(101, dtype=np.float64)
PREFIX = "vms:p"
__all__ = ["LEVELS", "PREFIX", "grid_entities", "group_quantiles", "has_vm_figures",
           "pooled_quantiles", "vm_quantiles"]


def grid_entities() -> np.ndarray:
    """The entity of each level of :data:`LEVELS`: ``vms:p0`` ... ``vms:p100``."""
    return np.array([f"{PREFIX}{q:.0f}" for q in LEVELS], dtype=object)


def _grid(records: pd.DataFrame, metric: str) -> pd.Series:
    """The grid's values of ``metric``, indexed by level (percent), in level order."""
    entity = records["entity"].astype(str)
    g = records[entity.str.startswith(PREFIX) & (records["metric"] == metric)]
    levels = g["entity"].astype(str).str.removeprefix(PREFIX).astype(float)
    return pd.Series(g["value"].to_numpy(float), index=levels.to_numpy()).sort_index()


def has_vm_figures(records: pd.DataFrame, metric: str = "allocated_bytes") -> bool:
    """Whether the records know the VMs' ``metric``: per VM or as a quantile grid."""
    entity = records["entity"].astype(str)
    return bool(((entity.str.startswith("vm:") | entity.str.startswith(PREFIX))
                 & (records["metric"] == metric)).any())


def vm_quantiles(records: pd.DataFrame, metric: str, levels: Sequence[float]) -> np.ndarray:
    """Quantiles (``levels`` in percent) of the VMs' ``metric`` in one run's records: from the
    per-VM records when there are any (numpy's percentile), else from the quantile grid
    (interpolated between its levels); NaN when the run knows neither."""
    entity = records["entity"].astype(str)
    per_vm = records[entity.str.startswith("vm:") & (records["metric"] == metric)]["value"]
    if len(per_vm):
        return np.asarray(np.percentile(per_vm.to_numpy(float), levels), dtype=np.float64)
    grid = _grid(records, metric)
    if grid.empty:
        return np.full(len(levels), np.nan)
    return np.asarray(np.interp(levels, grid.index.to_numpy(), grid.to_numpy()))


def pooled_quantiles(grids: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray,
                     levels: Sequence[float] = tuple(LEVELS)) -> np.ndarray:
    """Quantiles (``levels`` in percent) of the mixture of several runs' distributions, each
    given by its values at :data:`LEVELS` and weighted by ``weights`` (its VMs): the mixture's
    CDF is the weighted mean of the runs' CDFs (each linear between its grid points, with a
    jump where many VMs share a value), inverted at ``levels``."""
    w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    xs = np.unique(np.concatenate([np.asarray(g, dtype=np.float64) for g in grids]))
    at = sum(wi * _cdf(g, xs, "right") for wi, g in zip(w, grids, strict=True))
    below = sum(wi * _cdf(g, xs, "left") for wi, g in zip(w, grids, strict=True))
    p = np.asarray(levels, dtype=np.float64) / 100.0
    k = np.searchsorted(np.asarray(at) - 1e-12, p, side="left").clip(0, xs.size - 1)
    lo = (k - 1).clip(0)
    rise = np.asarray(below)[k] - np.asarray(at)[lo]
    frac = np.divide(p - np.asarray(at)[lo], rise, out=np.ones_like(p), where=rise > 0)
    out = xs[lo] + frac.clip(0, 1) * (xs[k] - xs[lo])
    return np.asarray(np.where(k == 0, xs[0], out))


def _cdf(grid: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """One run's share of VMs at or below each ``x`` (``side="right"``) or strictly below it
    (``"left"``), linear between its grid points."""
    g = np.asarray(grid, dtype=np.float64)
    j = np.searchsorted(g, x, side=side) - 1  # type: ignore[call-overload]
    jj = j.clip(0, g.size - 2)
    step = g[jj + 1] - g[jj]
    frac = np.divide(x - g[jj], step, out=np.zeros_like(x), where=step > 0)
    inside = (LEVELS[jj] + frac) / 100.0
    return np.asarray(np.where(j < 0, 0.0, np.where(j >= g.size - 1, 1.0, inside)))


def group_quantiles(records: pd.DataFrame, group: str, metric: str,
                    levels: Sequence[float]) -> dict[str, np.ndarray]:
    """Per value of the ``group`` column: quantiles of the VMs' ``metric`` over the group's
    runs (column ``point``, when there is one). Per-VM records are pooled as they are; quantile
    grids are pooled as mixtures (:func:`pooled_quantiles`), each run weighted by the VMs it
    placed (``fleet:all`` ``arrived_vms`` minus ``rejected_vms``; equal weights without them)."""
    out: dict[str, np.ndarray] = {}
    vms = records[records["entity"].astype(str).str.startswith(("vm:", PREFIX))]
    for name, g in vms.groupby(vms[group].astype(str), sort=False):
        per_vm = g[g["entity"].astype(str).str.startswith("vm:") & (g["metric"] == metric)]
        if len(per_vm):
            out[str(name)] = np.asarray(np.percentile(per_vm["value"].to_numpy(float), levels))
            continue
        runs = g.groupby("point", sort=False) if "point" in g.columns else [(None, g)]
        grids, weights = [], []
        for point, r in runs:
            grid = _grid(r, metric)
            if len(grid) == LEVELS.size:
                grids.append(grid.to_numpy())
                weights.append(_placed(records, point))
        if grids:
            w = np.asarray(weights)
            out[str(name)] = pooled_quantiles(grids, w if np.isfinite(w).all() else
                                              np.ones(len(grids)), levels)
    return out


def _placed(records: pd.DataFrame, point: object) -> float:
    """VMs a run placed (arrived minus rejected, end of run), NaN if it does not say."""
    r = records if point is None else records[records["point"] == point]
    end = r[(r["entity"] == "fleet:all") & r["t_s"].isna()].groupby("metric")["value"].first()
    if "arrived_vms" not in end.index:
        return float("nan")
    return float(end["arrived_vms"] - end.get("rejected_vms", 0.0))
