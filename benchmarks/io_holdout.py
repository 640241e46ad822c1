"""The calibrated I/O model on held-out workloads (issue 5): calibrate, predict, measure 3x.

Runs, on this machine and in this order: ``cowbench calibrate`` (unless ``--profile`` names
one), ``cowbench run scenarios/io-holdout.yaml --backend sim --profile ...``, and ``--runs``
real runs of the same scenario; then prints, per VM and figure, the prediction, the mean of
the real runs, the model's error against that mean, the real runs' own spread ((max - min) /
mean), and the median |error| per kind of figure, against the mean and against each run.
Everything lands in ``--out`` (the profile, the run directories, holdout.csv).

Last, it measures a few of the profile's probes again (one round) and prints how far each
moved since the calibration: a shared machine can change speed between the calibration and
the real runs, and then the model's error says as much about the machine as about the model.

The machine must be quiet: the figures are only as steady as the machine was (``uptime``).

``--aio native`` (or ``io_uring``) does the same for the scenario's disks exported by qemu-nbd
with that ``--aio`` (a copy of the scenario with ``real: {aio: ...}``, written to ``--out``),
calibrated with ``cowbench calibrate --aio`` alike: without qemu-nbd's pool of threads, whose
scheduling as one group makes a crowded host's tail (docs/io-model.md, "The tail of a crowded
host").

    .venv/bin/python benchmarks/io_holdout.py --out results/io-holdout [--profile P] [--runs 3]
                                              [--aio threads|native|io_uring]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cowbench.probe_limits import AIO
from cowbench.tools import dies_with_us

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "io-holdout.yaml"
KINDS = {"IOPS": "_iops", "bandwidth": "_bw_bytes_per_s", "mean latency": "_lat_mean_s",
         "p99 latency": "_lat_p99_s",
         # the CPU each VM's fio and qemu-nbd were given (no target: where an error comes from)
         "issuer CPU": "issuer_cpu_s", "server CPU": "server_cpu_s"}


def cowbench(*args: str) -> None:
    """Run ``cowbench ARGS`` (exit on failure); it is stopped as SIGTERM stops it (cleaning
    up) if this script dies first, SIGKILL included."""
    proc = subprocess.run([sys.executable, "-m", "cowbench", *args], capture_output=True,
                          text=True, check=False, preexec_fn=dies_with_us(signal.SIGTERM))
    if proc.returncode != 0:
        sys.exit(f"cowbench {' '.join(args)} failed:\n{proc.stderr}")


def scenario_with_aio(scenario: Path, aio: str, out: Path) -> Path:
    """``scenario`` itself for qemu's default ``--aio=threads``; else a copy of it in
    ``out`` whose disks are exported with ``aio`` (``real.aio``)."""
    if aio == "threads":
        return scenario
    doc = yaml.safe_load(scenario.read_text())
    doc.setdefault("real", {})["aio"] = aio
    copy = out / f"{scenario.stem}-aio-{aio}.yaml"
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy


def figures(run_dir: Path, name: str) -> pd.Series:
    df = pd.read_parquet(run_dir / name)
    df = df[df.t_s.isna() & df.metric.str.contains("|".join(KINDS.values()))]
    return df.set_index(["entity", "metric"]).value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--calibrate-dir", type=Path, help="where to calibrate (default: --out)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--aio", choices=AIO, default="threads",
                    help="qemu-nbd's --aio for the calibration and the scenario's disks")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    scenario = scenario_with_aio(SCENARIO, a.aio, a.out)
    profile = a.profile
    if profile is None:
        profile = a.out / "profile.json"
        t0 = time.monotonic()
        cowbench("calibrate", "--dir", str(a.calibrate_dir or a.out), "--out", str(profile),
                 "--aio", a.aio, "--force")
        print(f"calibration (qemu-nbd --aio={a.aio}): {time.monotonic() - t0:.0f} s wall")
    cowbench("run", str(scenario), "--backend", "sim", "--profile", str(profile),
             "--out", str(a.out / "sim"))
    pred = figures(a.out / "sim", "predicted.parquet")
    real = []
    for i in range(1, a.runs + 1):
        cowbench("run", str(scenario), "--backend", "real", "--out", str(a.out / f"real-{i}"))
        real.append(figures(a.out / f"real-{i}", "measured.parquet"))
    meas = pd.concat(real, axis=1, keys=range(1, a.runs + 1)).dropna()
    table = pd.DataFrame({"predicted": pred.reindex(meas.index),
                          "measured_mean": meas.mean(axis=1),
                          "measured_min": meas.min(axis=1), "measured_max": meas.max(axis=1)})
    table["rel_error"] = (table.predicted - table.measured_mean) / table.measured_mean
    table["spread"] = (table.measured_max - table.measured_min) / table.measured_mean
    for i in meas.columns:
        table[f"rel_error_run{i}"] = (table.predicted - meas[i]) / meas[i]
    table.to_csv(a.out / "holdout.csv")
    print("| entity | metric | predicted | measured (mean of runs) | rel_error | real spread |")
    print("|---|---|---|---|---|---|")
    for (entity, metric), r in table.iterrows():
        print(f"| {entity} | {metric} | {r.predicted:.4g} | {r.measured_mean:.4g} | "
              f"{r.rel_error:+.1%} | {r.spread:.1%} |")
    print()
    print("| figure | median abs(error) vs mean | per run | median real spread |")
    print("|---|---|---|---|")
    for kind, suffix in KINDS.items():
        sel = table[table.index.get_level_values("metric").str.endswith(suffix)]
        per_run = ", ".join(f"{sel[f'rel_error_run{i}'].abs().median():.1%}"
                            for i in meas.columns)
        print(f"| {kind} | {sel.rel_error.abs().median():.1%} | {per_run} | "
              f"{np.median(sel.spread):.1%} |")
    drift(profile, a.calibrate_dir or a.out)


DRIFT_PROBES = ("raw-randread-4k-qd1-x1", "raw-randread-4k-qd32-x1", "raw-randread-64k-qd32-x1",
                "cow-write-4k-qd8-x1", "chain-d32-randread-4k-qd8-x1")


def drift(profile_path: Path, work: Path) -> None:
    """Measure some of the profile's probes again and print how far they moved."""
    import dataclasses

    from cowbench.profile import load_profile
    from real.measure.calibrate import ProbeSpec, measure, settings

    prof = load_profile(profile_path)
    then = {p.name: p for p in prof.probes if p.name in DRIFT_PROBES}
    specs = [ProbeSpec(p.target, p.rw, p.bs, p.iodepth, p.exports, p.depth, p.cluster_size,
                       p.beside) for p in then.values()]
    s = dataclasses.replace(settings(prof.matrix, int(prof.settings["max_exports"]),
                                     prof.aio), rounds=1)
    now = measure(work, s, specs)
    print()
    print("| probe | IOPS at calibration | IOPS now | moved |")
    print("|---|---|---|---|")
    moved = []
    for p in now:
        m = (p.iops - then[p.name].iops) / then[p.name].iops
        moved.append(abs(m))
        print(f"| {p.name} | {then[p.name].iops:,.0f} | {p.iops:,.0f} | {m:+.1%} |")
    print(f"median |moved|: {np.median(moved):.1%}")


if __name__ == "__main__":
    main()
