"""Exact offset streams for the model: from fio itself, from a given iolog, or from a finished
real run's record (``write_iolog``), so the model's allocation error can be told apart from its
offset error (FACTS.md section 5).

This is the core's job, not the model's: the model stays a pure function of the scenario and
the traces handed to it (STYLE.md point 4).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .fiojob import real_run_folder, recorded_traces
from .scenario import Scenario
from .streams import Plan, Simulate, Traces, fio_installed, source_of, take_streams
from .tools import RawLog

if TYPE_CHECKING:
    import pandas as pd


def needs_traces(scenario: Scenario) -> bool:
    """Does some VM take an exact stream (fio's, with ``offsets`` auto and fio installed, or
    fio; or an iolog) rather than the model's own offsets?"""
    if scenario.fleet is not None:
        return False
    here = fio_installed()
    return any(source_of(wl, here) != "model" for wl in scenario.workloads.values())


def offsets_used(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """run.json's ``offsets`` when no VM takes a stream: every VM's are the model's."""
    return {vm.name: {"workload": vm.workload, "offsets": "model"} for vm in scenario.vms
            if vm.workload}


def scenario_traces(scenario: Scenario, log: RawLog, simulate: Simulate,
                    first: pd.DataFrame | None = None) -> Plan:
    """Per VM, the exact streams of its fio clones (:func:`cowbench.streams.take_streams`)."""
    return take_streams(scenario, scenario.seed, log, simulate, first)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]


def fio_dirs(raw: Path, vm: str) -> list[Path]:
    """The directories of ``vm``'s real fio runs under a run's ``raw/``, in run order."""
    return sorted(d for d in raw.glob(f"[0-9][0-9][0-9][0-9]-fio-{_safe(vm)}")
                  if real_run_folder(d))


def recorded_run_traces(run_dir: Path, scenario: Scenario) -> Traces:
    """The streams a finished real run recorded (``write_iolog: true``), per VM."""
    out: Traces = {}
    raw = run_dir / "raw"
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None or not wl.write_iolog:
            continue
        dirs = fio_dirs(raw, vm.name)
        if not dirs:
            raise UsageError(f"{run_dir}: no fio record for vm {vm.name} under raw/")
        out[vm.name] = recorded_traces(dirs[-1])
    if not out:
        raise UsageError(f"{run_dir}: no workload recorded its I/O (set write_iolog: true)")
    return out
