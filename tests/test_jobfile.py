"""fio job files as workloads (issue 19, deliverable 1): the parser, each option's handling,
job_file in a scenario, `cowbench fio-check`, and a scenario run from job files in the model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cowbench.errors import ScenarioError
from cowbench.jobfile import MAX_INCLUDE_DEPTH, fio_seconds, fio_size, read_sections
from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario

from .clirun import cowbench, cowbench_line

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "scenarios" / "jobs"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_global_applies_to_the_jobs_after_it(tmp_path: Path) -> None:
    p = _write(tmp_path, "j.fio", "[global]\nbs=4k\nrw=read\n[a]\nsize=1m\n"
                                  "[global]\nbs=8k\n[b]\nrw=write\n[c]\nbs=16k\n")
    a, b, c = read_sections(p)
    assert (a.name, a.options) == ("a", {"bs": "4k", "rw": "read", "size": "1m"})
    assert b.options == {"bs": "8k", "rw": "write"}  # the later [global] adds to the first
    assert c.options == {"bs": "16k", "rw": "read"}


def test_comments_flags_and_include(tmp_path: Path) -> None:
    _write(tmp_path, "common.fio", "# shared\niodepth=4\n")
    p = _write(tmp_path, "j.fio", "; a comment\n[global]\ninclude common.fio\n\n"
                                  "[a] ; the job\n  time_based ; flag\nruntime=10\n# trailing\n"
                                  "bs=8k#no space\n")
    (a,) = read_sections(p)
    # fio 3.33 ends a line at # or ; (measured: bs=8k#c and bs=8k ; c both give 8k)
    assert a.options == {"iodepth": "4", "time_based": None, "runtime": "10", "bs": "8k"}


def test_include_depth_and_self_include_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "self.fio", "[a]\ninclude self.fio\n")
    with pytest.raises(ScenarioError, match="includes itself"):
        read_sections(tmp_path / "self.fio")
    for i in range(MAX_INCLUDE_DEPTH + 2):
        _write(tmp_path, f"d{i}.fio", f"include d{i + 1}.fio\n")
    with pytest.raises(ScenarioError, match="nest more than"):
        read_sections(tmp_path / "d0.fio")
    # a diamond: each level includes the next twice, 2**8 reads from 9 small files
    for i in range(8):
        _write(tmp_path, f"m{i}.fio", f"include m{i + 1}.fio\ninclude m{i + 1}.fio\n")
    _write(tmp_path, "m8.fio", "bs=4k\n")
    with pytest.raises(ScenarioError, match="more than 64 files read through include"):
        read_sections(tmp_path / "m0.fio")


def test_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_BS", "64k")
    p = _write(tmp_path, "j.fio", "[a]\nbs=${JOB_BS}\nnumjobs=$ncpus\niodepth=$pagesize\n"
                                  "size=$mb_memory\n")
    (a,) = read_sections(p)
    assert a.options["bs"] == "64k"
    assert a.options["numjobs"] == str(os.sysconf("SC_NPROCESSORS_ONLN"))
    assert a.options["iodepth"] == str(os.sysconf("SC_PAGESIZE"))
    mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE") // 2**20
    assert a.options["size"] == str(mb)
    monkeypatch.delenv("JOB_BS")
    with pytest.raises(ScenarioError, match=r"\$\{JOB_BS\} is not set"):
        read_sections(p)
    _write(tmp_path, "k.fio", "[a]\nbs=$other\n")
    with pytest.raises(ScenarioError, match="line 2"):
        read_sections(tmp_path / "k.fio")


def test_sizes_follow_fios_rules() -> None:
    """Measured on fio 3.33 (null engine io_bytes): 8k = 8kb = 8192, 8kib = 8000, 1mib =
    1000000 with kb_base=1024; kb_base=1000 swaps them."""
    assert fio_size("8k") == fio_size("8KB") == 8192
    assert fio_size("8kib") == fio_size("8KiB") == 8000
    assert fio_size("1m") == 1 << 20 and fio_size("1mib") == 10**6
    assert fio_size("8k", 1000) == 8000 and fio_size("8kib", 1000) == 8192
    assert fio_size("4096") == 4096 and fio_size("1g") == 1 << 30
    for bad in ("4x", "k", "1.5m", "-4k", "8i"):
        with pytest.raises(ValueError):
            fio_size(bad)
    assert fio_seconds("30") == 30 and fio_seconds("2m") == 120 and fio_seconds("500ms") == 0.5


def test_bad_header_and_option_before_section(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="line 1: an option before"):
        read_sections(_write(tmp_path, "a.fio", "bs=4k\n"))
    with pytest.raises(ScenarioError, match=r"line 2: a section header is \[name\]"):
        read_sections(_write(tmp_path, "b.fio", "[a]\n[b\n"))
    with pytest.raises(ScenarioError, match="no such file"):
        read_sections(_write(tmp_path, "c.fio", "include missing.fio\n"))


def _scenario(tmp: Path, workload: str, job: str) -> Path:
    _write(tmp, "job.fio", job)
    return _write(tmp, "s.yaml", "name: t\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                                 "{data: [{offset: 0, length: 1MiB}]}}]\n"
                                 f"workloads: {{w: {workload}}}\n"
                                 "vms: [{name: v, image: b, workload: w}]\n")


def test_a_job_file_becomes_a_workload(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "{job_file: job.fio, section: b}",
                  "[global]\nioengine=libaio\ndirect=1\nbs=8k\n[a]\nrw=read\n"
                  "[b]\nrw=randrw\nrwmixwrite=30\nsize=16m\nio_size=4m\nnorandommap\n")
    wl = load_scenario(p).workloads["w"]
    assert (wl.rw, wl.bs, wl.size, wl.io_size, wl.rwmixread, wl.norandommap) == (
        "randrw", 8192, 16 << 20, 4 << 20, 70, True)
    assert [(r.option, r.value) for r in wl.replaced] == [("ioengine", "libaio"),
                                                          ("direct", "1")]


def test_refused_options_name_their_key_path(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "{job_file: job.fio, offsets: model}",
                  "[db]\nrw=randwrite\nfsync=1\noffset_increment=1m\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    text = str(err.value)
    assert "workloads.w.job_file[db].fsync: fsync: a flush of the disk after every N " \
           "writes; the model does not simulate flushes yet" in text
    assert "workloads.w.job_file[db].offset_increment: the model does not generate it; " \
           "fio carries it with offsets: auto (the default) or fio" in text
    p = _scenario(tmp_path, "{job_file: job.fio}", "[db]\nrw=randrw:bogus\n")
    with pytest.raises(ScenarioError, match=r"workloads\.w\.job_file\[db\]\.rw: after ':'"):
        load_scenario(p)
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "job_file[db].rw" in ran.stderr and "Traceback" not in ran.stderr


def test_several_sections_are_several_jobs_or_one_chosen(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "{job_file: job.fio}", "[a]\nrw=read\n[b]\nrw=write\n")
    wl = load_scenario(p).workloads["w"]
    assert [(j.section, j.rw) for j in wl.jobs] == [("a", "read"), ("b", "write")]
    p = _scenario(tmp_path, "{job_file: job.fio, section: b}", "[a]\nrw=read\n[b]\nrw=write\n")
    wl = load_scenario(p).workloads["w"]
    assert (wl.rw, wl.jobs) == ("write", [])
    p = _scenario(tmp_path, "{job_file: job.fio, section: c}", "[a]\nrw=read\n")
    with pytest.raises(ScenarioError, match=r"workloads\.w\.section: no job section \[c\]"):
        load_scenario(p)


def test_offset_options_are_carried_with_offsets_auto(tmp_path: Path) -> None:
    from cowbench.fiojob import fio_options

    p = _scenario(tmp_path, "{job_file: job.fio}",
                  "[s]\nrw=randwrite\nnumjobs=2\nsize=8m\noffset_increment=16m\n")
    wl = load_scenario(p).workloads["w"]
    assert wl.fio_extra == {"offset_increment": "16m"}
    assert fio_options(wl)[-1] == "--offset_increment=16m"


def test_fio_check_as_the_readme_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(ln.strip() for ln in readme.splitlines() if ln.strip().startswith(
        "cowbench fio-check"))
    assert line == "cowbench fio-check scenarios/jobs/db.fio"
    monkeypatch.chdir(ROOT)
    ran = cowbench_line(line)
    assert ran.code == 0, ran.stderr
    assert "[db]" in ran.stdout
    assert "ioengine=libaio" in ran.stdout and "replaced by the backend" in ran.stdout
    assert "bs=8k" in ran.stdout and "both backends: bs=8192" in ran.stdout


def test_fio_check_exits_2_on_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "j.fio", "[a]\nrw=write\nfsync=4\nzonemode=strided\n")
    ran = cowbench("fio-check", str(p))
    assert ran.code == 2
    assert "fsync=4" in ran.stdout and "refused" in ran.stdout
    assert "zonemode=strided" in ran.stdout and "fio only, with offsets: auto or fio" in ran.stdout


@pytest.mark.parametrize("name", ["db.fio", "fio-rand-write.fio", "fio-seq-write.fio",
                                  "surface-scan.fio", "strided.fio",
                                  "fio-rand-RW.fio"])
def test_example_job_files_pass_fio_check(name: str) -> None:
    ran = cowbench("fio-check", str(JOBS / name))
    assert ran.code == 0, ran.stdout + ran.stderr


def test_job_files_scenario_in_the_model(tmp_path: Path) -> None:
    s = load_scenario(ROOT / "scenarios" / "job-files.yaml")
    outcome = run_scenario(s, tmp_path / "run", "sim")
    pred = outcome.predicted
    assert pred is not None
    clusters = pred[(pred.metric == "data_clusters") & pred.entity.str.startswith("vm:")]
    got = dict(zip(clusters.entity, clusters.value, strict=True))
    # surface-scan's write pass: 32 MiB sequential from 0 = 512 clusters of 64 KiB
    assert got["vm:scan"] == 512
    assert 0 < got["vm:db"] <= (256 << 20) // 65536
    mix = s.workloads["mix"]
    assert (mix.rw, mix.rwmixread, mix.numjobs, mix.bs) == ("randrw", 60, 4, 4096)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    notes = meta["workload_notes"]
    assert {n["option"] for n in notes["db"]} == {"ioengine", "direct", "group_reporting"}
    assert {"option": "filename", "value": "fio-rand-write", "reason": notes["randw"][1][
        "reason"]} in notes["randw"]


def test_a_sweep_over_a_job_file_scenario(tmp_path: Path) -> None:
    from cowbench.sweep import load_sweep

    _scenario(tmp_path, "{job_file: job.fio}", "[a]\nrw=randwrite\nbs=8k\nsize=8m\n")
    sw = _write(tmp_path, "sw.yaml", "name: sw\nscenario: s.yaml\n"
                                     "grid: {workloads.w.bs: [4096, 16384]}\n")
    points = load_sweep(sw).points
    assert sorted(p.scenario.workloads["w"].bs for p in points) == [4096, 16384]
    assert {p.scenario.workloads["w"].size for p in points} == {8 << 20}


def test_a_vms_own_job_file_with_count_and_round_trip(tmp_path: Path) -> None:
    import yaml

    from cowbench.scenario import dump_scenario, parse_scenario

    _write(tmp_path, "job.fio", "[j]\nrw=randwrite\nioengine=psync\noffset_increment=1m\n"
                                "numjobs=2\nsize=1m\n")
    p = _write(tmp_path, "s.yaml", "name: t\nimages: [{name: b, virtual_size: 64MiB, "
               "synthetic: {data: [{offset: 0, length: 1MiB}]}}]\nvms: [{name: v, image: b, "
               "count: 2, workload: {job_file: job.fio, offsets: fio}}]\n")
    s = load_scenario(p)
    assert [vm.workload for vm in s.vms] == ["v", "v"]
    assert s.workloads["v"].fio_extra == {"offset_increment": "1m"}
    again = parse_scenario(yaml.safe_load(dump_scenario(s)))
    assert again == s and again.scenario_id == s.scenario_id


def test_a_job_file_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "{job_file: /dev/zero}", "[a]\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "/dev/zero: is a character device" in ran.stderr
    ran = cowbench("fio-check", str(tmp_path))
    assert ran.code == 2 and "is a directory" in ran.stderr


def test_kb_base_in_a_job_file(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "{job_file: job.fio}", "[a]\nkb_base=1000\nbs=8kib\nsize=1m\n")
    wl = load_scenario(p).workloads["w"]
    assert (wl.bs, wl.size) == (8192, 10**6)
    p = _scenario(tmp_path, "{job_file: job.fio}", "[a]\nkb_base=12\nbs=8k\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2, ran.stderr
    assert "workloads.w.job_file[a].kb_base: kb_base must be 1000 or 1024" in ran.stderr


def test_verify_0_and_a_relative_read_iolog(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    _write(tmp_path / "jobs", "j.fio", "[a]\nrw=write\nverify=0\nread_iolog=trace.iolog\n")
    p = _scenario(tmp_path, "{job_file: jobs/j.fio}", "")
    wl = load_scenario(p).workloads["w"]
    assert wl.verify is None
    assert wl.read_iolog == str(tmp_path / "jobs" / "trace.iolog") and wl.offsets == "iolog"
