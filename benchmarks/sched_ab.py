"""A calibration profile refitted without the host scheduler, for an A/B on the same probes
(issue 16): the same probes, the same fit, but no CPU stage (``PerfParams.sched`` absent, the
stages fitted without it), so a prediction with each profile shows what the scheduler changes.

    .venv/bin/python benchmarks/sched_ab.py PROFILE OUT
    .venv/bin/python -m cowbench run scenarios/io-density.yaml --backend sim --profile OUT ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowbench.atomic import atomic_write_text
from cowbench.backends import get_backend
from cowbench.profile import load_profile, profile_json
from sim.perf import alloc, fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    prof = load_profile(args.profile)
    params = alloc.fit_host_alloc(fit.fit(prof.probes, cores=None), prof.probes)
    rows = get_backend("sim").fit_rows(params, prof.probes, 1500)
    atomic_write_text(args.out, profile_json(prof.model_copy(update={"params": params,
                                                                     "fit": rows})))
    was = prof.params.sched
    print(f"{args.out}: stages {params.stages:g} (with the scheduler {prof.params.stages:g}), "
          f"scheduler {'none before either' if was is None else 'removed'}")


if __name__ == "__main__":
    main()
