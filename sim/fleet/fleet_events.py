"""A fleet's life as one event loop over numpy-ordered arrays: the engine fleets run on.

It takes the decisions a SimPy lifecycle takes (a callback per event: ``tests/fleet_reference.py``,
kept as the tests' reference; ``tests/test_fleet_events.py`` checks that both give identical
plans), in the same order, at a fraction of the cost per event (issue 21):

- the order is SimPy's: by time, then by when the event was scheduled (SimPy's event id), and
  every time is computed as SimPy computes it (``now + delay``);
- arrivals and deaths are known before the run (the population's draws): numpy sorts them once
  into one stream in SimPy's order (the death booked at VM ``i``'s arrival comes before VM
  ``j``'s arrival at the same instant exactly when ``i < j``); the death of a VM that was never
  placed is skipped. Migrations and the ends of cold migrations' ``_resize`` copies are a heap;
  the clock's passes and samples a third stream;
- placement's spread weigher is :class:`cowbench.nova.placement.Placement` (the timeline's
  own): an arrival is one :meth:`~cowbench.nova.placement.Placement.place`, a death one
  ``release``;
- the image cache manager's passes are :class:`cowbench.nova.imagecache.HostCaches`': they
  look only at the bases that can age out at them (a base booking a check at the first pass
  that would find it old enough when it falls out of use or is touched).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from cowbench.fleet import fleet_flavors
from cowbench.nova.clock import PASS, clock_ticks, sample_times
from cowbench.nova.imagecache import HostCaches
from cowbench.nova.placement import Placement
from cowbench.nova.resize import ResizeCopies, copy_ends, leaves_copy
from cowbench.scenario import Scenario

from .plan import (
    Plan,
    Population,
    Segments,
    cache_entries,
    draw_population,
    finish_plan,
    new_plan,
)

INF = math.inf
MIGRATE, UNHOLD = 0, 1


def host_caches(s: Scenario, hosts: int, passes: list[float]) -> HostCaches:
    """Every host's ``_base`` for the fleet's disks: a disk's key is ``flavor x images +
    image``, its bases those of :func:`~.plan.cache_entries`."""
    f = s.fleet
    assert f is not None
    ents = cache_entries(s)
    n_img = len(s.images)
    kinds = [ents.per_flavor_image[divmod(k, n_img)] for k in range(len(f.flavor_mix) * n_img)]
    return HostCaches(hosts, kinds, (ents.fetch_bytes.tolist(), ents.stored_bytes),
                      s.nova.image_cache, passes)


def simpy_times(t: np.ndarray, start: float = 0.0) -> np.ndarray:
    """The instants SimPy reaches waiting ``t[i] - now`` from each previous one in turn
    (``now + (t - now)`` is not always ``t`` in floating point)."""
    out = np.asarray(t, dtype=np.float64).copy()
    if out.size == 0:
        return out
    while True:
        prev = np.concatenate([[start], out[:-1]])
        nxt = prev + (t - prev)
        if np.array_equal(nxt, out):
            return out
        out = nxt


def clock_groups(s: Scenario, sample_t: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """The clock's resumptions (SimPy instants) and what each does (``PASS``, ``SAMPLE``), in
    the SimPy reference's order (the ticks at 0 first, before anything waits)."""
    f = s.fleet
    assert f is not None and s.duration is not None
    passes = sample_times(s.nova.image_cache.manager_interval_s, s.duration)
    ticks = clock_ticks(passes.tolist(), sample_t.tolist())
    times: list[float] = [0.0]
    kinds: list[list[int]] = [[]]
    for t, kind in ticks:
        if t > times[-1]:
            times.append(times[-1] + (t - times[-1]))
            kinds.append([])
        kinds[-1].append(kind)
    return times, kinds


def deaths_and_arrivals(pop: Population, arrive: np.ndarray, end: float
                        ) -> tuple[list[float], list[int], list[bool]]:
    """Arrivals (code ``2 vm``) and deaths (``2 vm + 1``) in SimPy's order, and which VMs die
    within the run. A death is booked at its VM's arrival: before later arrivals (and deaths
    booked later) at the same instant, after earlier ones."""
    life = pop.life_end
    death = arrive + (life - arrive)
    dies = (life < end) & (death < end)
    vm = np.arange(arrive.size, dtype=np.int64)
    code = np.concatenate([2 * vm, 2 * vm[dies] + 1])
    t = np.concatenate([arrive, death[dies]])
    order = np.lexsort((code, t))
    return [*t[order].tolist(), INF], code[order].tolist(), dies.tolist()


class Engine:
    """The run's state: where each VM is, placement, the caches, the pending events."""

    def __init__(self, s: Scenario, pop: Population, plan: Plan, passes: list[float]) -> None:
        f = s.fleet
        assert f is not None and s.duration is not None
        self.plan, self.end, self.now = plan, s.duration, 0.0
        self.interval = f.migrations.every_s
        self.cold, self.window = leaves_copy(f.migrations.kind), s.nova.resize_confirm_window_s
        h = len(s.hosts)
        self.placement = Placement([x.placement_capacity for x in s.hosts],
                                   [x.weighed_disk for x in s.hosts])
        self.cache = host_caches(s, h, passes)
        req = [float(fl.disk_gb_bytes) for fl in fleet_flavors(s)]
        self.need = [req[j] for j in pop.flavor.tolist()]
        self.key: list[int] = (pop.flavor * len(s.images) + pop.image).tolist()
        self.migrates: list[bool] = pop.migrate.tolist()
        self.life_end: list[float] = pop.life_end.tolist()
        n = len(self.need)
        self.where, self.first = [-1] * n, [-1] * n
        # cold migrations' sources: their claims, and their disk kinds' bases in use
        self.resizes = ResizeCopies[int, int](release=self.placement.release,
                                              unuse=self._unuse)
        self.count = [0] * h
        self.migs: list[tuple[int, float, int]] = []
        self.mig_dst: list[int] = []
        self.confirm: list[float] = []
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.eid = 0  # SimPy's event ids: the order of booking
        self.death_eid = [0] * n
        self.samples = 0
        self.last_fetched = [0.0] * h

    def after(self, delay: float, kind: int, vm: int, src: int = -1) -> None:
        t = self.now + delay
        if t < self.end:
            heapq.heappush(self.heap, (t, self.eid, kind, vm, src))
            self.eid += 1

    def leave(self, vm: int) -> None:
        """``vm`` leaves its host: its claim freed (``Placement.release``), its base unused."""
        host = self.where[vm]
        self.cache.hold(host, self.key[vm], -1)
        self.placement.release(host, self.need[vm])
        self.count[host] -= 1
        self.where[vm] = -1

    def migrate(self, vm: int) -> None:
        src = self.where[vm]
        if src < 0:
            return  # gone
        if self.resizes.refusal(vm, "migrate") is None:  # else VERIFY_RESIZE
            dst = self.placement.select(self.need[vm], exclude=src)
            if dst >= 0:
                if self.cold:  # the source's _resize keeps the claim and the base in use
                    self.resizes.keep(vm, src, self.key[vm], self.need[vm], self.now)
                    self.count[src] -= 1
                else:
                    self.leave(vm)
                self.cache.use(dst, self.key[vm], self.now)
                self.placement.claim(dst, self.need[vm])
                self.count[dst] += 1
                self.where[vm] = dst
                self.migs.append((vm, self.now, src))
                self.mig_dst.append(dst)
                self.confirm.append(self._confirm_at(vm, src) if self.cold else self.now)
        self.after(self.interval, MIGRATE, vm)

    def _confirm_at(self, vm: int, src: int) -> float:
        """When a cold migration's source copy goes (booked): Nova's own confirm, or the VM's
        end (:func:`~cowbench.nova.resize.copy_ends`)."""
        confirm = copy_ends(self.now, self.window, self.life_end[vm])
        self.after(confirm - self.now, UNHOLD, vm, src)
        return confirm

    def _unuse(self, host: int, key: int) -> None:
        """A ``_resize`` copy of a disk of kind ``key`` goes: its base is one user less."""
        self.cache.hold(host, key, -1)

    def unhold(self, vm: int) -> None:
        """The source's ``<uuid>_resize`` goes: its claim and its base
        (:class:`~cowbench.nova.resize.ResizeCopies`)."""
        self.resizes.confirm(vm)

    def dynamic(self) -> None:
        """The heap's next event: a migration, or the end of a ``_resize`` copy."""
        t, _, kind, vm, _src = heapq.heappop(self.heap)
        self.now = t
        if kind == MIGRATE:
            self.migrate(vm)
        else:
            self.unhold(vm)

    def tick(self, t: float, kinds: list[int]) -> None:
        """The clock: passes and samples at ``t``."""
        self.now = t
        plan = self.plan
        self.placement.compact()
        for kind in kinds:
            if kind == PASS:
                self.cache.run_pass()
                continue
            i, self.samples = self.samples, self.samples + 1
            plan.cache_bytes[i] = self.cache.held_bytes()
            plan.provisioned[i] = self.placement.used
            plan.vm_count[i] = self.count
            fetched = self.cache.fetched
            plan.fetch_bytes[i] = np.array(fetched) - np.array(self.last_fetched)
            self.last_fetched = list(fetched)

    def segments(self, start: np.ndarray, death: np.ndarray) -> Segments:
        """Every VM's placements: from its arrival (SimPy's instant ``start``) on its first
        host, from each migration on its destination, each to the next or to ``death``."""
        first = np.array(self.first, dtype=np.int64)
        placed = np.flatnonzero(first >= 0)
        mig = np.array(self.migs, dtype=np.float64).reshape(-1, 3)
        vm = np.concatenate([placed, mig[:, 0].astype(np.int64)])
        t0 = np.concatenate([start[placed], mig[:, 1]])
        host = np.concatenate([first[placed], np.array(self.mig_dst, dtype=np.int64)])
        order = np.lexsort((t0, vm))
        vm, t0, host = vm[order], t0[order], host[order]
        t1 = death[vm]
        same = vm[1:] == vm[:-1]
        t1[:-1][same] = t0[1:][same]
        return vm, host, t0, t1


def run_events(s: Scenario, rng: dict[str, np.random.Generator]) -> Plan:
    """Run the fleet's events to the scenario's end; return the :class:`Plan` (the same as the
    SimPy reference's)."""
    assert s.duration is not None
    pop = draw_population(s, rng)
    plan = new_plan(s, pop)
    clock_t, clock_kinds = clock_groups(s, plan.sample_t)
    eng = Engine(s, pop, plan, [t for t, k in zip(clock_t, clock_kinds, strict=True)
                                for kind in k if kind == PASS])
    start = simpy_times(pop.arrive)
    static_t, static_code, dies = deaths_and_arrivals(pop, start, s.duration)
    _loop(eng, (static_t, static_code, dies), (clock_t, clock_kinds))
    death = np.where(dies, start + (pop.life_end - start), INF)
    finish_plan(plan, eng.segments(start, death), eng.migs, eng.confirm)
    return plan


Stream = tuple[list[float], list[int], list[bool]]


def _loop(eng: Engine, static: Stream, clock: tuple[list[float], list[list[int]]]) -> None:
    """Every event in SimPy's order: the earliest of the three streams' heads, the one booked
    first at a tie (event ids). Arrivals and deaths, nine in ten events, are handled here
    with local names (:meth:`Engine.leave` inlined, as measured: a method call and an
    attribute costs as much as the decision)."""
    st_t, st_code, dies = static
    ck_t, ck_kinds = [*clock[0], INF], clock[1]
    eng.tick(0.0, ck_kinds[0])  # the clock starts first, then the arrivals
    ck_eid, arr_eid, eid = 0, 1, 2
    heap, i, g = eng.heap, 0, 1
    where, first, count, need, key = eng.where, eng.first, eng.count, eng.need, eng.key
    migrates, death_eid, end, every = eng.migrates, eng.death_eid, eng.end, eng.interval
    place, release = eng.placement.place, eng.placement.release
    use, hold = eng.cache.use, eng.cache.hold
    push = heapq.heappush
    while True:
        ts, tc = st_t[i], ck_t[g]
        th = heap[0][0] if heap else INF
        if ts < tc and ts < th or ts == min(tc, th) < INF and \
                _static_eid(eng, st_code[i], arr_eid) < _other_eid(eng, ts, tc, ck_eid):
            vm = st_code[i] >> 1
            i += 1
            if st_code[i - 1] & 1:  # a death
                h = where[vm]
                if h >= 0:
                    hold(h, key[vm], -1)
                    release(h, need[vm])
                    count[h] -= 1
                    where[vm] = -1
                continue
            h = place(need[vm])  # an arrival
            if h >= 0:
                use(h, key[vm], ts)
                count[h] += 1
                where[vm] = first[vm] = h
                if dies[vm]:
                    death_eid[vm], eid = eid, eid + 1
                if migrates[vm] and ts + every < end:
                    push(heap, (ts + every, eid, MIGRATE, vm, -1))
                    eid += 1
            arr_eid, eid = eid, eid + 1
            continue
        eng.eid = eid
        if tc < th or tc == th < INF and ck_eid < heap[0][1]:
            eng.tick(tc, ck_kinds[g])
            ck_eid, eng.eid, g = eng.eid, eng.eid + 1, g + 1
        elif th < INF:
            eng.dynamic()
        else:
            return
        eid = eng.eid


def _static_eid(eng: Engine, code: int, arr_eid: int) -> int:
    return eng.death_eid[code >> 1] if code & 1 else arr_eid


def _other_eid(eng: Engine, t: float, tc: float, ck_eid: int) -> float:
    """The smallest event id among the clock's and the heap's heads at instant ``t``."""
    heap = eng.heap
    return float(min(ck_eid if tc == t else INF,
                     heap[0][1] if heap and heap[0][0] == t else INF))
