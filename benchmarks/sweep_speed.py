"""A 16-point sweep on 2 local Dask workers against 1 (issue 6, point 6: target >= 1.7x).

The sweep is fleet-year.yaml cut to ``--vms`` arrivals (a few seconds a point), 4 values of
``disk_allocation_ratio`` x 4 seeds. Each configuration is timed end to end as a user meets it
(cluster start included), alternating 1 and 2 workers ``--repeat`` times; the speedup is
reported per pair with its spread, next to the CPU each configuration used and the cores it
actually obtained (CPU / wall): on a shared machine the speedup cannot exceed the ratio of
cores obtained. Nothing is asserted.

    .venv/bin/python benchmarks/sweep_speed.py [--repeat 2] [--vms 20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from cowbench.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def sweep_file(tmp: Path, vms: int) -> Path:
    p = tmp / "sweep.yaml"
    p.write_text(yaml.safe_dump({
        "scenario": str(ROOT / "scenarios" / "fleet-year.yaml"),
        "name": "bench16",
        "grid": {"fleet.vms": [vms], "hosts[0].count": [20],
                 "hosts[0].disk_allocation_ratio": [1.2, 1.5, 1.7, 2.0]},
        "seeds": 4}))
    return p


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the cluster's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(path: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a whole sweep, cluster start and stop included."""
    sweep = load_sweep(path)
    c0, t0 = _cpu(), time.perf_counter()
    summary = run_sweep(sweep, out, scheduler="local", workers=workers)
    took, cpu = time.perf_counter() - t0, _cpu() - c0
    assert (summary.status == "ok").all() and len(summary) == 16
    return took, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--vms", type=int, default=20000)
    args = ap.parse_args()
    speedups = []
    with tempfile.TemporaryDirectory(prefix="cowbench-bench-") as tmp:
        path = sweep_file(Path(tmp), args.vms)
        for i in range(args.repeat):
            (one, cpu1), (two, cpu2) = (timed(path, Path(tmp) / f"w{w}-{i}", w) for w in (1, 2))
            speedups.append(one / two)
            # cores actually obtained = CPU / wall: on a shared machine, the bound on speedup
            print(f"run {i + 1}: 16 points on 1 worker {one:6.2f} s ({cpu1 / one:.2f} cores) | "
                  f"on 2 workers {two:6.2f} s ({cpu2 / two:.2f} cores) | speedup "
                  f"{one / two:4.2f} | CPU 2w/1w {cpu2 / cpu1:.2f} | load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"speedup 2 workers / 1: median {statistics.median(speedups):.2f}, "
          f"min {min(speedups):.2f}, max {max(speedups):.2f} over {len(speedups)} pairs "
          f"(target >= 1.7)")


if __name__ == "__main__":
    main()
