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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fiojob import fio_null_traces
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


def at_measured_ios(scenario: Scenario, seed: int, offsets: dict[str, dict[str, Any]],
                    predicted: pd.DataFrame, measured: pd.DataFrame, log: RawLog,
                    simulate: Simulate) -> dict[str, dict[str, Any]]:
    """Per time-bounded VM: I/Os per clone predicted and measured, and the model's
    :data:`FIGURES` on fio's stream cut at the measured count (see the module's docstring)."""
    vms = timed_vms(scenario, offsets)
    if not vms:
        return {}
    traces: Traces = {}
    out: dict[str, dict[str, Any]] = {}
    for vm in vms:
        wl = scenario.workload_of(vm)
        assert wl is not None
        ios = ("read_ios", "write_ios", "trim_ios")
        per_clone = round(_value(measured, vm.name, ios) / wl.numjobs)
        out[vm.name] = {"predicted_ios_per_clone": _value(predicted, vm.name, ios) / wl.numjobs,
                        "measured_ios_per_clone": per_clone}
        if per_clone > 0:  # none issued: nothing to count at
            traces[vm.name] = fio_null_traces(wl, vm.name, scenario.root_size(vm), log,
                                              per_clone, seed)
    counted_vms = [vm for vm in vms if vm.name in traces]
    if not counted_vms:
        return out
    counted = simulate(_untimed(scenario, counted_vms), traces)
    for vm in counted_vms:
        for metric in FIGURES:
            out[vm.name][metric] = _value(counted, vm.name, (metric,))
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
        line = (f"vm {vm} is time-bounded: the model issued {p:,.0f} I/Os per clone, fio "
                f"{m:,} ({_rel(p, m)})")
        if "data_clusters" in at:
            line += (f"; at fio's count the model gives {at['data_clusters']:,.0f} data_clusters "
                     f"({_rel(at['data_clusters'], measured_clusters[vm])} against the "
                     f"measured {measured_clusters[vm]:,.0f}): the rest of the error is the count")
        lines.append(line)
    return lines
