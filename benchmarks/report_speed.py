"""How long `cowbench report` takes on three sweeps (issue 18, point 5: target under 30 s each).

- ``fleet20``: fleet-small with ``strategy.cluster_size`` 64 KiB / 2 MiB x 10 seeds (20 points),
- ``capacity``: sweeps/capacity.yaml (2 capacities x 2 allocation ratios x 10 seeds, 40 points),
- ``strategies``: sweeps/strategies.yaml (every strategy kind, three cluster sizes, extended L2
  on/off where QEMU allows it: 24 points).

Each sweep is run once (the model, a local Dask cluster) into ``--out`` unless it is there
already, then ``cowbench report`` is timed end to end as a user meets it (a fresh process: the
kernel's start and the imports included), ``--repeat`` times. The figures are printed, never
asserted: the machine is shared, read the spread.

    .venv/bin/python benchmarks/report_speed.py [--out results/report-speed] [--repeat 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweeps(out: Path) -> dict[str, Path]:
    fleet20 = out / "fleet20.yaml"
    fleet20.write_text(yaml.safe_dump({
        "scenario": str(ROOT / "scenarios" / "fleet-small.yaml"), "name": "fleet20",
        "grid": {"strategy.cluster_size": ["64KiB", "2MiB"]}, "seeds": 10}))
    return {"fleet20": fleet20, "capacity": ROOT / "sweeps" / "capacity.yaml",
            "strategies": ROOT / "sweeps" / "strategies.yaml"}


def cowbench(*args: str) -> tuple[float, float, str]:
    """Wall and child CPU seconds of ``cowbench ARGS``, and its last line of output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cowbench", *args], capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"cowbench {' '.join(args)} failed: {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout.strip().splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "report-speed")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, spec in sweeps(args.out).items():
        target = args.out / name
        if not (target / "summary.csv").is_file():
            wall, _, _ = cowbench("sweep", str(spec), "--out", str(target))
            print(f"{name}: sweep ran in {wall:.1f} s")
        for i in range(args.repeat):
            wall, cpu, line = cowbench("report", str(target))
            print(f"{name}: report {i + 1} in {wall:.1f} s wall, {cpu:.1f} s CPU ({line})")


if __name__ == "__main__":
    main()
