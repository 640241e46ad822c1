"""How long a scenario with many timeline arrivals takes to validate (issue 17: linear in VMs
and events; 10,000 arrivals in under 2 s).

The scenario: two hosts, one image, a flavor, a workload, and ``timeline.arrivals`` of N VMs
(exponential lifetimes of mean 2 days, a snapshot every day, a cold migration every 2 days,
confirmed by Nova an hour later: ``nova.resize_confirm_window_s``, without which every VM would
wait for its confirm after its first migration and Nova would refuse the rest), so validation
expands and checks about 5N operations. The figures are the median wall time of
``parse_scenario`` (schema, cross checks, the timeline's expansion and its check) over
``--repeat`` runs, for each N, and the median CPU time of this process, which a machine shared
with other work distorts less (validation is single-threaded).

    .venv/bin/python benchmarks/validate_speed.py [--arrivals 2000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy  # noqa: F401  (the timeline's expansion imports it on first use: not timed)

from cowbench.scenario import parse_scenario


def scenario(arrivals: int) -> dict[str, Any]:
    return {
        "name": "many-arrivals",
        "hosts": [{"name": "compute-1"}, {"name": "compute-2"}],
        # small disks: the model's memory bound (cowbench.bounds) admits 10,000 of them
        "images": [{"name": "ubuntu", "virtual_size": "32MiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "8MiB"}]}}],
        "flavors": [{"name": "m1.small", "root": "64MiB"}],
        "nova": {"resize_confirm_window_s": 3600},
        "workloads": {"app": {"rw": "randwrite", "bs": "4k", "io_size": "1MiB"}},
        "timeline": {"end_s": 30 * 86400, "arrivals": [{
            "prefix": "vm", "count": arrivals, "rate_per_s": arrivals / (20 * 86400),
            "image": "ubuntu", "flavor": "m1.small", "workload": "app",
            "lifetime": {"distribution": "exponential", "mean_s": 2 * 86400},
            "snapshot_every_s": 86400, "migrate_every_s": 2 * 86400}]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrivals", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for n in args.arrivals:
        data = scenario(n)
        wall, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            s = parse_scenario(data)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"{n:>6} arrivals ({len(s.vms)} VMs): validated in {statistics.median(wall):.2f} s "
              f"wall, {statistics.median(cpu):.2f} s CPU (median of {args.repeat}; wall "
              f"{min(wall):.2f}-{max(wall):.2f} s)")


if __name__ == "__main__":
    main()
