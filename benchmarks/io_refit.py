"""A stored session again with today's model: a profile's probes refitted by the code on the
path, the session's scenario predicted with it, and the prediction against the session's own
real runs (the mean in its ``spread.csv``), as median |error| per kind of figure. No real I/O:
what a change to the model does to sessions already measured (issue 16).

    .venv/bin/python benchmarks/io_refit.py PROFILE RUN_DIR --out DIR

``RUN_DIR`` is a ``cowbench run --repeat N`` directory (its ``scenario.yaml`` and
``spread.csv``: what ``benchmarks/io_density.py`` makes) or a ``benchmarks/io_holdout.py``
output (its ``holdout.csv`` and the first real run's ``scenario.yaml``); the refitted profile
and the model's run land in ``DIR``. The fit uses the profile's machine's cores, as ``cowbench
calibrate`` did where it measured.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cowbench.atomic import atomic_write_text
from cowbench.profile import load_profile, profile_json
from sim.perf import perf

KINDS = {"IOPS": "_iops", "mean latency": "_lat_mean_s", "p99 latency": "_lat_p99_s"}


def refit(src: Path, dst: Path) -> None:
    """``src``'s probes fitted again, with the replay of each, written to ``dst``."""
    prof = load_profile(src)
    cores = int(prof.host.get("cpu_count") or 1)
    params = perf.fit_with_alloc(prof.probes, cores)
    rows = perf.fit_rows(params, prof.probes, 1500)
    atomic_write_text(dst, profile_json(prof.model_copy(update={"params": params, "fit": rows})))
    errs = [abs(r.rel_error) for r in rows if r.metric == "iops"]
    print(f"{dst}: the probes' IOPS replayed with median |error| {np.median(errs):.1%}")


def stored(run_dir: Path) -> tuple[Path, pd.DataFrame]:
    """The stored session's scenario and its real runs' mean of each end-of-run figure
    (``entity``, ``metric``, ``measured_mean``): from a ``cowbench run --repeat`` directory's
    ``spread.csv``, else from a ``benchmarks/io_holdout.py`` output's ``holdout.csv`` (the
    scenario its first real run ran)."""
    if (run_dir / "spread.csv").is_file():
        real = pd.read_csv(run_dir / "spread.csv")
        return run_dir / "scenario.yaml", real[real.t_s.isna()]
    if (run_dir / "holdout.csv").is_file():
        return run_dir / "real-1" / "scenario.yaml", pd.read_csv(run_dir / "holdout.csv")
    sys.exit(f"{run_dir}: neither a spread.csv (cowbench run --repeat) nor a holdout.csv "
             "(benchmarks/io_holdout.py)")


def compare(predicted: Path, real: pd.DataFrame) -> pd.DataFrame:
    """Each VM's end-of-run figure: the model's, the real runs' mean, the error."""
    real = real[real.entity.str.startswith("vm:")]
    model = pd.read_csv(predicted)
    model = model[model.t_s.isna()].set_index(["entity", "metric"]).value
    real = real.assign(model=[model.get((e, m), np.nan)
                              for e, m in zip(real.entity, real.metric, strict=True)])
    return real.assign(error=(real.model - real.measured_mean) / real.measured_mean)


def level_and_shares(iops: pd.DataFrame) -> tuple[float, pd.Series]:
    """The host's level: the median over the VMs' IOPS figures of model over real (a geometric
    median); and each figure's error once that level is taken out. A profile that sets the
    whole host fast or slow moves every VM alike (the transfer on the path's first stage,
    measured through a loaded qemu-nbd, sets it: docs/io-model.md, the density sessions); how
    the host is shared out among its VMs is the scheduler's, and the second figure shows it
    alone: in the nine stored sessions the 4 KiB reader at iodepth 32 ran 7.9 to 9.0 times as
    many IOPS as the one at iodepth 1, whatever the level."""
    ratio = (iops.model / iops.measured_mean).dropna()
    level = float(np.exp(np.median(np.log(ratio))))
    return level, ratio / level - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    profile, sim = a.out / "profile.json", a.out / "sim"
    scenario, real = stored(a.run_dir)
    refit(a.profile, profile)
    proc = subprocess.run([sys.executable, "-m", "cowbench", "run",
                           str(scenario), "--backend", "sim", "--profile",
                           str(profile), "--out", str(sim)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        sys.exit(f"cowbench run failed:\n{proc.stderr}")
    rows = compare(sim / "predicted.csv", real)
    for kind, suffix in KINDS.items():
        sel = rows[rows.metric.str.endswith(suffix)]
        print(f"{kind}: median |error| {sel.error.abs().median():.1%}")
    iops = rows[rows.metric.str.endswith("_iops")]
    worst = iops.loc[iops.error.abs().idxmax()]
    print(f"worst VM, IOPS: {worst.entity.removeprefix('vm:')} {worst.metric} {worst.error:+.1%}")
    level, shares = level_and_shares(iops)
    off = iops.loc[shares.abs().idxmax()]
    print(f"host level (model / real, median over the VMs' IOPS): x{level:.2f}; each VM's "
          f"share after it: median |error| {shares.abs().median():.1%}, worst "
          f"{off.entity.removeprefix('vm:')} {off.metric} {shares.loc[off.name]:+.1%}")


if __name__ == "__main__":
    main()
