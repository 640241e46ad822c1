"""How much of a time-bounded job's error is its count of I/Os (the I/O model's IOPS).

A job bounded by time issues as many I/Os as the machine lets it; the model predicts that
count with the I/O model and applies the first that many I/Os of fio's own stream
(``cowbench.streams``). Its ``data_clusters`` can then be off for two reasons: the count (a
10% IOPS error gives about 10% more or fewer distinct clusters when the job does not cover its
region) and the allocation model itself. Once the real run is done, this module tells them
apart without changing the prediction: the model runs again on fio's stream cut at the count
the real run issued (per clone, its reads and writes over ``numjobs``), with no clock, and
run.json's ``offsets`` gets, per such VM, the predicted and the measured count and the
figures the model gives at the measured count (``at_measured_ios``). The prediction stays
the one in ``predicted.parquet``; this is an account of its error.

Plain VMs only (a timeline's runs share a VM's records, and each stands on what the operations
before it left, which a model of the VM alone does not have; the README says so). The count
is each clone's own: the real backend has fio report every clone of every job
(``real.workload.fio``), and the model cuts each clone's stream at what that clone issued
(clones of one time-based job issue different counts: they share the machine; jobs run in
turn, ``stonewall``, each issue theirs). The account lists them per job (``jobs``). Without
fio's per-clone report (a run made before it), a VM of one job cuts each clone at their mean,
and a VM of several jobs gets no account.

With several real runs (``--repeat``) the comparison is against the runs' mean, and the runs'
counts can differ widely on a shared machine (web-cache: 15,165 to 43,478 I/Os in three runs
of one minute). A job's clusters grow ever slower with its count, so the model at the mean
count is not the mean of the runs' clusters (web-cache: 428 at the mean count against a mean of
415 measured, a 3.2% error that is neither the model's nor the count's): the model runs at each
run's own counts, and its figures are their mean; ``measured_ios_per_clone_runs`` lists the
runs' counts, and ``data_clusters_runs`` / ``allocated_bytes_runs`` the model's figures at each.

A job with ``ramp_time`` issues I/Os in its ramp that fio's output counts nowhere (its
``total_ios`` starts at the ramp's end; measured, sim.world.vm), so what the real run issued
in all is not known from it. The measured count (``measured_ios_per_clone``) is then fio's
after the ramp, compared with the model's after the ramp (its ``read_ios`` and ``write_ios``
leave the ramp out as fio's do), and the stream is cut at it plus the model's own ramp
(``ramp_ios_per_clone``, predicted: ``ramp_measured`` false says no run measured it).

The count's own uncertainty is the machine's: ``measured_ios_per_clone_spread`` is how far the
runs' counts lie apart, ``(max - min) / mean`` as ``spread.csv`` takes a figure's, and
``predicted_ios_within_spread`` says whether the predicted count is no further from their mean
than that (then the runs cannot tell a better count from the one predicted; web-cache at load 5
to 7, 3 runs of 3 s: 14,869 to 28,642 I/Os, a spread of 66%, against 43,309 predicted: beyond
it). The model's figures at the runs' least and most counts bound what that noise alone makes
of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fiojob import cut
from .scenario import VM, Scenario, Workload
from .streams import Ask, Simulate, StreamCache
from .tools import RawLog
from .traces import fio_dirs

if TYPE_CHECKING:
    import pandas as pd

#: The figures compared at the measured count.
FIGURES = ("data_clusters", "allocated_bytes")
IOS = ("read_ios", "write_ios", "trim_ios")
#: Per real run, each clone's I/Os in fio's job order (a job's clones after it).
CloneRuns = list[list[int]]


def _value(records: pd.DataFrame, vm: str, metrics: tuple[str, ...]) -> float:
    rows = records[(records.entity == f"vm:{vm}") & records.metric.isin(metrics)
                   & records.t_s.isna()]
    # several real runs (--repeat): their mean, as the comparison takes it
    per_metric = rows.groupby("metric").value.mean()
    return float(per_metric.sum())


def timed_vms(scenario: Scenario, offsets: dict[str, dict[str, Any]]) -> list[VM]:
    """The plain VMs whose stream was sized by the I/O model."""
    if scenario.timeline is not None:
        return []
    return [vm for vm in scenario.vms if offsets.get(vm.name, {}).get("stream") == "predicted"]


def _runs(measured: pd.DataFrame, vm: str, metrics: tuple[str, ...]) -> list[float]:
    """The sum of ``metrics`` in each real run (``replication``), in run order."""
    rows = measured[(measured.entity == f"vm:{vm}") & measured.metric.isin(metrics)
                    & measured.t_s.isna()]
    if "replication" not in rows.columns or rows.empty:
        return [float(rows.value.sum())]
    return [float(v) for v in rows.groupby("replication").value.sum()]


def fio_clone_ios(raw: Path, vm: str) -> CloneRuns:
    """What each of ``vm``'s fio clones issued in each real run (reads, writes and trims of
    each entry of fio's JSON under ``raw/``, one directory per run, in run order)."""
    out = []
    for d in fio_dirs(raw, vm):
        if (d / "output.json").is_file():
            jobs = json.loads((d / "output.json").read_text())["jobs"]
            out.append([sum(int(j[k]["total_ios"]) for k in ("read", "write", "trim") if k in j)
                        for j in jobs])
    return out


def clone_runs(wl: Workload, measured: pd.DataFrame, vm: str,
               given: CloneRuns | None) -> CloneRuns | None:
    """Per real run, each clone's count: fio's own per clone (``given``, when it covers every
    run and clone), else for one job the VM's count shared evenly among its clones, else
    (several jobs) unknown."""
    totals = _runs(measured, vm, IOS)
    n = sum(p.numjobs for p in wl.parts)
    if given is not None and len(given) == len(totals) and all(len(r) == n for r in given):
        return given
    if wl.jobs:
        return None
    return [[round(x / n)] * n for x in totals]


def _jobs(wl: Workload, name: str, runs: CloneRuns) -> list[dict[str, Any]]:
    """The account per job: each clone's count, the mean over the runs and each run's."""
    out, first = [], 0
    for part in wl.parts:
        each = [r[first:first + part.numjobs] for r in runs]
        first += part.numjobs
        job: dict[str, Any] = {"job": part.section or name, "clones": part.numjobs,
                               "measured_ios_per_clone": [round(sum(c) / len(each), 1)
                                                          for c in zip(*each, strict=True)]}
        if len(runs) > 1:
            job["measured_ios_per_clone_runs"] = each
        out.append(job)
    return out


def _count(wl: Workload, name: str, predicted: pd.DataFrame, measured: pd.DataFrame,
           runs: CloneRuns | None, workload: str = "") -> dict[str, Any]:
    """VM ``name``'s counts of I/Os per clone: predicted, measured (the runs' mean), and per
    job (a job named by its section, or the VM's ``workload``'s name)."""
    n = sum(p.numjobs for p in wl.parts)
    per_run = [round(x / n) for x in _runs(measured, name, IOS)] if runs is None else \
        [round(sum(r) / n) for r in runs]
    out: dict[str, Any] = {"predicted_ios_per_clone": _value(predicted, name, IOS) / n,
                           "measured_ios_per_clone": round(sum(per_run) / len(per_run))}
    if len(per_run) > 1:
        out["measured_ios_per_clone_runs"] = per_run
        out.update(_count_spread(out["predicted_ios_per_clone"], per_run))
    if runs is not None:
        out["jobs"] = _jobs(wl, workload or name, runs)
    return out


def _count_spread(predicted: float, runs: list[int]) -> dict[str, Any]:
    """How far the runs' counts lie apart, ``(max - min) / mean`` (as ``cowbench.spread``
    takes a figure's), and whether the predicted count is no further from their mean: then
    no count the model could predict is told apart from the machine's own noise."""
    mean = sum(runs) / len(runs)
    if mean <= 0:
        return {}
    spread = (max(runs) - min(runs)) / mean
    return {"measured_ios_per_clone_spread": round(spread, 4),
            "predicted_ios_within_spread": bool(abs(predicted - mean) / mean <= spread)}


def at_measured_ios(scenario: Scenario, seed: int, offsets: dict[str, dict[str, Any]],
                    predicted: pd.DataFrame, measured: pd.DataFrame, log: RawLog,
                    simulate: Simulate, clones: dict[str, CloneRuns] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Per time-bounded VM: I/Os per clone predicted and measured (per job and clone too),
    and the model's :data:`FIGURES` on fio's stream with each clone cut at its measured
    count, the mean over the real runs of the figures at each run's counts (see the
    module's docstring). ``clones``: per VM, fio's per-clone counts (:func:`fio_clone_ios`)."""
    out: dict[str, dict[str, Any]] = {}
    counts: dict[str, CloneRuns] = {}
    asks: dict[str, Ask] = {}
    for vm in timed_vms(scenario, offsets):
        wl = scenario.workload_of(vm)
        assert wl is not None
        runs = clone_runs(wl, measured, vm.name, (clones or {}).get(vm.name))
        out[vm.name] = _count(wl, vm.name, predicted, measured, runs, str(vm.workload))
        if runs is not None and any(p.ramp_time is not None for p in wl.parts):
            runs = _with_ramp(out[vm.name], wl, vm.name, predicted, runs)
        most = max((max(r) for r in runs or [] if r), default=0)
        if runs is not None and most > 0:  # none issued: nothing to count at
            counts[vm.name] = runs
            asks[vm.name] = Ask(wl, vm.name, scenario.root_size(vm), seed, most)
    streams = dict(zip(asks, StreamCache(log).take_all(list(asks.values())), strict=True))
    if not streams:
        return out
    counted_vms = [vm for vm in scenario.vms if vm.name in streams]
    runs_n = min(len(counts[name]) for name in streams)  # every VM's runs alike
    each: dict[tuple[str, str], list[float]] = {(name, m): [] for name in streams
                                                 for m in FIGURES}
    for k in range(runs_n):
        traces = {name: [cut(t, n) for t, n in zip(streams[name], counts[name][k], strict=True)]
                  for name in streams}
        counted = simulate(_untimed(scenario, counted_vms), traces)
        for name, metric in each:
            each[name, metric].append(_value(counted, name, (metric,)))
    for (name, metric), values in each.items():
        out[name][metric] = sum(values) / runs_n
        if runs_n > 1:  # what the count's noise alone makes of the figure
            out[name][f"{metric}_runs"] = values
    return out


def _with_ramp(account: dict[str, Any], wl: Workload, name: str, predicted: pd.DataFrame,
               runs: CloneRuns) -> CloneRuns:
    """Each clone's count with the model's own ramp added (fio's output has none of the
    ramp's I/Os), and the account saying so."""
    n = sum(p.numjobs for p in wl.parts)
    ramp = round(_value(predicted, name, ("ramp_ios",)) / n)
    account.update(ramp_ios_per_clone=ramp, ramp_measured=False)
    return [[c + ramp if c else 0 for c in r] for r in runs]


def _untimed(scenario: Scenario, vms: list[VM]) -> Scenario:
    """Only ``vms``, each job bounded by its stream alone (no runtime, no duration)."""
    names = {str(vm.workload) for vm in vms}
    untimed = {"time_based": False, "runtime": None}
    wls = {n: wl.model_copy(update={**untimed, "jobs": [
        j.model_copy(update=untimed) for j in wl.jobs]}) for n, wl in scenario.workloads.items()
        if n in names}
    return scenario.model_copy(update={"vms": list(vms), "workloads": wls, "duration": None})


def _rel(a: float, b: float) -> str:
    return f"{(a - b) / b:+.1%}" if b else "n/a"


def describe(offsets: dict[str, dict[str, Any]], measured_clusters: dict[str, float],
             measured_allocated: dict[str, float] | None = None) -> list[str]:
    """One line per time-bounded VM of run.json's ``offsets``: its count of I/Os predicted
    and measured, and its data_clusters predicted, at the measured count and measured (and
    its allocated bytes the same way, given ``measured_allocated``: with extended L2 or large
    clusters the clusters can agree while the bytes do not)."""
    lines = []
    for vm, info in offsets.items():
        at = info.get("at_measured_ios")
        if not at or vm not in measured_clusters:
            continue
        p, m = at["predicted_ios_per_clone"], at["measured_ios_per_clone"]
        runs = at.get("measured_ios_per_clone_runs")
        each = "" if not runs else \
            f", the mean of {len(runs)} runs from {min(runs):,} to {max(runs):,}"
        spread = at.get("measured_ios_per_clone_spread")
        noise = "" if spread is None else (
            f", {'within' if at.get('predicted_ios_within_spread') else 'beyond'} the runs' "
            f"spread of {spread:.1%}")
        line = (f"vm {vm} is time-bounded: the model issued {p:,.0f} I/Os per clone, fio "
                f"{m:,}{each} ({_rel(p, m)}{noise})")
        if "ramp_ios_per_clone" in at:
            line += (f", both after the ramp (fio's output counts none of the ramp's I/Os: "
                     f"{at['ramp_ios_per_clone']:,} per clone taken from the model, "
                     "not measured)")
        jobs = at.get("jobs", [])
        if sum(j["clones"] for j in jobs) > 1:
            line += "; per clone (by job): " + "; ".join(
                f"{j['job']} " + ", ".join(f"{c:,.0f}" for c in j["measured_ios_per_clone"])
                for j in jobs)
        if "data_clusters" in at:
            where = "each run's count (their mean)" if runs else "fio's count"
            where = where.replace("count", "counts") if len(jobs) > 1 or jobs and \
                jobs[0]["clones"] > 1 else where
            at_runs = at.get("data_clusters_runs")
            over = "" if not at_runs else \
                f", {min(at_runs):,.0f} to {max(at_runs):,.0f} over the runs"
            line += (f"; at {where} the model gives {at['data_clusters']:,.0f} data_clusters "
                     f"({_rel(at['data_clusters'], measured_clusters[vm])} against the "
                     f"measured {measured_clusters[vm]:,.0f}{over})")
            alloc = (measured_allocated or {}).get(vm)
            if alloc is not None and "allocated_bytes" in at:
                line += (f" and {at['allocated_bytes']:,.0f} allocated bytes "
                         f"({_rel(at['allocated_bytes'], alloc)} against {alloc:,.0f})")
            line += ": the rest of the error is the count"
        lines.append(line)
    return lines
