"""A 16-point sweep on 2 local Dask workers against 1 (issue 6, point 6: target >= 1.7x).

The sweep is fleet-year.yaml cut to ``--vms`` arrivals (a few seconds a point), 4 values of
``disk_allocation_ratio`` x 4 seeds. Each configuration is timed end to end as a user meets it
(cluster start included), alternating 1 and 2 workers ``--repeat`` times; the speedup is
reported per pair with its spread. The machine is shared: read the spread, nothing is asserted.

    .venv/bin/python benchmarks/sweep_speed.py [--repeat 2] [--vms 20000]
"""

from __future__ import annotations

import argparse
import os
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
        "grid": {"fleet.vms": [vms], "fleet.hosts.count": [20],
                 "fleet.hosts.disk_allocation_ratio": [1.2, 1.5, 1.7, 2.0]},
        "seeds": 4}))
    return p


def timed(path: Path, out: Path, workers: int) -> float:
    sweep = load_sweep(path)
    t0 = time.perf_counter()
    summary = run_sweep(sweep, out, scheduler="local", workers=workers)
    took = time.perf_counter() - t0
    assert (summary.status == "ok").all() and len(summary) == 16
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--vms", type=int, default=20000)
    args = ap.parse_args()
    speedups = []
    with tempfile.TemporaryDirectory(prefix="cowbench-bench-") as tmp:
        path = sweep_file(Path(tmp), args.vms)
        for i in range(args.repeat):
            one = timed(path, Path(tmp) / f"w1-{i}", 1)
            two = timed(path, Path(tmp) / f"w2-{i}", 2)
            speedups.append(one / two)
            print(f"run {i + 1}: 16 points on 1 worker {one:6.2f} s | on 2 workers {two:6.2f} s"
                  f" | speedup {one / two:4.2f} | load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"speedup 2 workers / 1: median {statistics.median(speedups):.2f}, "
          f"min {min(speedups):.2f}, max {max(speedups):.2f} over {len(speedups)} pairs "
          f"(target >= 1.7)")


if __name__ == "__main__":
    main()
