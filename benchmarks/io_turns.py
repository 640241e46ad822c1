"""How the host's cores serve the threads on the I/O path (issue 16): how often each thread runs
per I/O, for how long, and how long it waited for a core each time, from the kernel's own
scheduler statistics (``/proc/PID/task/TID/schedstat``: CPU time, time spent runnable but
waiting, turns on a core).

The model (``sim.perf.sched``) gives each VM two processes, an issuer and a server, which
batch the I/Os that queued while they waited and keep a core for up to a slice. This measures
what the real ones do, through qemu-nbd (``--cache=none --aio=threads``, as the real backend
runs it) with fio's nbd engine, 4 KiB random reads of a raw file per export:

- ``alone-qd1``, ``alone-qd32``: one export, fio at iodepth 1, then 32;
- ``contended``: the calibration's contention probe (``real.measure.calibrate``): a reader at
  iodepth 1 on its export beside readers at iodepth 32 on three exports of their own.

Printed per setting and job, the median over the rounds (and their range): IOPS and fio's mean
completion latency, then for each kind of thread (fio's job process; qemu-nbd's main thread,
which speaks NBD; its other threads, the pool that does the reads) its turns on a core per I/O,
CPU per turn and wait for a core per turn. Counted over the middle half of each run (after a
quarter of it, for half of it), so that start and end are left out.

    .venv/bin/python benchmarks/io_turns.py [--rounds 3] [--seconds 4]
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
from pathlib import Path

from cowbench.profile import load_profile
from cowbench.tools import (
    PID_NAMESPACE,
    Schedstat,
    Schedstats,
    dies_with_us,
    own_pid_namespace,
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
#: the region each export's file holds (random data: the reads reach the device)
FILE_BYTES = 128 * MiB
#: setting: [(iodepth, exports)]: the first job is the one watched most
SETTINGS = {
    "alone-qd1": [(1, 1)],
    "alone-qd32": [(32, 1)],
    "contended": [(1, 1), (32, 3)],
}

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


def snapshot(nbds: list[NbdExport], fios: list[subprocess.Popen[bytes]]) -> list[Readings]:
    """Per job: its qemu-nbd's threads, and each of its fio job processes' threads."""
    rows = []
    for nbd, proc in zip(nbds, fios, strict=True):
        assert nbd.pid is not None
        rows.append((thread_schedstats(nbd.pid),
                     {pid: thread_schedstats(pid) for pid in fio_jobs(proc.pid)}))
    return rows


def between(before: Readings, after: Readings, nbd_pid: int) -> dict[str, Schedstats]:
    """What the job's fio threads (summed), qemu-nbd's main thread and its other threads did
    between two snapshots (``cowbench.tools.thread_delta``: per thread, so a pool thread
    that comes or goes meanwhile moves nothing it did not do)."""
    main, pool = thread_delta(before[0], after[0], nbd_pid)
    fio = sum_stats(part for pid, now in after[1].items()
                    for part in thread_delta(before[1].get(pid, {}), now, pid))
    return {"fio": fio, "nbd-main": main, "nbd-pool": pool}


def run_setting(tmp: Path, name: str, seconds: float, k: int) -> list[dict[str, float]]:
    """One run of setting ``name``: per export, its job's figures."""
    layout = [qd for qd, exports in SETTINGS[name] for _ in range(exports)]
    wrap = list(PID_NAMESPACE) if own_pid_namespace() else []
    with ExitStack() as stack:
        nbds = []
        for i in range(len(layout)):
            nbd = NbdExport(tmp / f"f{i}.raw", "raw", tmp, f"{name}-{k}-{i}")
            stack.callback(nbd.stop)
            nbds.append(nbd.launch())
        for nbd in nbds:
            nbd.wait_ready()
        fios: list[subprocess.Popen[bytes]] = []
        for i, (nbd, qd) in enumerate(zip(nbds, layout, strict=True)):
            out = tmp / f"{name}-{k}-{i}.json"
            proc = subprocess.Popen(
                [*wrap, which("fio"), "--name=j", "--ioengine=nbd", f"--uri={nbd.uri}",
                 "--rw=randread", "--bs=4k", f"--iodepth={qd}", "--time_based",
                 f"--runtime={seconds:g}", "--output-format=json", f"--output={out}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=dies_with_us())
            stack.callback(_stop, proc)
            fios.append(proc)
        time.sleep(seconds / 4)
        t0, before = time.monotonic(), snapshot(nbds, fios)
        time.sleep(seconds / 2)
        t1, after = time.monotonic(), snapshot(nbds, fios)
        for proc in fios:
            _, err = proc.communicate(timeout=60 + seconds)
            if proc.returncode != 0:
                raise RuntimeError(f"fio failed: {err.decode(errors='replace')[-500:]}")
        rows = []
        for i, (b, a, nbd) in enumerate(zip(before, after, nbds, strict=True)):
            assert nbd.pid is not None
            done = between(b, a, nbd.pid)
            job = json.loads((tmp / f"{name}-{k}-{i}.json").read_text())["jobs"][0]["read"]
            ios = job["iops"] * (t1 - t0)  # the window's I/Os, at the run's rate
            row = {"iodepth": float(layout[i]), "iops": job["iops"],
                   "lat_us": job["lat_ns"]["mean"] / 1e3}
            for role in ("fio", "nbd-main", "nbd-pool"):
                _, cpu, wait, turns = done[role]
                row[f"{role} turns/io"] = turns / ios if ios else float("nan")
                row[f"{role} cpu/turn"] = cpu / turns / 1e3 if turns else float("nan")
                row[f"{role} wait/turn"] = wait / turns / 1e3 if turns else float("nan")
            rows.append(row)
        return rows


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
    iops, lat = replay(prof.params, probe, ios=CONTENDED_IOS, on_host=hosts.append)
    host = hosts[0]
    lines = [f"the model, {probe.name} ({path}): the reader {iops:.0f} IOPS at {lat * 1e6:.0f} "
             f"us (measured then: {probe.iops:.0f} at {probe.lat_mean_s * 1e6:.0f} us)"]
    own = host.tasks(0)  # the probe's own export (replay's export 0)
    for pair in host.all_tasks():
        who = "the reader" if pair is own else "a reader beside"
        for role, task in zip(("issuer", "server"), pair, strict=True):
            per_io = f", {task.turns / iops / host.env.now:.2f} turns per I/O" if (
                pair is own) else ""
            lines.append(f"  {who}, its {role}: {task.cpu_s / max(task.turns, 1) * 1e6:.1f} us "
                         f"of CPU per turn, {task.turns / host.env.now:.0f} turns a second"
                         + per_io)
    return "\n".join(lines)


def cell(xs: list[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--profile", type=Path, help="also replay this profile's contention probe "
                    "on the model and print its processes' turns")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 100 or not 1 <= args.seconds <= 600:
        ap.error("--rounds must be 1 to 100 and --seconds 1 to 600")
    results: dict[str, list[list[dict[str, float]]]] = {n: [] for n in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="io-turns-") as d:
        tmp = Path(d)
        for i in range(max(sum(n for _, n in jobs) for jobs in SETTINGS.values())):
            with open(tmp / f"f{i}.raw", "wb") as f:
                for _ in range(FILE_BYTES // MiB):
                    f.write(os.urandom(MiB))
        for k in range(args.rounds):
            print(f"round {k + 1} at {time.strftime('%H:%M:%S', time.gmtime())} UTC, load "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
            for name in SETTINGS:
                results[name].append(run_setting(tmp, name, args.seconds, k))
    roles = ("fio", "nbd-main", "nbd-pool")
    print(f"{'setting, job':<24}{'IOPS':>22}{'mean lat us':>18}")
    print(f"{'  thread':<24}{'turns per I/O':>22}{'CPU us per turn':>18}{'wait us per turn':>20}")
    for name, runs in results.items():
        # jobs alike (the iodepth-32 readers beside the probe) shown once: the first of them
        firsts = {int(r["iodepth"]): i for i, r in reversed(list(enumerate(runs[0])))}
        for qd, i in sorted(firsts.items()):
            col = [run[i] for run in runs]
            print(f"{name + ', qd' + str(qd):<24}{cell([c['iops'] for c in col], '.0f'):>22}"
                  f"{cell([c['lat_us'] for c in col], '.0f'):>18}")
            for r in roles:
                print(f"{'  ' + r:<24}{cell([c[r + ' turns/io'] for c in col], '.2f'):>22}"
                      f"{cell([c[r + ' cpu/turn'] for c in col], '.1f'):>18}"
                      f"{cell([c[r + ' wait/turn'] for c in col], '.1f'):>20}")
    if args.profile is not None:
        print(model_turns(args.profile))
    print(f"load at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
