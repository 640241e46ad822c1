"""One Nova: a scenario written as a timeline and the same one written as a fleet take the same
decisions with the same seed: arrivals and lifetimes, where each VM is placed (spread, with
NoValidHost), where each migrates, and when each host's image cache loses its base. Both share
one ``hosts`` section (a pool of three alike hosts, ``count: 3``, or hosts of different sizes,
reserved disk and allocation ratios) and one ``flavors`` section; only the ``fleet`` and
``timeline`` sections differ (and a fleet in the old spelling, its own ``fleet.hosts`` and
``fleet.flavors``, decides the same). On the mixed hosts, every placement is checked against
Nova's spread weigher worked out here by hand."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cowbench.lifecycle import expand_timeline
from cowbench.nova.draws import streams
from cowbench.scenario import Scenario, parse_scenario
from sim import simulate
from sim.fleet.fleet import snapshots_taken
from sim.fleet.fleet_events import run_events

SEED = 7
VMS = 40
DURATION = 2 * 86400.0
HOSTS = [f"host-00{i}" for i in (1, 2, 3)]
POOL = [{"name": "host", "count": 3, "capacity_bytes": "3GiB"}]
#: a host whose reserved disk counts, two smaller ones overcommitted: DISK_GB inventories of
#: (5 - 1) x 1 = 4 GiB and (1.25 - 0) x 1.6 = 2 GiB each
MIXED = [{"name": "big", "capacity_bytes": "5GiB", "reserved_host_disk_bytes": "1GiB"},
         {"name": "small", "count": 2, "capacity_bytes": "1280MiB",
          "disk_allocation_ratio": 1.6}]
INVENTORY = {"POOL": [3.0, 3.0, 3.0], "MIXED": [4.0, 2.0, 2.0]}  # GiB
#: what the DiskWeigher counts of each: capacity - reserved, no ratio (GiB)
DISK = {"POOL": [3.0, 3.0, 3.0], "MIXED": [4.0, 1.25, 1.25]}
GIB = 1 << 30
COMMON: dict[str, Any] = {
    "seed": SEED, "duration": "2d",
    "images": [{"name": "img", "virtual_size": "256MiB",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
    "flavors": [{"name": "f", "root": "1GiB"}],
    "nova": {"image_cache": {"manager_interval_s": "10m",
                             "remove_unused_original_minimum_age_s": "1h"},
             "resize_confirm_window_s": "2h"},  # cold migrations: _resize kept 2 h
}
LIFETIME = {"distribution": "exponential", "mean_s": "12h"}


def as_fleet(kind: str = "live", spelling: str = "new", hosts: str = "POOL",
             window: str = "2h", snapshots: str | None = None) -> Scenario:
    fleet: dict[str, Any] = {
        "vms": VMS, "sample_interval_s": "1h", "lifetime": LIFETIME, "flavor_mix": {"f": 1},
        "image_mix": {"img": 1}, "classes": {"idle": {}},
        "migrations": {"share": 1.0, "every_s": "6h", "kind": kind}}
    if snapshots is not None:
        fleet["snapshots"] = {"share": 1.0, "every_s": snapshots}
    if spelling == "new":
        return parse_scenario({**COMMON, "name": "as-fleet", "fleet": fleet,
                               "hosts": {"POOL": POOL, "MIXED": MIXED}[hosts],
                               "nova": nova(window)})
    old = {k: v for k, v in COMMON.items() if k != "flavors"}
    del fleet["flavor_mix"]
    fleet.update(hosts={"count": 3, "capacity": "3GiB"},
                 flavors=[{"name": "f", "root": "1GiB", "share": 1}],
                 sample_interval=fleet.pop("sample_interval_s"))
    with pytest.warns(FutureWarning) as seen:
        s = parse_scenario({**old, "name": "as-fleet", "fleet": fleet})
    assert {str(w.message).split(" is now")[0] for w in seen} == {
        "fleet.hosts", "fleet.hosts.capacity", "fleet.flavors", "fleet.sample_interval"}
    return s


def nova(window: str) -> dict[str, Any]:
    return {**COMMON["nova"], "resize_confirm_window_s": window}


def as_timeline(kind: str = "live", hosts: str = "POOL", window: str = "2h",
                snapshots: str | None = None) -> Scenario:
    arrivals = {"prefix": "vm", "count": 2 * VMS, "rate_per_s": VMS / DURATION, "image": "img",
                "flavor": "f", "lifetime": LIFETIME, "migrate_every_s": "6h",
                "migrate_kind": kind}
    if snapshots is not None:
        arrivals["snapshot_every_s"] = snapshots
    return parse_scenario({
        **COMMON, "name": "as-timeline", "vms": [], "nova": nova(window),
        "hosts": {"POOL": POOL, "MIXED": MIXED}[hosts],
        "timeline": {"sample_interval_s": "1h", "end_s": "2d", "arrivals": [arrivals]}})


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


@pytest.mark.parametrize(("kind", "spelling", "hosts", "window"), [
    ("live", "new", "POOL", "2h"), ("cold", "new", "POOL", "2h"), ("live", "old", "POOL", "2h"),
    ("live", "new", "MIXED", "2h"), ("cold", "new", "MIXED", "2h"),
    # migrations every 6 h that Nova refuses while the one before awaits its confirm
    # (VERIFY_RESIZE): confirmed by Nova itself after 8 h, or never (0)
    ("cold", "new", "POOL", "8h"), ("cold", "new", "MIXED", "0")])
def test_a_timeline_and_a_fleet_take_the_same_nova_decisions(kind: str, spelling: str,
                                                             hosts: str, window: str) -> None:
    fleet = as_fleet(kind, spelling, hosts, window)
    timeline = as_timeline(kind, hosts, window)
    assert fleet.hosts == timeline.hosts
    assert [h.name for h in fleet.hosts] == \
        (HOSTS if hosts == "POOL" else ["big", "small-001", "small-002"])
    assert [h.placement_capacity / GIB for h in fleet.hosts] == INVENTORY[hosts]
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
    if window != "2h":  # and some were refused: due while the one before awaited its confirm
        plan = run_events(fleet, streams(SEED))
        due = plan.mig_t + 6 * 3600
        assert ((due < plan.mig_confirm) & (due < life_end[plan.mig_vm])
                & (due < DURATION)).any()
    # the image cache manager removes the same bases at the same passes
    f_cache = cache_held(simulate(fleet, SEED))
    t_cache = cache_held(simulate(timeline, SEED))
    assert f_cache.index.isin(t_cache.index).all() and (~f_cache).to_numpy().any()
    assert f_cache.to_numpy().tolist() == \
        t_cache.loc[f_cache.index, f_cache.columns].to_numpy().tolist()


@pytest.mark.parametrize(("kind", "window"), [("cold", "8h"), ("cold", "2h"), ("cold", "0"),
                                            ("live", "2h")])
def test_a_timeline_and_a_fleet_take_the_same_snapshots(kind: str, window: str) -> None:
    """Every 2 h of each VM's life a snapshot, but none while its cold migration awaits its
    confirm (VERIFY_RESIZE: Nova refuses it); at a migration's instant the snapshot comes
    first, at its confirm's after it; the same in a timeline and a fleet."""
    fleet = as_fleet(kind, window=window, snapshots="2h")
    timeline = as_timeline(kind, window=window, snapshots="2h")
    plan = run_events(fleet, streams(SEED))
    f_vm, f_t = snapshots_taken(fleet, plan)
    taken = sorted((int(o.vm.removeprefix("vm-")) - 1, o.t) for o in expand_timeline(timeline)
                   if o.op == "snapshot")
    assert taken == list(zip(f_vm.tolist(), f_t.tolist(), strict=True))
    # every one of them while its VM lives, after its arrival, never within a window
    life_end, arrive = plan.population.life_end, plan.population.arrive
    assert ((arrive[f_vm] < f_t) & (f_t < np.minimum(life_end[f_vm], DURATION))).all()
    window_of = [(v, t0, t1) for v, t0, t1 in zip(
        plan.mig_vm.tolist(), plan.mig_t.tolist(), plan.mig_confirm.tolist(), strict=True)]
    inside = [(v, t) for v, t in taken for w, t0, t1 in window_of if v == w and t0 < t < t1]
    assert inside == []
    every = {v: int((min(life_end[v], DURATION) - arrive[v]) / 7200 - 1e-9)
             for v in set(plan.seg_vm.tolist())}
    skipped = sum(every.values()) - len(taken)  # the ones Nova refused
    assert (skipped > 0) == (kind == "cold" and window != "2h")
    if kind == "cold":  # at a migration's instant, and (2 h after it) at its confirm's: taken
        at = {(v, t) for v, t0, t1 in window_of for t in (t0, t1)}
        assert at & set(taken) and (window != "2h" or len(at & set(taken)) > len(window_of))


def spread(free: list[float], need: float, exclude: int = -1,
           weighed: list[float] | None = None) -> int:
    """Nova's choice worked by hand: of the hosts whose free DISK_GB holds ``need``, never
    ``exclude``, the one the DiskWeigher weighs most free (``weighed``: its disk less the claims,
    no ratio; ``free`` when not given), the lowest index among equals; -1 when none fits
    (NoValidHost)."""
    w = free if weighed is None else weighed
    ok = [h for h in range(len(free)) if h != exclude and free[h] >= need]
    return max(ok, key=lambda h: (w[h], -h)) if ok else -1


@pytest.mark.parametrize("kind", ["live", "cold"])
def test_a_fleet_of_mixed_hosts_places_by_the_spread_weigher(kind: str) -> None:
    """Replay the fleet's plan against placement's arithmetic: each arrival and migration
    went where the weigher puts it: among the hosts whose (capacity - reserved) x ratio holds
    the claim, the most free capacity - reserved (no ratio)."""
    plan = run_events(as_fleet(kind, hosts="MIXED"), streams(SEED))
    pop = plan.population
    hosts: dict[int, list[int]] = defaultdict(list)  # each VM's hosts, in order
    for vm, host in zip(plan.seg_vm.tolist(), plan.seg_host.tolist(), strict=True):
        hosts[vm].append(host)
    events: list[tuple[float, int, str, int, int]] = []
    for vm, t in enumerate(pop.arrive.tolist()):
        events.append((t, vm, "arrive", vm, hosts[vm][0] if vm in hosts else -1))
        if vm in hosts and pop.life_end[vm] < DURATION:
            events.append((float(pop.life_end[vm]), vm, "leave", vm, -1))
    nth = defaultdict(int)
    for vm, t, src, confirm in zip(plan.mig_vm.tolist(), plan.mig_t.tolist(),
                                   plan.mig_src.tolist(), plan.mig_confirm.tolist(), strict=True):
        nth[vm] += 1
        events.append((t, vm, "migrate", vm, hosts[vm][nth[vm]]))
        if kind == "cold" and confirm < DURATION:
            events.append((confirm, vm, "confirm", vm, src))
    used = [0.0] * 3
    where: dict[int, int] = {}
    refused = 0
    for _, _, what, vm, host in sorted(events):
        if what in ("leave", "confirm"):
            used[where.pop(vm) if what == "leave" else host] -= GIB
            continue
        src = where.get(vm, -1)
        free = [x * GIB - u for x, u in zip(INVENTORY["MIXED"], used, strict=True)]
        weighed = [x * GIB - u for x, u in zip(DISK["MIXED"], used, strict=True)]
        assert spread(free, GIB, exclude=src, weighed=weighed) == host, (what, vm, free)
        refused += host < 0
        if host >= 0:
            if src >= 0 and kind == "live":
                used[src] -= GIB  # a cold migration's source keeps its claim until confirmed
            used[host] += GIB
            where[vm] = host
    assert refused and plan.mig_vm.size and set(plan.seg_host.tolist()) == {0, 1, 2}


def test_arrivals_a_timeline_refuses_are_counted_listed_and_said(tmp_path: Any) -> None:
    """An arrival no host has room for is refused (NoValidHost), as in a fleet, and the user
    is told: validate counts them, run.json lists them (``refused_arrivals``), run and show
    print them. Before, a timeline's refused arrivals vanished without a word (a user's 60
    arrivals: 31 booted, two refused, nothing said)."""
    from .clirun import cowbench
    from .test_cli import write

    d: dict[str, Any] = {
        "name": "full", "seed": 5,
        "images": [{"name": "img", "virtual_size": "1GiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
        "hosts": [{"name": "h", "capacity_bytes": "3GiB"}],
        "flavors": [{"name": "f1", "root": "1GiB"}],
        "vms": [],
        "timeline": {"sample_interval_s": "1h", "end_s": "1d", "arrivals": [
            {"prefix": "vm", "count": 5, "rate_per_s": 1 / 3600, "image": "img",
             "flavor": "f1", "lifetime": {"distribution": "fixed", "mean_s": "2d"}}]}}
    s = parse_scenario(d)
    booted = [op.vm for op in expand_timeline(s) if op.op == "boot"]
    assert booted == ["vm-1", "vm-2", "vm-3"]  # three 1 GiB roots fill the 3 GiB host
    path = write(tmp_path, d)
    shown = cowbench("validate", str(path))
    assert shown.code == 0, shown.stderr
    assert "timeline: 3 VM(s) boot by its end, 2 arrival(s) refused (NoValidHost" in shown.stdout
    ran = cowbench("run", str(path), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [r["vm"] for r in meta["refused_arrivals"]] == ["vm-4", "vm-5"]
    line = "arrivals refused (NoValidHost, no host had room): 2: vm-4 at t="
    assert line in ran.stdout and line in cowbench("show", str(tmp_path / "run")).stdout
