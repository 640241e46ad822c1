"""Speed of the fluid fleet model against bare SimPy, in the same run (issue 6, point 6).

Target: scenarios/fleet-year.yaml (10^5 VMs, 100 hosts, 365 days) in fluid mode takes at most
10 times what bare SimPy takes to process 2 million timeouts (100 processes of 20 000
``env.timeout(1)`` each). The machine is shared, so each is timed ``--repeat`` times,
interleaved, and the ratio is reported per pair with its spread; nothing is asserted.

    .venv/bin/python benchmarks/fleet_speed.py [--repeat 3] [--scenario FILE]
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


def bare_simpy(processes: int = 100, timeouts: int = 20_000) -> float:
    """Seconds SimPy takes for ``processes`` x ``timeouts`` ``env.timeout(1)``."""
    env = simpy.Environment()

    def proc() -> Generator[simpy.Event, Any, None]:
        for _ in range(timeouts):
            yield env.timeout(1)

    for _ in range(processes):
        env.process(proc())
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0


def fleet(path: Path, seed: int) -> tuple[float, int]:
    scenario = load_scenario(path)
    t0 = time.perf_counter()
    rec = simulate(scenario, seed)
    return time.perf_counter() - t0, len(rec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "fleet-year.yaml")
    args = ap.parse_args()
    ratios = []
    for i in range(args.repeat):
        base = bare_simpy()
        took, rows = fleet(args.scenario, seed=1 + i)
        ratios.append(took / base)
        print(f"run {i + 1}: bare SimPy 2M timeouts {base:6.2f} s | fleet-year fluid "
              f"{took:6.2f} s ({rows} records, seed {1 + i}) | ratio {took / base:5.2f}",
              f" | load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"ratio fleet/SimPy: median {statistics.median(ratios):.2f}, "
          f"min {min(ratios):.2f}, max {max(ratios):.2f} over {len(ratios)} runs "
          f"(target <= 10)")


if __name__ == "__main__":
    main()
