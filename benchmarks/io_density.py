"""The I/O model at host density (issue 16): twelve VMs on one host, calibrate, predict,
measure three times.

Runs, on this machine and in this order: ``cowbench calibrate`` (the short matrix, unless
``--profile`` names a profile), then ``cowbench run scenarios/io-density.yaml --repeat 3
--profile ...``: one prediction, three real runs each on fresh disks, the comparison against
their mean, their spread (``spread.csv``), and the drift of a few probes since the calibration
(run.json). Then it prints, per VM and figure, the prediction, the mean of the real runs, the
error against that mean, the runs' own spread ((max - min) / mean) and whether the error is
within it; per kind of figure the median |error| beside the issue's target; the CPU the VMs'
fio and qemu-nbd were given, predicted and measured; and the drift.
Everything lands in ``--out`` (the profile, the run directory, density.csv).

Figures, never asserted: the machine must be quiet (``uptime``), and the spread and the drift
say how far it was.

    .venv/bin/python benchmarks/io_density.py --out results/io-density [--profile P] [--ab]
                                              [--aio threads|native|io_uring]

``--ab`` also prints the summary for the same probes refitted without the host scheduler
(``benchmarks/sched_ab.py``), against the same real runs. ``--aio`` calibrates and runs the
scenario's disks through qemu-nbd with that ``--aio`` (``benchmarks/io_holdout.py``'s).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cowbench.probe_limits import AIO
from cowbench.tools import dies_with_us

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_holdout import scenario_with_aio  # noqa: E402  (benchmarks/, beside this script)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "io-density.yaml"
#: kind of figure -> (metric suffix, the issue's target for the median |error| over VMs)
KINDS = {"IOPS": ("_iops", 0.15), "bandwidth": ("_bw_bytes_per_s", 0.15),
         "mean latency": ("_lat_mean_s", 0.20), "p99 latency": ("_lat_p99_s", 0.40)}
WORST_VM_IOPS_TARGET = 0.35
#: the CPU each VM's processes were given (no target: it says where an I/O error comes from)
CPU = {"issuer CPU (fio)": "issuer_cpu_s", "server CPU (qemu-nbd)": "server_cpu_s"}


def cowbench(*args: str) -> float:
    """Run ``cowbench ARGS``; its wall time in seconds (exit on failure). It is stopped as
    SIGTERM stops it (cleaning up) if this script dies first, SIGKILL included."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cowbench", *args], capture_output=True,
                          text=True, check=False, preexec_fn=dies_with_us(signal.SIGTERM))
    if proc.returncode != 0:
        sys.exit(f"cowbench {' '.join(args)} failed:\n{proc.stderr}")
    return time.monotonic() - t0


def io_rows(spread: pd.DataFrame) -> pd.DataFrame:
    """The end-of-run I/O figures of spread.csv, one row per VM and metric."""
    io = spread[spread.t_s.isna() & spread.entity.str.startswith("vm:")]
    pattern = "|".join(f"{s}$" for s, _ in KINDS.values())
    return io[io.metric.str.contains(pattern)].reset_index(drop=True)


def print_table(rows: pd.DataFrame) -> None:
    print("| VM | metric | predicted | measured (mean of runs) | rel_error | real spread | "
          "within |")
    print("|---|---|---|---|---|---|---|")
    for r in rows.itertuples():
        within = "-" if np.isnan(r.within_spread) else ("yes" if r.within_spread else "no")
        print(f"| {r.entity.removeprefix('vm:')} | {r.metric} | {r.predicted:.4g} | "
              f"{r.measured_mean:.4g} | {r.rel_error:+.1%} | {r.spread:.1%} | {within} |")


def print_summary(rows: pd.DataFrame) -> None:
    print("| figure | median abs(error) | target | median real spread | within spread |")
    print("|---|---|---|---|---|")
    for kind, (suffix, target) in KINDS.items():
        sel = rows[rows.metric.str.endswith(suffix)]
        within = int((sel.within_spread == 1).sum())
        print(f"| {kind} | {sel.rel_error.abs().median():.1%} | <= {target:.0%} | "
              f"{sel.spread.median():.1%} | {within} of {len(sel)} |")
    iops = rows[rows.metric.str.endswith("_iops")]
    worst = iops.loc[iops.rel_error.abs().idxmax()]
    print(f"| worst VM, IOPS | {worst.entity.removeprefix('vm:')} {worst.metric} "
          f"{worst.rel_error:+.1%} | <= {WORST_VM_IOPS_TARGET:.0%} | {worst.spread:.1%} | |")


def print_cpu(spread: pd.DataFrame) -> None:
    """What each kind of process was given on the host's cores, the model's against the mean
    of the real runs: per kind the median |error| over VMs, and the sum over every VM (where
    the model leaves cores idle that the host kept busy, or the reverse); none without the
    model's figures (a profile without a host scheduler)."""
    rows = spread[spread.t_s.isna() & spread.metric.isin(CPU.values())
                  & spread.predicted.notna()]
    if rows.empty:
        print("CPU: the model has no figures (its profile has no host scheduler)")
        return
    print("| CPU of | median abs(error) | predicted, all VMs | measured, all VMs | "
          "median real spread |")
    print("|---|---|---|---|---|")
    for kind, metric in CPU.items():
        sel = rows[rows.metric == metric]
        print(f"| {kind} | {sel.rel_error.abs().median():.1%} | {sel.predicted.sum():.2f} s | "
              f"{sel.measured_mean.sum():.2f} s | {sel.spread.median():.1%} |")


def print_drift(run_dir: Path) -> None:
    drift = json.loads((run_dir / "run.json").read_text()).get("drift") or {}
    if drift.get("measured") is not True:
        print(f"drift: not measured ({drift.get('reason')})")
        return
    print("| probe | stands for | IOPS at calibration | IOPS now | moved |")
    print("|---|---|---|---|---|")
    for p in drift["probes"]:
        print(f"| {p['probe']} | {', '.join(p['stands_for'])} | {p['profile_iops']:,.0f} | "
              f"{p['iops']:,.0f} | {p['iops_change']:+.1%} |")
    med = drift["median_abs_change"]
    print(f"drift: median |moved| {med['iops']:.1%} (IOPS), {med['lat_mean_s']:.1%} "
          f"(mean latency); load {drift.get('load')}")


def print_without_sched(rows: pd.DataFrame, profile: Path, out: Path,
                        scenario: Path = SCENARIO) -> None:
    """With ``--ab``: the summary again for the same probes refitted without the host
    scheduler (``benchmarks/sched_ab.py``), against the same real runs."""
    if json.loads(profile.read_text())["params"].get("sched") is None:
        print("A/B: the profile has no host scheduler (its probes have no CPU figures)")
        return
    blind = out / "profile-without-sched.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sched_ab.py"), str(profile),
                    str(blind)], check=True, capture_output=True)
    sim = out / f"sim-without-sched-{time.strftime('%Y%m%d-%H%M%S')}"
    cowbench("run", str(scenario), "--backend", "sim", "--profile", str(blind), "--out", str(sim))
    pred = pd.read_csv(sim / "predicted.csv")
    pred = pred[pred.t_s.isna()].set_index(["entity", "metric"]).value
    other = rows.copy()
    other["predicted"] = [pred.get((e, m), np.nan) for e, m in zip(rows.entity, rows.metric,
                                                                      strict=True)]
    other["rel_error"] = (other.predicted - other.measured_mean) / other.measured_mean
    other["within_spread"] = np.where(other.spread.isna(), np.nan,
                                      (other.rel_error.abs() <= other.spread).astype(float))
    print(f"without the host scheduler (same probes refitted, same real runs; {sim}):")
    print_summary(other)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--matrix", default="short", help="calibration matrix (default short)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ab", action="store_true", help="also summarise the prediction of the "
                    "same probes refitted without the host scheduler, against the same runs")
    ap.add_argument("--aio", choices=AIO, default="threads",
                    help="qemu-nbd's --aio for the calibration and the scenario's disks (a "
                    "copy of the scenario with real.aio, in --out)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    scenario = scenario_with_aio(SCENARIO, a.aio, a.out)
    profile = a.profile
    if profile is None:
        profile = a.out / "profile.json"
        took = cowbench("calibrate", "--dir", str(a.out), "--out", str(profile), "--matrix",
                        a.matrix, "--aio", a.aio, "--force")
        print(f"calibration ({a.matrix}, qemu-nbd --aio={a.aio}): {took:.0f} s wall")
    run_dir = a.out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    took = cowbench("run", str(scenario), "--profile", str(profile), "--repeat", str(a.runs),
                    "--out", str(run_dir))
    print(f"predict + {a.runs} real runs + drift: {took:.0f} s wall; {run_dir}")
    spread = pd.read_csv(run_dir / "spread.csv")
    rows = io_rows(spread)
    rows.to_csv(a.out / "density.csv", index=False)
    print_table(rows)
    print()
    print_summary(rows)
    print()
    print_cpu(spread)
    print()
    print_drift(run_dir)
    if a.ab:
        print()
        print_without_sched(rows, profile, a.out, scenario)


if __name__ == "__main__":
    main()
