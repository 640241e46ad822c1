"""What a fleet's lifecycle decides and what it starts from (FACTS.md section 1).

- :class:`Population`: every VM that arrives, its arrival, lifetime, flavor, image, workload
  class and policies (:func:`draw_population`, from ``cowbench.nova.draws``: the fleet is
  arrival group 0 of the seed's streams, as a timeline's first arrival group);
- :func:`cache_entries`: the bases a host's ``_base`` can hold (one per image, one per
  ephemeral and swap size) and their sizes; the cache manager counts each as "in use" while a
  disk uses it;
- :class:`Plan`: who was where and when (placements, migrations and their confirmations) and
  the hosts' sampled cache, placement and VM counts: what the event loop
  (``sim.fleet.fleet_events``) decides with ``cowbench.nova``'s placement and image cache, and
  what a disk model (``sim.fleet.fluid`` or ``sim.fleet.fleet_exact``) turns into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cowbench.fleet import fleet_flavors
from cowbench.nova.clock import sample_times
from cowbench.nova.draws import arrival_times, chosen, lifetimes, pick
from cowbench.scenario import Scenario
from sim.storage.fs import local_base_allocated_bytes
from sim.storage.images import cache_file, fetch_bytes


@dataclass
class Population:
    """Every VM that arrives: times and draws, one array entry per VM."""

    arrive: np.ndarray
    life_end: np.ndarray
    flavor: np.ndarray
    image: np.ndarray
    klass: np.ndarray
    snap: np.ndarray
    migrate: np.ndarray


def draw_population(s: Scenario, rng: dict[str, np.random.Generator]) -> Population:
    f = s.fleet
    assert f is not None and s.duration is not None
    arrive = arrival_times(rng["arrivals"], f.vms / s.duration, until=s.duration)
    n = arrive.size
    image_index = np.array([s.images.index(s.image(name)) for name in f.image_mix])
    return Population(
        arrive=arrive,
        life_end=arrive + lifetimes(f.lifetime, rng["lifetimes"], n),
        flavor=pick(rng["mix"], list(f.flavor_mix.values()), n),
        image=image_index[pick(rng["mix"], list(f.image_mix.values()), n)],
        klass=pick(rng["mix"], [c.share for c in f.classes.values()], n),
        snap=chosen(rng["policies"], f.snapshots.share, n),
        migrate=chosen(rng["policies"], f.migrations.share, n),
    )


@dataclass
class CacheEntries:
    """The bases a host's ``_base`` can hold: one per image, ephemeral size and swap size."""

    stored_bytes: np.ndarray  # allocated bytes of the file in _base
    fetch_bytes: np.ndarray  # bytes downloaded from Glance to create it (0: made locally)
    per_flavor_image: dict[tuple[int, int], list[int]]


def cache_entries(s: Scenario) -> CacheEntries:
    f = s.fleet
    assert f is not None
    # the timeline's figures for the same base (sim.world.lifecycle.fetched): a raw image's
    # base dense to its virtual size, a qcow2 one converted under force_raw_images or kept
    force_raw = s.nova.force_raw_images
    stored = [cache_file(i, force_raw).allocated_bytes if i.name in f.image_mix else 0
              for i in s.images]
    fetch = [fetch_bytes(i) if i.name in f.image_mix else 0 for i in s.images]
    # Nova's manager (nova/virt/libvirt/imagecache.py) scans _base for Glance bases (a SHA-1
    # name, resized ones with a size after it), swap bases (``swap_<MiB>``, in use while an
    # instance of the host has swap of that size) and, since 23.0.0 (Wallaby, f44700935f),
    # ephemeral bases (``ephemeral_<GiB>_<fs>``, in use while one has that ephemeral disk): an
    # unused one of each goes after remove_unused_original_minimum_age_seconds
    extra: dict[tuple[str, int], int] = {}
    flavors = fleet_flavors(s)
    for fl in flavors:
        for kind, size in (("ephemeral", fl.ephemeral), ("swap", fl.swap)):
            if size and (kind, size) not in extra:
                extra[(kind, size)] = len(stored)
                stored.append(local_base_allocated_bytes(kind, size))
                fetch.append(0)
    mapping = {}
    for j, fl in enumerate(flavors):
        own = [extra[(k, z)] for k, z in (("ephemeral", fl.ephemeral), ("swap", fl.swap)) if z]
        for i in range(len(s.images)):
            mapping[(j, i)] = [i, *own]
    return CacheEntries(np.array(stored, dtype=np.float64), np.array(fetch, dtype=np.float64),
                        mapping)


@dataclass
class Plan:
    """What the lifecycle decided: placements over time and the hosts' sampled state."""

    hosts: list[str]
    population: Population
    sample_t: np.ndarray
    seg_vm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_host: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_t0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seg_t1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mig_vm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mig_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mig_src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mig_confirm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # cold: _resize ends
    cache_bytes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    provisioned: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    vm_count: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    fetch_bytes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    placed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    end: float = 0.0


def new_plan(s: Scenario, pop: Population) -> Plan:
    """An empty :class:`Plan` for ``pop``: the samples' times, their per-host arrays zero."""
    f = s.fleet
    assert f is not None and s.duration is not None
    t = sample_times(f.sample_interval_s, s.duration, start=True)
    h = len(s.hosts)
    return Plan([x.name for x in s.hosts], pop, t, cache_bytes=np.zeros((t.size, h)),
                provisioned=np.zeros((t.size, h)), vm_count=np.zeros((t.size, h)),
                fetch_bytes=np.zeros((t.size, h)), end=s.duration)


Segments = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # vm, host, start, end


def finish_plan(plan: Plan, segs: Segments, migs: list[tuple[int, float, int]],
                confirm: list[float]) -> None:
    """Fill ``plan``'s placements from a run's segments (any order; ``inf``: to the end),
    its migrations (vm, t, source) and their confirmations."""
    vm, host, t0, t1 = segs
    order = np.lexsort((t0, vm))
    plan.seg_vm, plan.seg_host = vm[order], host[order]
    plan.seg_t0, plan.seg_t1 = t0[order], t1[order]
    mig = np.array(migs, dtype=np.float64).reshape(-1, 3)
    plan.mig_vm, plan.mig_t = mig[:, 0].astype(np.int64), mig[:, 1]
    plan.mig_src = mig[:, 2].astype(np.int64)
    plan.mig_confirm = np.array(confirm, dtype=np.float64)
    placed = np.zeros(plan.population.arrive.shape[0], dtype=bool)
    placed[plan.seg_vm] = True
    plan.placed = placed
