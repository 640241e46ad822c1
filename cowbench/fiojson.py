"""The model's I/O figures written as fio JSON, so fio's own tooling plots them.

One entry in ``jobs`` per entry fio's own JSON has for the VM's workload, in fio's order, with
fio's names and groupids (:mod:`cowbench.fiojobs`): a job section each, a clone each unless
the job file asks for ``group_reporting``; each filled from the model's ``job:<vm>/<k>``
records, or from the VM's own for a VM of one job. Every key fio 3.33's
``--output-format=json`` has for a job is written (the shape is in
:mod:`cowbench.fioshape`). The model fills what it knows: per direction ``iops``, ``bw``,
``bw_bytes``, ``io_bytes``, ``io_kbytes``, ``total_ios``, ``runtime`` (ms, I/Os over IOPS), the
mean latency (``clat_ns`` and ``lat_ns``: the model has no separate submission stage) and the
99th percentile (``clat_ns.percentile["99.000000"]``), plus the ``job options``. What it does
not know is null and named in the top-level ``cowbench.unknown`` list; the four figures fio-plot
reads as numbers regardless (``iops_stddev``, ``lat_ns.stddev``, ``usr_cpu``, ``sys_cpu``) are 0
and named in ``cowbench.zero_for_fio_plot`` as well. cowbench's own reader
(``real.workload.fio.FioResult``) reads these files and a real run's alike.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .fiojobs import reported_jobs
from .fioshape import (
    empty_stat,
    idle_direction,
    job_tail,
    unknown_direction,
    unknown_paths,
    zero_paths,
)
from .lifecycle import expand_timeline
from .scenario import Scenario, Workload
from .store import atomic_write_text

KINDS = ("read", "write", "trim")


def _figures(records: pd.DataFrame, entity: str, t_s: float | None) -> dict[str, float]:
    rows = records[records.entity == entity]
    rows = rows[rows.t_s.isna()] if t_s is None else rows[rows.t_s == t_s]
    return {str(m): float(v) for m, v in zip(rows.metric, rows.value, strict=True)}


def _direction(f: dict[str, float], kind: str, wl: Workload | None) -> dict[str, Any]:
    ios, iops = f.get(f"{kind}_ios"), f.get(f"{kind}_iops")
    if ios is None or iops is None:
        # the model records a direction whenever the job issues it (a record from before
        # trims took time has their count only)
        trims = kind == "trim" and (wl is None or "trim" in wl.rw)
        return unknown_direction() if trims else idle_direction()
    out = unknown_direction()
    bw = f.get(f"{kind}_bw_bytes_per_s", math.nan)
    runtime_s = ios / iops if iops > 0 else 0.0
    out.update(total_ios=int(ios), iops=iops, runtime=round(runtime_s * 1e3))
    if math.isfinite(bw):
        out.update(bw_bytes=round(bw), bw=round(bw / 1024), io_bytes=round(bw * runtime_s),
                   io_kbytes=round(bw * runtime_s / 1024))
    mean, p99 = f.get(f"{kind}_lat_mean_s"), f.get(f"{kind}_lat_p99_s")
    # the model has one latency, submission to completion: fio's clat and lat alike
    for lat in ("clat_ns", "lat_ns"):
        out[lat]["N"] = int(ios)
        out[lat]["mean"] = None if mean is None else mean * 1e9
    if p99 is not None:
        out["clat_ns"]["percentile"]["99.000000"] = round(p99 * 1e9)
    return out


def job_options(wl: Workload) -> dict[str, str]:
    """The job's options as fio prints them in ``job options``: those the real backend gives
    fio for the job (``cowbench.fiojob.fio_options``, the engine's and the target's aside), as
    fio echoes them (strings; ``ramp_time``, ``thinktime`` and the like included)."""
    from .fiojob import fio_options

    opts = {}
    for arg in fio_options(wl):
        key, _, value = arg.removeprefix("--").partition("=")
        opts[key] = value
    return opts


def fio_json(records: pd.DataFrame, entity: str, wl: Workload | None = None,
             t_s: float | None = None) -> dict[str, Any]:
    """One VM's predicted I/O (the run at ``t_s``, or the end-of-run figures) as fio JSON.

    One entry in ``jobs`` per entry fio's own JSON has for the VM's workload
    (:func:`cowbench.fiojobs.reported_jobs`: per job, per clone unless ``group_reporting``),
    named and grouped as fio names and groups them, each with the figures the model recorded
    for it (entity ``job:<vm>/<k>``); a VM of one such entry is its own figures. Every key fio
    3.33 writes for a job is present; values the model does not know are null and named in
    ``cowbench.unknown`` (:mod:`cowbench.fioshape`).
    """
    name = entity.removeprefix("vm:")
    entries = reported_jobs(wl, name) if wl is not None else []
    if wl is not None and len(entries) > 1 and _figures(records, f"job:{name}/0", t_s):
        jobs = [_job(_figures(records, f"job:{name}/{k}", t_s), e.jobname, e.groupid,
                     wl.parts[e.part]) for k, e in enumerate(entries)]
    else:  # one entry; or records from before the model kept each job's (all summed in one)
        jobname = entries[0].jobname if len(entries) == 1 else name
        jobs = [_job(_figures(records, entity, t_s), jobname, 0, wl)]
    doc: dict[str, Any] = {"fio version": f"cowbench-{__version__} model (fio-3.33 JSON)",
                           "timestamp": None, "timestamp_ms": None, "time": None,
                           "global options": {}, "jobs": jobs}
    zeros = [p for i, job in enumerate(jobs) for p in zero_paths(job, f"/jobs/{i}")]
    # every pointer resolves (to null, or to 0 for fio-plot): no disk_util, which fio's nbd
    # engine does not write either (the real run's own output.json has none)
    doc["cowbench"] = {"model": True, "unknown": [*unknown_paths(doc), *zeros],
                       "zero_for_fio_plot": zeros}
    return doc


def _job(f: dict[str, float], jobname: str, groupid: int, wl: Workload | None
         ) -> dict[str, Any]:
    """One entry of ``jobs``: the figures ``f`` of the job ``wl`` (its options)."""
    job: dict[str, Any] = {"jobname": jobname, "groupid": groupid, "error": 0,
                           "eta": None, "elapsed": None,
                           "job options": job_options(wl) if wl is not None else {}}
    for kind in KINDS:
        job[kind] = _direction(f, kind, wl)
    job["sync"] = {"total_ios": 0, "lat_ns": empty_stat()}  # cowbench's jobs never fsync
    runtimes = [job[k]["runtime"] for k in KINDS if job[k]["total_ios"]]
    job.update(job_tail(wl.iodepth if wl is not None else 1, max(runtimes, default=None)))
    return job


def write_fio_json(out_dir: Path, scenario: Scenario, predicted: pd.DataFrame) -> list[Path]:
    """``<vm>[-t<seconds>].json`` in ``out_dir`` (a run's ``fio-json/``, held by its
    descriptor: ``cowbench.fdtree.HeldDir.sub``) for every VM run the model predicted (its
    jobs as fio reports them)."""
    ios = predicted[predicted.metric.isin(["read_iops", "write_iops", "trim_iops"])
                    & predicted.entity.str.startswith("vm:")]
    runs = {(op.vm, op.t): op.workload for op in expand_timeline(scenario) if op.op == "run"}
    written = []
    keys = sorted({(str(e), float(t)) for e, t in zip(ios.entity, ios.t_s.fillna(-1.0),
                                                       strict=True)})
    for entity, t in keys:
        name = entity.removeprefix("vm:")
        t_s = None if t < 0 else t
        wl = _workload(scenario, name, runs.get((name, t_s)) if t_s is not None else None)
        suffix = "" if t_s is None else f"-t{t_s:g}"
        path = out_dir / f"{name}{suffix}.json"
        atomic_write_text(path, json.dumps(fio_json(predicted, entity, wl, t_s),
                                           indent=2) + "\n")
        written.append(path)
    return written


def _workload(scenario: Scenario, vm_name: str, run_workload: str | None) -> Workload | None:
    if run_workload is not None:
        return scenario.workloads.get(run_workload)
    vm = next((v for v in scenario.vms if v.name == vm_name), None)
    return scenario.workload_of(vm) if vm is not None else None
