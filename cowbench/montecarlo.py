"""Monte Carlo over replications: percentile bands and a time-to-full with its interval.

A fleet run is one draw of arrivals, lifetimes and mixes. Replications with different seeds
(a sweep's ``seeds``) give, per host and instant, the spread of demand (P50/P95/P99 across
replications), and per replication the instant the first host fills. That instant is
right-censored: a replication in which no host fills says only "later than the duration". So
the interval reported is for the **median** time to full, from order statistics (distribution
free, valid with censoring as long as the upper order statistic is observed): the smallest
``[X_(j), X_(k)]`` with ``P(j <= B < k) >= level`` for ``B ~ Binomial(n, 1/2)``. The mean and a
normal-theory interval of the mean are given too when every replication filled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

QUANTILES = (0.5, 0.95, 0.99)
# two-sided 95% Student t quantiles by degrees of freedom (df > 30: the normal's 1.96)
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def bands(series: pd.DataFrame) -> pd.DataFrame:
    """P50/P95/P99 across replications of ``value`` per ``(entity, metric, t_s)``.

    ``series`` holds records of several replications (a ``replication`` or ``seed`` column).
    """
    keys = ["entity", "metric", "t_s"]
    g = series.groupby(keys, sort=True)["value"]
    out = g.quantile(np.array(QUANTILES)).unstack()
    out.columns = [f"p{round(q * 100)}" for q in QUANTILES]
    out["n"] = g.size()
    return out.reset_index()


def median_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median; ``inf`` marks a censored (unobserved) bound."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0:
        return math.nan, math.nan
    pmf = [math.comb(n, i) / 2.0**n for i in range(n + 1)]
    best: tuple[int, int] | None = None
    for j in range(n // 2 + 1):  # symmetric: [X_(j+1), X_(n-j)] (1-based)
        cover = sum(pmf[j + 1:n - j])
        if cover >= level:
            best = (j, n - 1 - j)
    if best is None:
        return -math.inf, math.inf  # too few replications for this level
    return float(x[best[0]]), float(x[best[1]])


def time_to_full_summary(ttf: Sequence[float], duration: float,
                         level: float = 0.95) -> dict[str, float]:
    """Summary of per-replication times to full (NaN = no host filled within ``duration``)."""
    x = np.asarray(ttf, dtype=np.float64)
    censored = np.where(np.isnan(x), np.inf, x)
    n, full = int(x.size), int(np.isfinite(censored).sum())
    lo, hi = median_ci(censored, level)
    med = float(np.median(censored)) if n else math.nan
    out = {"replications": n, "filled": full, "duration_s": duration,
           "median_s": med, "median_ci_low_s": lo, "median_ci_high_s": hi,
           "level": level, "mean_s": math.nan, "mean_ci_low_s": math.nan,
           "mean_ci_high_s": math.nan, "min_s": float(censored.min()) if n else math.nan,
           "max_s": float(censored.max()) if n else math.nan}
    if n >= 2 and full == n and level == 0.95:
        t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
        half = t * float(x.std(ddof=1)) / math.sqrt(n)
        out.update(mean_s=float(x.mean()), mean_ci_low_s=float(x.mean()) - half,
                   mean_ci_high_s=float(x.mean()) + half)
    return out
