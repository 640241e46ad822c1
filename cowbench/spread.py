"""How much the real runs of one run directory differ among themselves (``run --repeat N``).

A real measurement is noisy: on a shared machine two runs of the same scenario can differ by
more than the model's error. ``cowbench run --repeat N`` runs the real backend N times, each on
fresh disks, and keeps every run's records in ``measured.parquet`` (the contract's
``replication`` column: 0 for the first run, 1 for the second, ...). ``comparison.csv`` compares
the prediction with the **mean** of the runs, as it always averaged over replications, and
keeps its columns. The spread goes to a file of its own, ``spread.csv``, one row per figure
of the comparison::

    entity,metric,t_s,runs,measured_mean,measured_min,measured_max,spread,predicted,
    rel_error,within_spread,unit

``spread = (max - min) / mean`` over the runs (as benchmarks/io_holdout.py reports it), and
``within_spread`` is 1 when the prediction is no further from the runs' mean than the runs
are from each other, or than :data:`FLOOR` (0.1%) of their mean, whichever is larger::

    |predicted - mean| <= max(max - min, FLOOR * |mean|)

else 0 (empty with fewer than two runs). Within it, this measurement cannot tell the model's
error from the machine's noise. The floor is the resolution below which no figure is told
apart: a byte figure every run measured alike (spread 0) and the model missed by 0.02% (a
metadata cluster in 800 MiB) is exact to the measurement's resolution, not "outside the
noise". Written in bytes rather than as a ratio, the rule also judges a figure whose mean is
0 (a read-only VM's host bytes written): within when the model predicts 0 too, so every
figure of two or more runs has a verdict and the counts ("n of N") cover every figure.
Readers judge a stored file again by this rule (:func:`judged`), so a directory written under
an earlier one shows the verdict its table's header states. A
run directory from one real run has no ``spread.csv``: its comparison rests on one run, and
every view says so.

Why these places (README.md, "Reading a run directory": other tools read it): the records' long
format already carries ``replication``, so the N runs' rows fit ``measured.parquet`` as the
contract defines it, and every reader that groups by (entity, metric, t_s) and averages, as
``compare`` always did, reads their mean; ``comparison.csv``'s columns are fixed, so the
spread is a new file beside it rather than new columns in it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .compare import nth

SPREAD_FILE = "spread.csv"
SPREAD_COLUMNS = ["entity", "metric", "t_s", "runs", "measured_mean", "measured_min",
                  "measured_max", "spread", "predicted", "rel_error", "within_spread", "unit"]
_KEY = ["entity", "metric", "t_s"]
#: The least error told apart from none: 0.1% of the runs' mean (module docstring).
FLOOR = 0.001
_NTH = "_nth"


def real_runs(measured: pd.DataFrame) -> int:
    """How many real runs ``measured`` holds (distinct ``replication`` values; 1 for a frame
    without the column)."""
    if measured.empty or "replication" not in measured.columns:
        return 1 if not measured.empty else 0
    return int(measured["replication"].nunique())


def spread_table(comparison: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Per figure of ``comparison``: the runs' mean, min and max, their spread, and whether
    the prediction's error is within it (module docstring)."""
    m = measured[["entity", "metric", "t_s", "value", "replication"]].copy()
    m["t_s"] = m["t_s"].fillna(-1.0)  # NaN never equals NaN in a join: mark end-of-run
    # a figure sampled twice at one instant: the k-th sample of each run beside the k-th row
    # of the comparison (cowbench.compare.compare)
    m[_NTH] = nth(m, [*_KEY, "replication"])
    per_run = m.groupby([*_KEY, _NTH, "replication"], as_index=False)["value"].mean()
    runs = per_run.groupby([*_KEY, _NTH], as_index=False)["value"].agg(
        runs="count", measured_mean="mean", measured_min="min", measured_max="max")
    comp = comparison.copy()
    comp["t_s"] = comp["t_s"].fillna(-1.0)
    comp[_NTH] = nth(comp, _KEY)
    out = comp.merge(runs, on=[*_KEY, _NTH], how="left")
    out["spread"] = [_spread(n, lo, hi, mean) for n, lo, hi, mean in
                     zip(out["runs"], out["measured_min"], out["measured_max"],
                         out["measured_mean"], strict=True)]
    out["within_spread"] = [_within(n, p, mean, lo, hi) for n, p, mean, lo, hi in
                            zip(out["runs"], out["predicted"], out["measured_mean"],
                                out["measured_min"], out["measured_max"], strict=True)]
    out["t_s"] = out["t_s"].where(out["t_s"] >= 0, np.nan)
    out["runs"] = out["runs"].fillna(0).astype("int64")
    return out[SPREAD_COLUMNS].reset_index(drop=True)


def _spread(runs: float, lo: float, hi: float, mean: float) -> float:
    if not runs or runs < 2 or mean == 0 or math.isnan(mean):
        return math.nan
    return float((hi - lo) / abs(mean))


def judged(spread: pd.DataFrame) -> pd.DataFrame:
    """``spread`` (a ``spread.csv`` as read) with ``within_spread`` judged again by the rule of
    this version from the numbers the file keeps (runs, predicted, the runs' mean, least and
    most): a run directory written under an earlier rule (``|rel_error| <= spread``, which
    called a byte figure 0.02% off two identical runs "not within" and left a figure whose
    runs all measured 0 without a verdict) is read with the rule every view's header states."""
    if spread.empty:
        return spread
    out = spread.copy()
    out["within_spread"] = [_within(float(n), float(p), float(mean), float(lo), float(hi))
                            for n, p, mean, lo, hi in
                            zip(out["runs"], out["predicted"], out["measured_mean"],
                                out["measured_min"], out["measured_max"], strict=True)]
    return out


def _within(runs: float, predicted: float, mean: float, lo: float, hi: float) -> float:
    """1.0 when ``predicted`` is within the runs' range or :data:`FLOOR` of their mean, 0.0
    when not, NaN without two runs (module docstring)."""
    if not runs or runs < 2 or any(math.isnan(v) for v in (predicted, mean, lo, hi)):
        return math.nan
    return float(abs(predicted - mean) <= max(hi - lo, FLOOR * abs(mean)))


def spread_summary(spread: pd.DataFrame) -> pd.DataFrame:
    """Per metric: the median spread of the runs and how many figures are within it."""
    rows = []
    for metric, g in spread.groupby("metric", sort=True):
        s = g["spread"].to_numpy(dtype=float)
        known = g["within_spread"].dropna().astype(float)
        rows.append({"metric": metric,
                     "median_spread": float(np.nanmedian(s)) if np.isfinite(s).any()
                     else math.nan,
                     "within_spread": int((known == 1).sum()), "known": len(known)})
    return pd.DataFrame(rows, columns=["metric", "median_spread", "within_spread", "known"])


def one_run_note(runs: int) -> str | None:
    """What a view says under a comparison resting on ``runs`` real run(s): None for two or
    more."""
    if runs >= 2:
        return None
    return ("from one real run: its own noise is unknown, so an error here may be the "
            "machine's as much as the model's (cowbench run --repeat N measures N times and "
            "shows their spread)")
