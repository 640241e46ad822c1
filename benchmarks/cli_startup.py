"""How long the ``cowbench`` command takes to start (issue 15: ``--help`` well under a second).

Times ``cowbench --help``, ``cowbench validate scenarios/quickstart.yaml`` and a bare
``python -c pass`` (the floor), each ``--runs`` times, interleaved so the machine's load hits
them alike, and prints the median wall time with every run, and the median CPU time (user +
system, which a loaded machine disturbs less than the wall time). ``--pythonpath DIR`` times
another checkout (e.g. an older commit exported with ``git archive``) beside this one. Nothing
is asserted: the machine is shared; tests/test_light.py checks what makes the start fast (no
heavy import).

    .venv/bin/python benchmarks/cli_startup.py [--runs 5] [--pythonpath DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "cowbench"


def timed(argv: list[str], pythonpath: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pythonpath", type=Path, action="append", default=[],
                    help="another checkout to time beside this one (repeatable)")
    args = ap.parse_args()
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cowbench"]
    cases = [("python -c pass", [sys.executable, "-c", "pass"], ROOT)]
    for tree in [ROOT, *args.pythonpath]:
        label = "" if tree == ROOT else f" [{tree}]"
        cases += [(f"cowbench --help{label}", [*cmd, "--help"], tree),
                  (f"cowbench validate quickstart{label}",
                   [*cmd, "validate", str(ROOT / "scenarios" / "quickstart.yaml")], tree)]
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in cases}
    for _ in range(args.runs):
        for label, argv, tree in cases:
            times[label].append(timed(argv, tree))
    width = max(map(len, times)) + 2
    print(f"{'command':<{width}}wall median   cpu median   wall runs (s)")
    for label, ts in times.items():
        wall, cpu = [t[0] for t in ts], [t[1] for t in ts]
        runs = " ".join(f"{t:.3f}" for t in wall)
        print(f"{label:<{width}}{statistics.median(wall):>11.3f}   "
              f"{statistics.median(cpu):>10.3f}   {runs}")


if __name__ == "__main__":
    main()
