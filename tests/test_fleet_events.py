"""The fleet's event loop (``sim.fleet.fleet_events``, the engine runs use) takes exactly the
decisions of the per-VM SimPy lifecycle it replaced (``tests/fleet_reference.py``, kept as the
reference): the same placements, migrations, confirmations and sampled host state, bit for bit,
and so the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import sim.fleet.fleet as fleet_model
from cowbench.nova.draws import streams
from cowbench.scenario import parse_scenario
from sim import simulate
from sim.fleet.fleet_events import run_events, simpy_times
from sim.fleet.plan import Plan, cache_entries

from .fleet_reference import run_lifecycle

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("seg_vm", "seg_host", "seg_t0", "seg_t1", "mig_vm", "mig_t", "mig_src",
          "mig_confirm", "cache_bytes", "provisioned", "vm_count", "fetch_bytes", "placed")


def small(**fleet: Any) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    d["fleet"].update(fleet)
    return d


def full() -> dict[str, Any]:
    """Hosts that refuse VMs (NoValidHost) and every VM migrated daily."""
    d = small(vms=400, migrations={"share": 1.0, "every_s": "1d", "kind": "live"})
    d["hosts"][0].update(capacity_bytes="16GiB", disk_allocation_ratio=1.25)
    return d


def cold(window: str) -> dict[str, Any]:
    """Cold migrations: the _resize copies' ends tie with their VMs' deaths when they die
    within the window."""
    d = small(vms=200, migrations={"share": 0.6, "every_s": "2d", "kind": "cold"})
    d["hosts"][0]["capacity_bytes"] = "24GiB"
    d["nova"] = {"resize_confirm_window_s": window}
    return d


def aging(remove: bool) -> dict[str, Any]:
    """Bases age out within the run (swap bases too) or are kept."""
    d = small(vms=150, lifetime={"distribution": "lognormal", "mean_s": "1d", "sigma": 1.5})
    d["hosts"][0]["count"] = 6
    d["nova"] = {"image_cache": {"manager_interval_s": "10m", "remove_unused_base_images": remove,
                                 "remove_unused_original_minimum_age_s": "3h"}}
    return d


def ties() -> dict[str, Any]:
    """Every VM lives exactly one migration interval: its death and its first migration fall
    on the same instant (SimPy runs the one booked first: the death)."""
    return small(vms=100, lifetime={"distribution": "fixed", "mean_s": "2d"},
                 migrations={"share": 1.0, "every_s": "2d", "kind": "live"})


CASES = {"ties": ties(), "small": small(), "full": full(), "cold-1d": cold("1d"),
         "cold-0": cold("0"), "aging": aging(True), "kept": aging(False)}


def same(a: Plan, b: Plan) -> list[str]:
    return [k for k in FIELDS if not np.array_equal(getattr(a, k), getattr(b, k))]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_event_loop_decides_as_the_simpy_lifecycle(case: str) -> None:
    s = parse_scenario(CASES[case])
    for seed in (1, 2):
        a, b = run_lifecycle(s, streams(seed)), run_events(s, streams(seed))
        assert same(a, b) == [], (case, seed)
    # what the case is there for happened
    if case == "full":
        assert not b.placed.all() and b.mig_vm.size > 100
    if case.startswith("cold"):
        assert np.isin(b.mig_confirm, b.population.life_end).any()
    if case == "aging":
        assert (np.diff(b.cache_bytes, axis=0) < 0).any()  # a base aged out
    if case == "ties":
        assert b.mig_vm.size == 0  # every VM died before its migration
    if case == "kept":
        assert (np.diff(b.cache_bytes, axis=0) >= 0).all()


def test_the_records_are_those_of_the_simpy_lifecycle(monkeypatch: Any) -> None:
    d = cold("1d")
    d["fleet"]["records"] = "per_vm"
    s = parse_scenario(d)
    ours = simulate(s, 3)
    monkeypatch.setattr(fleet_model, "run_events", run_lifecycle)
    assert simulate(s, 3).equals(ours)


def test_simpy_times_are_the_instants_simpy_reaches() -> None:
    t = np.sort(np.random.default_rng(5).uniform(0, 3e7, 20_000))
    now, want = 0.0, []
    for x in t.tolist():
        now = now + (x - now)
        want.append(now)
    assert simpy_times(t).tolist() == want


EPH = """
name: eph
seed: 3
duration: 10d
images: [{name: img, virtual_size: 1GiB, format: qcow2,
          synthetic: {data: [{offset: 0, length: 256MiB}]}}]
hosts: [{name: h, capacity_bytes: 100GiB}]
flavors: [{name: f20, root: 20GiB, ephemeral: 10GiB, swap: 2GiB}]
strategy: {kind: qcow2_overlay, cluster_size: 64KiB}
nova: {image_cache: {remove_unused_original_minimum_age_s: 1h}}
fleet: {vms: 3, sample_interval_s: 1d, records: per_vm,
        lifetime: {distribution: fixed, mean_s: 30d},
        flavor_mix: {f20: 1}, image_mix: {img: 1}, classes: {idle: {}}}
"""


@pytest.mark.parametrize("life", ["30d", "2d"])
def test_swap_and_ephemeral_bases_stay_while_their_vms_live_then_age_out(life: str) -> None:
    """Nova's manager touches a swap or ephemeral base an instance of the host uses and
    removes it once unused for remove_unused_original_minimum_age_seconds, as a Glance base
    (``_age_and_verify_swap_images``, ``_age_and_verify_ephemeral_images`` in
    nova/virt/libvirt/imagecache.py; ephemeral bases since 23.0.0, f44700935f). With VMs that
    live past the run's end their host keeps all three bases to the end (a user's fleet lost
    them a day after the last boot, 2026-12-05); with VMs of 2 days, ``_base`` is empty an hour
    after the last one goes (before, the ephemeral base stayed forever)."""
    s = parse_scenario(yaml.safe_load(EPH.replace("mean_s: 30d", f"mean_s: {life}")))
    rec = simulate(s, 3)
    cache = rec[(rec.entity == "cache:h") & (rec.metric == "allocated_bytes")]
    alive = rec[(rec.entity == "host:h") & (rec.metric == "vm_count")]
    ents = cache_entries(s)
    every = float(ents.stored_bytes.sum())  # the image's base, the ephemeral and swap bases
    assert len(ents.stored_bytes) == 3 and ents.per_flavor_image[(0, 0)] == [0, 1, 2]
    first = float(alive[alive.value > 0].t_s.min())
    if life == "30d":
        held = cache[cache.t_s >= first].value
        assert len(held) >= 2 and (held == every).all(), cache
    else:  # unused for an hour, gone at the next pass (every 2400 s)
        gone = float(run_events(s, streams(3)).population.life_end.max()) + 3600 + 2400
        assert (cache[cache.t_s == first].value == every).all()
        assert (cache.t_s >= gone).any() and (cache[cache.t_s >= gone].value == 0).all(), cache
