"""fio traces (cowbench/iolog.py) and the workload options that choose an offset source."""


import numpy as np
import pytest
import yaml

from cowbench.errors import ScenarioError
from cowbench.iolog import READ, TRIM, WRITE, TraceError, parse_iolog, parse_latlog
from cowbench.scenario import parse_scenario

from .clirun import cowbench
from .conftest import small_dict

V2 = """fio version 2 iolog
/dev/vdb add
/dev/vdb open
/dev/vdb write 4096 4096
/dev/vdb read 0 512
/dev/vdb trim 8192 65536
/dev/vdb close
"""

V3 = """fio version 3 iolog
24 j.0.0 add
123 j.0.0 open
127 j.0.0 write 4272128 4096
130 j.1.0 write 3047424 8192
136 j.0.0 write 0 4096
"""


def test_v2_keeps_order_and_directions():
    t = parse_iolog(V2)["/dev/vdb"]
    assert t.offsets.tolist() == [4096, 0, 8192]
    assert t.lengths.tolist() == [4096, 512, 65536]
    assert t.ddir.tolist() == [WRITE, READ, TRIM]


def test_v3_splits_clones_by_file_name():
    traces = parse_iolog(V3)
    assert list(traces) == ["j.0.0", "j.1.0"]
    assert traces["j.0.0"].offsets.tolist() == [4272128, 0]
    assert traces["j.1.0"].end == 3047424 + 8192


@pytest.mark.parametrize("text,why", [
    ("not a log\n", "not a fio iolog"),
    ("fio version 3 iolog\n1 f write x 4096\n", "integers"),
    ("fio version 2 iolog\nf write 0\n", "expected FILE"),
    ("fio version 2 iolog\nf write -4 4096\n", "negative"),
    # an OverflowError inside numpy before (exit 1); v3's time is a whole number from 0
    ("fio version 2 iolog\nf write 0 99999999999999999999999\n", "past any disk"),
    ("fio version 3 iolog\n-5 f write 0 4096\n", "time since the run's start"),
    ("fio version 3 iolog\nNaN f write 0 4096\n", "time since the run's start"),
])
def test_bad_iologs_name_line_and_reason(text, why):
    with pytest.raises(TraceError, match=why):
        parse_iolog(text, "t.log")


def test_latency_log_with_offsets():
    t = parse_latlog("17, 175993, 1, 4096, 61759488, 0\n18, 830, 0, 8192, 4096, 0\n")
    assert t.offsets.tolist() == [61759488, 4096]
    assert np.array_equal(t.ddir, [WRITE, READ])
    with pytest.raises(TraceError, match="log_offset"):
        parse_latlog("17, 175993, 1, 4096\n")


def _with_workload(**wl):
    d = small_dict()
    d["workloads"] = {"w": {"rw": "randwrite", "io_size": "1MiB", **wl}}
    d["vms"] = [{"name": "a", "image": "img", "workload": "w"}]
    return d


@pytest.mark.parametrize("wl,why", [
    ({"random_distribution": "zoned:60/10:30/20"}, "must add up to 100"),
    ({"random_distribution": "zipf:1"}, "must differ from 1.0"),
    ({"random_distribution": "pareto:1.5"}, "between 0 and 1"),
    ({"bssplit": "4k/50:64k/50", "offsets": "model"}, "set offsets: auto or fio"),
    ({"random_distribution": "bogus:1"}, "must start with one of"),
    ({"bssplit": "4k/70:64k/40", "offsets": "fio"}, "more than 100"),
    ({"offsets": "iolog"}, "needs read_iolog"),
    ({"offset": 1024, "offsets": "model"}, "multiple of bs for the model"),
    # a guest's disk takes 512-byte sectors: fio through qemu-nbd at 12345 made QEMU read
    # and rewrite the cut sectors (host bytes -19.8% / -5.8%), which no VM does
    ({"offset": 12345, "offsets": "fio"}, "offset must be a multiple of 512 bytes"),
])
def test_offset_source_rules(wl, why):
    with pytest.raises(ScenarioError, match=why):
        parse_scenario(_with_workload(**wl))


@pytest.mark.parametrize("wl", [
    {"random_distribution": "zipf:1.2"}, {"bssplit": "4k/50:64k/50"}, {"offset": 1024},
    {"time_based": True, "runtime": 5}, {"offsets": "fio", "time_based": True, "runtime": 5},
])
def test_offsets_auto_is_the_default_and_takes_what_fio_does(wl):
    """``offsets: auto`` (the default) accepts what only fio's own stream carries; a
    time-based job no longer needs rate_iops (its count of I/Os is predicted)."""
    s = parse_scenario(_with_workload(**wl))
    assert s.workloads["w"].offsets == wl.get("offsets", "auto")


def test_read_iolog_implies_iolog_source():
    s = parse_scenario(_with_workload(read_iolog="/nonexistent.log"))
    assert s.workloads["w"].offsets == "iolog"


def test_extended_l2_and_preallocation_rules():
    d = small_dict(strategy={"cluster_size": "4KiB", "extended_l2": True})
    with pytest.raises(ScenarioError, match="at least 16KiB"):
        parse_scenario(d)
    d = small_dict(strategy={"preallocation": "metadata"})
    with pytest.raises(ScenarioError, match="needs extended_l2"):
        parse_scenario(d)
    d = small_dict(strategy={"refcount_bits": 3})
    with pytest.raises(ScenarioError, match="refcount_bits"):
        parse_scenario(d)


def test_bad_read_iolog_is_refused_at_load_with_exit_2(tmp_path):
    (tmp_path / "bad.iolog").write_text("fio version 3 iolog\n1 f write zz 4096\n")
    d = _with_workload(read_iolog="bad.iolog")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    proc = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--out",
                    str(tmp_path / "run"))
    assert proc.code == 2
    assert "workloads.w.read_iolog" in proc.stderr and "integers" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,why", [
    # fio would open both files; the run failed inside the model (zip() ... longer), exit 1
    ("fio version 2 iolog\ny write 0 4096\nx write 0 4096\n", "names 2 files with I/O"),
    # past the VM's disk: validate passed it and the run failed, exit 1
    ("fio version 2 iolog\nx write 1073741824 4096\n", "past the end of vm a's"),
])
def test_a_trace_that_cannot_replay_on_the_vms_disk_is_refused_at_load(tmp_path, text, why):
    (tmp_path / "t.iolog").write_text(text)
    d = _with_workload(read_iolog="t.iolog")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    for args in (["validate"], ["run", "--backend", "sim", "--out", str(tmp_path / "run")]):
        proc = cowbench(args[0], str(tmp_path / "s.yaml"), *args[1:])
        assert proc.code == 2, proc.stderr
        assert "workloads.w.read_iolog" in proc.stderr and why in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()
