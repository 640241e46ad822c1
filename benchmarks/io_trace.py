"""Who runs, for how long, and how long each waits, while a scenario runs for real (issue 16):
the kernel's scheduler and block events (``cowbench.schedtrace``) recorded for a second in the
middle of ``cowbench run SCENARIO --backend real``, each thread counted as its VM's: fio's job
(``VM:fio``), qemu-nbd's main thread (``VM:main``) and its other threads, the pool that does
the reads and writes (``VM:pool``).

Printed per VM and kind of thread: turns on a core in the second, the share of a core used,
the turn's 50th/90th/99th percentiles, the wait for a core (mean, then percentiles), and the
share of turns the scheduler ended (preempted); then the device's time per request. Root only
(tracefs); the run directory is kept (``--out``). With ``--profile``, the model is run on the
same scenario with that profile and its processes are printed the same way (each VM's issuer
as ``VM:fio``, its server as ``VM:main``, over the whole simulated run): the two side by side
at the level of each turn and wait (a VM's pool threads counted together, as the kernel's
record counts them).

With ``--autogroup on`` or ``off`` (root), the kernel's grouping of sessions
(``kernel.sched_autogroup_enabled``) is set so for the run and the value found is written back
at the end, however the script ends (``benchmarks/io_autogroup.py``'s guard): the same record
with each qemu-nbd and fio grouped, and with none grouped.

    .venv/bin/python benchmarks/io_trace.py scenarios/io-density.yaml --out /tmp/dens-trace \
        [--profile results/profile.json] [--autogroup on|off]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from cowbench.schedtrace import Trace, TraceUnavailable, analyse, events, percentile_us
from cowbench.tools import dies_with_us

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_autogroup import SYSCTL, restored, sysctl_found  # noqa: E402  (benchmarks/)

#: how long to wait for the run's first fio job before giving up
START_TIMEOUT_S = 600.0


def _cmdline(pid: str) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:  # gone meanwhile
        return []


def descendants(root: int) -> set[int]:
    """``root`` and every process under it."""
    parent: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        parent[int(pid)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    out, todo = {root}, [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in out]
        out.update(kids)
        todo.extend(kids)
    return out


def thread_kinds(root: int) -> dict[int, str]:
    """Every thread of the run's qemu-nbd and fio processes, as ``VM:kind``: the VM from
    qemu-nbd's socket (``-k .../VM.sock``) and from fio's ``--name=VM``."""
    kinds: dict[int, str] = {}
    for pid in map(str, descendants(root)):
        argv = _cmdline(pid)
        if not argv:
            continue
        exe = os.path.basename(argv[0].decode(errors="replace"))
        vm = None
        if exe == "qemu-nbd":
            vm = next((m.group(1).decode(errors="replace") for a in argv
                       for m in [re.search(rb"/([^/]+)\.sock$", a)] if m), None)
        elif exe == "fio":
            vm = next((a[7:].decode(errors="replace") for a in argv
                       if a.startswith(b"--name=")), None)
        if vm is None:
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            kind = "fio" if exe == "fio" else "main" if tid == pid else "pool"
            kinds[int(tid)] = f"{vm}:{kind}"
    return kinds


def fio_running(root: int) -> bool:
    """Whether a fio process runs under ``root`` (each command line read once)."""
    return any(argv and os.path.basename(argv[0]) == b"fio"
               for argv in (_cmdline(str(p)) for p in descendants(root)))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the real run's directory")
    ap.add_argument("--after", type=float, default=6.0,
                    help="seconds after the first fio job starts before recording (6)")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds recorded (1)")
    ap.add_argument("--profile", type=Path,
                    help="also run the model on the scenario with this profile and print its "
                    "processes' turns and waits per VM the same way (its run directory beside "
                    "--out, with -model added to the name)")
    ap.add_argument("--autogroup", choices=("on", "off"),
                    help="the kernel's grouping of sessions for the run (root; the value "
                    "found is written back at the end); default: as it is")
    args = ap.parse_args(argv)
    if not 0 <= args.after <= 600 or not 0 < args.seconds <= 5:
        ap.error("--after must be 0 to 600 and --seconds above 0 and at most 5")
    found = sysctl_found() if args.autogroup is not None else None
    with ExitStack() as stack:
        try:
            trace = stack.enter_context(Trace())
        except TraceUnavailable as e:
            print(f"io_trace.py: {e}", file=sys.stderr)
            return 2
        if found is not None:
            stack.enter_context(restored(found))
            SYSCTL.write_text("1" if args.autogroup == "on" else "0")  # the sessions from now
        run = subprocess.Popen(
            [sys.executable, "-m", "cowbench", "run", str(args.scenario), "--backend", "real",
             "--out", str(args.out)], stdin=subprocess.DEVNULL, preexec_fn=dies_with_us())
        stack.callback(_stop, run)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not fio_running(run.pid):
            if run.poll() is not None or time.monotonic() > deadline:
                print("io_trace.py: the run ended or never started fio", file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(args.after)
        kinds = thread_kinds(run.pid)
        trace.start()
        time.sleep(args.seconds)
        trace.stop()
        kinds.update(thread_kinds(run.pid))  # pool threads started meanwhile
        code = run.wait()
        trace.read()  # once the run is over: formatting the text takes the cores for seconds
    if code != 0:
        print(f"io_trace.py: the run failed ({code})", file=sys.stderr)
        return 1
    if trace.lost:
        print(f"io_trace.py: the trace buffer lost {trace.lost} events: the figures are "
              "incomplete", file=sys.stderr)
    a = analyse(events(trace.text), kinds.get)
    grouped = "" if args.autogroup is None else f", autogroup {args.autogroup}"
    print(f"{args.seconds:g} s recorded {args.after:g} s after the first fio job started "
          f"({args.scenario}; run directory {args.out}{grouped})")
    print(HEADER)
    for name in sorted(a.kinds):
        k = a.kinds[name]
        print(row(name, k.turns, k.waits, a.seconds, k.preempted / max(len(k.turns), 1)))
    for rw in sorted(a.device):
        xs = a.device[rw]
        print(f"the device, {rw}: {len(xs)} requests, mean {statistics.fmean(xs) * 1e6:.0f} us, "
              f"p50/p90/p99 {'/'.join(f'{percentile_us(xs, q):.0f}' for q in (50, 90, 99))} us")
    if args.profile is not None:
        model_out = args.out.with_name(args.out.name + "-model")
        code = model_side(args.scenario, args.profile, model_out)
        if code != 0:
            print(f"io_trace.py: the model's run failed ({code})", file=sys.stderr)
            return 1
    return 0


HEADER = (f"{'VM:thread':<24}{'turns/s':>8}{'core':>7}{'turn us p50/p90/p99':>22}"
          f"{'wait us mean p50/p90/p99':>30}{'preempted':>11}")


def row(name: str, turns: list[float], waits: list[float], seconds: float,
        preempted: float | None) -> str:
    """One kind of thread's line: turns a second, share of a core, percentiles."""
    mean = statistics.fmean(waits) * 1e6 if waits else float("nan")
    t = "/".join(f"{percentile_us(turns, q):.0f}" for q in (50, 90, 99))
    w = "/".join(f"{percentile_us(waits, q):.0f}" for q in (50, 90, 99))
    cut = "" if preempted is None else f"{preempted:.0%}"
    return (f"{name:<24}{len(turns) / seconds:>8.0f}{sum(turns) / seconds:>7.1%}{t:>22}"
            f"{f'{mean:.0f} {w}':>30}{cut:>11}")


def model_side(scenario: Path, profile: Path, out: Path) -> int:
    """Run the model on ``scenario`` with ``profile`` (as ``cowbench run --backend sim
    --profile``) keeping its processes' turns and waits, and print them per VM: its issuer
    as ``VM:fio``, its server as ``VM:main`` (the model's server is qemu-nbd's main thread and
    its pool in one), the host's kernel as ``kernel``; over the whole simulated run."""
    import cowbench.cli  # noqa: F401  (registers the commands on the app)
    from cowbench.cli_app import app
    from sim.perf.host import recording

    with recording() as hosts:
        rv = app(["run", str(scenario), "--backend", "sim", "--profile", str(profile),
                  "--out", str(out)], standalone_mode=False)
    if rv not in (None, 0):
        return int(rv)
    # the model may run the scenario more than once (offsets: auto first counts each job's
    # I/Os with it): of hosts serving the same VMs, the last made is the run's
    last = {frozenset(h.names.values()): h for h in hosts}
    print(f"the model ({profile}; run directory {out}), over the whole simulated run:")
    print(HEADER)
    for host in last.values():
        seconds = host.env.now
        pooled: dict[str, tuple[list[float], list[float]]] = {}
        for name, task in host.named_tasks():  # a VM's pool threads as one kind
            if task.record is not None:
                waits, turns = pooled.setdefault(name, ([], []))
                waits.extend(task.record[0])
                turns.extend(task.record[1])
        if seconds > 0:
            for name, (waits, turns) in sorted(pooled.items()):
                print(row(name, turns, waits, seconds, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
