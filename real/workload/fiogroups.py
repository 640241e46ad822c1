"""fio's reporting groups, folded from its per-clone JSON as ``group_reporting`` folds them.

The real backend asks fio for each clone of each job (``--output-format=json+``, no
``group_reporting``) so that each clone's own count of I/Os is on record; the figures cowbench
reads are those of fio's groups (a group: the jobs between two ``stonewall``\\ s, all their
clones). This module sums the clones of a group as fio 3.33 does (``stat.c``:
``sum_thread_stats``, ``sum_stat``, ``show_thread_status_json``): I/Os and bytes add up, the
group's runtime is its longest clone's, IOPS and bandwidth are over that runtime, latency
means are weighted by their samples with the variance merged by the parallel algorithm, and
the percentiles come from the summed latency histograms (``json+``'s ``bins``) by fio's own
``calc_clat_percentiles``: the first bin whose running count reaches the percentile's share.
"""

from __future__ import annotations

import math
from typing import Any

KINDS = ("read", "write", "trim")
LATS = ("slat_ns", "clat_ns", "lat_ns")


def groups(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per reporting group, in order (``groupid``): a group of one clone is that
    clone's entry as fio wrote it; of several, their sums under ``read``/``write``/``trim``."""
    by_group: dict[int, list[dict[str, Any]]] = {}
    for job in jobs:
        by_group.setdefault(int(job.get("groupid", 0)), []).append(job)
    return [members[0] if len(members) == 1 else
            {"groupid": gid, **{k: direction([m[k] for m in members])
                                for k in KINDS if k in members[0]}}
            for gid, members in sorted(by_group.items())]


def direction(ds: list[dict[str, Any]]) -> dict[str, Any]:
    """One direction (``read``, ``write`` or ``trim``) of several clones, summed."""
    ios = sum(int(d["total_ios"]) for d in ds)
    io_bytes = sum(int(d["io_bytes"]) for d in ds)
    runtime = max(int(d["runtime"]) for d in ds)
    out: dict[str, Any] = {
        "io_bytes": io_bytes, "io_kbytes": io_bytes >> 10, "runtime": runtime,
        "total_ios": ios,
        "bw_bytes": 1000 * io_bytes // runtime if runtime else 0,
        "iops": 1000.0 * ios / runtime if runtime else 0.0,
    }
    out["bw"] = out["bw_bytes"] // 1024
    for lat in LATS:
        # a model's file (cowbench.fiojson) leaves what it does not know null: slat_ns's N
        if all(lat in d and d[lat]["N"] is not None for d in ds):
            out[lat] = latency([d[lat] for d in ds])
    return out


def latency(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency statistics of several clones (fio's ``sum_stat``), with percentiles from the
    summed histogram where the clones carry one."""
    live = [s for s in stats if int(s["N"])]
    n = sum(int(s["N"]) for s in live)
    if not n:
        return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    mean = sum(float(s["mean"]) * int(s["N"]) for s in live) / n
    out: dict[str, Any] = {"min": None, "max": None, "mean": mean, "stddev": None, "N": n}
    # a model's file (cowbench.fiojson) has a count and a mean; the rest may be null
    if all(s["min"] is not None and s["max"] is not None for s in live):
        out.update(min=min(int(s["min"]) for s in live), max=max(int(s["max"]) for s in live))
    if all(s["stddev"] is not None for s in live):
        # each clone's sum of squared deviations, and their spread about the merged mean
        ss = sum(float(s["stddev"]) ** 2 * (int(s["N"]) - 1)
                 + int(s["N"]) * (float(s["mean"]) - mean) ** 2 for s in live)
        out["stddev"] = math.sqrt(ss / (n - 1)) if n > 1 else 0.0
    if all("bins" in s for s in live):
        bins: dict[int, int] = {}
        for s in live:
            for value, count in s["bins"].items():
                bins[int(value)] = bins.get(int(value), 0) + int(count)
        wanted = sorted({p for s in live for p in s.get("percentile", {})}, key=float)
        out["percentile"] = percentiles(bins, n, wanted)
        out["bins"] = {str(v): c for v, c in sorted(bins.items())}
    return out


def percentiles(bins: dict[int, int], n: int, wanted: list[str]) -> dict[str, int]:
    """fio's ``calc_clat_percentiles`` on a histogram (bin value -> count) of ``n`` samples:
    for each percentile (fio's ``%f`` names), the first bin whose running count reaches its
    share of ``n`` (compared in long double, as fio does). numpy is imported here, not at the
    top: a real run starts without it (tests/test_spacebound.py)."""
    import numpy as np

    out: dict[str, int] = {}
    todo = list(wanted)
    running = 0
    for value, count in sorted(bins.items()):
        running += count
        while todo and running >= np.longdouble(float(todo[0])) / 100 * n:
            out[todo.pop(0)] = value
        if not todo:
            break
    return out
