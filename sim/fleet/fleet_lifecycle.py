"""A fleet's life in SimPy: arrivals, placement, lifetimes, migrations and image-cache aging.

This is the part of the fleet model that is made of events (FACTS.md section 1), written one
callback per event: the reference that ``sim.fleet.fleet_events`` (the event loop runs use,
issue 21) must match decision for decision (``tests/test_fleet_events.py``). Every decision is
``cowbench.nova``'s, the same functions a timeline's expansion calls:

- VMs arrive as a Poisson process (``fleet.vms`` expected over the duration) and draw a
  lifetime, a flavor, an image and a workload class from the scenario's mixes
  (``cowbench.nova.draws``: the fleet is arrival group 0 of the seed's streams);
- placement is Nova's DISK_GB with the spread weigher (``cowbench.nova.placement``); no host
  with room means NoValidHost and the VM is rejected;
- a share of VMs is live- or cold-migrated every ``interval`` to the best other host; a cold
  migration leaves the source's ``<uuid>_resize`` directory (the overlay as it was, its claim
  in placement, its base in use) until it is confirmed: ``nova.resize_confirm_window_s`` after
  it, never with 0 (Nova's default), and at the latest when the VM is deleted; Nova refuses to
  migrate a VM whose resize is not confirmed yet (VERIFY_RESIZE);
- the image cache: a VM's creation fetches a missing base (its Glance image) or creates the
  ephemeral/swap base, and touches its mtime; the manager's passes
  (``cowbench.nova.imagecache``, every ``nova.image_cache.manager_interval_s``) age unused
  bases out. Passes and samples follow ``cowbench.nova.clock``; at the same instant a pass
  comes before a sample, as in a timeline.

What happens *inside* the disks is not here: the lifecycle's output is a :class:`Plan` (who was
where, when, and the hosts' cache and placement state at each sample), which a disk model
(``sim.fleet.fluid`` or ``sim.fleet.fleet_exact``) turns into bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from cowbench.fleet import fleet_flavors
from cowbench.nova.clock import PASS, clock_ticks, sample_times
from cowbench.nova.draws import arrival_times, chosen, lifetimes, pick
from cowbench.nova.imagecache import cache_pass
from cowbench.nova.placement import NO_VALID_HOST, Placement
from cowbench.scenario import Scenario
from sim.storage.images import cache_file, glance_file

EPHEMERAL_BASE_BYTES_PER_GIB = 34_230_272  # 1 GiB ext4 ephemeral base, du (FACTS.md E16)
SWAP_BASE_BYTES = 4096  # a mkswap'd swap base holds one page (FACTS.md E16)


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
    tracked: np.ndarray  # counted as "in use" by the cache manager
    per_flavor_image: dict[tuple[int, int], list[int]]


def cache_entries(s: Scenario) -> CacheEntries:
    f = s.fleet
    assert f is not None
    stored = [cache_file(i).allocated_bytes if i.name in f.image_mix else 0 for i in s.images]
    fetch = [glance_file(i).allocated_bytes if i.name in f.image_mix else 0 for i in s.images]
    tracked = [True] * len(s.images)
    extra: dict[tuple[str, int], int] = {}
    flavors = fleet_flavors(s)
    for fl in flavors:
        for kind, size in (("ephemeral", fl.ephemeral), ("swap", fl.swap)):
            if size and (kind, size) not in extra:
                extra[(kind, size)] = len(stored)
                stored.append(EPHEMERAL_BASE_BYTES_PER_GIB * size // (1 << 30)
                              if kind == "ephemeral" else SWAP_BASE_BYTES)
                fetch.append(0)
                tracked.append(False)
    mapping = {}
    for j, fl in enumerate(flavors):
        own = [extra[(k, z)] for k, z in (("ephemeral", fl.ephemeral), ("swap", fl.swap)) if z]
        for i in range(len(s.images)):
            mapping[(j, i)] = [i, *own]
    return CacheEntries(np.array(stored, dtype=np.float64), np.array(fetch, dtype=np.float64),
                        np.array(tracked), mapping)


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


class _Fleet:
    """Mutable state of the lifecycle run; lives only inside :func:`run_lifecycle`."""

    def __init__(self, env: simpy.Environment, s: Scenario, pop: Population) -> None:
        f = s.fleet
        assert f is not None and s.duration is not None
        self.env, self.f, self.pop, self.end = env, f, pop, s.duration
        self.ic = s.nova.image_cache
        h = len(s.hosts)
        self.req = np.array([fl.disk_gb_bytes for fl in fleet_flavors(s)], dtype=np.float64)
        self.placement = Placement(np.array([x.placement_capacity for x in s.hosts]))
        self.count = np.zeros(h, dtype=np.int64)
        self.entries = cache_entries(s)
        e = len(self.entries.stored_bytes)
        self.users = np.zeros((h, e), dtype=np.int64)
        self.present = np.zeros((h, e), dtype=bool)
        self.last_used = np.zeros((h, e))
        self.fetched = np.zeros(h)
        self.where = np.full(pop.arrive.shape[0], -1, dtype=np.int64)
        self.seg_start = np.zeros(pop.arrive.shape[0])
        self.segs: list[tuple[int, int, float, float]] = []
        self.migs: list[tuple[int, float, int]] = []
        self.confirm: list[float] = []  # per migration: when its source copy goes (cold)
        self.cold = f.migrations.kind == "cold"
        self.window = s.nova.resize_confirm_window_s
        self.unconfirmed = np.zeros(pop.arrive.shape[0], dtype=bool)

    def place(self, vm: int, exclude: int = NO_VALID_HOST) -> int:
        return self.placement.select(self.req[self.pop.flavor[vm]], exclude)

    def _use(self, vm: int, host: int) -> None:
        now = self.env.now
        ents = self.entries.per_flavor_image[(int(self.pop.flavor[vm]), int(self.pop.image[vm]))]
        for e in ents:
            if not self.present[host, e]:
                self.present[host, e] = True
                self.fetched[host] += self.entries.fetch_bytes[e]
            self.last_used[host, e] = now  # Nova touches the base on every disk creation
            self.users[host, e] += 1
        self.placement.claim(host, self.req[self.pop.flavor[vm]])
        self.count[host] += 1
        self.where[vm] = host
        self.seg_start[vm] = now

    def _release(self, vm: int) -> int:
        host = int(self.where[vm])
        ents = self.entries.per_flavor_image[(int(self.pop.flavor[vm]), int(self.pop.image[vm]))]
        for e in ents:
            self.users[host, e] -= 1
        self.placement.release(host, self.req[self.pop.flavor[vm]])
        self.count[host] -= 1
        self.segs.append((vm, host, float(self.seg_start[vm]), float(self.env.now)))
        self.where[vm] = -1
        return host

    def arrive(self, vm: int) -> None:
        host = self.place(vm)
        if host < 0:
            return  # NoValidHost: the VM never runs
        self._use(vm, host)
        end = float(self.pop.life_end[vm])
        if end < self.end:
            self._after(end - self.env.now, lambda: self._release(vm))
        if self.pop.migrate[vm]:
            self._after(self.f.migrations.every_s, lambda: self.migrate(vm))

    def migrate(self, vm: int) -> None:
        src = int(self.where[vm])
        if src < 0:
            return  # gone
        if self.unconfirmed[vm]:  # VERIFY_RESIZE: Nova refuses another migration
            self._after(self.f.migrations.every_s, lambda: self.migrate(vm))
            return
        dst = self.place(vm, exclude=src)
        if dst >= 0:
            self._release(vm)
            self._use(vm, dst)
            self.migs.append((vm, float(self.env.now), src))
            self.confirm.append(self._hold(vm, src) if self.cold else float(self.env.now))
        self._after(self.f.migrations.every_s, lambda: self.migrate(vm))

    def _resize_dir(self, vm: int, host: int, sign: int) -> None:
        """The source's ``<uuid>_resize`` (sign 1: kept; -1: removed): its claim, its base."""
        ents = self.entries.per_flavor_image[(int(self.pop.flavor[vm]), int(self.pop.image[vm]))]
        self.users[host, ents] += sign
        need = self.req[self.pop.flavor[vm]]
        if sign > 0:
            self.placement.claim(host, need)
        else:
            self.placement.release(host, need)
        self.unconfirmed[vm] = sign > 0

    def _hold(self, vm: int, src: int) -> float:
        """Keep a cold migration's source copy until it is confirmed; return when that is."""
        self._resize_dir(vm, src, 1)
        confirm = self.env.now + self.window if self.window > 0 else np.inf
        confirm = min(confirm, float(self.pop.life_end[vm]))
        self._after(confirm - self.env.now, lambda: self._resize_dir(vm, src, -1))
        return confirm

    def _after(self, delay: float, action: Callable[[], Any]) -> None:
        if self.env.now + delay >= self.end:
            return
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _ev: action())

    def cache_pass(self) -> None:
        in_use = (self.users > 0) & self.entries.tracked[None, :]
        self.last_used, removed = cache_pass(self.env.now, in_use, self.last_used, self.ic)
        self.present &= ~removed


Process = Generator[simpy.Event, Any, None]


def _arrivals(env: simpy.Environment, fl: _Fleet) -> Process:
    for vm, t in enumerate(fl.pop.arrive.tolist()):
        yield env.timeout(t - env.now)
        fl.arrive(vm)


def _clock(env: simpy.Environment, fl: _Fleet, plan: Plan) -> Process:
    """The cache manager's passes and the samples, in time order (a pass first at a tie)."""
    passes = sample_times(fl.ic.manager_interval_s, fl.end)
    ticks = clock_ticks(passes.tolist(), plan.sample_t.tolist())
    stored = fl.entries.stored_bytes
    last_fetched = np.zeros_like(fl.fetched)
    i = 0
    for t, kind in ticks:
        if t > env.now:
            yield env.timeout(t - env.now)
        if kind == PASS:
            fl.cache_pass()
            continue
        plan.cache_bytes[i] = fl.present.astype(np.float64) @ stored
        plan.provisioned[i] = fl.placement.used
        plan.vm_count[i] = fl.count
        plan.fetch_bytes[i] = fl.fetched - last_fetched
        last_fetched = fl.fetched.copy()
        i += 1


def run_lifecycle(s: Scenario, rng: dict[str, np.random.Generator]) -> Plan:
    """Run the fleet's events to the scenario's end; return the :class:`Plan`."""
    f = s.fleet
    assert f is not None and s.duration is not None
    pop = draw_population(s, rng)
    env = simpy.Environment()
    fl = _Fleet(env, s, pop)
    plan = new_plan(s, pop)
    env.process(_clock(env, fl, plan))
    env.process(_arrivals(env, fl))
    env.run(until=s.duration + f.sample_interval_s / 2)
    _finish(fl, plan)
    return plan


def new_plan(s: Scenario, pop: Population) -> Plan:
    """An empty :class:`Plan` for ``pop``: the samples' times, their per-host arrays zero."""
    f = s.fleet
    assert f is not None and s.duration is not None
    t = sample_times(f.sample_interval_s, s.duration, start=True)
    h = len(s.hosts)
    return Plan([x.name for x in s.hosts], pop, t, cache_bytes=np.zeros((t.size, h)),
                provisioned=np.zeros((t.size, h)), vm_count=np.zeros((t.size, h)),
                fetch_bytes=np.zeros((t.size, h)), end=s.duration)


def _finish(fl: _Fleet, plan: Plan) -> None:
    alive = np.flatnonzero(fl.where >= 0)
    segs = fl.segs + [(int(v), int(fl.where[v]), float(fl.seg_start[v]), np.inf)
                      for v in alive.tolist()]
    arr = np.array(segs, dtype=np.float64).reshape(-1, 4)
    finish_plan(plan, (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2],
                       arr[:, 3]), fl.migs, fl.confirm)


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
