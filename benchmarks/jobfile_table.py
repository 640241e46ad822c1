"""fio job files as users write them, in both backends (issue 19's "Done when" table).

Each job of ``benchmarks/jobs/`` (fio's own examples, scaled to tens of MiB, and jobs written
like users' database, web and log jobs) runs alone on one VM, a 64 KiB-cluster qcow2 overlay
of a 128 MiB base holding 32 MiB of data, through ``job_file:`` with ``offsets: auto`` (the
default), with ``cowbench run --backend both``. Printed per job: how it is bounded (its
``io_size`` or size, or its time), the overlay's ``data_clusters`` predicted and measured, and
the relative error of the VM's ``allocated_bytes``. Targets: a job bounded by its size
predicted exactly, a time-bounded one within 0.5%.

A time-bounded job's count of I/Os is the machine's, and on a shared machine it moves from run
to run: with ``--repeat N`` each time-bounded job runs the real backend N times
(``cowbench run --repeat``), its measured figures are their mean, and the table adds the
range of the runs' I/Os per clone and ``data_clusters`` (a prediction cannot be told closer to
the mean than the runs are to each other), and whether the predicted count is within the runs'
spread (``cowbench.iocount``: ``predicted_ios_within_spread``). Size-bounded jobs run once.

    .venv/bin/python benchmarks/jobfile_table.py --out results/jobfile-table [--only a,b] \
        [--repeat N]

Every run directory stays under ``--out`` (``raw/`` holds fio's null-engine streams).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
JOBS_DIR = ROOT / "benchmarks" / "jobs"

#: (row name, job file, section or None, bounded by time)
JOBS: list[tuple[str, str, str | None, bool]] = [
    ("fio-rand-read", "fio-rand-read.fio", None, True),
    ("fio-rand-write", "fio-rand-write.fio", None, True),
    ("fio-rand-RW", "fio-rand-RW.fio", None, True),
    ("fio-seq-write", "fio-seq-write.fio", None, True),
    ("fio-seq-RW", "fio-seq-RW.fio", None, True),
    ("basic-verify", "basic-verify.fio", None, False),
    ("ssd-test", "ssd-test.fio", "rand-write", False),
    ("ssd-test-all", "ssd-test.fio", None, True),  # its four sections in turn (stonewall)
    ("tiobench-all", "tiobench-example.fio", None, True),  # four sections of 4 clones
    ("jesd219", "jesd219.fio", None, False),
    ("iometer-file-server", "iometer-file-access-server.fio", None, False),
    ("tiobench", "tiobench-example.fio", "f2", False),
    ("disk-zone-profile", "disk-zone-profile.fio", None, False),
    ("rand-zones", "rand-zones.fio", None, False),
    ("backwards-read", "backwards-read.fio", None, False),
    ("surface-scan", "surface-scan.fio", "write-phase", False),
    ("db-oltp", "db-oltp.fio", None, False),
    ("db-wal", "db-wal.fio", None, True),
    ("db-checkpoint", "db-checkpoint.fio", None, False),
    ("db-mostly-random", "db-mostly-random.fio", None, False),
    ("web-cache", "web-cache.fio", None, True),
    ("web-static", "web-static.fio", None, False),
    ("log-append", "log-append.fio", None, False),
    ("log-rotate", "log-rotate.fio", None, False),
    ("kv-store", "kv-store.fio", None, False),
    ("mail-server", "mail-server.fio", None, False),
    ("app-unaligned", "app-unaligned.fio", None, False),
]

SCENARIO = """\
name: job-{name}
seed: 1
images:
  - {{name: base, virtual_size: 128MiB, format: qcow2,
     synthetic: {{data: [{{offset: 0, length: 32MiB}}]}}}}
strategy: {{kind: qcow2_overlay, cluster_size: 64KiB}}
vms:
  - name: {name}
    image: base
    workload: {{job_file: {path}{section}}}
"""


@dataclass
class Row:
    name: str
    timed: bool
    predicted: float
    measured: float
    allocated_rel_error: float
    offsets: str
    seconds: float
    #: time-bounded: I/Os per clone predicted and measured, data_clusters at the measured
    #: count (run.json's offsets[vm].at_measured_ios, ``cowbench.iocount``)
    ios_predicted: float = float("nan")
    ios_measured: float = float("nan")
    at_measured_ios: float = float("nan")
    #: real runs (``--repeat``), and over them the range of data_clusters and I/Os per clone
    runs: int = 1
    clusters_range: tuple[float, float] = (float("nan"), float("nan"))
    ios_range: tuple[float, float] = (float("nan"), float("nan"))
    #: the predicted count no further from the runs' mean than the runs lie apart (None: one
    #: run, or no account)
    ios_within_spread: bool | None = None

    @property
    def clusters_error(self) -> float:
        if self.measured == 0:
            return 0.0 if self.predicted == 0 else float("inf")
        return (self.predicted - self.measured) / self.measured

    @property
    def on_target(self) -> bool:
        return abs(self.clusters_error) <= 0.005 if self.timed else \
            self.predicted == self.measured


def scenario_text(name: str, job: str, section: str | None) -> str:
    sec = f", section: {section}" if section else ""
    return SCENARIO.format(name=name, path=JOBS_DIR / job, section=sec)


def run_job(name: str, out: Path, uncalibrated: bool = False, repeat: int = 1) -> Row:
    """Run one job of :data:`JOBS` in both backends under ``out/name``; its row.
    ``uncalibrated`` (``--uncalibrated``): no quick calibration first, for a size-bounded
    job, whose clusters do not depend on the I/O rates; ``repeat``: real runs of a
    time-bounded job (a size-bounded one runs once)."""
    from cowbench import load_results, run

    _, job, section, timed = next(j for j in JOBS if j[0] == name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    path.write_text(scenario_text(name, job, section))
    start = time.monotonic()
    runs = repeat if timed else 1
    outcome = run(str(path), out / name, backend="both", uncalibrated=uncalibrated,
                  repeat=runs)
    seconds = time.monotonic() - start
    comp = outcome.comparison
    assert comp is not None
    vm = comp[comp.entity == f"vm:{name}"].set_index("metric")
    offsets = load_results(outcome.run_dir).meta["offsets"][name]
    at = offsets.get("at_measured_ios", {})
    assert outcome.measured is not None
    return Row(name, timed, float(vm.loc["data_clusters", "predicted"]),
               float(vm.loc["data_clusters", "measured"]),
               float(vm.loc["allocated_bytes", "rel_error"]),
               f"{offsets['offsets']}/{offsets.get('stream', '-')}", seconds,
               float(at.get("predicted_ios_per_clone", "nan")),
               float(at.get("measured_ios_per_clone", "nan")),
               float(at.get("data_clusters", "nan")), runs,
               *run_ranges(outcome.measured, name, clones(job, section)),
               at.get("predicted_ios_within_spread"))


def clones(job: str, section: str | None) -> int:
    """The clones a VM running ``job`` (``section`` of it) has, over all its jobs: the I/Os
    per clone's divisor (as ``cowbench.iocount``'s ``measured_ios_per_clone``)."""
    from cowbench.scenario import load_scenario

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(scenario_text("x", job, section))
        wl = load_scenario(path).workloads["x"]
    return sum(p.numjobs for p in wl.parts)


def run_ranges(measured: pd.DataFrame, vm: str,
               clones: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Over the real runs (``replication``) of ``vm``: the least and most ``data_clusters``,
    and the least and most reads, writes and trims per clone."""
    rows = measured[(measured.entity == f"vm:{vm}") & measured.t_s.isna()]
    clusters = rows[rows.metric == "data_clusters"].value
    ios = rows[rows.metric.isin(IOS)].groupby("replication").value.sum() / clones
    if clusters.empty or ios.empty:
        return (math.nan, math.nan), (math.nan, math.nan)
    return ((float(clusters.min()), float(clusters.max())),
            (float(ios.min()), float(ios.max())))


IOS = ("read_ios", "write_ios", "trim_ios")


def _rel(a: float, b: float) -> float:
    if b == 0:
        return 0.0 if a == 0 else float("nan")
    return (a - b) / b


def _num(x: float) -> str:
    """A count, or the mean of several runs' counts with one decimal."""
    return f"{x:.0f}" if x == round(x) else f"{x:.1f}"


def _range(r: tuple[float, float]) -> str:
    return "-" if r[0] != r[0] else f"{r[0]:.0f}-{r[1]:.0f}"


def print_table(rows: list[Row]) -> None:
    print(f"{'job':<22}{'bound':<7}{'offsets':<16}{'clusters pred':>14}{'measured':>10}"
          f"{'error':>9}{'alloc err':>11}{'target':>8}{'s':>6}")
    for r in rows:
        print(f"{r.name:<22}{'time' if r.timed else 'size':<7}{r.offsets:<16}"
              f"{_num(r.predicted):>14}{_num(r.measured):>10}{r.clusters_error:>9.2%}"
              f"{r.allocated_rel_error:>11.2%}{'yes' if r.on_target else 'NO':>8}"
              f"{r.seconds:>6.0f}")
    counted = [r for r in rows if r.ios_measured == r.ios_measured]
    if counted:
        print("time-bounded jobs: I/Os per clone predicted and issued by fio (the runs' mean, "
              "and their range), the model's data_clusters on fio's stream cut at fio's count, "
              "and the range of the runs' data_clusters")
        print(f"{'job':<22}{'ios pred':>10}{'ios real':>10}{'ios err':>9}{'runs':>5}"
              f"{'ios range':>14}{'in spread':>10}{'clusters at real ios':>22}{'error':>9}"
              f"{'clusters range':>16}")
        for r in counted:
            inside = {True: "yes", False: "no", None: "-"}[r.ios_within_spread]
            print(f"{r.name:<22}{r.ios_predicted:>10.0f}{r.ios_measured:>10.0f}"
                  f"{_rel(r.ios_predicted, r.ios_measured):>9.2%}{r.runs:>5}"
                  f"{_range(r.ios_range):>14}{inside:>10}{r.at_measured_ios:>22.0f}"
                  f"{_rel(r.at_measured_ios, r.measured):>9.2%}"
                  f"{_range(r.clusters_range):>16}")
    frame = pd.DataFrame([r.__dict__ for r in rows])
    print(f"{len(rows)} jobs, {sum(r.on_target for r in rows)} on target; "
          f"{int((~frame.timed).sum())} bounded by size, {int(frame.timed.sum())} by time")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "jobfile-table")
    ap.add_argument("--only", default="", help="comma-separated job names (default: all)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="real runs of each time-bounded job (default 1)")
    args = ap.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        print("error: --repeat must be 1 to 20", file=sys.stderr)
        return 2
    names = [n for n in args.only.split(",") if n] or [j[0] for j in JOBS]
    unknown = sorted(set(names) - {j[0] for j in JOBS})
    if unknown:
        print(f"error: unknown jobs: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: --out {args.out} is not empty", file=sys.stderr)
        return 2
    rows = []
    began, load = time.strftime("%H:%M", time.gmtime()), _load()
    for name in names:
        rows.append(run_job(name, args.out, repeat=args.repeat))
        print(f"  {name}: done in {rows[-1].seconds:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"{began} to {time.strftime('%H:%M', time.gmtime())} UTC; load average (1, 5, 15 "
          f"min) {load} at the start, {_load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
