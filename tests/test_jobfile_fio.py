"""Job files mean what fio 3.33 means: defaults, engines, option values and the agreement of
``cowbench fio-check`` with ``cowbench run``. The ``real`` tests pin fio's own behaviour with
``fio --parse-only`` or a run of its null engine (no disk touched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cowbench.scenario import load_scenario

from .clirun import cowbench
from .conftest import needs_tools


def fio_parse(job: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``fio ARGS --parse-only JOB``, with the clock fio settles on here named as cowbench names
    it (``real.workload.fioclock``): fio then skips testing its clock, a global option that
    changes nothing of how it parses a job, and about half the CPU of each parse (0.13 s to
    0.07 s here; these tests parse some 150 jobs)."""
    from real.workload.fioclock import clock_args

    return subprocess.run(["fio", *clock_args(), *args, "--parse-only", str(job)],
                          capture_output=True, text=True, check=False)


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def _scenario(tmp: Path, job: str, workload: str = "{job_file: job.fio}") -> Path:
    _write(tmp, "job.fio", job)
    return _write(tmp, "s.yaml", "name: t\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                                 "{data: [{offset: 0, length: 1MiB}]}}]\n"
                                 f"workloads: {{w: {workload}}}\n"
                                 "vms: [{name: v, image: b, workload: w}]\n")


def _null_ops(tmp: Path, job: str) -> list[tuple[str, int, int]]:
    """``(action, offset, length)`` of every I/O fio's null engine issues for ``job``."""
    log = tmp / "null.iolog"
    fio = _write(tmp, "null.fio", job)
    subprocess.run(["fio", "--ioengine=null", f"--write_iolog={log}", "--output=/dev/null",
                    str(fio)], check=True, capture_output=True, cwd=tmp)
    ops = []
    for line in log.read_text().splitlines()[1:]:
        parts = line.split()  # v3: time, file, action, offset, length
        if len(parts) == 5 and parts[2] in ("read", "write", "trim"):
            ops.append((parts[2], int(parts[3]), int(parts[4])))
    return ops


def test_a_job_without_rw_reads_sequentially(tmp_path: Path) -> None:
    wl = load_scenario(_scenario(tmp_path, "[plain]\nsize=4m\nbs=64k\n")).workloads["w"]
    assert (wl.rw, wl.bs, wl.size) == ("read", 65536, 4 << 20)
    wl = load_scenario(_scenario(tmp_path, "[a]\nsize=4m\n[b]\nrw=write\nsize=4m\n")
                       ).workloads["w"]
    assert [j.rw for j in wl.jobs] == ["read", "write"]


def test_a_scenario_workload_without_rw_reads_as_fio_does() -> None:
    from cowbench.scenario import Workload

    assert Workload.model_validate({"bs": "64k"}).rw == "read"


@needs_tools
@pytest.mark.real
def test_fio_reads_sequentially_without_rw(tmp_path: Path) -> None:
    ops = _null_ops(tmp_path, "[plain]\nsize=1m\nbs=64k\n")
    assert ops == [("read", i * 65536, 65536) for i in range(16)]


@pytest.mark.parametrize("engine,why", [
    ("null", "ioengine=null does no I/O on a disk: the backend's engine cannot replace it"),
    ("cpuio", "burns CPU"), ("net", "over the network"), ("netsplice", "over the network"),
    ("falloc", "works on files"), ("ftruncate", "works on files"), ("e4defrag", "works on"),
    ("filecreate", "works on"), ("filestat", "works on"), ("filedelete", "works on"),
    ("exec", "runs a program"), ("http", "objects"),
    ("dirstat", "not an engine of fio 3.33 that reads and writes a disk"),
    ("cpp_null", "not an engine of fio 3.33"),
    ("external:/tmp/e.so", "an external engine"), ("/usr/lib/fio/x.so", "an external engine"),
])
def test_an_engine_without_disk_io_is_refused(tmp_path: Path, engine: str, why: str) -> None:
    job = f"[j]\nioengine={engine}\nrw=write\nsize=1m\n"
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    assert ran.code == 2 and "Traceback" not in ran.stderr
    assert f"workloads.w.job_file[j].ioengine: ioengine={engine}" in ran.stderr
    assert why in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and why in checked.stdout


@pytest.mark.parametrize("engine", ["psync", "sync", "libaio", "io_uring", "posixaio", "mmap",
                                    "pvsync2", "splice", "nbd"])
def test_a_disk_engine_is_replaced(tmp_path: Path, engine: str) -> None:
    wl = load_scenario(_scenario(tmp_path, f"[j]\nioengine={engine}\nsize=1m\n")
                       ).workloads["w"]
    assert [(r.option, r.value) for r in wl.replaced] == [("ioengine", engine)]


@needs_tools
@pytest.mark.real
def test_every_engine_of_this_fio_is_known() -> None:
    """Each engine the installed fio lists is either replaced or refused for what it does, none
    as "not an engine of fio 3.33"."""
    from cowbench.fioengines import DISK_ENGINES, OTHER_ENGINES

    listed = subprocess.run(["fio", "--enghelp"], check=True, capture_output=True, text=True)
    engines = {ln.strip() for ln in listed.stdout.splitlines()[1:] if ln.strip()}
    assert {"null", "psync", "libaio", "nbd"} <= engines
    assert engines <= DISK_ENGINES | set(OTHER_ENGINES)


#: random_distribution values and whether fio 3.33 accepts them (fio --parse-only, measured).
DISTRIBUTIONS: dict[str, bool] = {
    "random": True, "random:5": True, "gauss": False, "gauss:5": False, "normal": True,
    "normal:5": True, "normal:99.9": True, "normal:100": False, "normal:-1": False,
    "normal:5:0.5": True, "normal:5:1.5": False, "zipf": True, "zipf:1": False,
    "zipf:1.0": False, "zipf:0.5": True, "zipf:1.2:0.3": True, "zipf:abc": False,
    "zipf:": False, "pareto": True, "pareto:0": False, "pareto:1": False, "pareto:0.5": True,
    "pareto:0.5:2": False, "Zipf:1.2": False, "zipff:1.2": False,
    "zoned:50/5:30/15:20/": True, "zoned:50/5:30/15:20/80": True,
    "zoned:50/5:30/15:20/90": False, "zoned:60/10:40/90,100/100": False,
    "zoned:50/5:50": True, "zoned:100": True, "zoned:50/5:30/15": False,
    "zoned:50/5:60/15": False, "zoned:50/0:50/50": True, "zoned:": True,
    "zoned:50/150:50/10": False, "zoned:100/150": True, "zoned:50/50:50/50:": True,
    "zoned:50/50::50/50": False, "zoned_abs:50/1m:50/2m": True, "zoned_abs:50/1m:50": True,
    "zoned_abs:60/1m:40/2m,100/1m": False, "zoned_abs:50/10:50/20": True,
}


def _accepted(spec: str) -> bool:
    from cowbench import randdist

    try:
        randdist.check(spec)
    except ValueError:
        return False
    return True


def test_random_distribution_is_accepted_as_fio_accepts_it() -> None:
    assert {v: _accepted(v) for v in DISTRIBUTIONS} == DISTRIBUTIONS


@needs_tools
@pytest.mark.real
def test_fio_accepts_the_same_random_distributions(tmp_path: Path) -> None:
    fio_says = {}
    for spec in DISTRIBUTIONS:
        job = _write(tmp_path, "d.fio", "[a]\nioengine=null\nsize=1m\nrw=randread\n"
                                        f"random_distribution={spec}\n")
        ran = fio_parse(job)
        fio_says[spec] = ran.returncode == 0 and "failed parsing" not in ran.stderr
    assert fio_says == DISTRIBUTIONS


#: Specs whose zones fio fills in (zone_split_ddir), and fio's zones for them.
FILLED: dict[str, tuple[tuple[int, int], ...]] = {
    "zoned:50/5:30/15:20/": ((50, 5), (30, 15), (20, 80)),  # fio's examples/rand-zones.fio
    "zoned:50/5:30/15:20": ((50, 5), (30, 15), (20, 80)),
    "zoned:50/0:50/50": ((50, 50), (50, 50)),
    "zoned:40/:40/:20/10": ((40, 45), (40, 45), (20, 10)),
    "zoned:50/50:50/50:": ((50, 50), (50, 50)),
    "zoned:100": ((100, 0),),  # fio's own special case: every I/O at the region's start
    "zoned:100/150": ((100, 100),),
    "zoned_abs:50/1m:50": ((50, 1 << 20), (50, 0)),
}


@pytest.mark.parametrize("spec", FILLED)
def test_zones_are_filled_in_as_fio_fills_them(spec: str) -> None:
    from cowbench import randdist

    assert randdist.parse(spec).zones == FILLED[spec]


def test_a_bare_distribution_takes_fios_default() -> None:
    from cowbench import randdist

    assert [randdist.parse(k).value for k in ("zipf", "pareto", "normal")] == [1.1, 0.2, 0.0]


@pytest.mark.parametrize("spec", [*FILLED, "zipf:1.2:0.3", "normal:5:0.2"])
def test_the_space_check_reads_the_spec_as_validate_does(tmp_path: Path, spec: str) -> None:
    """validate accepts it, the model generates it itself (offsets: model), and the free-space
    check before a real run (the model's untimed placement) reads it too: the same parser."""
    from sim.driver import predict_space

    job = f"[j]\nrw=randwrite\nsize=4m\nio_size=1m\nrandom_distribution={spec}\n"
    p = _scenario(tmp_path, job, "{job_file: job.fio, offsets: model}")
    ran = cowbench("validate", str(p))
    assert ran.code == 0, ran.stderr
    space = predict_space(load_scenario(p))
    assert (space[space.metric == "data_clusters"].value > 0).all()


def test_zoned_abs_sizes_follow_the_files_kb_base(tmp_path: Path) -> None:
    job = "[j]\nkb_base=1000\nrw=randwrite\nsize=4m\nrandom_distribution=zoned_abs:50/1k:50/1m\n"
    wl = load_scenario(_scenario(tmp_path, job)).workloads["w"]
    assert wl.random_distribution == "zoned_abs:50/1000:50/1000000"


@pytest.mark.parametrize("spec", ["zoned:50/ 5:50/95", "zoned_abs:50 /1m:50/1m"])
def test_what_the_model_does_not_generate_goes_to_fio(tmp_path: Path, spec: str) -> None:
    job = f"[j]\nrw=randwrite\nsize=4m\nrandom_distribution={spec}\n"
    wl = load_scenario(_scenario(tmp_path, job)).workloads["w"]
    assert wl.random_distribution == spec
    ran = cowbench("validate", str(_scenario(tmp_path, job, "{job_file: job.fio, offsets: "
                                                            "model}")))
    assert ran.code == 2 and "is not generated by the model" in ran.stderr, ran.stderr


AGREE: dict[str, tuple[str, int, str]] = {
    "read_iolog": ("[replay]\nread_iolog=trace.iolog\n", 0, ""),
    "an empty read_iolog": ("[replay]\nread_iolog=empty.iolog\n", 2, "the iolog holds no"),
    "a missing read_iolog": ("[replay]\nread_iolog=none.iolog\n", 2, "none.iolog"),
    "zero_buffers in one of two": ("[a]\nrw=write\nsize=1m\nzero_buffers\n[b]\nrw=write\n"
                                   "size=1m\noffset=8m\n", 2,
                                   "job_file[b].zero_buffers: jobs[1] (b): zero_buffers "
                                   "differs"),
    "randrepeat=0 of two": ("[global]\nrandrepeat=0\nrw=randwrite\nsize=1m\n[a]\n[b]\n"
                            "offset=8m\n", 0, ""),
    "only [global]": ("[global]\nrw=write\n", 2, "job_file: job.fio has no job section"),
    "verify on reads": ("[j]\nrw=randread\nverify=crc32c\n", 2,
                        "job_file[j].verify: verify is for write jobs (rw: write or "
                        "randwrite), not rw=randread"),
    "size in percent with offset_increment": (
        "[s]\nrw=randwrite\nnumjobs=4\nsize=10%\noffset_increment=25%\n", 2,
        "job_file[s].size: size in percent with offset_increment (size=10%)"),
    "offset_increment in percent, rounded unevenly": (
        "[global]\ngroup_reporting\n[w]\nrw=write\nbs=128k\nnumjobs=4\nsize=32m\n"
        "offset_increment=20%\n", 2,
        "which fio rounds up to a multiple of 131072 for each of the 4 clones unevenly"),
    "offset_increment in percent, whole blocks": (
        "[w]\nrw=write\nbs=128k\nnumjobs=4\nsize=8m\noffset_increment=25%\n", 0, ""),
}


def test_an_uneven_offset_increment_is_refused_by_its_key_path(tmp_path: Path) -> None:
    """fio rounds each clone's offset up to a block: 20% of a disk is rarely whole blocks, and
    no offset and increment in bytes give fio's clones; validate names the VM's disk,
    fio-check (no disk) the option, before a run fails on it."""
    job = "[a]\nrw=write\nsize=1m\n[w]\nrw=write\nbs=128k\nnumjobs=4\nsize=8m\n" \
          "offset_increment=20%\n"
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert (ran.code, checked.code) == (2, 2)
    assert "vms[0].workload: workload 'w' offset_increment in percent comes to 13421772 " \
        "bytes on this disk" in ran.stderr, ran.stderr
    assert "workload.job_file[w].offset_increment: 20% of a disk" in checked.stdout


@pytest.mark.parametrize("case", AGREE)
def test_fio_check_and_the_run_agree(tmp_path: Path, case: str) -> None:
    """fio-check runs the run's own checks: the same verdict, the same key path (the file's
    section and option as written)."""
    job, code, why = AGREE[case]
    _write(tmp_path, "trace.iolog", "fio version 2 iolog\nf add\nf open\nf write 0 4096\n"
                                    "f close\n")
    _write(tmp_path, "empty.iolog", "fio version 2 iolog\nf add\n")
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert (ran.code, checked.code) == (code, code), ran.stderr + checked.stdout
    assert "Traceback" not in ran.stderr + checked.stderr
    if why.startswith("job_file"):
        assert f"workloads.w.{why}" in ran.stderr
        assert f"workload.{why}" in checked.stdout
    assert why in ran.stderr and why in checked.stdout


FLAG_OPTIONS = ("randrepeat", "do_verify", "stonewall", "wait_for_previous", "time_based",
                "zero_buffers", "norandommap", "direct", "thread", "group_reporting")
FLAG_VALUES = (None, "0", "1", "2", "0x1", "true", "yes", "on")


def _flag_job(option: str, value: str | None) -> str:
    return ("[a]\nrw=randwrite\nsize=1m\nruntime=1\n"
            f"{option if value is None else f'{option}={value}'}\n")


def _cowbench_takes(tmp: Path, option: str, value: str | None) -> bool:
    from cowbench.jobfile import read_sections
    from cowbench.jobopts import workload_of

    (section,) = read_sections(_write(tmp, "f.fio", _flag_job(option, value)))
    return all(h.kind != "refused" for h in workload_of(section, offsets_fio=True)[1])


def test_flags_are_read_as_fio_reads_them(tmp_path: Path) -> None:
    """fio 3.33 reads a number (0 off, anything else on); its bool options (randrepeat,
    do_verify, direct) need a value of 0 or 1; true, yes, on are refused."""
    taken = {(o, v) for o in FLAG_OPTIONS for v in FLAG_VALUES
             if _cowbench_takes(tmp_path, o, v)}
    bools = ("randrepeat", "do_verify", "direct")
    assert taken == {(o, v) for o in FLAG_OPTIONS for v in (None, "0", "1", "2", "0x1")
                     if not (o in bools and v in (None, "2"))}
    p = _scenario(tmp_path, "[a]\nrw=write\nsize=1m\n[b]\nrw=write\nsize=1m\nstonewall=0\n"
                            "[c]\nrw=write\nsize=1m\nwait_for_previous=2\n")
    assert [j.stonewall for j in load_scenario(p).workloads["w"].jobs] == [False, False, True]
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert "stonewall=0                  both backends: stonewall=False" in checked.stdout
    assert "wait_for_previous=2          both backends: stonewall=True" in checked.stdout


@needs_tools
@pytest.mark.real
def test_fio_takes_the_same_flags(tmp_path: Path) -> None:
    for option in FLAG_OPTIONS:
        for value in FLAG_VALUES:
            job = _write(tmp_path, "f.fio", _flag_job(option, value).replace(
                "[a]\n", "[a]\nioengine=null\n"))
            ran = fio_parse(job)
            fio_takes = ran.returncode == 0 and "failed parsing" not in ran.stderr
            assert fio_takes == _cowbench_takes(tmp_path, option, value), (option, value)


@pytest.mark.parametrize(("option", "value", "why"), [
    ("rw", "randwrte", "Input should be 'read', 'write'"),
    ("random_distribution", "zoned:60/10:40/90,100/100", "random_distribution must start"),
    ("bs", "4000", "bs must be a positive multiple of 512 bytes, got 4000"),
])
def test_an_invalid_value_is_not_shown_as_carried(tmp_path: Path, option: str, value: str,
                                                  why: str) -> None:
    """fio-check's line for the option says refused, with the run's reason, and the run
    refuses it by the same key path."""
    _write(tmp_path, "job.fio", f"[j]\nrw=randwrite\nsize=1m\n{option}={value}\n")
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    line = next(x for x in checked.stdout.splitlines() if x.strip().startswith(f"{option}="))
    assert checked.code == 2 and "both backends" not in line and f"refused: {why}" in line, \
        checked.stdout
    ran = cowbench("validate", str(_scenario(tmp_path, f"[j]\nrw=randwrite\nsize=1m\n"
                                                       f"{option}={value}\n")))
    assert ran.code == 2 and f"workloads.w.job_file[j].{option}: {why}" in ran.stderr, \
        ran.stderr


@pytest.mark.parametrize(("line", "taken"), [
    ("rw = randwrite", False), ("rw= randwrite", False), ("rw =randwrite", True),
    ("random_distribution = zipf", False), ("verify = md5", False), ("bs = 8k", True),
    ("iodepth = 4", True), ("rw=randwrite ", True),
])
def test_blanks_around_equals_are_read_as_fio_reads_them(tmp_path: Path, line: str,
                                                         taken: bool) -> None:
    """fio 3.33 fails on a blank after '=' in an option that takes one of a list of words (it
    matches the word from right after '='), and reads a number or a blank before '=' alike:
    cowbench refuses what fio would, naming the line."""
    job = f"[j]\nsize=1m\nrw=randwrite\n{line}\n"
    checked = cowbench("fio-check", str(_write(tmp_path, "job.fio", job)))
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    assert (checked.code, ran.code) == ((0, 0) if taken else (2, 2)), checked.stderr
    if not taken:
        key = line.split("=")[0].strip()
        for out in (checked.stderr, ran.stderr):
            assert f"line 4: {line!r}: fio 3.33 fails parsing it" in out, out
            assert f"write {key}={line.split('=')[1].strip()}" in out
            assert "Traceback" not in out


@needs_tools
@pytest.mark.real
def test_fio_fails_on_the_same_blanks(tmp_path: Path) -> None:
    for line, taken in (("rw = randwrite", False), ("rw =randwrite", True),
                        ("verify = md5", False), ("bs = 8k", True)):
        job = _write(tmp_path, "b.fio", f"[a]\nioengine=null\nsize=1m\n{line}\n")
        ran = fio_parse(job)
        assert ("failed parsing" not in ran.stderr) == taken, (line, ran.stderr)


@pytest.mark.parametrize("option", ["rate=2m", "rate_min=1m"])
def test_a_bandwidth_limit_points_to_rate_iops(tmp_path: Path, option: str) -> None:
    """rate (bytes per second) is refused as not modelled, not as unknown: rate_iops is."""
    job = f"[j]\nrw=randwrite\nsize=1m\n{option}\n"
    checked = cowbench("fio-check", str(_write(tmp_path, "job.fio", job)))
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    key = option.split("=")[0]
    why = f"a bandwidth rate limit ({key}, bytes per second) is not modelled; pace the job " \
          "by I/Os with rate_iops=N"
    assert (checked.code, ran.code) == (2, 2)
    assert why in checked.stdout and f"workloads.w.job_file[j].{key}: {why}" in ran.stderr
    assert "not an option the model or the backends know" not in checked.stdout + ran.stderr
    ok = cowbench("validate", str(_scenario(tmp_path, "[j]\nrw=randwrite\nsize=1m\n"
                                                      "rate_iops=200\n")))
    assert ok.code == 0, ok.stderr


def test_a_section_given_twice_is_two_jobs_as_fio_runs_it(tmp_path: Path) -> None:
    """fio 3.33 runs two [w] sections as two jobs named w (next test): so does cowbench,
    the second known as w#2 wherever cowbench tells a file's jobs apart."""
    job = "[w]\nrw=write\nsize=1m\n[w]\nrw=read\nsize=2m\n"
    checked = cowbench("fio-check", str(_write(tmp_path, "job.fio", job)))
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    assert (checked.code, ran.code) == (0, 0), checked.stdout + checked.stderr + ran.stderr
    assert "[w]" in checked.stdout and "[w#2]" in checked.stdout
    bad = cowbench("validate", str(_scenario(tmp_path, job + "fsync=1\n")))
    assert bad.code == 2 and "workloads.w.job_file[w#2].fsync" in bad.stderr, bad.stderr


@needs_tools
@pytest.mark.real
def test_fio_runs_a_section_given_twice_as_two_jobs(tmp_path: Path) -> None:
    import json

    job = _write(tmp_path, "d.fio", "[w]\nioengine=null\nrw=write\nsize=1m\n[w]\n"
                                    "ioengine=null\nrw=read\nsize=2m\n")
    ran = subprocess.run(["fio", "--output-format=json", str(job)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    jobs = json.loads(ran.stdout)["jobs"]
    assert [(j["jobname"], j["write"]["io_bytes"], j["read"]["io_bytes"]) for j in jobs] == \
        [("w", 1 << 20, 0), ("w", 0, 2 << 20)]
