"""The strategies report of ONE run whose VMs have strategies of their own (``vms[].strategy``,
F3 of the strategies user test). Before, every VM was pooled into two categories,
``measured`` and ``predicted`` (the latter with a model-only RBD clone in it, so its median
differed for no fault of the model), and the disk figure said "no host disk figures in these
runs" though the host's were recorded. Now each VM's strategy is its category, the backends
apart, and the disk figure says why it draws no bytes per strategy, with what the hosts hold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from cowbench.compare import compare
from cowbench.results import load_results
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from cowbench.strategy_plots import _shared_hosts, strategy_table, strategy_view
from cowbench.units import format_bytes

SCENARIO = {"name": "per-vm", "hosts": [{"name": "h"}],
            "images": [{"name": "b", "virtual_size": "64MiB",
                        "synthetic": {"data": [{"offset": 0, "length": "8MiB"}]}}],
            "strategy": {"kind": "qcow2_overlay"},
            "workloads": {"w": {"rw": "randwrite", "bs": "4k", "io_size": "256k",
                                "offsets": "model"}},
            "vms": [{"name": "ov", "image": "b", "root_size": "64MiB", "workload": "w"},
                    {"name": "fc", "image": "b", "root_size": "64MiB", "workload": "w",
                     "strategy": {"kind": "full_copy"}},
                    {"name": "ch", "image": "b", "root_size": "64MiB", "workload": "w",
                     "strategy": {"kind": "snapshot_chain", "chain_depth": 4}},
                    {"name": "rb", "image": "b", "root_size": "64MiB", "workload": "w",
                     "strategy": {"kind": "rbd_clone"}}]}
LABELS = ["qcow2_overlay", "snapshot_chain, chain depth 4", "full_copy", "rbd_clone"]


def both_backends(run: Path) -> None:
    """The run as if the real backend had measured it: every VM but the RBD clone (skipped)."""
    pred = pd.read_parquet(run / "predicted.parquet")
    meas = pred[pred.entity != "vm:rb"].assign(backend="real")
    meas.to_parquet(run / "measured.parquet", index=False)
    compare(pred, meas).to_csv(run / "comparison.csv", index=False)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "backends": ["sim", "real"]}))


def test_each_vms_strategy_is_a_category_backends_apart(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_scenario(parse_scenario(SCENARIO), run, "sim")
    view = strategy_view(load_results(run))
    assert view.per_vm and view.order == LABELS
    assert dict(zip(view.amp["entity"], view.amp["setting"], strict=True)) == {
        "vm:ov": LABELS[0], "vm:ch": LABELS[1], "vm:fc": LABELS[2], "vm:rb": LABELS[3]}
    shutil.copytree(run, tmp_path / "both")
    both_backends(tmp_path / "both")
    view = strategy_view(load_results(tmp_path / "both"))
    assert view.order == [f"{o} [{w}]" for o in LABELS for w in ("predicted", "measured")
                          if (o, w) != ("rbd_clone", "measured")]
    # the model-only RBD clone is in its own category, never among the measured VMs
    assert set(view.amp[view.amp["entity"] == "vm:rb"]["setting"]) == {"rbd_clone [predicted]"}


def test_the_host_is_not_split_per_strategy_and_says_what_it_holds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_scenario(parse_scenario(SCENARIO), run, "sim")
    view = strategy_view(load_results(run))
    rec = pd.read_parquet(run / "predicted.parquet")
    used = rec[(rec.entity == "host:h") & (rec.metric == "used_bytes") & rec.t_s.isna()].value
    said = " ".join(_shared_hosts(view).split())
    assert said == ("one host holds several strategies here (the VMs' own strategies): its disk "
                    "cannot be split per strategy; the hosts hold "
                    f"{format_bytes(float(used.iloc[0]))} (predicted) at the end")
    table = strategy_table(view).set_index("strategy and knobs")["host disk at the end"]
    assert table["rbd_clone"] == "in Ceph, not on a host"
    assert table["full_copy"] == "on hosts shared with the other strategies"
