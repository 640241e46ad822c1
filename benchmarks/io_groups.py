"""Groups of VMs on one host, real beside the calibrated model: how each VM's figures hold up
as neighbours are added (issue 5: where the model is known to be wrong).

Each group is a comma-separated list of workloads, one VM each, every VM on its own 64 KiB-
cluster qcow2 overlay of one raw base (2 GiB, its first 1 GiB written). Real: each overlay
exported by its own qemu-nbd (``--cache=none --aio=threads``, as the real backend does), one
fio with a job per VM (nbd engine, ``--runtime`` seconds), ``--runs`` times, fresh overlays
each time. Predicted: the same group as a scenario (``scenarios/io-holdout.yaml``'s image and
strategy) run by ``cowbench run --backend sim --profile``. Prints each VM's IOPS and mean
latency per direction, every real run beside the prediction, and each group's total IOPS with
its error against the runs' mean. ``--profile`` given more than once predicts with each, side
by side against the same real runs (an A/B of two fits of the same probes: the first profile's
columns, then each other's predicted IOPS and error).

Workloads: mixb (randrw 70/30 4 KiB iodepth 16), mixa (the same at iodepth 2), rmix (4 KiB
reads at iodepth 16), reader (4 KiB reads at iodepth 6), writer (8 KiB writes at iodepth 6),
split (reads, bssplit 4k/50:16k/30:64k/20, iodepth 6), r64 and r16 (64 and 16 KiB reads at
iodepth 8), cw and w64 (4 and 64 KiB writes at iodepth 8).

With ``--disk-counters``, each group's rows are followed by what the block device under
``--dir`` did during each real run's fio (the kernel's counters, ``/sys/dev/block/M:N/stat``):
its reads and writes, their mean size and their mean time in the block layer (issue to
completion, the queue included), as ``iostat``'s ``r_await`` and ``w_await``: whether the
device serves one direction slower than the other.

The machine must be quiet, and the profile measured on it shortly before.

    .venv/bin/python benchmarks/io_groups.py --profile P [--profile Q] [--dir /var/tmp] \\
        [--runs 2] [--disk-counters] mixb mixb,writer mixb,mixa,split,writer,reader
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cowbench.tools import dies_with_us
from real.workload.nbd import NbdExport

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "io-holdout.yaml"
WORKLOADS: dict[str, dict[str, Any]] = {
    "mixb": {"rw": "randrw", "rwmixread": 70, "bs": "4k", "iodepth": 16},
    "mixa": {"rw": "randrw", "rwmixread": 70, "bs": "4k", "iodepth": 2},
    "rmix": {"rw": "randread", "bs": "4k", "iodepth": 16},
    "reader": {"rw": "randread", "bs": "4k", "iodepth": 6},
    "writer": {"rw": "randwrite", "bs": "8k", "iodepth": 6},
    "split": {"rw": "randread", "bssplit": "4k/50:16k/30:64k/20", "iodepth": 6},
    "r64": {"rw": "randread", "bs": "64k", "iodepth": 8},
    "r16": {"rw": "randread", "bs": "16k", "iodepth": 8},
    "cw": {"rw": "randwrite", "bs": "4k", "iodepth": 8},
    "w64": {"rw": "randwrite", "bs": "64k", "iodepth": 8},
}
GIB = 1 << 30

Figures = dict[tuple[str, str], tuple[float, float]]  # (vm, read|write) -> (IOPS, mean lat s)


#: what the block device did in a span: (reads, sectors read, ms reading, writes, sectors
#: written, ms writing): fields 1, 3, 4, 5, 7 and 8 of its ``stat`` (the kernel's
#: Documentation/block/stat.rst)
Disk = tuple[int, int, int, int, int, int]


def parse_disk_stat(text: str) -> Disk:
    """A block device's ``stat`` file: its reads and writes so far, their sectors and ms."""
    f = [int(x) for x in text.split()]
    return f[0], f[2], f[3], f[4], f[6], f[7]


def disk_counters(path: Path) -> Disk | None:
    """The counters of the block device that holds ``path``; None where its filesystem has
    none (tmpfs, overlayfs) or the kernel shows none."""
    dev = os.stat(path).st_dev
    try:
        text = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat").read_text()
    except OSError:
        return None
    return parse_disk_stat(text)


def disk_line(before: Disk, after: Disk) -> str:
    """What the device did between two readings: reads and writes, their mean size and time."""
    r, rs, rms, w, ws, wms = (b - a for a, b in zip(before, after, strict=True))

    def side(n: int, sectors: int, ms: int) -> str:
        if n <= 0:
            return "0"
        return f"{n:,} of {sectors * 512 / n / 1024:.1f} KiB at {ms * 1000 / n:,.0f} us"
    return f"reads {side(r, rs, rms)}; writes {side(w, ws, wms)}"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def real_run(work: Path, base: Path, names: list[str], runtime: int,
             disk: list[str] | None = None) -> Figures:
    """One real run of the group; ``disk``: a list the device's line is added to
    (:func:`disk_line`), if its counters can be read."""
    with ExitStack() as stack:
        argv = ["fio", "--output-format=json"]
        for i, name in enumerate(names):
            img = work / f"o{i}.qcow2"
            img.unlink(missing_ok=True)
            sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b",
               str(base), "-F", "raw", str(img), "2G")
            nbd = stack.enter_context(NbdExport(img, "qcow2", work, f"e{i}"))
            w = WORKLOADS[name]
            argv += [f"--name={name}{i}", "--ioengine=nbd", f"--uri={nbd.uri}", "--size=2G",
                     "--time_based=1", f"--runtime={runtime}", "--norandommap=1",
                     "--randrepeat=0", *(f"--{k}={v}" for k, v in w.items())]
        before = disk_counters(work) if disk is not None else None
        out = subprocess.run(argv, capture_output=True, text=True, check=True,
                             preexec_fn=dies_with_us(signal.SIGTERM)).stdout
        after = disk_counters(work) if before is not None else None
        if disk is not None and before is not None and after is not None:
            disk.append(disk_line(before, after))
    data = json.loads(out[out.index("{"):])
    figs: Figures = {}
    for job in data["jobs"]:
        for d in ("read", "write"):
            x = job[d]
            if x["total_ios"] > 0:
                figs[(job["jobname"], d)] = (x["iops"], x["clat_ns"]["mean"] / 1e9)
    return figs


def predicted(work: Path, profile: Path, names: list[str], runtime: int) -> Figures:
    s = yaml.safe_load(SCENARIO.read_text())
    s["name"] = "io-group"
    s["workloads"] = {n: {**WORKLOADS[n], "runtime": f"{runtime}s",
                          **({"io_size": "1GiB", "offsets": "fio"} if n == "split"
                             else {"time_based": True})} for n in set(names)}
    s["vms"] = [{"name": f"{n}{i}", "image": "ubuntu", "root_size": "2GiB", "workload": n}
                for i, n in enumerate(names)]
    scen = work / "group.yaml"
    scen.write_text(yaml.safe_dump(s))
    out = work / "sim"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "cowbench", "run", str(scen), "--backend",
                           "sim", "--profile", str(profile), "--out", str(out)],
                          capture_output=True, text=True, check=False,
                          preexec_fn=dies_with_us(signal.SIGTERM))
    if proc.returncode:
        sys.exit(f"cowbench run failed:\n{proc.stderr}")
    df = pd.read_parquet(out / "predicted.parquet")
    vals = {(str(e), str(m)): float(v) for e, m, v in
            df[df.t_s.isna()][["entity", "metric", "value"]].itertuples(index=False)}
    figs: Figures = {}
    for i, n in enumerate(names):
        for d in ("read", "write"):
            iops = vals.get((f"vm:{n}{i}", f"{d}_iops"), 0.0)
            if iops > 0:
                figs[(f"{n}{i}", d)] = (iops, vals[(f"vm:{n}{i}", f"{d}_lat_mean_s")])
    return figs


def err(pred: float, real: list[float]) -> float:
    mean = sum(real) / len(real) if real else 0.0
    return (pred - mean) / mean if mean else float("nan")


def print_group(names: list[str], runs: list[Figures], preds: list[Figures]) -> None:
    """The group's rows: each VM and direction, then the total; the first prediction's
    figures, then each other prediction's IOPS and error."""
    label = "+".join(names)
    keys = [(f"{n}{i}", d) for i, n in enumerate(names) for d in ("read", "write")]
    for key in (k for k in keys if k in preds[0]):
        real = [r.get(key, (0.0, 0.0)) for r in runs]
        iops = [x for x, _ in real]
        lat = sum(y for _, y in real) / len(real)
        first = preds[0][key]
        others = "".join(f" {p.get(key, (0.0, 0.0))[0]:,.0f} | "
                         f"{err(p.get(key, (0.0, 0.0))[0], iops):+.1%} |" for p in preds[1:])
        print(f"| {label} | {key[0]} | {key[1]} | {', '.join(f'{x:,.0f}' for x in iops)} | "
              f"{first[0]:,.0f} | {err(first[0], iops):+.1%} | {lat * 1e6:,.0f} | "
              f"{first[1] * 1e6:,.0f} |{others}")
    totals = [sum(x for x, _ in r.values()) for r in runs]
    cells = [f" {t:,.0f} | {err(t, totals):+.1%} |"
             for t in (sum(x for x, _ in p.values()) for p in preds)]
    print(f"| {label} | total | | {', '.join(f'{t:,.0f}' for t in totals)} |{cells[0]} | |"
          + "".join(cells[1:]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="+", help="comma-separated workloads, one VM each")
    ap.add_argument("--profile", type=Path, required=True, action="append",
                    help="a calibration profile; again to predict with another beside it")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--runtime", type=int, default=4)
    ap.add_argument("--disk-counters", action="store_true",
                    help="after each group, what the block device under --dir did in each run")
    a = ap.parse_args()
    groups = [g.split(",") for g in a.groups]
    unknown = sorted({n for g in groups for n in g} - set(WORKLOADS))
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}")
    for prof in a.profile:
        if not prof.is_file():
            ap.error(f"--profile: no such file: {prof}")
    missing = [t for t in ("qemu-img", "qemu-nbd", "fio") if shutil.which(t) is None]
    if missing:
        sys.exit(f"needs {', '.join(missing)} (./scripts/test.sh installs them)")
    extra = "".join(f" predicted ({p.stem}) | error |" for p in a.profile[1:])
    print("| group | VM | direction | real IOPS (each run) | predicted | error vs mean "
          f"| real mean latency (us) | predicted (us) |{extra}")
    print("|---|---|---|---|---|---|---|---|" + "---|---|" * (len(a.profile) - 1))
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="cowbench-groups-") as tmp:
        work = Path(tmp)
        base = work / "base.raw"
        sh("qemu-img", "create", "-q", "-f", "raw", str(base), "2G")
        sh("fio", "--name=fill", f"--filename={base}", "--rw=write", "--bs=1M", "--direct=1",
           "--size=1G", "--output=/dev/null")
        for names in groups:
            disk: list[str] | None = [] if a.disk_counters else None
            runs = [real_run(work, base, names, a.runtime, disk) for _ in range(a.runs)]
            preds = [predicted(work, prof, names, a.runtime) for prof in a.profile]
            print_group(names, runs, preds)
            if disk is not None:
                label = "+".join(names)
                lines = [f"| {label} | the device, run {i} | | {line} |"
                         for i, line in enumerate(disk, 1)]
                print("\n".join(lines) or f"| {label} | the device | | no counters for "
                      f"{work} |", flush=True)


if __name__ == "__main__":
    main()
