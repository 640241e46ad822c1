"""The CPU each probe's I/O took (real/measure/calibrate.py): fio's own figures per I/O,
qemu-nbd's from /proc/PID/stat, the whole machine's from /proc/stat; profiles made before it
load with none."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cowbench.profile import Beside, Probe, Turns
from cowbench.tools import core_share as _share
from cowbench.tools import (
    host_cpu_busy_s,
    host_cpu_stolen_s,
    proc_cpu_s,
    thread_delta,
    thread_schedstats,
)
from real.measure.calibrate import ProbeSpec, _median, _summarise


def fio_json(*jobs: tuple[str, int, float, float, int]) -> dict[str, object]:
    """fio's JSON with jobs of (name, total_ios, usr_cpu %, sys_cpu %, job_runtime ms)."""
    return {"jobs": [{"jobname": name, "usr_cpu": usr, "sys_cpu": sys, "job_runtime": ms,
                      "read": {"total_ios": ios, "iops": ios / (ms / 1000),
                               "bw_bytes": 4096 * ios / (ms / 1000),
                               "clat_ns": {"mean": 100e3, "percentile": {"99.000000": 400e3}}}}
                     for name, ios, usr, sys, ms in jobs]}


def test_cpu_per_io_is_the_jobs_cpu_over_their_ios() -> None:
    spec = ProbeSpec("raw", "randread", 4096, 4, exports=2)
    # two jobs, 1 s each: 10% + 5% of 1 s and 20% + 10% of 1 s over 10000 + 20000 I/Os
    data = fio_json(("p0", 10000, 10.0, 5.0, 1000), ("p1", 20000, 20.0, 10.0, 1000))
    p = _summarise(spec, data, 1.2, server_cpu=0.66, ramp_s=0.1, host_cpu=1.32)
    assert p.issuer_cpu_s == pytest.approx((0.15 + 0.30) / 30000)
    # qemu-nbd and the machine ran through the ramp too: its I/Os at the measured rate, 1.1 s
    assert p.server_cpu_s == pytest.approx(0.66 / (30000 * 1.1))
    assert p.host_cpu_s == pytest.approx(2 * p.server_cpu_s)


def test_the_job_beside_and_a_probe_without_server_count_nothing() -> None:
    spec = ProbeSpec("device", "randread", 4096, 1)
    data = fio_json(("p0", 10000, 10.0, 10.0, 1000), ("bg", 5000, 50.0, 50.0, 1000))
    p = _summarise(spec, data, 1.0, host_cpu=0.5)
    assert p.issuer_cpu_s == pytest.approx(0.2 / 10000)
    assert p.server_cpu_s is None
    assert p.host_cpu_s == pytest.approx(0.5 / 10000)
    # the machine's CPU beside a second job is not the probe's alone
    beside = ProbeSpec("device", "randread", 4096, 1, beside=Beside(rw="randread", bs=65536,
                                                                    iodepth=8))
    assert _summarise(beside, data, 1.0, host_cpu=0.5).host_cpu_s is None


def test_rounds_keep_the_median_cpu_and_old_probes_have_none() -> None:
    spec = ProbeSpec("raw", "randread", 4096, 1)
    runs = [_summarise(spec, fio_json(("p0", 10000, u, 0.0, 1000)), 1.0, server_cpu=s)
            for u, s in ((10.0, 0.3), (30.0, 0.1), (20.0, 0.2))]
    p = _median(runs)
    assert p.issuer_cpu_s == pytest.approx(0.2 / 10000)
    assert p.server_cpu_s == pytest.approx(0.2 / 10000)
    old = Probe.model_validate({k: v for k, v in p.model_dump().items()
                                if k not in ("issuer_cpu_s", "server_cpu_s", "host_cpu_s")})
    assert old.issuer_cpu_s is None and old.server_cpu_s is None
    assert _median([old, old]).server_cpu_s is None


def test_a_process_cpu_time_grows_with_its_work() -> None:
    before = proc_cpu_s(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.1:  # 100 ms of CPU: ten clock ticks
        pass
    assert 0.05 <= proc_cpu_s(os.getpid()) - before <= 1.0


def test_the_machine_is_busy_at_least_while_this_process_works() -> None:
    before = host_cpu_busy_s()
    t = time.process_time()
    while time.process_time() - t < 0.1:
        pass
    assert host_cpu_busy_s() - before >= 0.05


def test_the_hypervisor_share_is_steal_over_the_machine_core_time() -> None:
    cores = os.cpu_count() or 1
    assert _share(0.5 * cores, 2.0) == pytest.approx(0.25)
    assert _share(0.0, 1.0) == 0.0
    assert _share(3.0 * cores, 1.0) == 1.0  # a tick's rounding never makes it more than all
    assert _share(-0.01, 1.0) == 0.0 and _share(1.0, 0.0) is None
    spec = ProbeSpec("raw", "randread", 4096, 1)
    runs = [_summarise(spec, fio_json(("p0", 10000, 10.0, 0.0, 1000)), 1.0).model_copy(
        update={"steal_share": s}) for s in (0.3, 0.1, 0.2)]
    assert _median(runs).steal_share == pytest.approx(0.2)
    assert Probe.model_validate({k: v for k, v in runs[0].model_dump().items()
                                 if k != "steal_share"}).steal_share is None


def test_the_hypervisor_steal_counter_never_goes_back() -> None:
    before = host_cpu_stolen_s()
    assert before >= 0.0
    time.sleep(0.05)
    assert host_cpu_stolen_s() >= before


def test_qemu_nbds_threads_per_io_split_into_its_main_thread_and_the_rest() -> None:
    """schedstat readings before and after a run (tid: CPU ns, ns waited, turns): the main
    thread (tid = pid) apart, a thread started meanwhile counted from 0, one that did not run
    left out; per I/O over the ramp's I/Os too, the wait per turn as it is."""
    pid = 100
    before = {100: (1_000, 500, 10), 101: (2_000, 0, 5), 102: (7, 7, 7)}
    after = {100: (41_000, 2_500, 30), 101: (12_000, 1_000, 15), 102: (7, 7, 7),
             103: (10_000, 3_000, 10)}
    main, pool = thread_delta(before, after, pid)
    assert main == (1, 40_000, 2_000, 20) and pool == (2, 20_000, 4_000, 20)
    spec = ProbeSpec("raw", "randread", 4096, 1)
    data = fio_json(("p0", 10, 10.0, 0.0, 1000))
    data["jobs"][0]["ctx"] = 11  # type: ignore[index]
    p = _summarise(spec, data, 1.1, ramp_s=0.1, threads=(main, pool))
    assert p.issuer_turns == pytest.approx(1.1)  # fio's ctx counts after its ramp, as its I/Os
    assert p.server_main == Turns(threads=1, turns=20 / 11, cpu_s=40e-6 / 11, wait_s=100e-9)
    assert p.server_pool == Turns(threads=2, turns=20 / 11, cpu_s=20e-6 / 11, wait_s=200e-9)
    # rounds: each figure's median; a probe without a server (or made before) has none
    runs = [p.model_copy(update={"server_main": p.server_main.model_copy(
        update={"turns": t}) if p.server_main else None}) for t in (3.0, 1.0, 2.0)]
    assert _median(runs).server_main.turns == 2.0  # type: ignore[union-attr]
    device = _summarise(ProbeSpec("device", "randread", 4096, 1), data, 1.0)
    assert device.server_main is None and device.server_pool is None
    assert _median([device, device]).server_pool is None


def test_a_threads_schedstat_counts_its_turns_and_cpu() -> None:
    before = thread_schedstats(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    time.sleep(0.01)  # a sleep ends a turn
    after = thread_schedstats(os.getpid())
    me = threading.get_native_id()
    assert after[me][0] - before[me][0] >= 40_000_000  # ns of CPU
    assert after[me][2] > before[me][2]
    assert thread_schedstats(2**22 + 1) == {}  # no such process (above pid_max's default)
