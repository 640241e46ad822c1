"""Prediction beside measurement: one row per figure both backends know.

``rel_error = (predicted - measured) / measured``; ``t_s`` is empty for end-of-run figures.
A figure only one backend knows is left out (never compared with a zero).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

COMPARISON_COLUMNS = ["entity", "metric", "t_s", "predicted", "measured", "rel_error", "unit"]
_KEY = ["entity", "metric", "t_s"]


def _rel_error(p: float, m: float) -> float:
    if m == 0:
        return 0.0 if p == 0 else math.inf
    return (p - m) / m


def compare(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Join the two record sets on (entity, metric, t_s); average over seeds/replications."""
    def prep(df: pd.DataFrame, name: str) -> pd.DataFrame:
        d = df[["entity", "metric", "t_s", "value", "unit"]].copy()
        d["t_s"] = d["t_s"].fillna(-1.0)  # NaN never equals NaN in a join: mark end-of-run
        return d.groupby(_KEY, as_index=False).agg(**{name: ("value", "mean"),
                                                      "unit": ("unit", "first")})

    p, m = prep(predicted, "predicted"), prep(measured, "measured")
    out = p.merge(m.drop(columns="unit"), on=_KEY, how="inner")
    out["rel_error"] = [_rel_error(a, b) for a, b in zip(out["predicted"], out["measured"],
                                                          strict=True)]
    out["t_s"] = out["t_s"].where(out["t_s"] >= 0, np.nan)
    out = out.sort_values(["entity", "metric", "t_s"], na_position="first", kind="stable")
    return out[COMPARISON_COLUMNS].reset_index(drop=True)


def summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per metric: how many figures, median |rel_error|, and the worst (signed) rel_error."""
    rows = []
    for metric, g in comparison.groupby("metric", sort=True):
        err = g["rel_error"].to_numpy(dtype=float)
        worst = err[np.nanargmax(np.abs(err))] if len(err) else math.nan
        rows.append({"metric": metric, "n": len(g),
                     "median_abs_rel_error": float(np.nanmedian(np.abs(err))),
                     "worst_rel_error": float(worst)})
    return pd.DataFrame(rows, columns=["metric", "n", "median_abs_rel_error", "worst_rel_error"])
