"""How far each fitted parameter moves within a profile's own probe noise (issue 16): the
profile's probes refitted ``--draws`` times by the code on the path, each probe's IOPS drawn
between its rounds' slowest and fastest (``iops_min``, ``iops_max``; triangular, its median
the mode; bandwidth and mean latency moved with it, the CPU figures as they are), and each
parameter's 10th, 50th and 90th percentile over the draws beside the profile's own refit.
No real I/O, no simulation: a fit is a fraction of a second.

    .venv/bin/python benchmarks/io_fit_spread.py PROFILE [PROFILE ...] [--draws 30]

A parameter whose 10-90% range spans its whole domain (``stages`` 1 to 8, ``cpu_share`` 0.2
to 1) is not told by the probes; one that changes sign (a cost below zero) is a difference
of two noisy probes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cowbench.profile import PerfParams, Probe, load_profile
from sim.perf import perf


def drawn(probes: Sequence[Probe], rng: np.random.Generator) -> list[Probe]:
    """``probes`` with each one's IOPS drawn within its rounds' range."""
    out = []
    for p in probes:
        lo, hi = p.iops_min, p.iops_max
        if lo is None or hi is None or hi <= lo or p.iops <= 0:
            out.append(p)
            continue
        v = float(rng.triangular(lo, min(max(p.iops, lo), hi), hi))
        k = p.iops / v
        out.append(p.model_copy(update={"iops": v, "bw_bytes_per_s": p.bw_bytes_per_s / k,
                                        "lat_mean_s": p.lat_mean_s * k}))
    return out


def scalars(params: PerfParams) -> dict[str, float]:
    """The parameters as named numbers: each table's entries by size."""
    out = {k: float(v) for k, v in params.model_dump().items()
           if isinstance(v, int | float) and not isinstance(v, bool)}
    for key in ("read_bw", "write_bw", "read_path_s", "write_path_s"):
        for size, v in getattr(params, key):
            out[f"{key}@{size // 1024}k"] = v
    return out


def fitted(probes: Sequence[Probe], cores: int) -> dict[str, float]:
    return scalars(perf.fit_with_alloc(probes, cores))


def unit(name: str) -> tuple[float, str]:
    if "bw" in name:
        return 1e-6, "MB/s"
    if name.endswith("_s") or "_s@" in name:
        return 1e6, "us"
    return 1.0, ""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("profiles", type=Path, nargs="+")
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    for path in a.profiles:
        prof = load_profile(path)
        cores = int(prof.host.get("cpu_count") or 1)
        rng = np.random.default_rng(a.seed)
        base = fitted(prof.probes, cores)
        draws = [fitted(drawn(prof.probes, rng), cores) for _ in range(a.draws)]
        print(f"{path} ({a.draws} draws): parameter, refit, p10 / p50 / p90")
        for name, v in base.items():
            vals = np.array([d.get(name, np.nan) for d in draws], dtype=float)
            k, u = unit(name)
            p10, p50, p90 = np.nanpercentile(vals, [10, 50, 90]) * k
            print(f"  {name:22s} {v * k:12.2f}  {p10:12.2f} / {p50:12.2f} / {p90:12.2f} {u}")


if __name__ == "__main__":
    main()
