"""Which of a chained VM's figures cover all its layers and which its top one (F4 of the
strategies user test): ``data_clusters`` is the run-directory contract's "guest clusters
allocated in the entity's top image" (DESIGN.md), so after an external snapshot it counts only
what the guest wrote since; ``allocated_bytes`` and ``file_bytes`` sum every file of the VM.
The README says exactly that, in the metric table and in the ``snapshot_chain`` row."""

from __future__ import annotations

from typing import Any

from cowbench.scenario import parse_scenario
from sim import simulate

from .test_cli import ROOT

README = (ROOT / "README.md").read_text()
MiB = 1 << 20
SCENARIO: dict[str, Any] = {
    "name": "chain-figures", "seed": 1, "hosts": [{"name": "h"}],
    "images": [{"name": "b", "virtual_size": "64MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
    "strategy": {"kind": "snapshot_chain", "chain_depth": 2},
    "workloads": {"first": {"rw": "write", "bs": "64k", "offset": "8MiB", "io_size": "4MiB"},
                  "then": {"rw": "write", "bs": "64k", "offset": "32MiB", "io_size": "2MiB"}},
    "vms": [{"name": "v", "image": "b", "root_size": "64MiB", "workload": "first"}],
    "timeline": {"events": [{"t": 0, "op": "boot", "vm": "v"}, {"t": 0, "op": "run", "vm": "v"},
                            {"t": 100, "op": "snapshot", "vm": "v", "kind": "external"},
                            {"t": 200, "op": "run", "vm": "v", "workload": "then"}]},
}


def test_data_clusters_is_the_top_layer_and_bytes_are_every_layer() -> None:
    end = simulate(parse_scenario(SCENARIO))
    end = end[end.t_s.isna()].set_index(["entity", "metric"]).value
    assert end["vm:v", "data_clusters"] == 2 * MiB // 65536  # the second run's, on the top
    assert end["vm:v", "allocated_bytes"] > 6 * MiB  # both runs' data: 4 MiB below, 2 on top


def row(first_cell: str) -> str:
    return next(ln for ln in README.splitlines() if ln.startswith(f"| {first_cell} |"))


def test_the_readme_says_which_chain_figures_cover_which_layers() -> None:
    metric = row("`data_clusters`")
    assert "top" in metric and "snapshot_chain" in metric, metric
    chain = row("`snapshot_chain`")
    assert "the VM's figures cover all its layers" not in chain
    for words in ("`allocated_bytes` and `file_bytes` cover all its layers",
                  "`data_clusters` the top one"):
        assert words in chain, (words, chain)
