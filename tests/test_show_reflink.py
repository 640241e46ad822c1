"""A reflink copy's per-VM size in ``cowbench show`` (F6 of the strategies user test): its
``allocated_bytes`` count the extents it shares with its base (``st_blocks``, as ``du`` says),
so per VM it read like a full copy (268.1 vs 268.0 MiB) with no word. The run's table says
what it holds alone (``exclusive_bytes``), and a sweep's VM P50/P95 columns say what they count
in reflink_copy points."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cowbench.units import format_bytes

from .clirun import cowbench

SCENARIO = {"name": "reflink-show", "hosts": [{"name": "h"}],
            "images": [{"name": "b", "virtual_size": "64MiB",
                        "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
            "strategy": {"kind": "reflink_copy"},
            "workloads": {"w": {"rw": "randwrite", "bs": "4k", "io_size": "256k"}},
            "vms": [{"name": "r", "image": "b", "root_size": "64MiB", "workload": "w"},
                    {"name": "o", "image": "b", "root_size": "64MiB", "workload": "w",
                     "strategy": {"kind": "qcow2_overlay"}}]}


def test_a_runs_reflink_vm_shows_what_it_holds_alone(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    ran = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--out",
                   str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    rec = pd.read_parquet(tmp_path / "run" / "predicted.parquet")
    end = rec[rec.t_s.isna()].set_index(["entity", "metric"]).value
    alloc, own = end["vm:r", "allocated_bytes"], end["vm:r", "exclusive_bytes"]
    assert own < alloc / 10  # the case: the copy's own data is a sliver of its allocated
    shown = " ".join(cowbench("show", str(tmp_path / "run")).stdout.split())
    assert ("reflink copies: a VM's allocated counts the extents it shares with its base, so "
            "it reads like a full copy; what it holds alone is its exclusive_bytes (r "
            f"{format_bytes(alloc)} allocated, {format_bytes(own)} its own)") in shown


@pytest.mark.slow
def test_a_sweeps_vm_columns_say_what_they_count_for_reflink_points(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**SCENARIO, "vms": SCENARIO["vms"][:1]}))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({
        "scenario": "base.yaml", "seeds": 1,
        "grid": {"strategy.kind": ["reflink_copy", "full_copy"]}}))
    out = tmp_path / "out"
    ran = cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(out), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    shown = " ".join(cowbench("show", str(out)).stdout.split())
    assert ("VM P50, VM P95 in reflink_copy points: each VM's allocated bytes count the extents "
            "its copy shares with the base, so a reflink copy reads like a full copy there; "
            "what it holds alone is its exclusive_bytes") in shown
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({
        "scenario": "base.yaml", "seeds": 1, "grid": {"strategy.kind": ["full_copy"]}}))
    out2 = tmp_path / "out2"
    assert cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(out2), "--scheduler",
                    "inprocess").code == 0
    assert "in reflink_copy points" not in cowbench("show", str(out2)).stdout
