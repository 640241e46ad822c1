"""The model's I/O figures written as fio JSON, so fio's own tooling plots them.

fio's ``--output-format=json`` (fio 3.33) holds, per job and direction, ``iops``, ``bw`` (KiB/s),
``bw_bytes``, ``io_bytes``, ``io_kbytes``, ``total_ios``, ``runtime`` (ms) and the completion
latency ``clat_ns`` (``mean``, ``percentile`` keyed ``"99.000000"``), plus the ``job options``.
That subset is what fio-plot and fio's JSON readers use, and what cowbench's own reader
(``real.workload.fio.FioResult``) takes from a real run, so a prediction and a measurement can be
read by the same code. Figures the model does not know are left out, never written as zero.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .lifecycle import expand_timeline
from .scenario import Scenario, Workload
from .store import atomic_write_text

KINDS = ("read", "write")


def _figures(records: pd.DataFrame, entity: str, t_s: float | None) -> dict[str, float]:
    rows = records[records.entity == entity]
    rows = rows[rows.t_s.isna()] if t_s is None else rows[rows.t_s == t_s]
    return {str(m): float(v) for m, v in zip(rows.metric, rows.value, strict=True)}


def _direction(f: dict[str, float], kind: str) -> dict[str, Any] | None:
    ios, iops = f.get(f"{kind}_ios"), f.get(f"{kind}_iops")
    if ios is None or iops is None:
        return None
    bw = f.get(f"{kind}_bw_bytes_per_s", math.nan)
    runtime_s = ios / iops if iops > 0 else 0.0
    out: dict[str, Any] = {"total_ios": int(ios), "iops": iops, "runtime": round(runtime_s * 1e3)}
    if math.isfinite(bw):
        out.update(bw_bytes=round(bw), bw=round(bw / 1024), io_bytes=round(bw * runtime_s),
                   io_kbytes=round(bw * runtime_s / 1024))
    clat: dict[str, Any] = {}
    if f"{kind}_lat_mean_s" in f:
        clat["mean"] = f[f"{kind}_lat_mean_s"] * 1e9
    if f"{kind}_lat_p99_s" in f:
        clat["percentile"] = {"99.000000": round(f[f"{kind}_lat_p99_s"] * 1e9)}
    if clat:
        out["clat_ns"] = clat
    return out


def job_options(wl: Workload) -> dict[str, str]:
    """The job's options as fio prints them in ``job options`` (strings, bytes as numbers)."""
    opts = {"rw": wl.rw, "bs": str(wl.bs), "iodepth": str(wl.iodepth),
            "numjobs": str(wl.numjobs)}
    for key in ("size", "io_size", "rate_iops", "runtime"):
        value = getattr(wl, key)
        if value is not None:
            opts[key] = str(value)
    if wl.rw in ("rw", "readwrite", "randrw"):
        opts["rwmixread"] = str(wl.rwmixread)
    return opts


def fio_json(records: pd.DataFrame, entity: str, wl: Workload | None = None,
             t_s: float | None = None) -> dict[str, Any]:
    """One VM's predicted I/O (the run at ``t_s``, or the end-of-run figures) as fio JSON."""
    f = _figures(records, entity, t_s)
    job: dict[str, Any] = {"jobname": entity.removeprefix("vm:"), "groupid": 0, "error": 0}
    if wl is not None:
        job["job options"] = job_options(wl)
    for kind in KINDS:
        d = _direction(f, kind)
        if d is not None:
            job[kind] = d
    return {"fio version": f"cowbench-{__version__} model (fio-3.33 JSON)",
            "global options": {}, "jobs": [job]}


def write_fio_json(run_dir: Path, scenario: Scenario, predicted: pd.DataFrame) -> list[Path]:
    """``fio-json/<vm>[-t<seconds>].json`` for every VM run the model predicted."""
    ios = predicted[predicted.metric.isin(["read_iops", "write_iops"])]
    runs = {(op.vm, op.t): op.workload for op in expand_timeline(scenario) if op.op == "run"}
    written = []
    keys = sorted({(str(e), float(t)) for e, t in zip(ios.entity, ios.t_s.fillna(-1.0),
                                                       strict=True)})
    for entity, t in keys:
        name = entity.removeprefix("vm:")
        t_s = None if t < 0 else t
        wl = _workload(scenario, name, runs.get((name, t_s)) if t_s is not None else None)
        suffix = "" if t_s is None else f"-t{t_s:g}"
        path = run_dir / "fio-json" / f"{name}{suffix}.json"
        atomic_write_text(path, json.dumps(fio_json(predicted, entity, wl, t_s),
                                           indent=2) + "\n")
        written.append(path)
    return written


def _workload(scenario: Scenario, vm_name: str, run_workload: str | None) -> Workload | None:
    if run_workload is not None:
        return scenario.workloads.get(run_workload)
    vm = next((v for v in scenario.vms if v.name == vm_name), None)
    return scenario.workload_of(vm) if vm is not None else None
