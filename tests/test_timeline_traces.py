"""Every workload option means the same on every path: a workload run as a VM's first workload
and as a later ``run`` event gives the same disk figures. With ``offsets: fio`` each
(VM, workload) run gets its own null-engine stream from fio (issue 17: a later run used to
fall back silently to the model's own generator)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import Scenario, parse_scenario
from cowbench.streams import Traces
from cowbench.tools import RawLog
from cowbench.traces import scenario_traces
from sim import simulate

from .conftest import needs_tools

pytestmark = [pytest.mark.real, needs_tools]  # fio's null engine gives the streams

SCENARIO: dict[str, Any] = {
    "name": "later",
    "seed": 4,
    "hosts": [{"name": "h1"}],
    "images": [{"name": "img", "virtual_size": "64MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
    "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
    "workloads": {
        # bssplit: only fio knows its offsets (the model's generator does not take it)
        "mixed": {"rw": "randwrite", "bssplit": "4k/50:64k/50", "iodepth": 2,
                  "io_size": "4MiB", "offsets": "fio"},
        "look": {"rw": "randread", "bs": "4k", "iodepth": 2, "io_size": "1MiB"},
    },
    "vms": [{"name": "a", "image": "img", "root_size": "96MiB", "workload": "mixed"},
            {"name": "b", "image": "img", "root_size": "96MiB", "workload": "look"}],
    "timeline": {"events": [{"t": 10, "op": "run", "vm": "b", "workload": "mixed"}]},
}
DISK = ["allocated_bytes", "file_bytes", "data_clusters"]


def _scenario() -> Scenario:
    return parse_scenario(copy.deepcopy(SCENARIO))


def _traces(s: Scenario, tmp_path: Path) -> Traces:
    return scenario_traces(s, RawLog(tmp_path / "raw"),
                           lambda sc, tr: simulate(sc, traces=tr)).traces


def test_a_later_run_gets_its_own_fio_stream(tmp_path: Path) -> None:
    """The VMs' own workloads under their names, the later run under its (VM, workload, disk
    size); the model's own generator for ``look`` (it takes fio's stream too, with auto)."""
    traces = _traces(_scenario(), tmp_path)
    assert {"a", f"b:mixed:{96 << 20}"} <= set(traces)
    assert [len(t) for t in traces["a"]] == [len(t) for t in traces[f"b:mixed:{96 << 20}"]]


def test_same_workload_first_and_later_gives_the_same_disk(tmp_path: Path) -> None:
    s = _scenario()
    rec = simulate(s, traces=_traces(s, tmp_path))
    end = rec[rec.t_s.isna()].set_index(["entity", "metric"]).value
    for metric in DISK:
        assert end["vm:a", metric] == end["vm:b", metric], metric
    runs = rec[rec.metric.isin(["host_write_bytes", "write_ios"])]
    first = runs[(runs.entity == "vm:a") & (runs.t_s == 0)].set_index("metric").value
    later = runs[(runs.entity == "vm:b") & (runs.t_s == 10)].set_index("metric").value
    pd.testing.assert_series_equal(first.sort_index(), later.sort_index())


def test_a_later_run_is_predicted_from_its_own_stream_in_both_backends(
        tmp_path: Path, no_leaks: None) -> None:
    out = tmp_path / "run"
    run_scenario(_scenario(), out, "both")
    comp = pd.read_csv(out / "comparison.csv")
    b = comp[(comp.entity == "vm:b") & comp.metric.isin(DISK) & comp.t_s.isna()]
    assert set(b.metric) == set(DISK)
    assert (b.rel_error.abs() <= 0.02).all(), b


def _timed() -> Scenario:
    d = copy.deepcopy(SCENARIO)
    d["workloads"]["mixed"] = {"rw": "randwrite", "bssplit": "4k/50:64k/50", "iodepth": 2,
                               "size": "48MiB", "time_based": True, "runtime": "1s"}
    return parse_scenario(d)


def _clusters(t: Any, n: int) -> int:
    offs, lens = t.offsets[:n].tolist(), t.lengths[:n].tolist()
    return len({c for o, length in zip(offs, lens, strict=True)
                for c in range(o // (64 << 10), (o + length - 1) // (64 << 10) + 1)})


def test_a_time_bounded_later_run_takes_fios_stream_sized_by_its_own_run(
        tmp_path: Path) -> None:
    """A time-bounded job (bssplit: only fio knows its offsets; refused in a timeline before)
    as VM a's first workload and as VM b's later run: each run takes fio's stream, sized by the
    model's count of I/Os in that run, and its data clusters are those of the stream's first
    that many writes."""
    s = _timed()
    plan = scenario_traces(s, RawLog(tmp_path / "raw"), lambda sc, tr: simulate(sc, traces=tr))
    later = f"b:mixed:{96 << 20}"
    assert plan.predicted is not None
    rec = plan.predicted
    for key, vm, t in (("a", "a", 0.0), (later, "b", 10.0)):
        assert plan.offsets[key]["offsets"] == "fio"
        assert plan.offsets[key]["stream"] == "predicted"
        ios = rec[(rec.entity == f"vm:{vm}") & (rec.metric == "write_ios") & (rec.t_s == t)]
        n = int(ios.value.iloc[0])
        (trace,) = plan.traces[key]
        assert 0 < n < len(trace)  # the stream did not run out before the job's time
        end = rec[(rec.entity == f"vm:{vm}") & (rec.metric == "data_clusters")
                  & rec.t_s.isna()]
        assert float(end.value.iloc[0]) == _clusters(trace, n)
