"""``offsets: auto``, the default (issue 19, deliverable 2): every option fio accepts for the
block offsets is carried exactly through fio's own stream, or refused by name with its key
path; time-bounded jobs are sized by the I/O model and asked again when the count moves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cowbench import simulate
from cowbench.errors import ScenarioError, UsageError
from cowbench.fiojob import fio_null_traces, null_options
from cowbench.iolog import WRITE, parse_iolog
from cowbench.runner import run_scenario
from cowbench.scenario import Workload, load_scenario, parse_scenario
from cowbench.streams import take_streams
from cowbench.tools import PID_NAMESPACE, RawLog, own_pid_namespace

from .conftest import needs_tools

CLUSTER = 64 << 10

#: One job per family of offset options fio accepts: (family, job file lines).
FAMILIES: list[tuple[str, str]] = [
    ("offset_increment", "rw=randwrite\nnumjobs=3\nsize=2m\noffset_increment=3m\n"),
    ("unaligned offset", "rw=randwrite\nbs=4k\noffset=3k\nsize=4m\n"),
    ("zonemode=strided", "rw=write\nbs=16k\nzonemode=strided\nzonesize=256k\nzoneskip=1m\n"
                         "size=6m\n"),
    ("zipf", "rw=randwrite\nrandom_distribution=zipf:1.2\nio_size=2m\n"),
    ("pareto", "rw=randwrite\nrandom_distribution=pareto:0.3\nio_size=2m\n"),
    ("normal", "rw=randwrite\nrandom_distribution=normal:10\nio_size=2m\n"),
    ("zoned", "rw=randwrite\nrandom_distribution=zoned:60/10:30/20:10/70\nio_size=2m\n"),
    ("zoned_abs", "rw=randwrite\nrandom_distribution=zoned_abs:70/1m:30/7m\nio_size=2m\n"),
    ("bssplit", "rw=randwrite\nbssplit=4k/50:16k/30:64k/20\nio_size=2m\n"),
    ("bsrange", "rw=randwrite\nbsrange=4k-32k\nio_size=2m\n"),
    ("blockalign", "rw=randwrite\nbs=4k\nblockalign=32k\nio_size=1m\n"),
    ("percentage_random", "rw=randwrite\nbs=8k\npercentage_random=60\nio_size=2m\n"),
    ("rw=randrw:N", "rw=randrw:8\nbs=4k\nio_size=2m\n"),
    ("rw=read:-8k", "rw=write:8k\nbs=4k\nsize=4m\n"),
    ("norandommap", "rw=randwrite\nnorandommap\nio_size=2m\n"),
    ("lfsr", "rw=randwrite\nrandom_generator=lfsr\nio_size=2m\n"),
]
#: Options of each family the model's own generator does not do (refused with offsets: model).
BEYOND_MODEL = {"offset_increment", "unaligned offset", "zonemode=strided", "bssplit",
                "bsrange", "blockalign", "percentage_random", "rw=randrw:N", "rw=read:-8k"}


def _scenario(tmp: Path, job: str, own: str = "") -> Path:
    (tmp / "job.fio").write_text("[global]\nioengine=libaio\ndirect=1\nsize=8m\n[j]\n" + job)
    p = tmp / "s.yaml"
    p.write_text("name: t\nseed: 2\nimages: [{name: b, virtual_size: 16MiB, synthetic: "
                 "{data: [{offset: 0, length: 1MiB}]}}]\nstrategy: {kind: qcow2_overlay, "
                 f"cluster_size: 64KiB}}\nworkloads: {{w: {{job_file: job.fio{own}}}}}\n"
                 "vms: [{name: v, image: b, workload: w}]\n")
    return p


@pytest.mark.parametrize("family,job", FAMILIES, ids=[f for f, _ in FAMILIES])
def test_each_family_is_taken_by_auto_and_named_when_refused(tmp_path: Path, family: str,
                                                             job: str) -> None:
    wl = load_scenario(_scenario(tmp_path, job)).workloads["w"]
    assert wl.offsets == "auto"
    if family not in BEYOND_MODEL:
        return
    with pytest.raises(ScenarioError, match=r"workloads\.w[.:]") as err:
        load_scenario(_scenario(tmp_path, job, ", offsets: model"))
    assert "offsets: auto" in str(err.value)
    assert family.split("=")[0].split()[-1] in str(err.value)


@pytest.mark.parametrize("text,why", [
    ("size=12.5%", r"workloads\.w\.job_file\[j\]\.size: size in percent is a whole number"),
    ("offset=125%", r"workloads\.w\.job_file\[j\]\.offset: offset in percent is a whole "),
    ("filesize=50%", r"workloads\.w\.job_file\[j\]\.filesize: '50%': a percentage is only"),
    ("rw=randrw:x", r"workloads\.w\.job_file\[j\]\.rw: after ':' fio takes a count"),
])
def test_bad_percentages_and_sequences_are_refused_by_key_path(tmp_path: Path, text: str,
                                                               why: str) -> None:
    with pytest.raises(ScenarioError, match=why):
        load_scenario(_scenario(tmp_path, f"rw=randwrite\n{text}\n"))


def _fio_clusters(tmp: Path, wl_opts: list[str], disk: int) -> int:
    """Distinct 64 KiB clusters fio's null engine writes for these options: the oracle, run
    here with the test's own argv. Strided zones jump over the whole device (a file of the
    disk's size; tests/test_jobfile_table.py checks that against qemu-nbd)."""
    log = tmp / "oracle.iolog"
    whole = "--filesize" if any(o.startswith("--zonemode") for o in wl_opts) else "--size"
    subprocess.run(["fio", "--name=v", "--ioengine=null", f"{whole}={disk}", *wl_opts,
                    f"--write_iolog={log}", "--output-format=json", f"--output={tmp / 'o'}"],
                   check=True, capture_output=True)
    clusters: set[int] = set()
    for t in parse_iolog(log.read_text()).values():
        w = t.ddir == WRITE
        for off, n in zip(t.offsets[w].tolist(), t.lengths[w].tolist(), strict=True):
            clusters.update(range(off // CLUSTER, (off + n - 1) // CLUSTER + 1))
    return len(clusters)


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("family,job", [f for f in FAMILIES if "numjobs" not in f[1]],
                         ids=[f for f, j in FAMILIES if "numjobs" not in j])
def test_the_model_applies_fios_own_stream(tmp_path: Path, family: str, job: str) -> None:
    """With auto, the model's data_clusters are the distinct clusters of fio's own stream."""
    s = load_scenario(_scenario(tmp_path, job))
    records = simulate(s)
    got = records[(records.entity == "vm:v") & (records.metric == "data_clusters")].value
    opts = null_options(s.workloads["w"], None, None)
    assert float(got.iloc[0]) == _fio_clusters(tmp_path, opts, 16 << 20)


def _records(vm: str, ios: float, seconds: float) -> pd.DataFrame:
    rows = [("write_ios", ios), ("write_iops", ios / seconds)]
    return pd.DataFrame({"entity": f"vm:{vm}", "metric": [m for m, _ in rows],
                         "value": [v for _, v in rows]})


@needs_tools
@pytest.mark.real
def test_a_time_based_job_is_asked_again_when_its_stream_runs_out(tmp_path: Path) -> None:
    """The first prediction (on the model's own offsets) says 1000 I/Os; on fio's stream the
    model runs faster and uses all of it before its 2 s: fio is asked again, for the count
    at the rate the model ran (4000 I/Os a second over 2 s), plus the margin."""
    data = {"data": [{"offset": 0, "length": "1MiB"}]}
    s = parse_scenario({"name": "t", "images": [{"name": "b", "virtual_size": "16MiB",
                                                 "synthetic": data}],
                        "workloads": {"w": {"rw": "randwrite", "size": "8MiB", "iodepth": 2,
                                            "time_based": True, "runtime": 2}},
                        "vms": [{"name": "v", "image": "b", "workload": "w"}]})
    calls: list[dict[str, Any]] = []

    def model(_s: Any, traces: Any) -> pd.DataFrame:
        calls.append(dict(traces or {}))
        if len(calls) == 1:  # the model's own offsets
            return _records("v", 1000, 2)
        n = len(traces["v"][0])
        return _records("v", n, 0.25 * n / 1000) if len(calls) == 2 else _records("v", 7000, 2)

    plan = take_streams(s, 1, RawLog(tmp_path / "raw"), model)
    assert len(calls) == 3
    assert len(calls[1]["v"][0]) == 1000 * 12 // 10 + 2  # the margin and the depth
    assert len(calls[2]["v"][0]) == 8000 * 12 // 10 + 2
    assert plan.offsets["v"] == {"workload": "w", "offsets": "fio", "stream": "predicted",
                                 "ios_per_clone": 9602, "rounds": 2, "engine": "null",
                                 "exact": True}
    first, again = calls[1]["v"][0], calls[2]["v"][0]
    assert np.array_equal(again.offsets[:len(first)], first.offsets)  # one stream, longer


@needs_tools
@pytest.mark.real
def test_a_stand_ins_count_is_asked_with_the_wider_margin(tmp_path: Path) -> None:
    """A job the model cannot generate (``bssplit``) is sized by its stand-in, a cruder guess
    (one block size, the model's own offsets): fio is asked for twice its count and the depth,
    so a job up to twice as fast on its own stream costs no second run of the model; a count
    the model ran on fio's stream is asked with the usual margin."""
    data = {"data": [{"offset": 0, "length": "1MiB"}]}
    s = parse_scenario({"name": "t", "images": [{"name": "b", "virtual_size": "16MiB",
                                                 "synthetic": data}],
                        "workloads": {"w": {"rw": "randwrite", "bssplit": "4k/50:64k/50",
                                            "size": "8MiB", "iodepth": 2, "time_based": True,
                                            "runtime": 2, "offsets": "fio"}},
                        "vms": [{"name": "v", "image": "b", "workload": "w"}]})

    def sized(iops_on_stream: float) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
        calls: list[tuple[Any, Any]] = []

        def model(scenario: Any, traces: Any) -> pd.DataFrame:
            calls.append((scenario, dict(traces or {})))
            if len(calls) == 1:  # the stand-in: 500 I/Os a second over the job's 2 s
                return _records("v", 1000, 2)
            used = min(len(traces["v"][0]), iops_on_stream * 2)  # until the stream runs out
            return _records("v", used, used / iops_on_stream)

        plan = take_streams(s, 1, RawLog(tmp_path / f"raw-{iops_on_stream}"), model)
        return calls, plan.offsets["v"]

    calls, offsets = sized(900)  # 1.8 times the stand-in's rate
    stand_in = calls[0][0].workloads["w"]
    assert stand_in.bssplit is None and stand_in.offsets == "model"
    assert len(calls) == 2 and len(calls[1][1]["v"][0]) == 2 * 1000 + 2
    assert offsets["ios_per_clone"] == 2002 and offsets["rounds"] == 1
    calls, offsets = sized(1500)  # three times: the stream of 2002 runs out at 1.33 s
    assert len(calls) == 3  # asked again for 1.5 times what it used, 3003, and the margin
    assert offsets["ios_per_clone"] == len(calls[2][1]["v"][0]) == 3604 + 2
    assert offsets["rounds"] == 2


@needs_tools
@pytest.mark.real
def test_run_json_says_where_each_vms_offsets_came_from(tmp_path: Path) -> None:
    s = load_scenario(_scenario(tmp_path, "rw=randwrite\nio_size=1m\n"))
    run_scenario(s, tmp_path / "run", "sim")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["offsets"] == {"v": {"workload": "w", "offsets": "fio", "stream": "whole",
                                      "engine": "null", "exact": True}}


def test_without_fio_auto_is_the_model_and_refuses_what_only_fio_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no fio on it
    plain = load_scenario(_scenario(tmp_path, "rw=randwrite\nio_size=1m\n"))
    run_scenario(plain, tmp_path / "run", "sim")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["offsets"] == {"v": {"workload": "w", "offsets": "model"}}
    split = load_scenario(_scenario(tmp_path, "rw=randwrite\nbssplit=4k/50:64k/50\n"))
    with pytest.raises(UsageError, match=r"workloads\.w: bssplit needs fio's own offset "
                                         r"stream \(offsets: auto\), but fio is not installed"):
        run_scenario(split, tmp_path / "run2", "sim")
    assert not (tmp_path / "run2").exists()


@needs_tools
@pytest.mark.real
def test_a_verify_jobs_null_run_leaves_nothing_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fio saves a verify job's state in its working directory (local-*-verify.state); the
    null run asks it not to."""
    s = load_scenario(_scenario(tmp_path, "rw=write\nverify=md5\ndo_verify=0\n"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    simulate(s)
    assert list(cwd.iterdir()) == []


@needs_tools
@pytest.mark.real
def test_a_null_engine_run_is_in_a_pid_namespace_of_its_own(tmp_path: Path) -> None:
    """The runs that take a job's offset stream from fio's null engine are contained as the
    real runs are (``cowbench.tools.PID_NAMESPACE``): unshare, dying with cowbench, takes fio
    and its job processes with it (tests/test_fio_watchdog.py)."""
    if not own_pid_namespace():
        pytest.skip("this machine does not allow a PID namespace (needs CAP_SYS_ADMIN)")
    wl = Workload(rw="randwrite", io_size=1 << 20)
    traces = fio_null_traces(wl, "v", 16 << 20, RawLog(tmp_path / "raw"), None, 1)
    assert sum(len(t) for t in traces) == 256  # the stream itself, as before
    argv = json.loads(next((tmp_path / "raw").glob("*-fio-null-v/argv.json")).read_text())
    assert argv[:len(PID_NAMESPACE)] == list(PID_NAMESPACE) and "--ioengine=null" in argv
