"""The tails the calibration measured beside the model's (issue 16): each probe of a profile
whose p99 latency was recorded, its mean and 99th-percentile latency as fio measured them and
as the model replays them with the profile's own parameters (``sim.perf.replay``), and p99
over the mean of each. No real I/O: the profile's probes replayed, a few seconds each.

    .venv/bin/python benchmarks/probe_tails.py PROFILE [--ios 4000] [--all]

By default the probes with several I/Os in flight (iodepth 8 or more, several exports, or a
job beside): where a tail comes from waiting behind others. The model fits IOPS and mean
latency (``cowbench calibrate``'s table) and, of p99, only the median over the raw probes of
several exports (the host's long waits, ``sim.perf.tail``), so this is where its tail is
checked against the machine's, probe by probe, before any scenario is run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cowbench.profile import Probe, load_profile
from sim.perf.replay import replay_latencies


def crowded(p: Probe) -> bool:
    """A probe with several I/Os in flight: deep, on several exports, or beside a job."""
    return p.iodepth >= 8 or p.exports > 1 or p.beside is not None


def rows(profile: Path, ios: int, every: bool) -> list[dict[str, float | str]]:
    """One row per probe with a p99 recorded: measured and replayed mean and p99 (us)."""
    prof = load_profile(profile)
    out: list[dict[str, float | str]] = []
    for p in prof.probes:
        if p.lat_p99_s is None or p.lat_mean_s <= 0 or not (every or crowded(p)):
            continue
        _, lat = replay_latencies(prof.params, p, ios=ios)
        mean, p99 = float(np.mean(lat)), float(np.percentile(lat, 99))
        out.append({"probe": p.name, "mean_us": p.lat_mean_s * 1e6, "model_mean_us": mean * 1e6,
                    "p99_us": p.lat_p99_s * 1e6, "model_p99_us": p99 * 1e6,
                    "tail": p.lat_p99_s / p.lat_mean_s, "model_tail": p99 / mean})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--ios", type=int, default=4000, help="I/Os replayed per probe (4000)")
    ap.add_argument("--all", action="store_true", help="every probe, not only crowded ones")
    args = ap.parse_args()
    found = rows(args.profile, args.ios, args.all)
    print("| probe | mean us, fio / model | p99 us, fio / model | p99 over mean, fio / model |")
    print("|---|---|---|---|")
    for r in found:
        print(f"| {r['probe']} | {r['mean_us']:,.0f} / {r['model_mean_us']:,.0f} | "
              f"{r['p99_us']:,.0f} / {r['model_p99_us']:,.0f} | "
              f"{r['tail']:.1f} / {r['model_tail']:.1f} |")
    if found:
        ratio = [float(r["model_p99_us"]) / float(r["p99_us"]) for r in found]
        print(f"model p99 over fio's: median {np.median(ratio):.2f} over {len(found)} probes "
              f"(lowest {min(ratio):.2f}, highest {max(ratio):.2f})")


if __name__ == "__main__":
    main()
