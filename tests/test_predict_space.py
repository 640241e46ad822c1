"""The space check's prediction for a real run alone: the model's writes without its clock."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cowbench.scenario import parse_scenario
from sim import predict_space, simulate

from .conftest import small_dict, small_scenario


def allocation(records: pd.DataFrame) -> dict[str, float]:
    rows = records[records.metric.isin(["allocated_bytes", "file_bytes", "data_clusters"])]
    return {f"{e} {m}": v for e, m, v in zip(rows.entity, rows.metric, rows.value, strict=True)}


STRATEGIES: list[dict[str, Any]] = [
    {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
    {"kind": "full_copy", "sparse": True},
    {"kind": "snapshot_chain", "chain_depth": 3, "cluster_size": "64KiB"},
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s["kind"])
def test_untimed_writes_allocate_what_the_model_does(strategy: dict[str, Any]) -> None:
    """Jobs bounded by their I/O count: the same clusters, whatever the order, so the same
    figures (clones of one job interleave differently: numjobs 2)."""
    d = small_dict(strategy=strategy)
    d["workloads"]["w"] = {**d["workloads"]["w"], "numjobs": 2}
    s = parse_scenario(d)
    assert allocation(predict_space(s)) == allocation(simulate(s))


def test_a_runtime_cap_only_raises_the_prediction() -> None:
    """A duration that cuts the jobs short: the model allocates less, the prediction (every
    write) more; never less, since the check must not pass a run that will not fit."""
    s = small_scenario(duration=0.01)
    cut, full = allocation(simulate(s)), allocation(predict_space(s))
    assert full["host:host1 allocated_bytes"] > cut["host:host1 allocated_bytes"]
    assert all(full[k] >= v for k, v in cut.items() if "allocated" in k)


@pytest.mark.parametrize("change,strategy", [
    ({"time_based": True, "runtime": 0.01}, {}),
    ({"zero_buffers": True}, {"detect_zeroes": "unmap", "discard": "unmap"}),
], ids=["time_based", "zero writes that unmap"])
def test_what_the_clock_or_order_decides_is_left_to_the_model(
        change: dict[str, Any], strategy: dict[str, Any]) -> None:
    """A time-bounded job, or writes that may free what earlier ones allocated: the clock or
    the order decides what stays allocated, so the prediction is the model's own."""
    d = small_dict()
    d["workloads"]["w"] = {**d["workloads"]["w"], **change}
    d["strategy"] = {**d["strategy"], **strategy}
    s = parse_scenario(d)
    assert allocation(predict_space(s)) == allocation(simulate(s))
