"""Prediction beside measurement: one row per figure both backends know.

``rel_error = (predicted - measured) / measured``; ``t_s`` is empty for end-of-run figures.
A figure only one backend knows is left out (never compared with a zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

COMPARISON_COLUMNS = ["entity", "metric", "t_s", "predicted", "measured", "rel_error", "unit"]
_KEY = ["entity", "metric", "t_s"]
_NTH = "_nth"  # the k-th record of one figure at one instant of one run


def _rel_error(p: float, m: float) -> float:
    if m == 0:
        return 0.0 if p == 0 else math.inf
    return (p - m) / m


def compare(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Join the two record sets on (entity, metric, t_s); average over seeds/replications.

    A figure sampled more than once at one instant of a run (a lifecycle samples every entity
    after each operation, and two may fall on the same second, or on a periodic sample: the
    state before and after a snapshot) gives one row per sample, the k-th of the model beside
    the k-th measured, in the order each backend recorded them; never their mean, which is a
    state neither backend was in."""
    def prep(df: pd.DataFrame, name: str) -> pd.DataFrame:
        d = df[["entity", "metric", "t_s", "value", "unit"]].copy()
        d["t_s"] = d["t_s"].fillna(-1.0)  # NaN never equals NaN in a join: mark end-of-run
        runs = [df[c] for c in ("seed", "replication") if c in df.columns]
        d[_NTH] = nth(d, [*_KEY, *runs])
        return d.groupby([*_KEY, _NTH], as_index=False).agg(**{name: ("value", "mean"),
                                                               "unit": ("unit", "first")})

    p, m = prep(predicted, "predicted"), prep(measured, "measured")
    out = p.merge(m.drop(columns="unit"), on=[*_KEY, _NTH], how="inner")
    out["rel_error"] = [_rel_error(a, b) for a, b in zip(out["predicted"], out["measured"],
                                                          strict=True)]
    out["t_s"] = out["t_s"].where(out["t_s"] >= 0, np.nan)
    out = out.sort_values(["entity", "metric", "t_s", _NTH], na_position="first", kind="stable")
    return out[COMPARISON_COLUMNS].reset_index(drop=True)


def nth(frame: pd.DataFrame, by: list[Any]) -> pd.Series:
    """Each row's place among the rows of ``frame`` with its ``by`` values, in the frame's
    order (0 for the first): which of a figure's samples at one instant a row is."""
    return frame.groupby(by, sort=False, dropna=False).cumcount()


#: Metrics the model predicts from inputs no calibration measures, whatever profile the run's
#: I/O figures rest on (README, "How far to trust each figure"): each with what it rests on.
#: Their errors are shown apart from the calibrated figures', never mixed in as if of a kind.
UNCALIBRATED = {"duration_s": "lifecycle durations from the nova section's bandwidths, "
                              "tools' start-up not modelled"}


def uncalibrated_note(metric: str) -> str:
    """Why ``metric`` (one of :data:`UNCALIBRATED`) is shown apart from the calibrated ones."""
    return (f"{metric} is not calibrated ({UNCALIBRATED[metric]}; README, \"How far to trust "
            "each figure\"): its error is shown apart, not the calibrated model's")


def summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per metric: how many figures, median |rel_error|, the worst (signed) rel_error and
    whether the metric is calibrated (:data:`UNCALIBRATED`); the calibrated metrics first,
    each group in name order."""
    rows = []
    for metric, g in comparison.groupby("metric", sort=True):
        err = g["rel_error"].to_numpy(dtype=float)
        worst = err[np.nanargmax(np.abs(err))] if len(err) else math.nan
        rows.append({"metric": metric, "n": len(g),
                     "median_abs_rel_error": float(np.nanmedian(np.abs(err))),
                     "worst_rel_error": float(worst), "calibrated": metric not in UNCALIBRATED})
    out = pd.DataFrame(rows, columns=["metric", "n", "median_abs_rel_error", "worst_rel_error",
                                      "calibrated"])
    return out.sort_values("calibrated", ascending=False, kind="stable").reset_index(drop=True)
