"""Exact offset streams for the model: from fio itself, from a given iolog, or from a finished
real run's record (``write_iolog``), so the model's allocation error can be told apart from its
offset error (FACTS.md section 5).

This is the core's job, not the model's: the model stays a pure function of the scenario and
the traces handed to it (STYLE.md point 4).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError
from .fiojob import fio_null_traces, recorded_traces, replay_traces
from .iolog import Trace
from .scenario import Scenario
from .tools import RawLog

Traces = dict[str, list[Trace]]


def needs_traces(scenario: Scenario) -> bool:
    return any(wl.offsets != "model" for wl in scenario.workloads.values())


def check_traces(traces: list[Trace], disk_size: int, where: str) -> None:
    """Refuse traces the model cannot apply: I/O past the disk's end."""
    for t in traces:
        if t.end > disk_size:
            raise UsageError(f"{where}: the trace writes up to byte {t.end}, past the disk's "
                             f"end ({disk_size})")


def scenario_traces(scenario: Scenario, log: RawLog) -> Traces:
    """Per VM, the exact stream of each fio clone, for workloads with ``offsets`` fio/iolog.

    VMs that run the same workload on disks of the same size issue the same streams (fio seeds
    by job options and clone number), so fio runs once for each such pair."""
    out: Traces = {}
    done: dict[tuple[str, int], list[Trace]] = {}
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None or wl.offsets == "model":
            continue
        disk = scenario.root_size(vm)
        key = (vm.workload or "", disk)
        if key not in done:
            if wl.offsets == "fio":
                done[key] = fio_null_traces(wl, vm.name, disk, log, scenario.duration)
            else:
                done[key] = replay_traces(wl)
            check_traces(done[key], disk, f"vm {vm.name} (workload {vm.workload})")
        out[vm.name] = done[key]
    return out


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]


def recorded_run_traces(run_dir: Path, scenario: Scenario) -> Traces:
    """The streams a finished real run recorded (``write_iolog: true``), per VM."""
    out: Traces = {}
    raw = run_dir / "raw"
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None or not wl.write_iolog:
            continue
        dirs = sorted(raw.glob(f"[0-9][0-9][0-9][0-9]-fio-{_safe(vm.name)}"))
        if not dirs:
            raise UsageError(f"{run_dir}: no fio record for vm {vm.name} under raw/")
        out[vm.name] = recorded_traces(dirs[-1])
    if not out:
        raise UsageError(f"{run_dir}: no workload recorded its I/O (set write_iolog: true)")
    return out
