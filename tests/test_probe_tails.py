"""A probe's replayed latencies (``sim.perf.replay.replay_latencies``) and
benchmarks/probe_tails.py, which sets the model's p99 beside the one each probe measured."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cowbench.profile import Profile, profile_json
from sim.perf.replay import replay, replay_latencies

from .conftest import load_benchmark
from .test_perf import TRUE, shells
from .test_perf_sched import SCHED

PARAMS = TRUE.model_copy(update={"sched": SCHED, "path": "vm"})


def probe_tails() -> ModuleType:
    return load_benchmark("probe_tails")


def several_exports() -> list:  # type: ignore[type-arg]
    return [p for p in shells() if p.exports > 1 and p.beside is None][:2]


def test_the_latencies_are_the_ios_counted_and_their_mean_is_the_replays() -> None:
    for probe in several_exports():
        iops, lat = replay_latencies(PARAMS, probe, ios=300, seed=2)
        assert len(lat) >= 300 and (lat > 0).all()  # the I/Os in flight at the end too
        assert (iops, float(np.mean(lat))) == replay(PARAMS, probe, ios=300, seed=2)


def test_the_benchmark_sets_each_crowded_probes_tail_beside_the_models(tmp_path: Path) -> None:
    """Probes whose measured figures are the model's own mean with a p99 ten times it: the
    table gives fio's tail as 10 and the model's as its replay's, and leaves out the probes
    with one I/O in flight unless asked for every one."""
    bench = probe_tails()
    every = shells()
    probes = []  # three crowded, three with one I/O in flight
    for p in [q for q in every if bench.crowded(q)][:3] + [q for q in every
                                                           if not bench.crowded(q)][:3]:
        _, lat = replay_latencies(PARAMS, p, ios=100)
        mean = float(np.mean(lat))
        probes.append(p.model_copy(update={"lat_mean_s": mean, "lat_p99_s": 10 * mean}))
    path = tmp_path / "profile.json"
    path.write_text(profile_json(Profile(
        created="now", duration_s=1.0, matrix="short", dir="/d", host={}, tools={},
        settings={}, probes=probes, params=PARAMS)))
    rows = bench.rows(path, 100, every=False)
    assert [r["probe"] for r in rows] == [p.name for p in probes[:3]]
    for r in rows:
        assert r["tail"] == pytest.approx(10.0)
        assert r["mean_us"] == pytest.approx(r["model_mean_us"])
        assert 1.0 <= r["model_tail"] < 10.0  # the model's p99: above its mean, far below
    assert len(bench.rows(path, 100, every=True)) == len(probes)
