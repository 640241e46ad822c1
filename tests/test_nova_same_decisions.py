"""One Nova: a scenario written as a timeline and the same one written as a fleet take the same
decisions with the same seed: arrivals and lifetimes, where each VM is placed (spread, with
NoValidHost), where each migrates, and when each host's image cache loses its base. Both share
one ``hosts`` section (a pool of three alike hosts, ``count: 3``) and one ``flavors`` section;
only the ``fleet`` and ``timeline`` sections differ (and a fleet in the old spelling, its own
``fleet.hosts`` and ``fleet.flavors``, decides the same)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cowbench.lifecycle import expand_timeline
from cowbench.nova.draws import streams
from cowbench.scenario import Scenario, parse_scenario
from sim import simulate
from sim.fleet.fleet_events import run_events

SEED = 7
VMS = 40
DURATION = 2 * 86400.0
HOSTS = [f"host-00{i}" for i in (1, 2, 3)]
COMMON: dict[str, Any] = {
    "seed": SEED, "duration": "2d",
    "images": [{"name": "img", "virtual_size": "256MiB",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
    "hosts": [{"name": "host", "count": 3, "capacity_bytes": "3GiB"}],
    "flavors": [{"name": "f", "root": "1GiB"}],
    "nova": {"image_cache": {"manager_interval_s": "10m",
                             "remove_unused_original_minimum_age_s": "1h"},
             "resize_confirm_window_s": "2h"},  # cold migrations: _resize kept 2 h
}
LIFETIME = {"distribution": "exponential", "mean_s": "12h"}


def as_fleet(kind: str = "live", spelling: str = "new") -> Scenario:
    fleet = {"vms": VMS, "sample_interval_s": "1h", "lifetime": LIFETIME,
             "flavor_mix": {"f": 1}, "image_mix": {"img": 1}, "classes": {"idle": {}},
             "migrations": {"share": 1.0, "every_s": "6h", "kind": kind}}
    if spelling == "new":
        return parse_scenario({**COMMON, "name": "as-fleet", "fleet": fleet})
    old = {k: v for k, v in COMMON.items() if k not in ("hosts", "flavors")}
    del fleet["flavor_mix"]
    fleet.update(hosts={"count": 3, "capacity": "3GiB"},
                 flavors=[{"name": "f", "root": "1GiB", "share": 1}],
                 sample_interval=fleet.pop("sample_interval_s"))
    with pytest.warns(FutureWarning) as seen:
        s = parse_scenario({**old, "name": "as-fleet", "fleet": fleet})
    assert {str(w.message).split(" is now")[0] for w in seen} == {
        "fleet.hosts", "fleet.hosts.capacity", "fleet.flavors", "fleet.sample_interval"}
    return s


def as_timeline(kind: str = "live") -> Scenario:
    return parse_scenario({
        **COMMON, "name": "as-timeline", "vms": [],
        "timeline": {"sample_interval_s": "1h", "end_s": "2d", "arrivals": [{
            "prefix": "vm", "count": 2 * VMS, "rate_per_s": VMS / DURATION, "image": "img",
            "flavor": "f", "lifetime": LIFETIME, "migrate_every_s": "6h",
            "migrate_kind": kind}]}})


def fleet_decisions(s: Scenario) -> tuple[dict[int, list[tuple[float, str]]], np.ndarray,
                                           np.ndarray]:
    plan = run_events(s, streams(SEED))
    moves: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for vm, host, t0 in zip(plan.seg_vm.tolist(), plan.seg_host.tolist(),
                            plan.seg_t0.tolist(), strict=True):
        moves[vm].append((t0, plan.hosts[host]))
    return dict(moves), plan.population.arrive, plan.population.life_end


def timeline_decisions(s: Scenario) -> tuple[dict[int, list[tuple[float, str]]],
                                              dict[int, float]]:
    moves: dict[int, list[tuple[float, str]]] = defaultdict(list)
    deaths: dict[int, float] = {}
    for op in expand_timeline(s):
        vm = int(op.vm.removeprefix("vm-")) - 1
        if op.op in ("boot", "migrate"):
            assert op.to is not None
            moves[vm].append((op.t, op.to))
        elif op.op == "delete":
            deaths[vm] = op.t
    return dict(moves), deaths


def cache_held(rec: pd.DataFrame) -> pd.DataFrame:
    """Per sample time (t > 0) and host: does the host's _base hold a base? (A timeline also
    records after each pass and operation: the last record of an instant is its state.)"""
    c = rec[rec.entity.str.startswith("cache:") & (rec.metric == "allocated_bytes")
            & (rec.t_s > 0)].drop_duplicates(["t_s", "entity"], keep="last")
    return (c.pivot(index="t_s", columns="entity", values="value") > 0).sort_index()


@pytest.mark.parametrize(("kind", "spelling"), [("live", "new"), ("cold", "new"),
                                               ("live", "old")])
def test_a_timeline_and_a_fleet_take_the_same_nova_decisions(kind: str, spelling: str) -> None:
    fleet, timeline = as_fleet(kind, spelling), as_timeline(kind)
    assert fleet.hosts == timeline.hosts and [h.name for h in fleet.hosts] == HOSTS
    assert fleet.flavors == timeline.flavors
    f_moves, arrive, life_end = fleet_decisions(fleet)
    t_moves, deaths = timeline_decisions(timeline)
    # the same VMs arrive at the same instants, and the same ones are refused (NoValidHost)
    assert sorted(t_moves) == sorted(f_moves)
    assert len(f_moves) < arrive.size  # the hosts were full at some arrivals
    for vm, moves in f_moves.items():
        assert moves == t_moves[vm]  # boot host, then every migration's destination
        assert moves[0][0] == arrive[vm]
    # the same lifetimes: deleted when their lifetime ends within the run
    assert deaths == {vm: float(life_end[vm]) for vm in f_moves if life_end[vm] < DURATION}
    assert any(len(m) > 1 for m in f_moves.values())  # migrations happened
    # the image cache manager removes the same bases at the same passes
    f_cache = cache_held(simulate(fleet, SEED))
    t_cache = cache_held(simulate(timeline, SEED))
    assert f_cache.index.isin(t_cache.index).all() and (~f_cache).to_numpy().any()
    assert f_cache.to_numpy().tolist() == \
        t_cache.loc[f_cache.index, f_cache.columns].to_numpy().tolist()
