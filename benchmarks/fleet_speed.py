"""Speed of the fluid fleet model against bare SimPy, in the same run (issues 6 and 21).

Targets: scenarios/fleet-year.yaml (10^5 VMs, 100 hosts, 365 days) and
scenarios/fleet-region.yaml (10^6 VMs, 1,000 hosts) in fluid mode each take at most 10 times
what bare SimPy takes to process 2 million timeouts (100 processes of 20 000
``env.timeout(1)`` each). The machine is shared, so the yardstick is timed before every
fleet run, interleaved, and the ratio is reported per pair with its spread; CPU seconds of
the process are printed beside the wall times (on a loaded machine they are the steadier
figure); nothing is asserted.

    .venv/bin/python benchmarks/fleet_speed.py [--repeat 3] [--scenario FILE ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

from cowbench.scenario import load_scenario
from sim import simulate

ROOT = Path(__file__).resolve().parents[1]


def bare_simpy(processes: int = 100, timeouts: int = 20_000) -> tuple[float, float]:
    """(wall, CPU) seconds SimPy takes for ``processes`` x ``timeouts`` ``env.timeout(1)``."""
    env = simpy.Environment()

    def proc() -> Generator[simpy.Event, Any, None]:
        for _ in range(timeouts):
            yield env.timeout(1)

    for _ in range(processes):
        env.process(proc())
    t0, c0 = time.perf_counter(), time.process_time()
    env.run()
    return time.perf_counter() - t0, time.process_time() - c0


def fleet(path: Path, seed: int) -> tuple[float, float, int]:
    """(wall, CPU) seconds of one fluid run of the scenario, and its records."""
    scenario = load_scenario(path)
    t0, c0 = time.perf_counter(), time.process_time()
    rec = simulate(scenario, seed)
    return time.perf_counter() - t0, time.process_time() - c0, len(rec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenario", type=Path, nargs="+",
                    default=[ROOT / "scenarios" / f"{n}.yaml" for n in ("fleet-year",
                                                                       "fleet-region")])
    args = ap.parse_args()
    for path in args.scenario:
        ratios, cpu_ratios = [], []
        for i in range(args.repeat):
            base, base_cpu = bare_simpy()
            took, cpu, rows = fleet(path, seed=1 + i)
            ratios.append(took / base)
            cpu_ratios.append(cpu / base_cpu)
            print(f"{path.stem} run {i + 1}: bare SimPy 2M timeouts {base:6.2f} s "
                  f"({base_cpu:5.2f} s CPU) | fluid {took:6.2f} s ({cpu:6.2f} s CPU, {rows} "
                  f"records, seed {1 + i}) | ratio {took / base:5.2f} (CPU {cpu / base_cpu:5.2f})"
                  f" | load {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{path.stem}: ratio to SimPy: median {statistics.median(ratios):.2f}, "
              f"min {min(ratios):.2f}, max {max(ratios):.2f}; CPU ratio median "
              f"{statistics.median(cpu_ratios):.2f} over {len(ratios)} runs (target <= 10)",
              flush=True)


if __name__ == "__main__":
    main()
