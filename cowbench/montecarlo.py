"""Monte Carlo over replications: percentile bands and a time-to-full with its interval.

A fleet run is one draw of arrivals, lifetimes and mixes. Replications with different seeds
(a sweep's ``seeds``) give, per host and instant, the spread of demand (P50/P95/P99 across
replications), and per replication the instant the first host fills. That instant is
right-censored: a replication in which no host fills says only "later than the duration". So
the interval reported is for the **median** time to full, from order statistics (distribution
free, valid with censoring as long as the upper order statistic is observed): the smallest
``[X_(j), X_(k)]`` with ``P(j <= B < k) >= level`` for ``B ~ Binomial(n, 1/2)``. The mean and a
Student t interval of the mean are given too when every replication filled. The binomial and
t quantiles are scipy.stats', not a table kept here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

QUANTILES = (0.5, 0.95, 0.99)


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


def _coverage(n: int, j: int) -> float:
    """P(X_(j+1) <= median < X_(n-j)) for n draws: P(j < B < n - j), B ~ Binomial(n, 1/2)."""
    from scipy import stats  # here, not at the top: scipy.stats costs every command a second

    return float(stats.binom.cdf(n - j - 1, n, 0.5) - stats.binom.cdf(j, n, 0.5))


def seeds_needed(level: float = 0.95) -> int:
    """The fewest replications whose extremes bracket the median with ``level`` confidence
    (6 for 95%: 1 - 2/2^6 = 96.9%)."""
    n = 1
    while _coverage(n, 0) < level:
        n += 1
    return n


def median_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median ``[X_(j+1), X_(n-j)]``, the narrowest whose
    coverage (binomial, scipy.stats) is at least ``level``; ``inf`` marks a censored bound.
    With fewer replications than :func:`seeds_needed` no interval exists: ``(nan, nan)``."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0 or n < seeds_needed(level):
        return math.nan, math.nan
    j = 0
    while j + 1 < n - j - 1 and _coverage(n, j + 1) >= level:
        j += 1
    return float(x[j]), float(x[n - 1 - j])


def time_to_full_summary(ttf: Sequence[float] | np.ndarray, duration: float,
                         level: float = 0.95) -> dict[str, float]:
    """Summary of per-replication times to full (NaN = no host filled within ``duration``).

    A replication that did not fill is censored at ``duration``: it says only "later". The
    median and its interval are ``inf`` where they fall among censored replications; with too
    few replications for an interval, ``median_ci_*`` are NaN and ``seeds_needed`` says how
    many would give one. The mean and its Student t interval (scipy.stats) only when every
    replication filled."""
    x = np.asarray(ttf, dtype=np.float64)
    censored = np.where(np.isnan(x), np.inf, x)
    n, full = int(x.size), int(np.isfinite(censored).sum())
    lo, hi = median_ci(censored, level)
    med = float(np.median(censored)) if n else math.nan
    out = {"replications": n, "filled": full, "duration_s": duration,
           "median_s": med, "median_ci_low_s": lo, "median_ci_high_s": hi,
           "level": level, "seeds_needed": seeds_needed(level), "mean_s": math.nan,
           "mean_ci_low_s": math.nan, "mean_ci_high_s": math.nan,
           "min_s": float(censored.min()) if n else math.nan,
           "max_s": float(censored.max()) if n else math.nan}
    if n >= 2 and full == n:
        from scipy import stats

        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
        out.update(mean_s=float(x.mean()), mean_ci_low_s=float(x.mean()) - half,
                   mean_ci_high_s=float(x.mean()) + half)
    return out
