"""The fleet's lifecycle in SimPy, one callback per event: the reference the event loop
(``sim.fleet.fleet_events``, what runs use) must match decision for decision
(``tests/test_fleet_events.py``). Every decision is ``cowbench.nova``'s, as the loop's:

- VMs arrive as ``sim.fleet.plan.draw_population`` draws them; placement is
  ``cowbench.nova.placement.Placement`` (no host with room: NoValidHost, the VM is rejected);
- a share of VMs is live- or cold-migrated every ``interval`` to the best other host; a cold
  migration leaves the source's ``<uuid>_resize`` directory (the overlay as it was, its claim
  in placement, its base in use) until it is confirmed: ``nova.resize_confirm_window_s`` after
  it, never with 0 (Nova's default), and at the latest when the VM is deleted; Nova refuses to
  migrate a VM whose resize is not confirmed yet (VERIFY_RESIZE);
- the image cache: a VM's creation fetches a missing base (its Glance image) or creates the
  ephemeral/swap base, and touches its mtime; the manager's passes are
  ``cowbench.nova.imagecache.cache_pass`` over every host and base (the loop's
  ``HostCaches`` looks only at the bases that can age out); passes and samples follow
  ``cowbench.nova.clock``.

A test oracle, not a second model: nothing outside the tests runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from cowbench.fleet import fleet_flavors
from cowbench.nova.clock import PASS, clock_ticks, sample_times
from cowbench.nova.imagecache import cache_pass
from cowbench.nova.placement import NO_VALID_HOST, Placement
from cowbench.scenario import Scenario
from sim.fleet.plan import Plan, Population, cache_entries, draw_population, finish_plan, new_plan


class _Fleet:
    """Mutable state of the lifecycle run; lives only inside :func:`run_lifecycle`."""

    def __init__(self, env: simpy.Environment, s: Scenario, pop: Population) -> None:
        f = s.fleet
        assert f is not None and s.duration is not None
        self.env, self.f, self.pop, self.end = env, f, pop, s.duration
        self.ic = s.nova.image_cache
        h = len(s.hosts)
        self.req = np.array([fl.disk_gb_bytes for fl in fleet_flavors(s)], dtype=np.float64)
        self.placement = Placement(np.array([x.placement_capacity for x in s.hosts]),
                                   [x.weighed_disk for x in s.hosts])
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
        in_use = self.users > 0
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


def _finish(fl: _Fleet, plan: Plan) -> None:
    alive = np.flatnonzero(fl.where >= 0)
    segs = fl.segs + [(int(v), int(fl.where[v]), float(fl.seg_start[v]), np.inf)
                      for v in alive.tolist()]
    arr = np.array(segs, dtype=np.float64).reshape(-1, 4)
    finish_plan(plan, (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2],
                       arr[:, 3]), fl.migs, fl.confirm)
