"""Where cowbench's time goes in one real run of the quickstart: wall time per phase.

Runs ``cowbench run scenarios/quickstart.yaml --backend real`` in this process, with each phase
function wrapped by a wall-clock timer (no profiler: the model's Python is not slowed), and
prints each phase's total seconds and call count, in run order, beside the whole run's. The
phases nest (``execute`` holds the real steps), so they do not add up; "imports" is the
interpreter's start to cowbench's CLI imported. The counterpart of the bare script's steps:
write_synthetic (qemu-io), fetch_to_cache (qemu-img convert), create_disk (qemu-img create),
run_workloads (qemu-nbd + fio), Integrity.check (qemu-img check).

``--timeline`` prints, beside the totals, when each phase call and each external program ran
(start and end in seconds from the interpreter's start, the program's first arguments): what
waits for what, and what runs beside what.

    .venv/bin/python benchmarks/harness_phases.py [--dir /var/tmp] [--timeline]
        [extra cowbench run options]
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cowbench.cli  # noqa: E402

T_IMPORTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
#: (module, attribute[.method]) of each phase, in the order a run meets them
PHASES = [
    ("cowbench.cli", "run"),
    ("cowbench.runner", "run_scenario"),
    ("cowbench.spacebound", "bound_needs"),  # the quick bound: no model when the run fits
    ("sim.driver", "SimBackend.predict_space"),
    ("sim.driver", "SimBackend.simulate"),
    ("sim", "simulate"),  # before the backends registry
    ("cowbench.runner", "check_free_space"),
    ("cowbench.runner", "host_facts"),
    ("cowbench.runner", "tool_versions"),
    ("real.driver", "RealBackend.execute"),
    ("real", "execute"),
    ("real.world.timeline", "execute_timeline"),  # every scenario as a timeline
    ("real.world.lifecycle", "RealWorld.ensure_base"),
    ("real.world.backend", "write_synthetic"),
    ("real.backend", "write_synthetic"),  # the layout before real/ had sub-packages
    ("real.driver", "fetch_to_cache"),
    ("real.backend", "fetch_to_cache"),
    ("real.measure.integrity", "Integrity.hash_before"),
    ("real.integrity", "Integrity.hash_before"),
    ("real.driver", "create_disk"),
    ("real.backend", "create_disk"),
    ("real.measure.integrity", "Integrity.settle"),
    ("real.driver", "run_workloads"),
    ("real.backend", "_run_workloads"),
    ("real.workload.nbd", "NbdExport.launch"),  # the exports start side by side
    ("real.workload.nbd", "NbdExport.wait_ready"),
    ("real.workload.nbd", "NbdExport.start"),
    ("real.nbd", "NbdExport.start"),
    ("real.world.backend", "flush_all"),  # every export flushed at once
    ("real.world.backend", "finish_all"),  # every export stopped at once, its I/O read
    ("real.workload.nbd", "NbdExport.finish"),
    ("real.workload.nbd", "NbdExport.flush"),
    ("real.nbd", "NbdExport.flush"),
    ("real.workload.nbd", "NbdExport.stop"),
    ("real.nbd", "NbdExport.stop"),
    ("real.world.backend", "_wait_all"),
    ("real.backend", "_wait_all"),
    ("os", "sync"),
    ("real.driver", "_measure"),
    ("real.backend", "_measure"),
    ("real.world.timeline", "sample"),
    ("real.measure.integrity", "Integrity.check_all"),  # qemu-img checks at once
    ("real.measure.integrity", "Integrity.check"),
    ("real.integrity", "Integrity.check"),
    ("real.driver", "check_images"),
    ("real.backend", "check_images"),
    ("real.measure.integrity", "Integrity.compare"),
    ("real.integrity", "Integrity.hash_after"),
    ("real.world.containment", "WorkTrees.remove"),
    ("cowbench.store", "RunDir.write_records"),
    ("cowbench.store", "RunDir.write_meta"),
    ("cowbench.tools", "RawLog.record"),
]
totals: dict[str, list[float]] = {}
#: (start, end, what) of every phase call and every program started (``--timeline``)
events: list[tuple[float, float, str]] = []


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            t1 = time.perf_counter()
            entry = totals.setdefault(name, [0.0, 0])
            entry[0] += t1 - t0
            entry[1] += 1
            thread = threading.current_thread().name
            where = "" if thread == "MainThread" else f" [{thread}]"
            events.append((t0, t1, f"{name}{where}"))
    return wrapper


def trace_programs() -> None:
    """Every program started (``subprocess.Popen``): from its start to its reaping."""
    popen = subprocess.Popen
    init, handle = popen.__init__, popen._handle_exitstatus  # type: ignore[attr-defined]

    def started(self: Any, args: Any, *a: Any, **kw: Any) -> None:
        self._t0 = time.perf_counter()
        init(self, args, *a, **kw)

    def reaped(self: Any, *a: Any, **kw: Any) -> None:
        handle(self, *a, **kw)
        program = Path(str(self.args[0])).name  # and its first two arguments, as a label
        label = " ".join([program, *map(str, self.args[1:3])])[:60]
        events.append((getattr(self, "_t0", 0.0), time.perf_counter(), f"$ {label}"))

    popen.__init__ = started  # type: ignore[method-assign]
    popen._handle_exitstatus = reaped  # type: ignore[attr-defined]


def wrap_all() -> None:
    for mod_name, attr in PHASES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        owner: Any = mod
        *outer, last = attr.split(".")
        for part in outer:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, last):
            continue  # not in this version of cowbench
        setattr(owner, last, timed(f"{mod_name}.{attr}", getattr(owner, last)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the run directory goes (the storage measured)")
    ap.add_argument("--timeline", action="store_true",
                    help="print when each phase call and each program ran")
    args, extra = ap.parse_known_args()
    wrap_all()
    if args.timeline:
        trace_programs()
    top = Path(tempfile.mkdtemp(prefix="cowbench-phases-", dir=args.dir))
    cli_args = ["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--backend", "real",
                "--out", str(top / "run"), *extra]
    t0 = time.perf_counter()
    try:
        cowbench.cli.app(cli_args, standalone_mode=False)
    finally:
        wall = time.perf_counter() - t0
        shutil.rmtree(top, ignore_errors=True)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    print(f"{'imports (interpreter start to cowbench.cli)':55s} {T_IMPORTED - T_START:7.2f} s")
    print(f"{'cowbench run (in process, after the imports)':55s} {wall:7.2f} s")
    for mod_name, attr in PHASES:
        name = f"{mod_name}.{attr}"
        if name in totals:
            secs, calls = totals[name]
            print(f"  {name:53s} {secs:7.2f} s  x{int(calls)}")
    if args.timeline:
        print("timeline (s from the interpreter's start):")
        for t0, t1, what in sorted(events):
            print(f"  {t0 - T_START:7.3f} {t1 - T_START:7.3f} {t1 - t0:6.3f}  {what}")


if __name__ == "__main__":
    main()
