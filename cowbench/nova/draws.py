"""Arrivals and lifetimes of VMs: the random draws of a lifecycle, in one place.

Every random choice comes from a named stream spawned from one ``numpy.random.SeedSequence``
(STYLE.md 5): the same seed gives the same arrivals, lifetimes, mixes and policies whether a
scenario is written as a fleet or as timeline arrivals. Each draw is vectorised and its first
``k`` values do not depend on how many are drawn, so a timeline group of ``count`` VMs over
``end_s`` and a fleet of the same rate over the same duration agree on every VM.

- Arrivals are a Poisson process of a rate. Over a finite window the number that arrives is
  Poisson and their times are sorted uniform draws (a fleet: ``vms`` expected over
  ``duration``); with no window, or one expecting more than ``count`` arrivals, they are
  exponential gaps, the first ``count`` of them. Both are the same process.
- Lifetimes: ``fixed`` (the mean), ``exponential``, ``uniform`` on [0, 2 mean] or ``lognormal``
  with ``sigma`` (its ``mu`` set so that the mean is the mean).
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np

#: the named streams of a lifecycle, in spawn order (never reorder: seeds would change)
STREAMS = ("arrivals", "lifetimes", "mix", "policies")
_KEY = 0xF1EE7

Distribution = Literal["fixed", "exponential", "uniform", "lognormal"]


class LifetimeLike(Protocol):
    """What :func:`lifetimes` reads (``cowbench.nova.schema.Lifetime``)."""

    @property
    def distribution(self) -> Distribution: ...
    @property
    def mean_s(self) -> float: ...
    @property
    def sigma(self) -> float: ...


def streams(seed: int, group: int = 0) -> dict[str, np.random.Generator]:
    """The named streams of one arrival group (a fleet is group 0; ``timeline.arrivals[j]``
    is group ``j``). Group 0 keeps the streams the fleet model always drew from."""
    entropy = [seed, _KEY] + ([group] if group else [])
    children = np.random.SeedSequence(entropy).spawn(len(STREAMS))
    return {name: np.random.default_rng(c) for name, c in zip(STREAMS, children, strict=True)}


def arrival_times(rng: np.random.Generator, rate_per_s: float, count: int | None = None,
                  until: float = math.inf) -> np.ndarray:
    """Sorted times of a Poisson process of ``rate_per_s`` on (0, until]: at most ``count`` of
    them (all without a count). One of the two bounds is needed."""
    if count is None and not math.isfinite(until):
        raise ValueError("arrival_times needs a count or a finite end")
    if math.isfinite(until) and (count is None or rate_per_s * until <= count):
        n = int(rng.poisson(rate_per_s * until))
        return np.sort(rng.uniform(0.0, until, size=n))[:count]
    assert count is not None
    t = np.cumsum(rng.exponential(1.0 / rate_per_s, size=count))
    return np.asarray(t[t <= until])


def lifetimes(lt: LifetimeLike, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` lifetimes in seconds drawn from ``lt``'s distribution of mean ``lt.mean_s``."""
    if lt.distribution == "fixed":
        return np.full(n, float(lt.mean_s))
    if lt.distribution == "exponential":
        return rng.exponential(lt.mean_s, size=n)
    if lt.distribution == "uniform":
        return rng.uniform(0.0, 2 * lt.mean_s, size=n)
    mu = math.log(lt.mean_s) - lt.sigma**2 / 2  # so that the mean is mean_s
    return rng.lognormal(mu, lt.sigma, size=n)


def pick(rng: np.random.Generator, weights: list[float], n: int) -> np.ndarray:
    """``n`` indices drawn with probabilities proportional to ``weights`` (a mix)."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int64)


def chosen(rng: np.random.Generator, share: float, n: int) -> np.ndarray:
    """Which of ``n`` VMs a policy applies to: each with probability ``share``."""
    return np.asarray(rng.random(n) < share)
