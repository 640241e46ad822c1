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

``--command`` times ``cowbench validate FILE`` as a user runs it instead (in this process,
its first run not timed: the imports), which also prints the VMs' strategies, the memory and
time estimate and the open files the real run would need.

    .venv/bin/python benchmarks/validate_speed.py [--arrivals 2000 10000] [--repeat 3]
    .venv/bin/python benchmarks/validate_speed.py --command
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy  # noqa: F401  (the timeline's expansion imports it on first use: not timed)
import yaml

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
    ap.add_argument("--command", action="store_true",
                    help="time `cowbench validate FILE`, not parse_scenario alone")
    args = ap.parse_args()
    for n in args.arrivals:
        data = scenario(n)
        wall, cpu = [], []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.yaml"
            path.write_text(yaml.safe_dump(data))
            if args.command:
                _validate(path)  # imports and caches: not timed
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                _validate(path) if args.command else parse_scenario(data)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        s = parse_scenario(data)
        what = "`cowbench validate`" if args.command else "validated"
        print(f"{n:>6} arrivals ({len(s.vms)} VMs): {what} in {statistics.median(wall):.2f} s "
              f"wall, {statistics.median(cpu):.2f} s CPU (median of {args.repeat}; wall "
              f"{min(wall):.2f}-{max(wall):.2f} s)")


def _validate(path: Path) -> None:
    from typer.testing import CliRunner

    import cowbench.cli  # noqa: F401  (registers the commands on the app)
    from cowbench.cli_app import app

    ran = CliRunner().invoke(app, ["validate", str(path)])
    if ran.exit_code != 0:
        raise SystemExit(f"cowbench validate {path}: exit {ran.exit_code}\n{ran.output}")


if __name__ == "__main__":
    main()
