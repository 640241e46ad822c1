"""One labelling rule (``cowbench.knobs.sweep_label_knobs``) for a sweep's points, in
summary.csv, the reports and ``cowbench show`` (F9 of the strategies user test): the same cell
was ``snapshot_chain, chain depth 4, cluster 64 KiB`` in summary.csv, ``snapshot_chain,
cluster 64 KiB, extended L2 off, chain depth 4`` in the report, and ``extended_l2 = -`` ("the
knob does not apply") in show, though a chain takes extended_l2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cowbench.results import load_results
from cowbench.strategy_plots import strategy_labels
from cowbench.sweep import load_sweep, run_sweep

from .clirun import cowbench, table_lines

CHAIN = "snapshot_chain, chain depth 4, cluster 64 KiB, extended L2 off"
SCENARIO = {"name": "labels", "hosts": [{"name": "h"}],
            "images": [{"name": "b", "virtual_size": "64MiB",
                        "synthetic": {"data": [{"offset": 0, "length": "4MiB"}]}}],
            "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
            "workloads": {"w": {"rw": "randwrite", "bs": "4k", "io_size": "256k"}},
            "vms": [{"name": "v", "image": "b", "root_size": "64MiB", "workload": "w"}]}
SWEEP = {"scenario": "base.yaml", "seeds": 1,
         "grid": {"strategy.kind": ["qcow2_overlay"], "strategy.cluster_size": ["16KiB", "64KiB"],
                  "strategy.extended_l2": [False, True]},
         "points": [{"strategy": {"kind": "snapshot_chain", "chain_depth": 4,
                                  "cluster_size": "64KiB"}},
                    {"strategy": {"kind": "full_copy"}}]}


@pytest.mark.slow
def test_summary_report_and_show_label_a_cell_alike(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(SCENARIO))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    out = tmp_path / "out"
    run_sweep(load_sweep(tmp_path / "sweep.yaml"), out, scheduler="inprocess")
    summary = pd.read_csv(out / "summary.csv").set_index("point")["label"]
    assert list(summary)[4:] == [CHAIN, "full_copy"]
    assert list(summary)[:2] == ["qcow2_overlay, cluster 16 KiB, extended L2 off",
                                 "qcow2_overlay, cluster 16 KiB, extended L2 on"]
    report = strategy_labels(load_results(out))
    assert {p.removeprefix("points/"): v for p, v in report.items()} == summary.to_dict()
    shown = cowbench("show", str(out))
    assert shown.code == 0, shown.stderr
    head = next(ln for ln in shown.stdout.splitlines() if "point" in ln and "kind" in ln)
    columns = [c.strip() for c in head.strip("┃").split("┃")]
    rows = {cells[0]: dict(zip(columns[1:], cells[1:], strict=False))
            for cells in table_lines(shown.stdout)}
    # show's knob columns are the label's, in its order; '-' only where a knob does not apply
    assert columns[1:5] == ["kind", "chain_depth", "cluster_size", "extended_l2"]
    assert rows["p0004"]["extended_l2"] == "False" and rows["p0004"]["chain_depth"] == "4"
    assert rows["p0005"]["extended_l2"] == "-" and rows["p0005"]["cluster_size"] == "-"
    assert rows["p0000"]["chain_depth"] == "-"
