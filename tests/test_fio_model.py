"""The model's offset streams follow fio's semantics (sim/workload/fio.py, FACTS.md section 5)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowbench.iolog import WRITE
from cowbench.scenario import Workload
from sim.workload.fio import io_stream, job_io_count, job_seed

from .conftest import needs_tools

MiB = 1 << 20
GiB = 1 << 30


def stream(wl, disk=64 * MiB, clone=0, scenario_seed=0, vm=0, name="job"):
    chunks = list(io_stream(wl, disk, job_seed(wl, clone, scenario_seed, vm, name)))
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return (np.concatenate([c.offsets for c in chunks]),
            np.concatenate([c.is_write for c in chunks]))


def test_io_count_is_io_size_over_bs():
    wl = Workload(rw="randwrite", bs=4096, io_size=16 * MiB)
    off, _ = stream(wl)
    assert len(off) == job_io_count(wl, 64 * MiB) == 4096


def test_random_map_visits_each_block_once_per_pass():
    wl = Workload(rw="randwrite", bs=4096, size=4 * MiB, io_size=8 * MiB)
    off, _ = stream(wl)
    first, second = off[:1024], off[1024:]
    assert len(np.unique(first)) == 1024 and len(np.unique(second)) == 1024


def test_norandommap_repeats_blocks():
    wl = Workload(rw="randwrite", bs=4096, size=4 * MiB, io_size=4 * MiB, norandommap=True)
    off, _ = stream(wl)
    distinct = len(np.unique(off))
    # uniform with replacement: 1024 * (1 - 1/e) ~ 647 distinct blocks
    assert 600 < distinct < 700


def clusters(wl, name, disk=64 * MiB):
    off, _ = stream(wl, disk=disk, name=name)
    return len(np.unique(off // 65536))


def test_cluster_counts_are_the_ones_measured_through_qemu_nbd():
    """FACTS.md section 5, measured with fio 3.33 through qemu-nbd: 4096 random 4 KiB writes
    over 64 MiB touched 1002 clusters (job ``j``, any randseed), 533 with zipf:1.2; the
    pareto:0.9 job over 2 GiB touched 9275 as job ``h`` and 9292 as job ``vm``. The model
    issues fio's own stream, so it gives exactly these."""
    wl = Workload(rw="randwrite", bs=4096, io_size=16 * MiB)
    assert clusters(wl, "j") == 1002
    assert clusters(wl.model_copy(update={"randseed": 7}), "j") == 1002
    assert clusters(wl.model_copy(update={"random_distribution": "zipf:1.2"}), "j") == 533
    p = Workload(rw="randwrite", bs=8192, size=2 * GiB, io_size=96 * MiB,
                 random_distribution="pareto:0.9")
    assert clusters(p, "h", 2 * GiB) == 9275 and clusters(p, "vm", 2 * GiB) == 9292


def test_the_random_map_holds_within_a_pass():
    wl = Workload(rw="randwrite", bs=4096, io_size=16 * MiB)
    off, _ = stream(wl)
    assert len(np.unique(off)) == 4096


def test_sequential_wraps_in_region():
    wl = Workload(rw="write", bs=MiB, offset=8 * MiB, size=4 * MiB, io_size=6 * MiB)
    off, w = stream(wl)
    assert (off // MiB).tolist() == [8, 9, 10, 11, 8, 9]
    assert w.all()


def test_same_options_same_stream_across_vms_as_fio_randrepeat():
    wl = Workload(rw="randwrite", io_size=MiB)
    a, _ = stream(wl, vm=0, scenario_seed=1)
    b, _ = stream(wl, vm=5, scenario_seed=9)
    assert (a == b).all()


def test_randseed_changes_the_stream_only_with_randrepeat_off_and_clones_differ():
    """fio 3.33 seeds the block offsets before a ``randseed`` turns ``randrepeat`` off, so
    ``randseed`` alone leaves a uniform job's offsets as they were (measured); with
    ``randrepeat=0`` it picks the stream. Clones (thread 2, 3 ...) differ."""
    wl = Workload(rw="randwrite", io_size=MiB)
    a, _ = stream(wl)
    b, _ = stream(wl.model_copy(update={"randseed": 42}))
    c, _ = stream(wl.model_copy(update={"randseed": 42, "randrepeat": False}))
    d, _ = stream(wl, clone=1)
    assert (a == b).all() and not (a == c).all() and not (a == d).all()


def test_distributions_depend_on_the_job_name_as_in_fio():
    wl = Workload(rw="randwrite", io_size=MiB, random_distribution="pareto:0.9")
    a, _ = stream(wl, name="web")
    b, _ = stream(wl, name="db")
    assert not (a == b).all()


def test_randrepeat_off_depends_on_vm():
    wl = Workload(rw="randwrite", io_size=MiB, randrepeat=False)
    a, _ = stream(wl, vm=0)
    b, _ = stream(wl, vm=1)
    assert not (a == b).all()


def test_rwmix_fraction():
    wl = Workload(rw="randrw", rwmixread=70, io_size=32 * MiB)
    _, w = stream(wl)
    assert abs((~w).mean() - 0.70) < 0.02


def test_lfsr_covers_each_block_once():
    wl = Workload(rw="randread", bs=4096, size=MiB, random_generator="lfsr")
    off, w = stream(wl)
    assert sorted(off.tolist()) == list(range(0, MiB, 4096))
    assert not w.any()


@settings(max_examples=60, deadline=None)
@given(bs_kib=st.sampled_from([4, 8, 16, 64, 128]), offset_blocks=st.integers(0, 64),
       size_blocks=st.integers(1, 512), ios=st.integers(1, 2000),
       rw=st.sampled_from(["read", "write", "randread", "randwrite", "randrw"]),
       norandommap=st.booleans())
@pytest.mark.slow
def test_offsets_stay_in_region_and_aligned(bs_kib, offset_blocks, size_blocks, ios, rw,
                                            norandommap):
    bs = bs_kib * 1024
    disk = (offset_blocks + size_blocks) * bs
    wl = Workload(rw=rw, bs=bs, offset=offset_blocks * bs, size=size_blocks * bs,
                  io_size=ios * bs, norandommap=norandommap)
    off, _ = stream(wl, disk=disk)
    assert len(off) == ios
    assert (off % bs == 0).all()
    assert (off >= offset_blocks * bs).all() and (off + bs <= disk).all()


JOBS = [
    {"rw": "randwrite", "bs": "4k", "size": "1M", "io_size": "3M"},
    {"rw": "randwrite", "bs": "4k", "size": "1M", "io_size": "3M", "randrepeat": 0,
     "randseed": 5},
    {"rw": "randwrite", "bs": "8k", "size": "1M", "offset": "1M", "io_size": "3M",
     "random_distribution": "zipf:1.1"},
    {"rw": "randrw", "bs": "4k", "io_size": "4M", "rwmixread": 30},
    {"rw": "randwrite", "bs": "4k", "io_size": "2M", "numjobs": 3,
     "random_distribution": "normal:20"},
    {"rw": "randwrite", "bs": "4k", "size": "1M", "io_size": "3M", "random_generator": "lfsr"},
]


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("job", JOBS, ids=lambda j: ",".join(f"{k}={v}" for k, v in j.items()))
def test_streams_are_fio_s_io_for_io(tmp_path, job):
    """Every clone's offsets and directions equal those fio's null engine issues for the same
    job under the same name (several passes of the random map, clones, rw mixes included)."""
    import subprocess

    from cowbench.fiojob import record_options, recorded_traces

    wl = Workload(**job)
    subprocess.run(["fio", "--name=db", "--ioengine=null", "--size=64M", "--output-format=json",
                    f"--output={tmp_path / 'o'}", *[f"--{k}={v}" for k, v in job.items()],
                    *record_options(wl, tmp_path)], check=True, cwd=tmp_path,
                   capture_output=True)
    theirs = recorded_traces(tmp_path)
    assert len(theirs) == wl.numjobs
    for clone in range(wl.numjobs):
        off, w = stream(wl, clone=clone, name="db")
        fio = next(t for t in theirs if len(t) == len(off) and (t.offsets[:8] == off[:8]).all())
        assert (fio.offsets == off).all() and ((fio.ddir == WRITE) == w).all()


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("job", [{"rw": "randrw", "bs": "4k", "io_size": "2MiB", "numjobs": 2},
                                 {"rw": "randread", "bs": "4k", "io_size": "2MiB",
                                  "random_distribution": "zipf:1.2"},
                                 {"rw": "randwrite", "bs": "16k", "time_based": True,
                                  "runtime": 1}],
                         ids=["randrw-2-clones", "zipf", "time-based"])
def test_the_null_run_issues_what_fio_on_its_own_clock_issues(tmp_path, job):
    """The null run keeps time with clock_gettime (fio's cycle counter is calibrated at each
    start, 60-75 ms of CPU): every clone's stream, whole or cut at ``ios``, is the one the
    same command issues on fio's default clock."""
    import json
    import subprocess

    from cowbench.fiojob import fio_null_traces, recorded_traces
    from cowbench.tools import RawLog

    wl = Workload(**job)
    ios = 300 if wl.time_based else None
    ours = fio_null_traces(wl, "db", 64 << 20, RawLog(tmp_path / "raw"), ios, 7)
    folder = next((tmp_path / "raw").glob("*-fio-null-db"))  # the record and what fio wrote
    argv = json.loads((folder / "argv.json").read_text())
    assert "--clocksource=clock_gettime" in argv
    theirs_dir = tmp_path / "default-clock"
    theirs_dir.mkdir()
    own = [a for a in argv if a != "--clocksource=clock_gettime"]
    own = [a.replace(str(folder), str(theirs_dir)) for a in own]
    subprocess.run(own, check=True, capture_output=True, cwd=tmp_path)
    theirs = recorded_traces(theirs_dir, ios)
    assert len(ours) == len(theirs) == wl.numjobs
    for a, b in zip(sorted(ours, key=lambda t: t.offsets[:8].tolist()),
                    sorted(theirs, key=lambda t: t.offsets[:8].tolist()), strict=True):
        n = len(a) if ios is None else ios
        assert len(a) == n and len(b) >= n
        assert (a.offsets == b.offsets[:n]).all() and (a.lengths == b.lengths[:n]).all()
        assert (a.ddir == b.ddir[:n]).all()
