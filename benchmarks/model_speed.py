"""Speed of the calibrated I/O model's event loop, with a digest of every figure it gives.

Times, in CPU seconds of this process (``resource.getrusage``: steadier than wall time on a
shared machine), repeated with the spread:

- ``holdout`` and ``density``: the model's run of scenarios/io-holdout.yaml and
  scenarios/io-density.yaml with a stored calibration profile, on fio's exact offset streams
  as ``cowbench run SCEN --backend sim --profile P`` takes them (the streams are taken once,
  with fio's null engine, before the clock starts: the model's own runs that size them are
  not timed);
- ``fit``: the fit of the profile's probes as ``benchmarks/io_refit.py`` does it
  (``perf.fit_with_alloc`` with the profile's machine's cores, then ``perf.fit_rows`` with
  1500 I/Os per probe).

Beside each time, a digest (sha256, first 16 hex digits) of what the case computed: the
records of the run (every column, floats at full precision) or the fitted parameters and the
fit rows. A change to the event loop that is meant to change nothing must leave every digest
as it was.

    .venv/bin/python benchmarks/model_speed.py [--profile P] [--repeat 3] [--case fit ...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cowbench.api import load_scenario
from cowbench.profile import load_profile
from cowbench.resolve import with_profile
from cowbench.scenario import Scenario
from cowbench.streams import Traces, take_streams
from cowbench.tools import RawLog
from sim import simulate
from sim.perf import perf

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {"holdout": "io-holdout", "density": "io-density"}


def cpu_s() -> float:
    """CPU seconds this process has used (user and system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_digest(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.17g")
    return digest(buf.getvalue())


def model_case(name: str, profile: Path, raw: Path) -> Callable[[], str]:
    """The model's run of one scenario on fio's streams: the streams taken now, the run timed
    later (what the call returns)."""
    path = ROOT / "scenarios" / f"{SCENARIOS[name]}.yaml"
    scenario: Scenario = with_profile(load_scenario(path), profile, str(path))
    seed = scenario.seed

    def model(s: Scenario, t: Traces | None) -> pd.DataFrame:
        return simulate(s, seed, traces=t)

    plan = take_streams(scenario, seed, RawLog(raw / name), model)
    return lambda: frame_digest(simulate(scenario, seed, traces=plan.traces))


def fit_case(profile: Path) -> Callable[[], str]:
    prof = load_profile(profile)
    cores = int(prof.host.get("cpu_count") or 1)

    def run() -> str:
        params = perf.fit_with_alloc(prof.probes, cores)
        rows = perf.fit_rows(params, prof.probes, 1500)
        return digest(params.model_dump_json() + "".join(r.model_dump_json() for r in rows))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--profile", type=Path, default=Path("/var/tmp/dens12/profile.json"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", nargs="+", choices=["holdout", "density", "fit"],
                    default=["holdout", "density", "fit"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="model-speed-") as tmp:
        cases = {c: fit_case(args.profile) if c == "fit" else
                 model_case(c, args.profile, Path(tmp)) for c in args.case}
        for name, case in cases.items():
            times, digests = [], set()
            for _ in range(args.repeat):
                c0 = cpu_s()
                digests.add(case())
                times.append(cpu_s() - c0)
            print(f"{name:8s} CPU s: median {statistics.median(times):6.2f}, min "
                  f"{min(times):6.2f}, max {max(times):6.2f} ({args.repeat} runs) | digest "
                  f"{' '.join(sorted(digests))} | load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
