"""The contention probe: a 4 KiB reader at iodepth 1 through the stack beside readers at
iodepth 32 on exports of their own, enough to keep every core busy. fio runs the reader's job
and one job beside it on each other export; the model replays it with those exports' own
processes; the fit does not read it (it shows how the host scheduler serves a process that
sleeps on every I/O beside processes that never do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowbench.profile import Beside, Probe, SchedParams
from real.measure.calibrate import KiB, ProbeSpec, _fio_argv, probe_matrix, settings
from sim.perf.fit import contended
from sim.perf.host import Host
from sim.perf.perf import fit_with_alloc
from sim.perf.replay import CONTENDED_IOS, replay

from .test_perf import TRUE, synthetic_probes
from .test_perf_sched import with_cpu

SCHED = SchedParams(cores=2, slice_s=1.5e-3, issuer_io_s=4e-6, issuer_wake_s=1.5e-6,
                    server_io_s=13e-6, server_wake_s=17e-6)
PARAMS = TRUE.model_copy(update={"sched": SCHED})
DEEP = Beside(rw="randread", bs=4096, iodepth=32, exports=3)


def reader(beside: Beside | None = DEEP) -> Probe:
    return Probe(name="reader", target="raw", rw="randread", bs=4096, iodepth=1, exports=1,
                 runtime_s=1.0, ios=1000, iops=1000.0, bw_bytes_per_s=4096e3,
                 lat_mean_s=1e-3, lat_p99_s=3e-3, beside=beside)


@pytest.mark.parametrize("matrix", ["quick", "short", "long"])
@pytest.mark.parametrize(("exports", "beside"), [(4, 3), (2, 2), (8, 7)])
def test_every_matrix_holds_one_contention_probe(matrix: str, exports: int,
                                                 beside: int) -> None:
    specs = probe_matrix(settings(matrix, exports))  # type: ignore[arg-type]
    [spec] = [s for s in specs if s.beside is not None and s.target != "device"]
    assert spec == ProbeSpec("raw", "randread", 4 * KiB, 1, beside=Beside(
        rw="randread", bs=4 * KiB, iodepth=32, exports=beside))
    assert spec.name == f"raw-randread-4k-qd1-x1-beside-randread-4k-qd32-x{beside}"
    # the storage-alone probe beside a large job keeps its name (profiles made before)
    assert "device-randread-4k-qd1-x1-beside-randread-64k-qd8" in {s.name for s in specs}


def test_fio_runs_the_readers_job_then_one_beside_on_each_other_export(tmp_path: Path) -> None:
    spec = ProbeSpec("raw", "randread", 4 * KiB, 1, beside=DEEP)
    uris = [f"nbd+unix:///?socket=/s{k}" for k in range(4)]
    argv = _fio_argv(spec, uris, settings("short", 4), tmp_path / "fio.json")
    jobs = " ".join(argv).split(" --name=")[1:]
    assert [j.split()[0] for j in jobs] == ["p0", "bg", "bg", "bg"]
    for job, uri in zip(jobs, uris, strict=True):
        assert f"--uri={uri}" in job and "--rw=randread" in job and "--bs=4096" in job
        assert ("--iodepth=1" in job) == job.startswith("p0")
        assert ("--iodepth=32" in job) == job.startswith("bg")
        assert "--time_based=1" in job


@pytest.fixture(scope="module")
def beside_three() -> tuple[tuple[float, float], Host]:
    """The reader's replay beside three deep readers, and its host (one replay for the
    module: 1.5 s of CPU each)."""
    hosts: list[Host] = []
    return replay(PARAMS, reader(), ios=CONTENDED_IOS, on_host=hosts.append), hosts[0]


@pytest.fixture(scope="module")
def beside_three_recorded() -> tuple[tuple[float, float], Host]:
    """The same replay with ``record_turns``."""
    hosts: list[Host] = []
    return (replay(PARAMS, reader(), ios=CONTENDED_IOS, on_host=hosts.append,
                   record_turns=True), hosts[0])


@pytest.mark.slow
def test_a_reader_beside_deep_readers_waits_for_the_cores_they_keep_busy(
        beside_three: tuple[tuple[float, float], Host]) -> None:
    """The model's reader: slower beside one deep reader than alone, slower again beside
    three on exports of their own (each export its own issuer and server)."""
    alone = replay(PARAMS, reader(None), ios=CONTENDED_IOS)[0]
    one = replay(PARAMS, reader(DEEP.model_copy(update={"exports": 1})), ios=CONTENDED_IOS)[0]
    three = beside_three[0][0]
    assert three < one < alone
    assert three < 0.5 * alone


@pytest.mark.slow
def test_a_contention_probe_is_replayed_for_a_bounded_count_of_its_own_ios(
        beside_three: tuple[tuple[float, float], Host]) -> None:
    assert contended(reader()) and not contended(reader(None))
    assert not contended(reader().model_copy(update={"target": "device"}))
    assert replay(PARAMS, reader(), ios=50 * CONTENDED_IOS) == beside_three[0]


@pytest.mark.slow
def test_the_fit_does_not_read_the_contention_probe() -> None:
    """The same parameters with and without it among the probes, and a reader twenty times
    faster changes nothing."""
    probes = [with_cpu(p, SCHED) for p in synthetic_probes(PARAMS, ios=1500)]
    [probe] = [p for p in probes if contended(p)]
    alone = fit_with_alloc([p for p in probes if not contended(p)], 2)
    assert fit_with_alloc(probes, 2) == alone
    fast = probe.model_copy(update={"iops": 20 * probe.iops, "lat_mean_s": probe.lat_mean_s / 20})
    assert fit_with_alloc([fast if p is probe else p for p in probes], 2) == alone


@pytest.mark.slow
def test_a_replay_hands_over_its_host_with_every_exports_processes(
        beside_three: tuple[tuple[float, float], Host]) -> None:
    """``on_host`` (benchmarks/io_turns.py) gets the replayed host once it is done: the
    reader's export first, then one per export beside it, each with an issuer and a server
    that have run; the reader's each turned about twice per I/O (it sleeps on every one)."""
    (iops, _), host = beside_three
    pairs = host.all_tasks()
    assert len(pairs) == 1 + DEEP.exports and pairs[0] is host.tasks(0)
    assert all(t.turns > 0 and t.cpu_s > 0 for pair in pairs for t in pair)
    for task in pairs[0]:
        assert 1.5 < task.turns / (iops * host.env.now) < 2.5


@pytest.mark.slow
def test_a_replay_keeps_each_wait_and_turn_when_asked(
        beside_three: tuple[tuple[float, float], Host],
        beside_three_recorded: tuple[tuple[float, float], Host]) -> None:
    """``record_turns`` (benchmarks/io_turns.py --profile, beside the kernel's record of the
    real threads) keeps every task's waits for a core and turns: one of each per turn (a turn
    still running at the end: its wait only), the turns summing to the CPU it used; the
    replay's figures are the same as without."""
    kept, host = beside_three_recorded
    assert beside_three[0] == kept
    assert all(t.record is None for pair in beside_three[1].all_tasks() for t in pair)
    for pair in host.all_tasks():
        for task in pair:
            assert task.record is not None
            waits, turns = task.record
            # a wait kept as the turn starts, the turn as it ends: the last may be running
            assert len(waits) == task.turns and len(turns) in (task.turns - 1, task.turns)
            assert sum(turns) == pytest.approx(task.cpu_s)
            assert min(waits) >= 0
    deep_waits = host.all_tasks()[1][1].record
    assert deep_waits is not None and max(deep_waits[0]) > 0  # the deep readers do wait


def test_calibrate_prints_the_contention_probe_apart_from_the_fitted_ones() -> None:
    """The contention probe's replay is the model's weakest figure in every profile (-73% to
    -88% on this machine): folded into the fitted probes' figure it stood there as their
    worst, unexplained. ``calibrate`` prints the fitted probes' median and worst (named), then
    the contention probe on its own line: not fitted, the model's IOPS and the measured."""
    from rich.console import Console

    from cowbench.calibrate_view import print_profile
    from cowbench.profile import FitRow, Profile

    alone = reader(beside=None).model_copy(update={"name": "alone"})
    other = alone.model_copy(update={"name": "deep", "iodepth": 32})
    rows = [FitRow(probe=name, metric=metric, measured=m, model=p, rel_error=(p - m) / m)
            for name, m, p in (("alone", 1000.0, 1040.0), ("deep", 8000.0, 7000.0),
                               ("reader", 2000.0, 240.0))
            for metric in ("iops", "lat_mean_s")]
    out = Console(record=True, width=300)
    print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                          tools={}, settings={}, probes=[alone, other, reader()],
                          params=PARAMS, fit=rows), out)
    text = out.export_text()
    assert ("the model replays the 2 fitted probes' IOPS with median |error| 12.5%, worst "
            "-12.5% (deep)") in text
    assert ("the contention probe, which the fit does not read (reader): the model 240 IOPS, "
            "measured 2,000 (-88%)") in text
    assert "88.0%" not in text  # nowhere the fitted probes' worst
