"""Host disk use as a planner reads it: percentile bands over hosts and seeds, and time to full.

Bands are taken, at each time (or once, for end-of-run figures), over every host sample of a
group (hosts x seeds x replications x sweep points sharing the group's knobs): p5, p50 and p95
(numpy's linear interpolation), with min and max. Time to full is where a host's
``allocated_bytes`` reaches the capacity: interpolated between samples when the series crosses
it, or extrapolated from the growth rate of the series' second half when it does not (marked
``extrapolated``; a series that does not grow is ``never``). End-of-run figures alone carry no
rate, so their time to full is unknown (NaN), never guessed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (5, 50, 95)
BAND_COLUMNS = ["t_s", "n", "min", "p5", "p50", "p95", "max"]


def host_disk(records: pd.DataFrame, metric: str = "allocated_bytes") -> pd.DataFrame:
    """The records of ``metric`` for ``host:`` entities (host disk use by default)."""
    if records.empty:
        return records
    keep = records["entity"].astype(str).str.startswith("host:") & (records["metric"] == metric)
    return records[keep].reset_index(drop=True)


def bands(samples: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Percentile bands of ``value`` per ``by`` group and ``t_s`` (NaN ``t_s`` = end of run)."""
    keys = [*(by or []), "t_s"]
    if samples.empty:
        return pd.DataFrame(columns=[*(by or []), *BAND_COLUMNS])
    rows = []
    for key, g in samples.groupby(keys, dropna=False, sort=True):
        v = g["value"].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            continue
        q = np.percentile(v, QUANTILES)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "n": int(v.size), "min": float(v.min()), "p5": float(q[0]),
                     "p50": float(q[1]), "p95": float(q[2]), "max": float(v.max())})
    return pd.DataFrame(rows, columns=[*(by or []), *BAND_COLUMNS])


def time_to_full(t: np.ndarray, y: np.ndarray, capacity: float) -> tuple[float, str]:
    """When a series ``y(t)`` reaches ``capacity``, and how that was found.

    Returns ``(t_full, how)`` with ``how`` one of ``reached`` (interpolated between the two
    samples around the crossing), ``extrapolated`` (linear growth of the series' second half),
    ``never`` (no growth) or ``unknown`` (fewer than two timed samples).
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


def times_to_full(samples: pd.DataFrame, capacity: float,
                  by: list[str] | None = None) -> pd.DataFrame:
    """Time to full of every host series (per ``by`` group, backend, seed, replication)."""
    keys = [k for k in [*(by or []), "backend", "entity", "seed", "replication"]
            if k in samples.columns]
    cols = [*keys, "final_bytes", "t_full_s", "how"]
    if samples.empty or not capacity or capacity <= 0:
        return pd.DataFrame(columns=cols)
    rows: list[dict[str, Any]] = []
    for key, g in samples.groupby(keys, dropna=False, sort=True):
        g = g.sort_values("t_s", na_position="last")
        t_full, how = time_to_full(g["t_s"].to_numpy(float), g["value"].to_numpy(float),
                                   capacity)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "final_bytes": float(g["value"].iloc[-1]), "t_full_s": t_full, "how": how})
    return pd.DataFrame(rows, columns=cols)


def host_capacity(scenario: dict[str, Any]) -> float | None:
    """A capacity the resolved scenario gives its hosts (``capacity_bytes`` or ``capacity``)."""
    caps = []
    for host in scenario.get("hosts") or []:
        if isinstance(host, dict):
            cap = host.get("capacity_bytes", host.get("capacity"))
            if isinstance(cap, int | float) and cap > 0:
                caps.append(float(cap))
    return min(caps) if caps else None
