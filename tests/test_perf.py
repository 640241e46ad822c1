"""The calibrated I/O model (sim/perf/perf.py): the fit recovers the parameters that made the
probes, and the model behaves as a shared host must (closed loops, contention, rate limits,
copy-on-write, chains, L2 cache misses, a device in arrival order or shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simpy

from cowbench.errors import UsageError
from cowbench.profile import (
    Beside,
    PerfParams,
    Probe,
    Profile,
    SchedParams,
    load_profile,
    profile_json,
)
from cowbench.scenario import parse_scenario
from real.measure.calibrate import probe_matrix, settings
from sim import simulate
from sim.perf.fit import _cpu_stations, contended, mva_iops_stages
from sim.perf.perf import (
    Demand,
    FileLock,
    Host,
    PerfModel,
    SharedDevice,
    device_interference,
    fit,
    mva_iops,
    replay,
)
from sim.perf.replay import replay_latencies
from sim.storage.disk import HostIO

from .conftest import small_dict

TRUE = PerfParams(
    stages=3.5, cpu_share=0.8, hole_cpu_share=0.25, hole_read_s=25e-6, client_s=4e-6,
    read_bw=[(65536, 900e6), (1 << 20, 800e6)], write_bw=[(65536, 1200e6), (1 << 20, 1100e6)],
    read_path_s=[(4096, 85e-6), (16384, 85e-6), (65536, 75e-6), (1 << 20, 200e-6)],
    write_path_s=[(4096, 95e-6), (16384, 85e-6), (65536, 75e-6), (1 << 20, 300e-6)],
    qcow2_read_s=3e-6, qcow2_write_s=9e-6, alloc_s=15e-6, cow_read_s=60e-6,
    subcluster_alloc_s=10e-6, chain_base_s=-4e-6, chain_a_s=0.5e-6, chain_b_s=0.04e-6,
    l2_miss_s=90e-6)


def synthetic_probes(params: PerfParams, ios: int = 10000,
                     matrix: str = "short", exports: int = 4,
                     fitted_only: bool = False) -> list[Probe]:
    """A probe matrix, 'measured' on the model itself with ``params``. ``fitted_only``: the
    probes the fit reads, for a test that only fits them: the contention probe, which the fit
    leaves out (``sim.perf.fit.contended``) and whose replay costs a tenth to a third of the
    matrix's, is not replayed; every other probe has the seed it has in the whole matrix, so
    the fit is the whole matrix's, bit for bit."""
    out = []
    for i, spec in enumerate(probe_matrix(settings(matrix, exports))):  # type: ignore[arg-type]
        shell = Probe(name=spec.name, target=spec.target, rw=spec.rw, bs=spec.bs,
                      iodepth=spec.iodepth, exports=spec.exports, depth=spec.depth,
                      cluster_size=spec.cluster_size, runtime_s=1.0, ios=1, iops=1.0,
                      bw_bytes_per_s=1.0, lat_mean_s=1.0, lat_p99_s=1.0, beside=spec.beside)
        if fitted_only and contended(shell):
            continue
        iops, lats = replay_latencies(params, shell, ios=ios, seed=i)
        out.append(shell.model_copy(update={"iops": iops, "bw_bytes_per_s": iops * spec.bs,
                                            "lat_mean_s": float(np.mean(lats)),
                                            "lat_p99_s": float(np.percentile(lats, 99)),
                                            "ios": ios}))
    return out


def shells(matrix: str = "short", exports: int = 4) -> list[Probe]:
    """The probe matrix with placeholder figures (what the analysis reads is the shape)."""
    return [Probe(name=s.name, target=s.target, rw=s.rw, bs=s.bs, iodepth=s.iodepth,
                  exports=s.exports, depth=s.depth, cluster_size=s.cluster_size, runtime_s=1.0,
                  ios=1, iops=1.0, bw_bytes_per_s=1.0, lat_mean_s=1.0, lat_p99_s=1.0,
                  beside=s.beside)
            for s in probe_matrix(settings(matrix, exports))]  # type: ignore[arg-type]


def mva_one_by_one(params: PerfParams, probe: Probe) -> float:
    """The mean-value analysis station by station, one number of stages: the reference the
    fit's analysis of every number of stages at once must equal."""
    model = PerfModel(params)
    d = model.probe_demand(probe)
    m, full = params.stages, int(params.stages)
    demands = [d.path_s / m] * full + ([d.path_s * (m - full) / m] if m - full > 1e-9 else [])
    if d.device_s > 0:
        if params.transfer_on_path and not d.allocates:
            demands[0] += d.device_s
        else:
            demands.append(d.device_s)
    if d.alloc_s > 0:
        demands.append(d.alloc_s)
    stations = [(s, 1) for s in demands] + _cpu_stations(params, d, probe.exports)
    delay = model.client_s + d.delay_s + d.wait_s + d.alloc_wait_s + (
        d.sched_s - d.issuer_s - d.server_s)
    q, x = [0.0] * len(stations), 0.0
    for n in range(1, probe.exports * probe.iodepth + 1):
        r = [s * (1 + qi) for (s, _), qi in zip(stations, q, strict=True)]
        x = n / (delay + sum(ri * k for ri, (_, k) in zip(r, stations, strict=True)))
        q = [x * ri for ri in r]
    return x


@pytest.mark.parametrize("update", [{}, {"transfer_on_path": True},
                                    {"sched": SchedParams(cores=2, slice_s=1.5e-3,
                                                          issuer_io_s=4e-6, issuer_wake_s=1.5e-6,
                                                          server_io_s=13e-6,
                                                          server_wake_s=17e-6)}])
def test_the_analysis_of_every_number_of_stages_at_once_is_each_ones(update: dict) -> None:
    """The fit's grid (``mva_iops_stages``, every number of stages in one go) gives what the
    analysis of each number alone gives, for every probe of the matrix, whole and partial
    stages alike."""
    params = TRUE.model_copy(update=update)
    stages = [1.0, 1.5, 2.0, 3.3, 3.5, 7.9, 8.0]
    for probe in shells():
        got = mva_iops_stages(params, probe, stages)
        for m, x in zip(stages, got, strict=True):
            want = mva_one_by_one(params.model_copy(update={"stages": m}), probe)
            assert x == pytest.approx(want, rel=1e-12), (probe.name, m)
            assert mva_iops(params.model_copy(update={"stages": m}), probe) == pytest.approx(
                x, rel=1e-12)


@pytest.fixture(scope="module")
def probes() -> list[Probe]:
    return synthetic_probes(TRUE)


@pytest.fixture(scope="module")
def fitted(probes: list[Probe]) -> PerfParams:
    """``fit(probes)``, made once for the module (four tests read it; each fit takes seconds)."""
    return fit(probes)


@pytest.mark.slow
def test_fit_recovers_the_parameters_that_made_the_probes(fitted: PerfParams) -> None:
    got = fitted
    assert abs(got.stages - TRUE.stages) <= 0.5
    assert abs(got.cpu_share - TRUE.cpu_share) <= 0.15
    assert abs(got.hole_cpu_share - TRUE.hole_cpu_share) <= 0.1
    assert got.hole_read_s == pytest.approx(TRUE.hole_read_s, abs=5e-6)
    assert got.client_s == pytest.approx(TRUE.client_s, abs=1e-6)
    for a, b in zip(got.read_path_s, TRUE.read_path_s, strict=True):
        assert a[0] == b[0] and a[1] == pytest.approx(b[1], rel=0.08)
    assert got.write_path_s[0][1] == pytest.approx(TRUE.write_path_s[0][1], rel=0.08)
    assert got.read_bw[0][1] == pytest.approx(900e6, rel=0.08)
    assert got.write_bw[0][1] == pytest.approx(1200e6, rel=0.08)
    # differences of two probes of ~100 us each: a few microseconds
    assert got.qcow2_write_s == pytest.approx(TRUE.qcow2_write_s, abs=5e-6)
    # the copy-on-write round: what is done holding the image's lock, and what is waiting
    assert got.cow_read_s + got.cow_wait_s == pytest.approx(TRUE.cow_read_s, abs=10e-6)
    assert got.l2_miss_s == pytest.approx(TRUE.l2_miss_s, abs=10e-6)
    model, truth = PerfModel(got), PerfModel(TRUE)
    for depth in (8, 32):
        assert model.chain(depth) == pytest.approx(truth.chain(depth), abs=8e-6)


@pytest.mark.slow
def test_replaying_the_fit_matches_the_probes(probes: list[Probe], fitted: PerfParams) -> None:
    from sim.perf.perf import fit_rows

    rows = fit_rows(fitted, probes)
    errs = sorted(abs(r.rel_error) for r in rows if r.metric == "iops")
    # every probe through the stack (the trim probe too); the storage-alone probes only
    # order the device
    assert len(errs) == len([p for p in probes if p.target != "device"]) == 41
    assert np.median(errs) < 0.05
    assert errs[-1] < 0.25


@pytest.mark.slow
def test_fit_refuses_a_matrix_without_what_it_needs(probes: list[Probe]) -> None:
    from sim.perf.perf import FitError

    with pytest.raises(FitError, match="chain"):
        fit([p for p in probes if p.target != "chain"])
    with pytest.raises(FitError, match="64 KiB"):
        fit([p for p in probes if not (p.target == "raw" and p.bs >= 65536)])


# -- behaviour --------------------------------------------------------------------------------

def probe(target: str = "raw", rw: str = "randread", bs: int = 4096, iodepth: int = 1,
          exports: int = 1, depth: int = 0) -> Probe:
    return Probe(name="p", target=target, rw=rw, bs=bs, iodepth=iodepth,  # type: ignore[arg-type]
                 exports=exports, depth=depth, runtime_s=1, ios=1, iops=1, bw_bytes_per_s=1,
                 lat_mean_s=1, lat_p99_s=1)


@pytest.mark.slow
def test_iodepth_raises_iops_until_the_shared_path_saturates() -> None:
    iops = [replay(TRUE, probe(iodepth=qd), ios=8000)[0] for qd in (1, 2, 4, 8, 32, 64)]
    assert all(b > a * 0.98 for a, b in zip(iops, iops[1:], strict=False))
    cap = TRUE.stages / (TRUE.cpu_share * TRUE.read_path_s[0][1])
    assert iops[-1] < cap * 1.02
    assert iops[-1] > 2.5 * iops[0]


def test_exports_share_the_host() -> None:
    one, _ = replay(TRUE, probe(iodepth=8))
    four, _ = replay(TRUE, probe(iodepth=8, exports=4))
    assert four / 4 < 0.6 * one  # each of four gets much less than one alone
    assert four < TRUE.stages / (TRUE.cpu_share * TRUE.read_path_s[0][1]) * 1.02


@pytest.mark.slow
def test_first_writes_cost_more_than_rewrites_and_serialise_per_image() -> None:
    cow1, _ = replay(TRUE, probe("cow", "write", iodepth=1))
    rewrite1, _ = replay(TRUE, probe("qcow2", "randwrite", iodepth=1))
    assert cow1 < 0.6 * rewrite1
    cow32_one, _ = replay(TRUE, probe("cow", "write", iodepth=32))
    cow8_four, _ = replay(TRUE, probe("cow", "write", iodepth=8, exports=4))
    assert cow8_four > 1.2 * cow32_one  # one image's allocations run one at a time


def test_chain_depth_costs_superlinearly() -> None:
    m = PerfModel(TRUE)
    step = [m.chain(d + 8) - m.chain(d) for d in (1, 9, 17, 25)]
    assert all(b > a for a, b in zip(step, step[1:], strict=False))
    iops = [replay(TRUE, probe("chain", depth=d))[0] for d in (1, 8, 32)]
    assert iops[0] > iops[1] > iops[2]


def test_reads_of_holes_are_cheap_and_mostly_waiting() -> None:
    data1, _ = replay(TRUE, probe("raw"))
    hole1, _ = replay(TRUE, probe("hole"))
    data32, _ = replay(TRUE, probe("raw", iodepth=32))
    hole32, _ = replay(TRUE, probe("hole", iodepth=32))
    assert hole1 > data1
    assert hole32 / hole1 > 1.5 * data32 / data1  # little work: they scale further


def test_an_l2_miss_adds_a_metadata_read() -> None:
    hit, _ = replay(TRUE, probe("qcow2"))
    miss, _ = replay(TRUE, probe("l2miss"))
    assert 1 / miss - 1 / hit == pytest.approx(TRUE.l2_miss_s, rel=0.15)


def test_the_device_is_shared_equally_by_transfers_in_progress() -> None:
    env = simpy.Environment()
    dev = SharedDevice(env)
    ends: dict[str, float] = {}

    def job(name: str, start: float, work: float):  # type: ignore[no-untyped-def]
        yield env.timeout(start)
        yield dev.transfer(work)
        ends[name] = env.now

    env.process(job("long", 0.0, 10.0))
    env.process(job("short", 2.0, 1.0))
    env.run()
    assert ends["short"] == pytest.approx(4.0)   # half the rate while both run
    assert ends["long"] == pytest.approx(11.0)   # lost one second to the short one


def test_a_fifo_device_serves_in_arrival_order() -> None:
    env = simpy.Environment()
    host = Host(env, PerfModel(TRUE.model_copy(update={"device_queue": "fifo"})),
                np.random.default_rng(0))
    ends: dict[str, float] = {}

    def job(name: str, start: float, work: float):  # type: ignore[no-untyped-def]
        yield env.timeout(start)
        yield from host.transfer(work, name)
        ends[name] = env.now

    env.process(job("long", 0.0, 10.0))
    env.process(job("short", 2.0, 1.0))
    env.run()
    assert ends["long"] == pytest.approx(10.0)   # not slowed by the one that came later
    assert ends["short"] == pytest.approx(11.0)  # waited for the whole of the long one


def test_on_the_path_a_reads_transfer_holds_the_first_stage_and_a_copy_does_not() -> None:
    """With ``transfer_on_path``, the transfer of a read is work of the path's first stage:
    another VM's path waits for it. An allocating write's transfer (its copy-on-write and
    cluster write) goes to the device and leaves the stages free."""
    on = TRUE.model_copy(update={"transfer_on_path": True, "device_queue": "fifo"})

    def other_ends_at(first: Demand) -> float:
        env = simpy.Environment()
        host = Host(env, PerfModel(on), np.random.default_rng(0))

        def other():  # type: ignore[no-untyped-def]
            yield env.timeout(1e-4)  # the first one's transfer has started
            yield from host.serve(Demand(1e-6, 0.0))

        env.process(host.serve(first, "image"))
        env.run(env.process(other()))
        return env.now

    ends = {"read": other_ends_at(Demand(1e-9, 1e-3)),
            "allocating write": other_ends_at(Demand(1e-9, 1e-3, alloc_s=1e-9,
                                                     allocating=True))}
    assert ends["read"] > 1e-3               # waited for the read's transfer
    assert ends["allocating write"] < 2e-4   # did not wait for the copy


def test_with_a_path_per_vm_a_reads_transfer_holds_its_own_vms_first_stage() -> None:
    """``path: vm``: each VM has its own stages; a read's transfer holds its VM's first stage
    while the device, which every VM shares, serves it. The same VM's next I/O waits for the
    transfer; another VM's path does not, but its own transfer waits for the device."""
    on = TRUE.model_copy(update={"transfer_on_path": True, "device_queue": "fifo",
                                 "path": "vm"})

    def second_ends_at(image: str, second: Demand) -> float:
        env = simpy.Environment()
        host = Host(env, PerfModel(on), np.random.default_rng(0))

        def then():  # type: ignore[no-untyped-def]
            yield env.timeout(1e-4)  # the first one's transfer has started
            yield from host.serve(second, image)

        env.process(host.serve(Demand(1e-9, 1e-3), "a"))
        env.run(env.process(then()))
        return env.now

    assert second_ends_at("a", Demand(1e-6, 0.0)) > 1e-3  # its own VM's: waited
    assert second_ends_at("b", Demand(1e-6, 0.0)) < 2e-4  # another VM's path: did not
    assert second_ends_at("b", Demand(1e-6, 1e-4)) > 1e-3  # its transfer: the device's turn


def test_with_a_path_per_vm_vms_bound_by_their_path_run_side_by_side() -> None:
    """Two exports whose I/Os are mostly path work reach about twice one's IOPS with a path
    per VM, and share one on the host's path; whose I/Os are mostly transfer, no more than
    the device serves either way."""
    host = TRUE.model_copy(update={"transfer_on_path": True, "device_queue": "fifo"})
    vm = host.model_copy(update={"path": "vm"})
    one = replay(vm, probe(iodepth=8), ios=3000)[0]
    assert replay(vm, probe(iodepth=8, exports=2), ios=3000)[0] > 1.6 * one
    assert replay(host, probe(iodepth=8, exports=2), ios=3000)[0] < 1.25 * one
    big = probe(bs=1 << 20, iodepth=8, exports=2)
    device = 1 / PerfModel(vm).probe_demand(big).device_s
    for params in (host, vm):
        assert replay(params, big, ios=1000)[0] < 1.02 * device


@pytest.mark.slow
def test_the_fit_finds_where_the_transfer_is_done(fitted: PerfParams) -> None:
    """Probes made by a host whose read transfers are path work are fitted so (their mid-size
    read under load tells), with the bandwidth that made them; TRUE's are fitted beside."""
    assert fitted.transfer_on_path is False
    on = TRUE.model_copy(update={"transfer_on_path": True})
    got = fit(synthetic_probes(on, ios=6000, fitted_only=True))
    assert got.transfer_on_path is True
    assert got.read_bw[0][1] == pytest.approx(900e6, rel=0.1)
    assert abs(got.stages - TRUE.stages) <= 0.5
    # the mid-size read under load tells the two apart: on the path it is slower
    mid = probe("raw", bs=16384, iodepth=8)
    assert replay(on, mid, ios=4000)[0] < 0.9 * replay(TRUE, mid, ios=4000)[0]


def test_the_file_lock_lets_readers_share_and_allocating_writes_go_alone() -> None:
    """ext4's inode lock around O_DIRECT I/O: reads share it, an allocating write takes it
    alone and readers that come after it wait for it (arrival order)."""
    env = simpy.Environment()
    lock = FileLock(env)
    log: list[tuple[str, float, float]] = []

    def user(name: str, start: float, alone: bool, hold: float):  # type: ignore[no-untyped-def]
        yield env.timeout(start)
        yield lock.acquire(alone)
        got = env.now
        yield env.timeout(hold)
        lock.release(alone)
        log.append((name, got, env.now))

    env.process(user("r1", 0.0, False, 4.0))
    env.process(user("r2", 1.0, False, 4.0))   # shares with r1
    env.process(user("w", 2.0, True, 3.0))     # waits for both readers
    env.process(user("r3", 3.0, False, 1.0))   # came after w: waits for it
    env.run()
    got = {name: (a, b) for name, a, b in log}
    assert got["r1"] == (0.0, 4.0) and got["r2"] == (1.0, 5.0)
    assert got["w"] == (5.0, 8.0)
    assert got["r3"] == (8.0, 9.0)


def test_reads_of_an_overlay_wait_for_its_allocating_writes() -> None:
    """A read of data in the image's own file shares its lock (and so waits for allocating
    writes); a read that falls through to the backing file does not; neither does raw."""
    m = PerfModel(TRUE)
    own = m.demand(is_write=False, length=4096, fmt="qcow2",
                   host=HostIO(read_bytes=4096, read_ops=1))
    below = m.demand(is_write=False, length=4096, fmt="qcow2",
                     host=HostIO(read_bytes=4096, read_ops=1, backing_reads=1))
    rewrite = m.demand(is_write=True, length=4096, fmt="qcow2",
                       host=HostIO(write_bytes=4096, write_ops=1))
    first = m.demand(is_write=True, length=4096, fmt="qcow2",
                     host=HostIO(read_bytes=61440, read_ops=1, write_bytes=65536, write_ops=1,
                                 allocs=1))
    raw = m.demand(is_write=False, length=4096, fmt="raw",
                   host=HostIO(read_bytes=4096, read_ops=1))
    assert own.shares_file and rewrite.shares_file
    assert not below.shares_file and not raw.shares_file and not first.shares_file
    assert first.alloc_s > 0

    def latency(d_read, params: PerfParams) -> float:  # type: ignore[no-untyped-def]
        """Mean latency of one read loop beside eight allocating writers on one image."""
        env = simpy.Environment()
        host = Host(env, PerfModel(params), np.random.default_rng(1))
        image = object()
        lat: list[float] = []

        def writer():  # type: ignore[no-untyped-def]
            while True:
                yield from host.serve(first, image)

        def reader():  # type: ignore[no-untyped-def]
            for _ in range(2000):
                t = env.now
                yield from host.serve(d_read, image)
                lat.append(env.now - t)

        for _ in range(8):
            env.process(writer())
        env.run(env.process(reader()))
        return float(np.mean(lat))

    fifo = TRUE.model_copy(update={"device_queue": "fifo"})
    assert latency(own, fifo) > 1.5 * latency(below, fifo)


def test_a_holes_path_does_not_depend_on_the_size_read() -> None:
    """Measured: reads of a hole at iodepth 1 took 58, 63 and 64 us for 4, 16 and 64 KiB."""
    m = PerfModel(TRUE)
    d = [m.demand(is_write=False, length=n, fmt="raw", host=HostIO(read_ops=1))
         for n in (4096, 16384, 65536, 1 << 20)]
    assert all(x.path_s + x.delay_s == pytest.approx(d[0].path_s + d[0].delay_s) for x in d)
    assert all(x.device_s == 0 for x in d)


def device_probes(queue: str) -> list[Probe]:
    """The storage-alone probes of the short matrix, 'measured' on the model."""
    params = TRUE.model_copy(update={"device_queue": queue})
    out = []
    for spec in probe_matrix(settings("short", 4)):
        if spec.target != "device":
            continue
        shell = probe("device", spec.rw, spec.bs, spec.iodepth).model_copy(
            update={"name": spec.name, "beside": spec.beside})
        iops, lat = replay(params, shell, ios=4000)
        out.append(shell.model_copy(update={"iops": iops, "lat_mean_s": lat}))
    return out


@pytest.mark.slow
def test_the_fit_reads_the_device_order_off_the_storage_probes(probes: list[Probe],
                                                               fitted: PerfParams) -> None:
    fifo, shared = device_interference(device_probes("fifo")), device_interference(
        device_probes("shared"))
    assert fifo is not None and shared is not None
    assert fifo > 0.8 and shared < 0.3
    assert fitted.device_queue == "shared"  # made with TRUE, a shared device
    ordered = [p for p in probes if p.target != "device"] + device_probes("fifo")
    got = fit(ordered)
    assert got.device_queue == "fifo" and got.device_interference == pytest.approx(fifo, abs=1e-3)
    # without the storage probes (an older profile's matrix) the device stays shared
    older = fit([p for p in probes if p.target != "device"])
    assert older.device_queue == "shared" and older.device_interference is None


def test_a_fifo_device_slows_small_reads_beside_large_ones() -> None:
    """What arrival order changes on a host: 4 KiB reads through the stack wait for the large
    reads queued before them (as reads beside copies-on-write do)."""
    lat = {}
    for queue in ("shared", "fifo"):
        params = TRUE.model_copy(update={"device_queue": queue})
        p = probe("raw", iodepth=1).model_copy(update={
            "beside": Beside(rw="randread", bs=1 << 20, iodepth=8)})
        lat[queue] = replay(params, p, ios=3000)[1]
    assert lat["fifo"] > 2 * lat["shared"]


def test_demand_follows_what_the_write_did_on_the_host() -> None:
    m = PerfModel(TRUE)
    rewrite = m.demand(is_write=True, length=4096, fmt="qcow2",
                       host=HostIO(write_bytes=4096, write_ops=1))
    cow = m.demand(is_write=True, length=4096, fmt="qcow2",
                   host=HostIO(read_bytes=61440, read_ops=1, write_bytes=65536, write_ops=1,
                               allocs=1))
    assert rewrite.alloc_s == 0
    assert cow.alloc_s + cow.wait_s == pytest.approx(TRUE.alloc_s + TRUE.cow_read_s)
    assert cow.device_s > 10 * rewrite.device_s
    raw = m.demand(is_write=False, length=4096, fmt="raw", host=HostIO(read_bytes=4096,
                                                                         read_ops=1))
    through = m.demand(is_write=False, length=4096, fmt="qcow2", depth=8,
                       host=HostIO(read_bytes=4096, read_ops=1, backing_reads=1))
    total = through.path_s + through.delay_s - raw.path_s - raw.delay_s
    assert total == pytest.approx(TRUE.qcow2_read_s + m.chain(8))
    hole = m.demand(is_write=False, length=4096, fmt="raw", host=HostIO(read_ops=1))
    assert raw.path_s + raw.delay_s - hole.path_s - hole.delay_s == \
        pytest.approx(TRUE.hole_read_s)
    assert hole.device_s == 0


# -- the scenario's model with a profile ------------------------------------------------------

def write_profile(path: Path, params: PerfParams = TRUE) -> Path:
    prof = Profile(created="2026-11-27T00:00:00+00:00", duration_s=1.0, matrix="short",
                   dir="/x", host={}, tools={}, settings={},
                   probes=[probe().model_copy(update={"iops": 10000.0})], params=params)
    path.write_text(profile_json(prof))
    return path


def calibrated(tmp_path: Path, **wl: object) -> pd.DataFrame:
    d = small_dict()
    d["workloads"] = {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "4MiB",
                            **wl}}
    d["vms"] = [{"name": "a", "image": "img", "workload": "w"},
                {"name": "b", "image": "img", "workload": "w"}]
    d["device"] = {"calibrated": TRUE.model_dump(mode="json")}
    return simulate(parse_scenario(d)).set_index(["entity", "metric"]).value


def test_a_rate_limit_holds_under_the_calibrated_model(tmp_path: Path) -> None:
    free = calibrated(tmp_path)
    held = calibrated(tmp_path, rate_iops=500)
    assert free[("vm:a", "write_iops")] > 2000
    assert held[("vm:a", "write_iops")] == pytest.approx(500, rel=0.02)


def test_profile_loads_and_bad_profiles_are_refused(tmp_path: Path) -> None:
    good = write_profile(tmp_path / "p.json")
    assert load_profile(good).params == TRUE
    data = json.loads(good.read_text())
    for change, needle in ((("kind", "x"), "not a cowbench calibration profile"),
                           (("schema_version", 9), "schema_version"),
                           (("params", {}), "params.stages")):
        bad = dict(data)
        bad[change[0]] = change[1]
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=needle):
            load_profile(p)
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(UsageError, match="not JSON"):
        load_profile(tmp_path / "junk.json")
    # absurd figures, refused with their key (Infinity failed inside the model, exit 1; 1e300
    # made a run that never ended)
    for key, value, needle in (
            ("client_s", float("inf"), r"params\.client_s: inf is not a number"),
            ("client_s", 1e300, r"params\.client_s: 1e\+300 s for one step"),
            # a zero bandwidth divided by zero in the model; a negative one gave IOPS
            ("read_bw", [[0, 0.0]], r"params\.read_bw: block size 0 is not positive"),
            ("read_bw", [[65536, 0.0]], r"params\.read_bw: \[0\.0\] bytes/s at 65536"),
            ("write_bw", [[65536, -1.0]], r"params\.write_bw: \[-1\.0\] bytes/s"),
            ("read_path_s", [[4096, -1e-5]], r"params\.read_path_s: .* is negative")):
        bad = json.loads(good.read_text())
        bad["params"][key] = value
        p = tmp_path / "absurd.json"
        p.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=needle):
            load_profile(p)


@pytest.mark.slow
def test_the_long_matrix_is_finer_and_fits_too() -> None:
    # the probes the fit replays (each matrix also holds one contention probe, replayed only,
    # the same one trim probe and the same storage-alone probes, which give the device its
    # bandwidths and its order)
    short = [p for p in probe_matrix(settings("short", 4))
             if p.beside is None and p.target not in ("trim", "device")]
    long = [p for p in probe_matrix(settings("long", 6))
            if p.beside is None and p.target not in ("trim", "device")]
    assert len(long) > 2 * len(short)
    depths = {p.depth for p in long if p.target == "chain"}
    assert {1, 8, 32} <= depths and len(depths) >= 8
    assert {p.exports for p in long} == {1, 2, 3, 4, 5, 6}
    assert {p.iodepth for p in long if p.target == "raw"} >= {1, 2, 4, 8, 16, 32}
    got = fit(synthetic_probes(TRUE, ios=1500, matrix="long", exports=6, fitted_only=True))
    assert abs(got.stages - TRUE.stages) <= 0.6
    assert len(got.read_path_s) == 8  # 4 KiB and every probed size
