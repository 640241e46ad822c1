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

Plain VMs of one job only (a timeline's runs share a VM's records, and so do several jobs of
one VM); with ``numjobs`` > 1 the real run reports its clones together, so each clone is cut
at their mean count.

With several real runs (``--repeat``) the comparison is against the runs' mean, and the runs'
counts can differ widely on a shared machine (web-cache: 15,165 to 43,478 I/Os in three runs
of one minute). A job's clusters grow ever slower with its count, so the model at the mean
count is not the mean of the runs' clusters (web-cache: 428 at the mean count against a mean of
415 measured, a 3.2% error that is neither the model's nor the count's): the model runs at each
run's own count, and its figures are their mean; ``measured_ios_per_clone_runs`` lists the
runs' counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fiojob import cut, fio_null_traces
from .scenario import VM, Scenario
from .streams import Simulate, Traces
from .tools import RawLog

if TYPE_CHECKING:
    import pandas as pd

#: The figures compared at the measured count.
FIGURES = ("data_clusters", "allocated_bytes")


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
    return [vm for vm in scenario.vms if offsets.get(vm.name, {}).get("stream") == "predicted"
            and not getattr(scenario.workload_of(vm), "jobs", None)]  # per job: not recorded


def _runs(measured: pd.DataFrame, vm: str, metrics: tuple[str, ...]) -> list[float]:
    """The sum of ``metrics`` in each real run (``replication``), in run order."""
    rows = measured[(measured.entity == f"vm:{vm}") & measured.metric.isin(metrics)
                    & measured.t_s.isna()]
    if "replication" not in rows.columns or rows.empty:
        return [float(rows.value.sum())]
    return [float(v) for v in rows.groupby("replication").value.sum()]


def at_measured_ios(scenario: Scenario, seed: int, offsets: dict[str, dict[str, Any]],
                    predicted: pd.DataFrame, measured: pd.DataFrame, log: RawLog,
                    simulate: Simulate) -> dict[str, dict[str, Any]]:
    """Per time-bounded VM: I/Os per clone predicted and measured, and the model's
    :data:`FIGURES` on fio's stream cut at the measured count, the mean over the real runs
    of the figures at each run's count (see the module's docstring)."""
    vms = timed_vms(scenario, offsets)
    if not vms:
        return {}
    ios = ("read_ios", "write_ios", "trim_ios")
    counts: dict[str, list[int]] = {}
    streams: Traces = {}
    out: dict[str, dict[str, Any]] = {}
    for vm in vms:
        wl = scenario.workload_of(vm)
        assert wl is not None
        counts[vm.name] = [round(x / wl.numjobs) for x in _runs(measured, vm.name, ios)]
        runs = counts[vm.name]
        out[vm.name] = {"predicted_ios_per_clone": _value(predicted, vm.name, ios) / wl.numjobs,
                        "measured_ios_per_clone": round(sum(runs) / len(runs))}
        if len(runs) > 1:
            out[vm.name]["measured_ios_per_clone_runs"] = runs
        if max(runs) > 0:  # none issued: nothing to count at
            streams[vm.name] = fio_null_traces(wl, vm.name, scenario.root_size(vm), log,
                                               max(runs), seed)
    counted_vms = [vm for vm in vms if vm.name in streams]
    if not counted_vms:
        return out
    runs_n = min(len(counts[vm.name]) for vm in counted_vms)  # every VM's runs alike
    sums = {(vm.name, m): 0.0 for vm in counted_vms for m in FIGURES}
    for k in range(runs_n):
        traces = {vm.name: [cut(t, counts[vm.name][k]) for t in streams[vm.name]]
                  for vm in counted_vms}
        counted = simulate(_untimed(scenario, counted_vms), traces)
        for vm in counted_vms:
            for metric in FIGURES:
                sums[vm.name, metric] += _value(counted, vm.name, (metric,))
    for (name, metric), total in sums.items():
        out[name][metric] = total / runs_n
    return out


def _untimed(scenario: Scenario, vms: list[VM]) -> Scenario:
    """Only ``vms``, each job bounded by its stream alone (no runtime, no duration)."""
    names = {str(vm.workload) for vm in vms}
    wls = {n: wl.model_copy(update={"time_based": False, "runtime": None})
           for n, wl in scenario.workloads.items() if n in names}
    return scenario.model_copy(update={"vms": list(vms), "workloads": wls, "duration": None})


def _rel(a: float, b: float) -> str:
    return f"{(a - b) / b:+.1%}" if b else "n/a"


def describe(offsets: dict[str, dict[str, Any]], measured_clusters: dict[str, float]) -> list[str]:
    """One line per time-bounded VM of run.json's ``offsets``: its count of I/Os predicted
    and measured, and its data_clusters predicted, at the measured count and measured."""
    lines = []
    for vm, info in offsets.items():
        at = info.get("at_measured_ios")
        if not at or vm not in measured_clusters:
            continue
        p, m = at["predicted_ios_per_clone"], at["measured_ios_per_clone"]
        runs = at.get("measured_ios_per_clone_runs")
        each = "" if not runs else \
            f", the mean of {len(runs)} runs from {min(runs):,} to {max(runs):,}"
        line = (f"vm {vm} is time-bounded: the model issued {p:,.0f} I/Os per clone, fio "
                f"{m:,}{each} ({_rel(p, m)})")
        if "data_clusters" in at:
            where = "each run's count (their mean)" if runs else "fio's count"
            line += (f"; at {where} the model gives {at['data_clusters']:,.0f} data_clusters "
                     f"({_rel(at['data_clusters'], measured_clusters[vm])} against the "
                     f"measured {measured_clusters[vm]:,.0f}): the rest of the error is the count")
        lines.append(line)
    return lines
