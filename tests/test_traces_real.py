"""Exact offset streams end to end: a replayed iolog, and a recorded run re-predicted.

The model's allocation is exact for a given stream, so once both backends apply the same
stream (the iolog, or what fio recorded), data_clusters must agree exactly.
"""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.resolve import resolve
from cowbench.runner import repredict, run_scenario
from cowbench.scenario import parse_scenario

from .conftest import needs_tools, small_dict

pytestmark = [pytest.mark.real, needs_tools]
MiB = 1 << 20

IOLOG = """fio version 3 iolog
1 vda add
2 vda open
3 vda write 0 4096
4 vda write 1048576 65536
5 vda write 5001216 4096
6 vda read 0 4096
7 vda write 40960000 131072
8 vda close
"""


def clusters(df: pd.DataFrame, vm: str) -> float:
    row = df[(df.entity == f"vm:{vm}") & (df.metric == "data_clusters")]
    return float(row.value.iloc[0])


def test_read_iolog_is_replayed_by_both(tmp_path: Path, no_leaks: None) -> None:
    log = tmp_path / "trace.iolog"
    log.write_text(IOLOG)
    d = small_dict()
    d["workloads"] = {"replay": {"read_iolog": "trace.iolog"}}
    d["vms"] = [{"name": "a", "image": "img", "workload": "replay"}]
    src = tmp_path / "s.yaml"
    src.write_text("")
    s = resolve(parse_scenario(d), str(src))
    out = run_scenario(s, tmp_path / "run", "both")
    assert out.predicted is not None and out.measured is not None
    # 0-4K, 1M-1M+64K, 5001216+4K: one cluster each; 40960000 = 625 x 64 KiB, +128K: two
    assert clusters(out.predicted, "a") == clusters(out.measured, "a") == 5


def test_recorded_run_is_re_predicted_exactly(tmp_path: Path, no_leaks: None) -> None:
    d = small_dict()
    d["workloads"] = {
        "one": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "2MiB",
                "write_iolog": True, "randrepeat": False},
        "two": {"rw": "randrw", "bs": "8k", "numjobs": 2, "io_size": "1MiB",
                "write_iolog": True, "randrepeat": False},
    }
    d["vms"] = [{"name": "a", "image": "img", "workload": "one"},
                {"name": "b", "image": "img", "workload": "two"}]
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    assert out.measured is not None
    _, comp_path = repredict(tmp_path / "run")
    assert comp_path is not None
    comp = pd.read_csv(comp_path)
    dc = comp[comp.metric == "data_clusters"]
    assert len(dc) == 2 and (dc.predicted == dc.measured).all()
    fb = comp[(comp.metric == "file_bytes") & comp.entity.str.startswith("vm:")]
    assert (fb.predicted == fb.measured).all()


def test_trims_reach_the_image_only_with_unmap(tmp_path: Path, no_leaks: None) -> None:
    """fio trims (exact streams from fio) through qemu-nbd --discard=unmap|ignore."""
    d = small_dict(strategy={"discard": "unmap", "cluster_size": "16KiB"})
    d["workloads"] = {
        "tw": {"rw": "trimwrite", "bs": "16k", "size": "8MiB", "offsets": "fio"},
        "wt": {"rw": "randwrite", "bs": "64k", "size": "8MiB", "io_size": "4MiB",
               "offsets": "fio"},
    }
    d["vms"] = [{"name": "a", "image": "img", "workload": "tw"},
                {"name": "b", "image": "img", "workload": "tw",
                 "strategy": {"discard": "ignore", "cluster_size": "16KiB"}},
                {"name": "c", "image": "img", "workload": "wt"}]
    vms = run_exact(d, tmp_path)
    # fio's trims are figures of both backends: counted alike (trimwrite: a trim, then a
    # write, of each block), their rate predicted too (a request through the host:
    # tests/test_trim_cost.py)
    trims = vms[vms.metric == "trim_ios"].set_index("entity")
    assert list(trims.index) == ["vm:a", "vm:b"], trims
    assert (trims.predicted == trims.measured).all() and (trims.measured == 512).all(), trims
    measured = pd.read_parquet(tmp_path / "run" / "measured.parquet")
    assert (measured[measured.metric == "trim_iops"].value > 0).sum() == 2
    assert vms[vms.metric == "trim_iops"].entity.tolist() == ["vm:a", "vm:b"]  # compared


def test_zero_writes_under_detect_zeroes(tmp_path: Path, no_leaks: None) -> None:
    """fio zero_buffers through qemu-nbd --detect-zeroes=on|unmap: zero clusters, freed with
    unmap (FACTS.md E20), the same in both backends."""
    d = small_dict(strategy={"discard": "unmap", "detect_zeroes": "unmap"})
    d["workloads"] = {
        "z": {"rw": "randwrite", "bs": "64k", "size": "16MiB", "io_size": "8MiB",
              "zero_buffers": True, "offsets": "fio"},
        "d": {"rw": "randwrite", "bs": "4k", "size": "16MiB", "io_size": "2MiB",
              "zero_buffers": True, "offsets": "fio"},
    }
    d["vms"] = [{"name": "a", "image": "img", "workload": "z"},
                {"name": "b", "image": "img", "workload": "d",
                 "strategy": {"discard": "unmap", "detect_zeroes": "on"}},
                {"name": "c", "image": "img", "workload": "z",
                 "strategy": {"detect_zeroes": "off"}}]
    vms = run_exact(d, tmp_path)
    dc = vms[vms.metric == "data_clusters"].set_index("entity").measured
    assert dc["vm:a"] == 0 and dc["vm:c"] > 0


def run_exact(d: dict[str, Any], tmp_path: Path) -> pd.DataFrame:
    """Both backends on ``d``: every VM's data_clusters and file_bytes equal; the VM rows."""
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    comp = out.comparison
    assert comp is not None
    vms = comp[comp.entity.str.startswith("vm:")]
    for metric in ("data_clusters", "file_bytes"):
        rows = vms[vms.metric == metric]
        assert len(rows) == 3 and (rows.predicted == rows.measured).all(), rows
    return vms
