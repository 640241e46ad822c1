"""How the host's cores serve the threads on the I/O path (issue 16): how often each thread runs
per I/O, for how long, and how long it waited for a core each time, from the kernel's own
scheduler statistics (``/proc/PID/task/TID/schedstat``: CPU time, time spent runnable but
waiting, turns on a core).

The model (``sim.perf.eevdf``) gives each VM two processes, an issuer and a server, which
batch the I/Os that queued while they waited and keep a core for up to a slice. This measures
what the real ones do, through qemu-nbd (``--cache=none --aio=threads``, as the real backend
runs it; ``--aio native`` for qemu-nbd without its pool of threads) with fio's nbd engine,
4 KiB random reads of a raw file per export:

- ``alone-qd1``, ``alone-qd32``: one export, fio at iodepth 1, then 32;
- ``contended``: the calibration's contention probe (``real.measure.calibrate``): a reader at
  iodepth 1 on its export beside readers at iodepth 32 on three exports of their own;
- ``four-qd4``: the calibration's probe of four exports (``raw-randread-4k-qd4-x4``), four
  readers at iodepth 4, each on its own export;
- ``writer-alone``, ``writer-beside``: io-holdout's kind of host: 8 KiB random writes at
  iodepth 6 into a fresh qcow2 overlay of 64 KiB clusters (each first write into a cluster
  allocates it), alone, then beside two 4 KiB readers at iodepth 6;
- ``mix-alone``, ``mix-filled``: io-holdout's mix-b alone, 4 KiB random reads and writes
  (70/30) at iodepth 16 on a fresh 1 GiB overlay of 64 KiB clusters over a raw file of its
  size, half data and half a hole, as io-holdout's image (each first write copies its
  cluster), then on an overlay with every cluster written before the job (none does). A
  mixed job's reads and writes are printed apart as well;
- ``mix-beside``: mix-b on a fresh overlay beside the writer above and two 4 KiB readers at
  iodepth 6 on exports of their own (a crowded host).

Printed per setting and job, the median over the rounds (and their range): IOPS, fio's mean
latency and its 99th percentile of completion latency, then for each kind of thread (fio's job
process; qemu-nbd's main thread, which speaks NBD; its other threads, the pool that does the
reads and writes) its turns on a core per I/O, CPU per turn, wait for a core per turn, and
the share of its turns that the scheduler ended while it still had work (preempted:
``nonvoluntary_ctxt_switches`` of ``/proc/PID/task/TID/status``) rather than the thread (it
went to wait). Counted over the middle half of each run (after a quarter of it, for half of
it), so that start and end are left out.

With ``--trace`` (root: tracefs), the kernel's own events are recorded as well for the first
second of that window (``cowbench.schedtrace``: a tracefs instance of its own), and each kind
of thread's turns and waits are printed as distributions (50th, 90th and 99th percentiles, the
waits' 99.9th and longest too, pooled over the rounds), with the share of its preemptions made
for a thread woken during the turn, its sleeps (not runnable, to its wake-up: 50th to 99.9th
percentile) and, apart, those in the kernel on a disk I/O (``D``), and the device's time per
request (the block layer's issue to completion): what makes a tail, which the sums cannot say.
Recording costs the cores a few per cent while it runs, and formatting the text some seconds
once each run is over.

With ``--syscalls`` (root: tracefs; instead of ``--trace``), qemu-nbd's I/O system calls
(``pread64``, ``pwritev``, ... of its pool's threads, each blocked in the kernel until it is
done) are recorded instead, for the same second, and printed by call, file (``image``: the
export's own file; ``backing``: the file under an overlay) and size: how many per I/O of the
job and how long they took (mean, 50th and 99th percentiles), pooled over the rounds. A call
that waits for the file's lock (ext4's inode lock, which a write that extends the file takes
alone for its whole transfer) takes that wait inside it: where a first write waits.

Every qemu-nbd and every fio job is a session of its own (the real backend starts them so, and
fio's jobs call ``setsid()``), so where the kernel groups each session's processes
(``/proc/sys/kernel/sched_autogroup_enabled``, printed first) each is scheduled as a group of
its own, as a cgroup per VM would be: qemu-nbd's threads share one process's weight. Measured
here on 2026-12-06 (``four-qd4``, 6 s runs): with the pool (``--aio threads``) 25-28k IOPS in
all, p99 3.6-5.1 ms; without it (``--aio native``) 35-37k, p99 1.2-1.4 ms; with the pool and
the kernel's grouping off, 30-32k, p99 1.2-1.5 ms (docs/io-model.md, "The tail of a crowded
host").

    .venv/bin/python benchmarks/io_turns.py [--rounds 3] [--seconds 4] [--settings NAME ...]
                                            [--aio threads|native] [--trace | --syscalls]
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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cowbench.profile import load_profile
from cowbench.schedtrace import (
    Analysis,
    Kind,
    Syscall,
    Trace,
    TraceUnavailable,
    analyse,
    events,
    percentile_us,
    syscall_events,
    syscalls,
)
from cowbench.tools import (
    PID_NAMESPACE,
    Schedstat,
    Schedstats,
    dies_with_us,
    own_pid_namespace,
    run,
    sum_stats,
    thread_delta,
    thread_schedstats,
    which,
)
from real.workload.nbd import NbdExport
from sim.perf.fit import contended
from sim.perf.host import Host
from sim.perf.replay import CONTENDED_IOS, replay

#: one job's readings: its qemu-nbd's threads, and per fio job process its threads
Readings = tuple[dict[int, Schedstat], dict[int, dict[int, Schedstat]]]

MiB = 1 << 20
#: the most seconds of each run's window the kernel's events are recorded for (``--trace``)
TRACE_SECONDS = 1.0
#: the region each export's file holds (random data: the reads reach the device)
FILE_BYTES = 128 * MiB


@dataclass(frozen=True)
class Job:
    """One fio job on an export of its own: ``target`` ``raw`` (a raw file of random data),
    ``cow`` (a fresh qcow2 overlay of 64 KiB clusters over it, 1 GiB: every write in a
    cluster not yet written allocates it, copying the rest of the cluster from the file;
    past the file's end, where it reads as zeroes, qemu-nbd zeroes the cluster instead),
    ``cow-half`` (the same overlay over a raw file of its own size, the first half data, the
    second a hole, as io-holdout's image: every allocation copies, holes too) or ``filled``
    (the ``cow`` overlay with every cluster written before the job: nothing allocates).
    ``mix``: the share of reads of a ``randrw`` job, in per cent."""

    rw: str
    bs: str
    iodepth: int
    target: str = "raw"
    mix: int = 0

    @property
    def label(self) -> str:
        rw = f"{self.rw} {self.mix}/{100 - self.mix}" if self.rw == "randrw" else self.rw
        return f"{rw} {self.bs} qd{self.iodepth}{'' if self.target == 'raw' else ' ' + self.target}"


READ1, READ32, READ6 = Job("randread", "4k", 1), Job("randread", "4k", 32), Job("randread", "4k", 6)
READ4 = Job("randread", "4k", 4)
WRITER = Job("randwrite", "8k", 6, "cow")
MIX, MIX_FILLED = Job("randrw", "4k", 16, "cow-half", 70), Job("randrw", "4k", 16, "filled", 70)
#: setting: [(job, exports)]: the first job is the one watched most
SETTINGS = {
    "alone-qd1": [(READ1, 1)],
    "alone-qd32": [(READ32, 1)],
    "contended": [(READ1, 1), (READ32, 3)],
    # the calibration's probe of four exports (raw-randread-4k-qd4-x4): p99 12 times its mean
    "four-qd4": [(READ4, 4)],
    # io-holdout's kind of host: a VM allocating 8 KiB writes beside two readers at iodepth 6
    "writer-alone": [(WRITER, 1)],
    "writer-beside": [(WRITER, 1), (READ6, 2)],
    # io-holdout's mix-b alone (70% reads, 4 KiB, iodepth 16) on a fresh overlay, then on
    # one with every cluster written: where its first writes wait (--syscalls)
    "mix-alone": [(MIX, 1)],
    "mix-filled": [(MIX_FILLED, 1)],
    # the same mix-b on a crowded host (io_groups' "mixb,writer,reader,reader"): beside a VM
    # allocating 8 KiB writes and two readers at iodepth 6: where its first writes wait there
    "mix-beside": [(MIX, 1), (WRITER, 1), (READ6, 2)],
}
#: an overlay's size, and how much of a filled one is written before its job
FILL_BYTES = 1 << 30
#: the raw file under a ``cow-half`` overlay (``Job``): data for half its size, then a hole
HALF = "half.raw"


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (every thread's)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def fio_jobs(root: int) -> list[int]:
    """fio's job processes under ``root``: the fio processes whose parent is fio (fio's main
    process forks one per job and only watches them)."""
    found: list[int] = []

    def walk(pid: int, parent_is_fio: bool) -> None:
        is_fio = comm(pid) == "fio"
        if is_fio and parent_is_fio:
            found.append(pid)
        for kid in children(pid):
            walk(kid, is_fio)

    walk(root, False)
    return found


def snapshot(nbds: list[NbdExport], jobs: list[list[int]]) -> list[Readings]:
    """Per job: its qemu-nbd's threads, and each of its fio job processes' (``jobs``) threads."""
    rows = []
    for nbd, pids in zip(nbds, jobs, strict=True):
        assert nbd.pid is not None
        rows.append((thread_schedstats(nbd.pid), {pid: thread_schedstats(pid) for pid in pids}))
    return rows


#: per thread: (turns it ended by waiting, turns ended by the scheduler taking the core)
Switches = dict[int, tuple[int, int]]


def thread_switches(pid: int) -> Switches:
    """Every live thread of ``pid`` with its ``voluntary_ctxt_switches`` (it gave the core up
    to wait) and ``nonvoluntary_ctxt_switches`` (the scheduler took the core while it still had
    work: preempted) from ``/proc/PID/task/TID/status``; {} once the process is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out: Switches = {}
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        out[int(tid)] = (int(fields["voluntary_ctxt_switches"]),
                         int(fields["nonvoluntary_ctxt_switches"]))
    return out


def switch_snapshot(nbds: list[NbdExport], jobs: list[list[int]]) -> list[Switches]:
    """Per job: the switches of its qemu-nbd's threads and of its fio job processes' threads
    (thread ids are unique across processes)."""
    rows = []
    for nbd, pids in zip(nbds, jobs, strict=True):
        assert nbd.pid is not None
        row = thread_switches(nbd.pid)
        for pid in pids:
            row.update(thread_switches(pid))
        rows.append(row)
    return rows


def preempted(before: Switches, after: Switches, nbd_pid: int,
              fio_threads: set[int]) -> dict[str, float]:
    """The share of each kind of thread's turns that the scheduler ended (it was preempted)
    rather than the thread (it went to wait), between two snapshots."""
    counts = {"fio": [0, 0], "nbd-main": [0, 0], "nbd-pool": [0, 0]}
    for tid, (v, n) in after.items():
        v0, n0 = before.get(tid, (0, 0))
        role = "fio" if tid in fio_threads else "nbd-main" if tid == nbd_pid else "nbd-pool"
        counts[role][0] += v - v0
        counts[role][1] += n - n0
    return {role: n / (v + n) if v + n > 0 else float("nan")
            for role, (v, n) in counts.items()}


def between(before: Readings, after: Readings, nbd_pid: int) -> dict[str, Schedstats]:
    """What the job's fio threads (summed), qemu-nbd's main thread and its other threads did
    between two snapshots (``cowbench.tools.thread_delta``: per thread, so a pool thread
    that comes or goes meanwhile moves nothing it did not do)."""
    main, pool = thread_delta(before[0], after[0], nbd_pid)
    fio = sum_stats(part for pid, now in after[1].items()
                    for part in thread_delta(before[1].get(pid, {}), now, pid))
    return {"fio": fio, "nbd-main": main, "nbd-pool": pool}


#: one run's I/O system calls of qemu-nbd's threads, per export: (call, file, calls) where
#: file is ``image`` (the export's own file), ``backing`` (the file under an overlay) or
#: ``other``
Calls = list[list[tuple[str, str, list[Syscall]]]]


def run_setting(tmp: Path, name: str, seconds: float, k: int, trace: Trace | None = None,
                aio: str = "threads", calls: list[Calls] | None = None,
                ) -> tuple[list[dict[str, float]], Analysis | None]:
    """One run of setting ``name``: per export, its job's figures; with ``trace``, the
    kernel's record of the window's first seconds, each thread counted as its job's
    (``JOB:fio``, ``JOB:nbd-main``, ``JOB:nbd-pool``, ``JOB`` the job's label), and, where
    ``calls`` is given (a trace of :func:`syscall_events`), each export's qemu-nbd's I/O
    system calls of those seconds appended to it."""
    layout = [job for job, exports in SETTINGS[name] for _ in range(exports)]
    wrap = list(PID_NAMESPACE) if own_pid_namespace() else []
    with ExitStack() as stack:
        nbds = []
        for i, job in enumerate(layout):
            if job.target in ("cow", "cow-half", "filled"):
                image, fmt = tmp / f"{name}-{k}-{i}.qcow2", "qcow2"
                stack.callback(image.unlink, missing_ok=True)
                below = tmp / (HALF if job.target == "cow-half" else f"f{i}.raw")
                run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536",
                     "-b", str(below), "-F", "raw", str(image), str(FILL_BYTES)])
                if job.target == "filled":  # O_DIRECT, as qemu-nbd will read and write it
                    run(["qemu-io", "-f", "qcow2", "-t", "none", "-c",
                         f"write -q -P 1 0 {FILL_BYTES}", str(image)], timeout=600)
            else:
                image, fmt = tmp / f"f{i}.raw", "raw"
            nbd = NbdExport(image, fmt, tmp, f"{name}-{k}-{i}", aio=aio)
            stack.callback(nbd.stop)
            nbds.append(nbd.launch())
        for nbd in nbds:
            nbd.wait_ready()
        fios: list[subprocess.Popen[bytes]] = []
        for i, (nbd, job) in enumerate(zip(nbds, layout, strict=True)):
            out = tmp / f"{name}-{k}-{i}.json"
            proc = subprocess.Popen(
                [*wrap, which("fio"), "--name=j", "--ioengine=nbd", f"--uri={nbd.uri}",
                 f"--rw={job.rw}", f"--bs={job.bs}", f"--iodepth={job.iodepth}",
                 *([f"--rwmixread={job.mix}"] if job.rw == "randrw" else []),
                 "--time_based", f"--runtime={seconds:g}", "--output-format=json",
                 f"--output={out}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=dies_with_us())
            stack.callback(_stop, proc)
            fios.append(proc)
        time.sleep(seconds / 4)
        jobs = [fio_jobs(proc.pid) for proc in fios]  # forked by now; the same to the end
        t0, before = time.monotonic(), snapshot(nbds, jobs)
        sw0 = switch_snapshot(nbds, jobs)
        if trace is not None:  # the kernel's events over the window's first seconds
            traced = min(seconds / 2, TRACE_SECONDS)
            trace.start()
            time.sleep(traced)
            trace.stop()
            time.sleep(seconds / 2 - traced)
        else:
            time.sleep(seconds / 2)
        t1, after = time.monotonic(), snapshot(nbds, jobs)
        sw1 = switch_snapshot(nbds, jobs)
        files = [open_files(nbd) for nbd in nbds]  # while they run: their descriptors
        for proc in fios:
            _, err = proc.communicate(timeout=60 + seconds)
            if proc.returncode != 0:
                raise RuntimeError(f"fio failed: {err.decode(errors='replace')[-500:]}")
        rows = []
        for i, (b, a, nbd) in enumerate(zip(before, after, nbds, strict=True)):
            assert nbd.pid is not None
            done = between(b, a, nbd.pid)
            fio_threads = {tid for threads in a[1].values() for tid in threads}
            cut = preempted(sw0[i], sw1[i], nbd.pid, fio_threads)
            data = json.loads((tmp / f"{name}-{k}-{i}.json").read_text())["jobs"][0]
            row = job_figures(data, layout[i])
            ios = row["iops"] * (t1 - t0)  # the window's I/Os, at the run's rate
            row["job"] = float(i)
            for role in ("fio", "nbd-main", "nbd-pool"):
                _, cpu, wait, turns = done[role]
                row[f"{role} turns/io"] = turns / ios if ios else float("nan")
                row[f"{role} cpu/turn"] = cpu / turns / 1e3 if turns else float("nan")
                row[f"{role} wait/turn"] = wait / turns / 1e3 if turns else float("nan")
                row[f"{role} preempted"] = cut[role]
            rows.append(row)
        if trace is None:
            return rows, None
        trace.read()  # once fio is done: formatting the text takes the cores for seconds
        if trace.lost:
            print(f"io_turns.py: {name}: the trace buffer lost {trace.lost} events: its "
                  "figures are incomplete", file=sys.stderr)
        if calls is not None:
            calls.append(by_file(trace.text, nbds, files))
            return rows, None
        kinds: dict[int, str] = {}
        for job, b, a, nbd in zip(layout, before, after, nbds, strict=True):
            assert nbd.pid is not None
            for tid in {*b[0], *a[0]}:
                kinds[tid] = f"{job.label}:{'nbd-main' if tid == nbd.pid else 'nbd-pool'}"
            for threads in (*b[1].values(), *a[1].values()):
                kinds.update({tid: f"{job.label}:fio" for tid in threads})
        return rows, analyse(events(trace.text), kinds.get)


def job_figures(data: dict[str, Any], job: Job) -> dict[str, float]:
    """A job's IOPS, mean latency and p99 (us) from fio's json; a ``randrw`` job's reads' and
    writes' together (the IOPS summed, the mean weighted by them, the larger p99) and apart
    (``read iops``, ``read lat_us``, ``write ...``)."""
    sides = ("read", "write") if job.rw == "randrw" else (
        ("write",) if "write" in job.rw else ("read",))
    row: dict[str, float] = {}
    for side in sides:
        d = data[side]
        row[f"{side} iops"] = d["iops"]
        row[f"{side} lat_us"] = d["lat_ns"]["mean"] / 1e3
        row[f"{side} p99_us"] = d["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1e3
    iops = sum(row[f"{side} iops"] for side in sides)
    row["iops"] = iops
    row["lat_us"] = (sum(row[f"{s} iops"] * row[f"{s} lat_us"] for s in sides) / iops
                     if iops else float("nan"))
    row["p99_us"] = max(row[f"{side} p99_us"] for side in sides)
    return row


def open_files(nbd: NbdExport) -> dict[int, str]:
    """The files qemu-nbd has open, by descriptor: ``image`` (its export's) or ``backing``
    (any other file under the directory of the run: the raw file under an overlay); other
    descriptors (sockets, its log) are left out."""
    assert nbd.pid is not None
    out: dict[int, str] = {}
    base = f"/proc/{nbd.pid}/fd"
    for name in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:  # closed meanwhile
            continue
        if target == str(nbd.image):
            out[int(name)] = "image"
        elif target.endswith(".raw") and target.startswith(str(nbd.image.parent)):
            out[int(name)] = "backing"
    return out


def by_file(text: str, nbds: list[NbdExport], files: list[dict[int, str]]) -> Calls:
    """The trace's I/O system calls per export's qemu-nbd (any of its threads), by call and
    file (``files``: each export's descriptors, :func:`open_files`), in one list per export
    of (call, file, calls)."""
    owner: dict[int, int] = {}
    for i, nbd in enumerate(nbds):
        assert nbd.pid is not None
        try:
            owner.update({int(t): i for t in os.listdir(f"/proc/{nbd.pid}/task")})
        except OSError:
            pass
    groups: list[dict[tuple[str, str], list[Syscall]]] = [{} for _ in nbds]
    for c in syscalls(text):
        at = owner.get(c.tid)
        if at is None:
            continue
        groups[at].setdefault((c.call, files[at].get(c.fd, "other")), []).append(c)
    return [[(call, f, cs) for (call, f), cs in sorted(g.items())] for g in groups]


def calls_table(results: dict[str, list[list[dict[str, float]]]],
                calls: dict[str, list[Calls]], traced_s: float) -> str:
    """Per setting's first export: each I/O system call of its qemu-nbd by file (``image``:
    the export's own, ``backing``: the file under it) and size returned, pooled over the
    rounds: calls per I/O of the job, the duration's mean, 50th and 99th percentiles (us)."""
    lines = ["qemu-nbd's I/O system calls (entry to exit, its pool's threads), per setting's "
             "first job, pooled over the rounds:",
             f"{'setting, call, file, bytes':<44}{'per I/O':>9}{'mean us':>10}{'p50':>8}"
             f"{'p99':>8}"]
    for name, runs in calls.items():
        if not runs:
            continue
        ios = sum(r[0]["iops"] for r in results[name]) * traced_s
        pooled: dict[tuple[str, str, int], list[float]] = {}
        for run_calls in runs:
            for call, f, cs in run_calls[0]:
                for c in cs:
                    pooled.setdefault((call, f, c.ret), []).append(c.seconds)
        for (call, f, ret), secs in sorted(pooled.items(), key=lambda kv: -sum(kv[1])):
            if len(secs) < max(10, ios * 0.001):  # the odd metadata write or read
                continue
            lines.append(f"{f'{name}, {call}, {f}, {ret}':<44}{len(secs) / ios:>9.2f}"
                         f"{statistics.fmean(secs) * 1e6:>10.0f}"
                         f"{percentile_us(secs, 50):>8.0f}{percentile_us(secs, 99):>8.0f}")
    return "\n".join(lines)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def model_turns(path: Path) -> str:
    """The model's processes in the replay of ``path``'s contention probe (as the fit's rows
    replay it): CPU per turn and turns per second of each, and the reader's turns per I/O."""
    prof = load_profile(path)
    probe = next((p for p in prof.probes if contended(p)), None)
    if probe is None or prof.params.sched is None:
        return f"{path}: no contention probe or no host scheduler: nothing to replay"
    hosts: list[Host] = []
    iops, lat = replay(prof.params, probe, ios=CONTENDED_IOS, on_host=hosts.append,
                       record_turns=True)
    host = hosts[0]
    lines = [f"the model, {probe.name} ({path}): the reader {iops:.0f} IOPS at {lat * 1e6:.0f} "
             f"us (measured then: {probe.iops:.0f} at {probe.lat_mean_s * 1e6:.0f} us)"]
    own = host.tasks(0)  # the probe's own export (replay's export 0)
    for pair in host.all_tasks():
        who = "the reader" if pair is own else "a reader beside"
        for role, task in zip(("issuer", "server"), pair, strict=True):
            per_io = f", {task.turns / iops / host.env.now:.2f} turns per I/O" if (
                pair is own) else ""
            assert task.record is not None
            waits, turns = task.record
            mean = statistics.fmean(waits) * 1e6 if waits else float("nan")
            lines.append(f"  {who}, its {role}: {task.cpu_s / max(task.turns, 1) * 1e6:.1f} us "
                         f"of CPU per turn, {task.turns / host.env.now:.0f} turns a second"
                         + per_io + "; turn us p50/p90/p99 "
                         + "/".join(f"{percentile_us(turns, q):.0f}" for q in (50, 90, 99))
                         + f", wait us mean {mean:.0f}, p50/p90/p99 "
                         + "/".join(f"{percentile_us(waits, q):.0f}" for q in (50, 90, 99)))
    return "\n".join(lines)


def trace_table(traces: dict[str, list[Analysis]]) -> str:
    """Each setting's kinds of thread, their turns and waits pooled over the rounds."""
    lines = [f"the kernel's record (tracefs), up to {TRACE_SECONDS:g} s of each run's window, "
             "pooled over the rounds; preempted: the share of turns the scheduler ended, and "
             "of those, the share ended for a thread woken during the turn",
             f"{'setting, job: thread':<46}{'turn us p50/p90/p99':>22}"
             f"{'wait us mean p50/p90/p99/p99.9/max':>36}{'preempted (by wakee)':>22}"
             f"{'sleep us p50/p90/p99/p99.9':>30}{'in D: n, p50/p99/p99.9':>28}"]
    for name, runs in traces.items():
        merged: dict[str, Kind] = {}
        device: dict[str, list[float]] = {}
        for a in runs:
            for k, v in a.kinds.items():
                m = merged.setdefault(k, Kind())
                m.turns += v.turns
                m.waits += v.waits
                m.sleeps += v.sleeps
                m.io_sleeps += v.io_sleeps
                m.preempted += v.preempted
                m.by_wakee += v.by_wakee
            for rw, xs in a.device.items():
                device.setdefault(rw, []).extend(xs)
        for k in sorted(merged):
            v = merged[k]
            turns = "/".join(f"{percentile_us(v.turns, q):.0f}" for q in (50, 90, 99))
            waits = "/".join(f"{percentile_us(v.waits, q):.0f}" for q in (50, 90, 99, 99.9, 100))
            mean = statistics.fmean(v.waits) * 1e6 if v.waits else float("nan")
            cut = v.preempted / len(v.turns) if v.turns else float("nan")
            by = v.by_wakee / v.preempted if v.preempted else float("nan")
            sleeps = "/".join(f"{percentile_us(v.sleeps, q):.0f}" for q in (50, 90, 99, 99.9))
            lines.append(f"{name + ', ' + k:<46}{turns:>22}{f'{mean:.0f} {waits}':>36}"
                         f"{f'{cut:.0%} ({by:.0%})':>22}{sleeps:>30}"
                         f"{len(v.io_sleeps):>10} " + "/".join(
                             f"{percentile_us(v.io_sleeps, q):.0f}" for q in (50, 99, 99.9)))
        for rw in sorted(device):
            xs = device[rw]
            lines.append(f"{name + ', the device: ' + rw:<46}"
                         f"{'/'.join(f'{percentile_us(xs, q):.0f}' for q in (50, 90, 99)):>22}"
                         f"{f'mean {statistics.fmean(xs) * 1e6:.0f}, {len(xs)} requests':>36}")
    return "\n".join(lines)


def autogroup() -> str:
    """``yes`` or ``no``: whether the kernel schedules each session's processes as a group
    (``/proc/sys/kernel/sched_autogroup_enabled``); ``unknown`` where it cannot say."""
    try:
        value = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "unknown"
    return {"1": "yes", "0": "no"}.get(value, "unknown")


def cell(xs: list[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--profile", type=Path, help="also replay this profile's contention probe "
                    "on the model and print its processes' turns")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                    help="the settings to run (all by default)")
    ap.add_argument("--aio", choices=("threads", "native"), default="threads",
                    help="qemu-nbd's --aio: threads (its pool of threads, as the real backend "
                    "runs it) or native (Linux AIO from its main thread, no pool)")
    ap.add_argument("--trace", action="store_true",
                    help="also record the kernel's scheduler and block events (tracefs, root) "
                    "for up to 1 s of each run's window and print each kind of thread's "
                    "turns and waits as distributions, and the device's time per request")
    ap.add_argument("--syscalls", action="store_true",
                    help="instead of --trace, record qemu-nbd's I/O system calls (tracefs, "
                    "root) for up to 1 s of each run's window and print, by call and file "
                    "(its image, the file under it), how long they took")
    args = ap.parse_args(argv)
    if args.trace and args.syscalls:
        ap.error("--trace and --syscalls record apart: give one")
    if not 1 <= args.rounds <= 100 or not 1 <= args.seconds <= 600:
        ap.error("--rounds must be 1 to 100 and --seconds 1 to 600")
    results: dict[str, list[list[dict[str, float]]]] = {n: [] for n in args.settings}
    traces: dict[str, list[Analysis]] = {n: [] for n in args.settings}
    calls: dict[str, list[Calls]] = {n: [] for n in args.settings}
    with ExitStack() as stack:
        trace = None
        if args.trace or args.syscalls:
            try:
                trace = stack.enter_context(
                    Trace(events=syscall_events()) if args.syscalls else Trace())
            except TraceUnavailable as e:
                print(f"io_turns.py: --{'syscalls' if args.syscalls else 'trace'}: {e}",
                      file=sys.stderr)
                return 2
        d = stack.enter_context(tempfile.TemporaryDirectory(prefix="io-turns-"))
        tmp = Path(d)
        for i in range(max(sum(n for _, n in jobs) for jobs in SETTINGS.values())):
            with open(tmp / f"f{i}.raw", "wb") as f:
                for _ in range(FILE_BYTES // MiB):
                    f.write(os.urandom(MiB))
        if any(job.target == "cow-half" for n in args.settings for job, _ in SETTINGS[n]):
            with open(tmp / HALF, "wb") as f:
                for _ in range(FILL_BYTES // 2 // MiB):
                    f.write(os.urandom(MiB))
                f.truncate(FILL_BYTES)
        print(f"qemu-nbd --aio={args.aio}; the kernel groups each session's processes "
              f"(sched_autogroup_enabled): {autogroup()}", flush=True)
        for k in range(args.rounds):
            print(f"round {k + 1} at {time.strftime('%H:%M:%S', time.gmtime())} UTC, load "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
            for name in args.settings:
                got: list[Calls] | None = [] if args.syscalls else None
                rows, traced = run_setting(tmp, name, args.seconds, k, trace, args.aio, got)
                results[name].append(rows)
                if got:
                    calls[name].append(got[0])
                if traced is not None:
                    traces[name].append(traced)
    roles = ("fio", "nbd-main", "nbd-pool")
    print(f"{'setting, job':<34}{'IOPS':>22}{'mean lat us':>18}{'p99 us':>20}")
    print(f"{'  thread':<34}{'turns per I/O':>22}{'CPU us per turn':>18}"
          f"{'wait us per turn':>20}{'preempted':>22}")
    for name, runs in results.items():
        # jobs alike (the iodepth-32 readers beside the probe) shown once: the first of them
        layout = [job for job, n in SETTINGS[name] for _ in range(n)]
        firsts = {job: layout.index(job) for job in layout}
        for job, i in firsts.items():
            col = [run[i] for run in runs]
            print(f"{name + ', ' + job.label:<34}{cell([c['iops'] for c in col], '.0f'):>22}"
                  f"{cell([c['lat_us'] for c in col], '.0f'):>18}"
                  f"{cell([c['p99_us'] for c in col], '.0f'):>20}")
            for side in ("read", "write") if job.rw == "randrw" else ():
                print(f"{'  ' + side + 's':<34}"
                      f"{cell([c[side + ' iops'] for c in col], '.0f'):>22}"
                      f"{cell([c[side + ' lat_us'] for c in col], '.0f'):>18}"
                      f"{cell([c[side + ' p99_us'] for c in col], '.0f'):>20}")
            for r in roles:
                print(f"{'  ' + r:<34}{cell([c[r + ' turns/io'] for c in col], '.2f'):>22}"
                      f"{cell([c[r + ' cpu/turn'] for c in col], '.1f'):>18}"
                      f"{cell([c[r + ' wait/turn'] for c in col], '.1f'):>20}"
                      f"{cell([c[r + ' preempted'] for c in col], '.0%'):>22}")
    if args.trace:
        print(trace_table(traces))
    if args.syscalls:
        print(calls_table(results, calls, min(args.seconds / 2, TRACE_SECONDS)))
    if args.profile is not None:
        print(model_turns(args.profile))
    print(f"load at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
