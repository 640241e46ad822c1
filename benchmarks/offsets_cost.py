"""What ``offsets: auto`` (fio's null-engine streams) adds to a run of the model.

Runs ``cowbench run SCENARIO --backend sim`` in-process, alternately with every workload's
``offsets`` as written (``auto`` by default) and forced to ``model`` (the model's own
generator, no fio), ``--rounds`` times each, and prints each time and the median difference.
The model's records are the same work either way; the difference is fio's null runs and
reading their logs (and, for time-bounded jobs, the model's first run that sizes them).

    .venv/bin/python benchmarks/offsets_cost.py [scenarios/quickstart.yaml] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(scenario: object, out: Path) -> float:
    from cowbench.runner import run_scenario

    start = time.perf_counter()
    run_scenario(scenario, out, "sim")  # type: ignore[arg-type]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from cowbench.scenario import load_scenario

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios" /
                    "quickstart.yaml")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    auto = load_scenario(args.scenario)
    model = auto.model_copy(update={"workloads": {
        n: wl.model_copy(update={"offsets": "model"}) for n, wl in auto.workloads.items()}})
    times: dict[str, list[float]] = {"auto": [], "model": []}
    with tempfile.TemporaryDirectory(prefix="offsets-cost-") as tmp:
        for i in range(args.rounds):
            for name, s in (("model", model), ("auto", auto)):
                times[name].append(timed_run(s, Path(tmp) / f"{name}-{i}"))
    for name, ts in times.items():
        print(f"{name:<6} " + " ".join(f"{t:6.2f}s" for t in ts)
              + f"   median {statistics.median(ts):.2f} s")
    added = [a - m for a, m in zip(times["auto"], times["model"], strict=True)]
    print(f"added by offsets: auto: median {statistics.median(added):.2f} s "
          f"(per round: {', '.join(f'{a:+.2f}' for a in added)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
