"""The model's fio JSON has one entry per job as fio's own has (issue 19): per job section,
per clone unless ``group_reporting``, each named and grouped as fio names and groups it, with
the figures of the clones it sums (``job:<vm>/<k>`` records, ``cowbench.fiojobs``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench.fiojobs import reported_jobs
from cowbench.fiojson import fio_json
from cowbench.runner import run_scenario
from cowbench.scenario import Scenario, load_scenario
from cowbench.store import read_records

from .clirun import cowbench
from .conftest import small_dict

needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="needs fio")

WRITE_THEN_READ = """\
[global]
bs=64k
iodepth=2
size=2m
[writer]
rw=write
[reader]
rw=read
stonewall
"""
CLONES = "[global]\nbs=4k\niodepth=2\nsize=1m\n[w]\nrw=randwrite\nnumjobs=2\n"
CLONES_GROUPED = CLONES.replace("[w]", "group_reporting\n[w]")
# new_group in [global]: every job after the first starts a group; y has two clones
NEW_GROUPS = ("[global]\nbs=4k\nsize=1m\nrw=read\nnew_group\n[x]\n[y]\nnumjobs=2\nstonewall\n"
              "[z]\n")
# y's clones, reported as a group, join x's entry (the same group, the run before); z does not
JOINED = "[global]\nbs=4k\nsize=1m\nrw=read\n[x]\n[y]\ngroup_reporting\nnumjobs=2\n[z]\n"

Entry = tuple[str, int, tuple[int, ...]]  # jobname, groupid, the runs it sums
#: a job file, and each entry of fio's jobs array for it
CASES: dict[str, tuple[str, list[Entry]]] = {
    "write-then-read": (WRITE_THEN_READ, [("v.writer", 0, (0,)), ("v.reader", 1, (1,))]),
    "clones": (CLONES, [("v", 0, (0,)), ("v", 0, (1,))]),
    "clones-grouped": (CLONES_GROUPED, [("v", 0, (0, 1))]),
    "new-groups": (NEW_GROUPS, [("v.x", 0, (0,)), ("v.y", 1, (1,)), ("v.y", 1, (2,)),
                                ("v.z", 2, (3,))]),
    "joined": (JOINED, [("v.x", 0, (0, 1, 2)), ("v.z", 0, (3,))]),
}


def _scenario(tmp: Path, job: str) -> Scenario:
    (tmp / "job.fio").write_text(job)
    p = tmp / "s.yaml"
    p.write_text("name: fj\nseed: 3\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                 "{data: [{offset: 0, length: 16MiB}]}}]\nstrategy: {kind: qcow2_overlay, "
                 "cluster_size: 64KiB}\nvms: [{name: v, image: b, workload: "
                 "{job_file: job.fio, offsets: fio}}]\n")
    return load_scenario(p)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_jobs_fio_reports_for_a_workload(tmp_path: Path, case: str) -> None:
    job, wanted = CASES[case]
    got = reported_jobs(_scenario(tmp_path, job).workloads["v"], "v")
    assert [(e.jobname, e.groupid, e.runs) for e in got] == wanted


@needs_fio
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_jobs_are_fio_s_own(tmp_path: Path, case: str) -> None:
    """fio's null engine on the same file: the same entries (its names are the sections'),
    groups, and each entry's I/Os the sum of its runs'."""
    job, _ = CASES[case]
    wl = _scenario(tmp_path, job).workloads["v"]
    out = subprocess.run(["fio", "--ioengine=null", "--output-format=json",
                          str(tmp_path / "job.fio")], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    fio = [(j["jobname"], j["groupid"], j["read"]["total_ios"] + j["write"]["total_ios"])
           for j in json.loads(out)["jobs"]
           if "jobname" in j]  # not fio's empty last entry of a mixed group (cowbench.fiojobs)
    ios = [(p.size or 0) // p.bs for p in wl.parts for _ in range(p.numjobs)]  # each run's
    mine = [(wl.parts[e.part].section or "w", e.groupid, sum(ios[i] for i in e.runs))
            for e in reported_jobs(wl, "v")]
    assert mine == fio


def _model_doc(tmp: Path, job: str) -> tuple[dict[str, Any], pd.DataFrame]:
    s = _scenario(tmp, job)
    run_scenario(s, tmp / "run", "sim")
    rec = read_records(tmp / "run" / "predicted.parquet")
    return fio_json(rec, "vm:v", s.workloads["v"]), rec


@needs_fio
@pytest.mark.parametrize("case", ["write-then-read", "clones", "clones-grouped"])
def test_the_model_json_has_an_entry_per_job_fio_reports(tmp_path: Path, case: str) -> None:
    """Each entry its own clones' figures: they add up to the VM's, which are unchanged."""
    job, wanted = CASES[case]
    doc, rec = _model_doc(tmp_path, job)
    jobs: list[dict[str, Any]] = doc["jobs"]
    assert [(j["jobname"], j["groupid"]) for j in jobs] == [(n, g) for n, g, _ in wanted]
    vm = rec[rec.entity == "vm:v"].set_index("metric").value
    for kind in ("read", "write"):
        assert sum(j[kind]["total_ios"] for j in jobs) == vm.get(f"{kind}_ios", 0)
    if case == "write-then-read":  # the writer writes only, the reader reads only
        assert [(j["read"]["total_ios"], j["write"]["total_ios"]) for j in jobs] == [
            (0, 32), (32, 0)]
        # each over its own stage: the VM's rates are the jobs' own
        assert jobs[0]["write"]["iops"] == pytest.approx(vm["write_iops"])
        assert jobs[1]["read"]["iops"] == pytest.approx(vm["read_iops"])
    if case == "clones":  # each clone did its own 256 writes, over its own run
        assert [j["write"]["total_ios"] for j in jobs] == [256, 256]
        assert sum(j["write"]["iops"] for j in jobs) == pytest.approx(vm["write_iops"],
                                                                      rel=0.05)
    assert set(rec.entity) == {"vm:v", "host:host1", "image:b", "cache:host1"} | (
        {f"job:v/{k}" for k in range(len(wanted))} if len(wanted) > 1 else set())


@needs_fio
def test_the_fio_json_command_writes_the_jobs(tmp_path: Path) -> None:
    from .clirun import cowbench

    s = _scenario(tmp_path, WRITE_THEN_READ)
    run_scenario(s, tmp_path / "run", "sim")
    assert cowbench("fio-json", str(tmp_path / "run")).code == 0
    assert sorted(p.name for p in (tmp_path / "run" / "fio-json").iterdir()) == ["v.json"]
    doc = json.loads((tmp_path / "run" / "fio-json" / "v.json").read_text())
    assert [(j["jobname"], j["groupid"], j["job options"]["rw"]) for j in doc["jobs"]] == [
        ("v.writer", 0, "write"), ("v.reader", 1, "read")]
    assert "/jobs/1/usr_cpu" in doc["cowbench"]["zero_for_fio_plot"]


@needs_fio
@pytest.mark.parametrize("case", ["write-then-read", "clones"])
def test_cowbench_s_fio_reader_reads_a_model_file_of_several_jobs(tmp_path: Path,
                                                                  case: str) -> None:
    """real.workload.fio.FioResult folds the entries as it folds a real run's clones: the
    VM's counts and mean latencies come back (the model leaves slat, min, max and stddev
    null; the p99 of several clones is not theirs to fold), the rates within the rounding of
    fio's runtime to whole milliseconds (half a millisecond of runs of a few here)."""
    from real.workload.fio import FioResult

    doc, rec = _model_doc(tmp_path, CASES[case][0])
    vm = rec[rec.entity == "vm:v"].set_index("metric").value
    result = FioResult(doc)
    for kind in ("read", "write"):
        got = result.figures(kind)
        assert got[f"{kind}_ios"] == vm.get(f"{kind}_ios", 0)
        if f"{kind}_lat_mean_s" in vm:
            assert got[f"{kind}_lat_mean_s"] == pytest.approx(vm[f"{kind}_lat_mean_s"])
            runtime_ms = max(j[kind]["runtime"] for j in doc["jobs"])
            assert got[f"{kind}_iops"] == pytest.approx(vm[f"{kind}_iops"],
                                                        rel=0.5 / runtime_ms)


def test_a_timeline_run_gets_its_own_jobs(tmp_path: Path) -> None:
    """Each run of a timeline is its own fio process: its jobs' records carry its ``t_s``,
    and its file (``<vm>-t<seconds>.json``) lists them."""
    from .clirun import cowbench

    p = tmp_path / "s.yaml"
    p.write_text("name: fj\nseed: 3\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                 "{data: [{offset: 0, length: 16MiB}]}}]\nstrategy: {kind: qcow2_overlay, "
                 "cluster_size: 64KiB}\nworkloads:\n  one: {rw: randwrite, bs: 4k, size: 1m}\n"
                 "  two: {rw: randwrite, bs: 4k, size: 1m, numjobs: 2, offsets: model}\n"
                 "vms: [{name: v, image: b, workload: one}]\ntimeline:\n  end_s: 100\n"
                 "  events:\n    - {t: 0, op: boot, vm: v}\n    - {t: 0, op: run, vm: v}\n"
                 "    - {t: 50, op: run, vm: v, workload: two}\n")
    run_scenario(load_scenario(p), tmp_path / "run", "sim")
    rec = read_records(tmp_path / "run" / "predicted.parquet")
    jobs = rec[rec.entity.str.startswith("job:")]
    assert set(jobs.entity) == {"job:v/0", "job:v/1"} and set(jobs.t_s) == {50.0}
    assert cowbench("fio-json", str(tmp_path / "run")).code == 0
    docs = {t: json.loads((tmp_path / "run" / "fio-json" / f"v-t{t}.json").read_text())
            for t in (0, 50)}
    assert [(j["jobname"], j["write"]["total_ios"]) for j in docs[0]["jobs"]] == [("v", 256)]
    assert [(j["jobname"], j["write"]["total_ios"]) for j in docs[50]["jobs"]] == [
        ("v", 256), ("v", 256)]


def test_a_trim_jobs_entry_has_its_trims(tmp_path: Path) -> None:
    """A trimwrite job, then a randtrim one after a stonewall: each entry of the model's fio
    JSON has its own trims (count, IOPS, latency) and its runtime; the randtrim job, which
    neither reads nor writes, was an entry without I/O and without a runtime."""
    d = small_dict(strategy={"kind": "qcow2_overlay", "cluster_size": "64KiB",
                             "discard": "unmap"})
    (tmp_path / "trims.fio").write_text("[tw]\nrw=trimwrite\nbs=64k\nsize=8m\n"
                                        "[rt]\nstonewall\nrw=randtrim\nbs=64k\nsize=8m\n")
    d["workloads"] = {"t": {"job_file": "trims.fio"}}
    d["vms"] = [{"name": "v", "image": "img", "workload": "t"}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    run = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--uncalibrated",
                   "--out", str(tmp_path / "run"))
    assert run.code == 0, run.stderr
    made = cowbench("fio-json", str(tmp_path / "run"))
    assert made.code == 0, made.stderr
    jobs = json.loads((tmp_path / "run" / "fio-json" / "v.json").read_text())["jobs"]
    assert [j["jobname"] for j in jobs] == ["v.tw", "v.rt"]
    for job in jobs:
        trim = job["trim"]
        assert trim["total_ios"] == 128 and trim["iops"] > 0, trim
        assert trim["clat_ns"]["mean"] > 0 and job["job_runtime"] is not None, job
    assert jobs[0]["write"]["total_ios"] == 128 and jobs[1]["write"]["total_ios"] == 0
