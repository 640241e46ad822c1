"""Where a high-IOPS small-read job's time goes through qemu-nbd (issue 19's web-cache).

Side by side, in rounds (each round runs every configuration once, in turn, so that they
share the machine's moment): 4 KiB I/O at iodepth 8 for ``--seconds`` through qemu-nbd
(``--cache=none --aio=threads``, as the real backend runs it) with fio's nbd engine, on

- ``raw-uniform``: a raw file, uniform random reads (the calibration probes' pattern);
- ``raw-pareto``: the same file, pareto:0.9 reads (web-cache's distribution);
- ``via-base``: a fresh 64 KiB-cluster qcow2 overlay of it, pareto reads (all fall through);
- ``own-data``: an overlay whose 32 MiB were written first, pareto reads (the overlay's data);
- ``mix-fresh`` / ``mix-filled``: web-cache's mix (90% reads, pareto) on each overlay;
- ``alone``: fio alone (libaio, O_DIRECT) on the raw file, uniform reads: the storage
  without qemu-nbd.

Printed per configuration over the rounds: IOPS, fio's mean read completion latency, and the
CPU each I/O took in qemu-nbd (``/proc/PID/stat``, every thread) and in fio (its usr + sys);
then, over every qemu-nbd run, how the IOPS follow the CPU the two processes obtained. The
load is printed with each round: on a shared machine compare configurations within a round.

    .venv/bin/python benchmarks/io_cpu_share.py [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cowbench.tools import which
from real.workload.nbd import NbdExport

MiB = 1 << 20
#: name: (image: raw / fresh / filled, rw, random_distribution)
CONFIGS = {
    "raw-uniform": ("raw", "randread", "random"),
    "raw-pareto": ("raw", "randread", "pareto:0.9"),
    "via-base": ("fresh", "randread", "pareto:0.9"),
    "own-data": ("filled", "randread", "pareto:0.9"),
    "mix-fresh": ("fresh", "randrw", "pareto:0.9"),
    "mix-filled": ("filled", "randrw", "pareto:0.9"),
}


def fio(target: list[str], rw: str, dist: str, seconds: float, out: Path) -> dict[str, float]:
    """One fio job; its IOPS, mean read latency (us) and CPU seconds."""
    subprocess.run([which("fio"), "--name=j", *target, f"--rw={rw}", "--rwmixread=90",
                    "--bs=4k", "--iodepth=8", "--size=32m", "--time_based",
                    f"--runtime={seconds:g}", f"--random_distribution={dist}",
                    "--output-format=json", f"--output={out}"], check=True,
                   capture_output=True, timeout=120 + seconds)
    job = json.loads(out.read_text())["jobs"][0]
    secs = job["job_runtime"] / 1e3
    ios = job["read"]["total_ios"] + job["write"]["total_ios"]
    return {"iops": ios / secs, "ios": ios, "secs": secs,
            "read_lat_us": job["read"]["clat_ns"]["mean"] / 1e3,
            "fio_cpu_s": (job["usr_cpu"] + job["sys_cpu"]) / 100 * secs}


def image(tmp: Path, kind: str) -> tuple[Path, str]:
    base = tmp / "base.raw"
    if kind == "raw":
        return base, "raw"
    ovl = tmp / "ovl.qcow2"
    ovl.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b",
                    str(base), "-F", "raw", str(ovl), "128M"], check=True)
    if kind == "filled":
        subprocess.run(["qemu-io", "-t", "none", "-f", "qcow2", "-c", "write -P 7 0 32M",
                        str(ovl)], check=True, capture_output=True)
    return ovl, "qcow2"


def through_nbd(tmp: Path, name: str, seconds: float, k: int) -> dict[str, float]:
    kind, rw, dist = CONFIGS[name]
    path, fmt = image(tmp, kind)
    with NbdExport(path, fmt, tmp, "x") as nbd:
        before = nbd.cpu_s()
        got = fio(["--ioengine=nbd", f"--uri={nbd.uri}"], rw, dist, seconds,
                  tmp / f"{name}-{k}.json")
        got["nbd_cpu_s"] = nbd.cpu_s() - before
    return got


def summary(name: str, runs: list[dict[str, float]]) -> str:
    def col(key: str, scale: float = 1.0, per_io: bool = False) -> str:
        xs = [r[key] / (r["ios"] if per_io else 1) * scale for r in runs]
        return f"{statistics.median(xs):7.0f} ({min(xs):.0f}-{max(xs):.0f})"
    line = f"{name:<12}{col('iops'):>22}{col('read_lat_us'):>20}"
    if "nbd_cpu_s" in runs[0]:
        line += f"{col('nbd_cpu_s', 1e6, True):>20}"
    else:
        line += f"{'-':>20}"
    return line + f"{col('fio_cpu_s', 1e6, True):>16}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {n: [] for n in [*CONFIGS, "alone"]}
    with tempfile.TemporaryDirectory(prefix="io-cpu-share-") as d:
        tmp = Path(d)
        with open(tmp / "base.raw", "wb") as f:
            f.write(os.urandom(32 * MiB))
            f.truncate(128 * MiB)
        for k in range(args.rounds):
            print(f"round {k + 1} at {time.strftime('%H:%M:%S', time.gmtime())} UTC, load "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
            for name in CONFIGS:
                results[name].append(through_nbd(tmp, name, args.seconds, k))
            results["alone"].append(fio(["--ioengine=libaio", "--direct=1",
                                         f"--filename={tmp / 'base.raw'}"], "randread",
                                        "random", args.seconds, tmp / f"alone-{k}.json"))
    print(f"{'config':<12}{'IOPS (range)':>22}{'read clat us':>20}{'qemu-nbd cpu us/io':>20}"
          f"{'fio cpu us/io':>16}")
    for name, runs in results.items():
        print(summary(name, runs))
    nbd = [r for n in CONFIGS for r in results[n]]
    cores = np.array([(r["nbd_cpu_s"] + r["fio_cpu_s"]) / r["secs"] for r in nbd])
    iops = np.array([r["iops"] for r in nbd])
    per_io = np.array([(r["nbd_cpu_s"] + r["fio_cpu_s"]) / r["ios"] * 1e6 for r in nbd])
    print(f"through qemu-nbd, {len(nbd)} runs: IOPS {iops.min():.0f} to {iops.max():.0f}, the "
          f"CPU qemu-nbd and fio obtained {cores.min():.2f} to {cores.max():.2f} cores "
          f"(correlation {np.corrcoef(cores, iops)[0, 1]:.2f}), CPU per I/O {per_io.min():.0f} "
          f"to {per_io.max():.0f} us (median {np.median(per_io):.0f})")
    print(f"load at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
