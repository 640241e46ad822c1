"""A large I/O's data crosses the unix socket between fio and qemu-nbd a buffer at a time
(212,992 bytes here), the receiver waking for each piece and the sender for room
(``SchedParams.read_bytes_turns``, ``sim.perf.host.Host._across``). Measured here
(2026-12-06): fio switched 4.3-5.0 times per 1 MiB read where it switched 0.29-1.06 times per
4 KiB one; on a crowded host each piece waits for a core, and the 1 MiB sequential reader of
io-density.yaml, moved in one turn of each side, was predicted 6-63% fast."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy
from rich.console import Console

from cowbench.calibrate_view import print_profile
from cowbench.profile import CpuCost, Probe, Profile, SchedParams
from sim.perf.demand import PerfModel
from sim.perf.host import Host
from sim.perf.schedfit import bytes_turns, sched_params
from sim.storage.disk import HostIO

from .test_perf import TRUE, probe

Proc = Generator[simpy.Event, Any, None]
MiB = 1 << 20
DATA = CpuCost(issuer_io_s=7e-6, issuer_wake_s=2e-6, server_io_s=32e-6, server_wake_s=11e-6)


def turns_probe(rw: str, bs: int, iodepth: int, turns: float) -> Probe:
    return probe(rw=rw, bs=bs, iodepth=iodepth).model_copy(update={
        "issuer_cpu_s": 10e-6, "server_cpu_s": 50e-6, "issuer_turns": turns})


PROBES = [turns_probe("randread", 4096, 1, 1.06),
          turns_probe("randread", 4096, 32, 0.29),
          turns_probe("randread", 65536, 1, 1.11),  # probed at iodepth 1 only: against 4 KiB's
          turns_probe("randread", MiB, 1, 5.0),
          turns_probe("randread", MiB, 8, 4.3),  # its deepest, against the deepest 4 KiB one
          turns_probe("randwrite", 4096, 1, 1.1),
          turns_probe("randwrite", MiB, 1, 3.0)]


def test_the_pieces_are_fios_switches_per_io_beyond_a_4k_ones() -> None:
    reads = bytes_turns(PROBES, "randread")
    assert [s for s, _ in reads] == [65536, MiB]
    assert reads[0][1] == pytest.approx(0.05) and reads[1][1] == pytest.approx(4.01)
    assert bytes_turns(PROBES, "randwrite") == [(MiB, pytest.approx(1.9))]
    s = sched_params(PROBES, cores=2)
    assert s is not None and s.read_bytes_turns == reads
    assert bytes_turns([p for p in PROBES if p.bs != 4096], "randread") == []  # no 4 KiB one
    same = [p.model_copy(update={"issuer_turns": 1.0}) for p in PROBES]
    assert bytes_turns(same, "randread") == []  # no size switches more: one piece
    # the probes beside others or on several exports are not what it reads
    crowded = [p.model_copy(update={"exports": 2}) for p in PROBES]
    assert bytes_turns(crowded, "randread") == []


SCHED = SchedParams(cores=2, slice_s=1.5e-3, **DATA.model_dump(), alloc=DATA,
                    read_bytes_cpu=[(MiB, 160e-6, 410e-6)],
                    read_bytes_turns=[(65536, 0.05), (MiB, 4.01)])


def test_a_size_crosses_in_whole_pieces_linear_in_bytes() -> None:
    assert SCHED.bytes_turns(False, 4096) == 0
    assert SCHED.bytes_turns(False, 65536) == 0
    assert SCHED.bytes_turns(False, MiB) == 4
    assert SCHED.bytes_turns(False, MiB // 2) == 2  # 0.05 + (448 / 960) * 3.96
    assert SCHED.bytes_turns(True, MiB) == 0  # no write table: one piece
    d = PerfModel(TRUE.model_copy(update={"sched": SCHED})).demand(
        is_write=False, length=MiB, host=HostIO(read_bytes=MiB, read_ops=1), fmt="raw")
    assert d.data_turns == 4 and not d.is_write


def test_calibrate_prints_the_pieces_of_a_1_mib_io() -> None:
    def shown(sched: SchedParams) -> str:
        out = Console(record=True, width=220)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=[probe()],
                              params=TRUE.model_copy(update={"sched": sched})), out)
        return out.export_text()

    assert "in 5 pieces a 1 MiB read, 1 a 1 MiB write" in shown(SCHED)
    assert "across the socket" not in shown(SCHED.model_copy(update={"read_bytes_turns": []}))


def one_large_read(sched: SchedParams, crowd: int) -> tuple[float, int, int]:
    """(the mean latency of 1 MiB reads at iodepth 1, its issuer's turns, its server's) on a
    host of two cores, beside ``crowd`` VMs reading 4 KiB at iodepth 4."""
    env = simpy.Environment()
    model = PerfModel(TRUE.model_copy(update={"sched": sched}))
    host = Host(env, model, np.random.default_rng(5))
    d = model.demand(is_write=False, length=MiB, fmt="raw",
                     host=HostIO(read_bytes=MiB, read_ops=1))
    small = model.demand(is_write=False, length=4096, fmt="raw",
                         host=HostIO(read_bytes=4096, read_ops=1))
    lat: list[float] = []

    def reader() -> Proc:
        while True:
            t = env.now
            yield from host.serve(d, "vm")
            lat.append(env.now - t)

    def slot(vm: str) -> Proc:
        while True:
            yield host.client()
            yield from host.serve(small, vm)

    env.process(reader())
    for k in range(crowd * 4):
        env.process(slot(f"vm{k // 4}"))
    env.run(until=0.5)
    issuer, server = host.tasks("vm")
    return float(np.mean(lat)), issuer.turns, server.turns


def test_on_an_idle_host_the_pieces_cost_no_time_and_a_turn_of_each_side_each() -> None:
    one = SCHED.model_copy(update={"read_bytes_turns": []})
    lat1, issuer1, server1 = one_large_read(one, crowd=0)
    lat5, issuer5, server5 = one_large_read(SCHED, crowd=0)
    assert lat5 == pytest.approx(lat1, rel=1e-6)
    # each I/O: one turn of each as the request goes, then five of each as the reply returns
    assert issuer1 / server1 == pytest.approx(1.0, abs=0.01)
    assert issuer5 / issuer1 == pytest.approx(6 / 2, rel=0.02)
    assert server5 / server1 == pytest.approx(6 / 2, rel=0.02)


def test_on_a_crowded_host_each_piece_waits_for_a_core() -> None:
    # beside two VMs of four 4 KiB reads in flight, the cores are seldom both free when a
    # side wakes for its next piece: 12% longer here (3.33 against 2.98 ms)
    one = SCHED.model_copy(update={"read_bytes_turns": []})
    lat1, issuer1, _ = one_large_read(one, crowd=2)
    lat5, issuer5, _ = one_large_read(SCHED, crowd=2)
    assert lat5 > 1.05 * lat1
    assert issuer5 > issuer1
