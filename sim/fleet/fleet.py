"""``simulate`` for fleet scenarios: the lifecycle's plan, turned into bytes per host over time.

``fleet_events`` decides who runs where and when (Nova's decisions, in SimPy's order); a disk
model (``fluid``: closed forms, vectorised over every VM and instant with numpy; ``exact``:
every write applied to a qcow2 map) gives each root overlay's allocation at the instants that
matter: the samples, each snapshot, each migration, each VM's end. Records (the run directory's
tidy shape):

- ``host:<h>``: ``allocated_bytes`` (demand: cache + every overlay + disk.info),
  ``provisioned_bytes`` (placement's DISK_GB in bytes), ``vm_count``, per sample; per interval
  ending at a sample, ``snapshot_transfer_bytes`` (flattened images uploaded, FACTS.md 1.4),
  ``migration_transfer_bytes`` (overlays copied, 1.5), ``image_fetch_bytes`` (Glance downloads),
  ``host_read_bytes`` (boot bursts of the VMs that started there);
  ``time_to_full_s`` (end of run, absent if the host never fills);
- ``cache:<h>``: ``allocated_bytes`` of ``_base`` per sample;
- ``vms:p<q>`` (q = 0, 1, ..., 100): the VMs' ``allocated_bytes``, ``data_clusters`` and
  ``host_read_bytes`` (the boot burst) at the end of each VM's life or of the run, as a grid of
  quantiles (``cowbench.vmdist``); ``vm:<id>`` the same per VM, only with
  ``fleet.records: per_vm``;
- ``fleet:all``: the sums per sample, ``rejected_vms`` per interval ending at a sample (VMs
  placement refused, NoValidHost); at the end of the run ``arrived_vms``, ``rejected_vms`` (the
  total) and ``time_to_full_s`` (when the first host fills).

Memory grows with VMs only through a few numbers per VM (the population's draws, its
placements, its end-of-life figures): the disks are evaluated in chunks of VMs
(:data:`CHUNK_QUERIES` instants at a time) and each chunk is summed into per-host totals
(``sim.fleet.fleet_records``) before the next one is made.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from cowbench.fleet import Fleet, fleet_flavors
from cowbench.nova.draws import streams
from cowbench.scenario import Scenario
from sim.storage.images import DISK_INFO_BYTES, base_data

from .fleet_events import run_events
from .fleet_exact import ExactDisk, exact_states
from .fleet_records import Rows, Totals, boot_read_bytes, record_hosts, record_vms
from .fluid import BaseClusters, DiskState, OverlayGeometry, Phases, fluid_state
from .plan import Plan

Query = tuple[np.ndarray, np.ndarray]
Answer = tuple[np.ndarray, np.ndarray, DiskState, np.ndarray]  # vm, t, state, root alloc
#: Instants evaluated at once (a chunk of whole VMs, so the exact model replays each disk
#: once): about 150 bytes each while a chunk is worked on, some 80 MB, whatever the fleet.
CHUNK_QUERIES = 1 << 19
#: Age step of the fluid model's table of root-overlay allocation, which the daily samples of
#: a large fleet read (linear between steps) instead of evaluating the closed forms, and the
#: age below which a sample is still evaluated directly (a young disk's curve bends most).
#: fleet-year: within 5e-6 of every host's demand, 3e-5 of every VM's, against the closed forms.
TABLE_STEP_S = 900.0
TABLE_FROM_S = 86400.0


class FleetDisks:
    """Root-overlay state of any VM at any instant, by the fluid or the exact model."""

    def __init__(self, s: Scenario, plan: Plan, seed: int) -> None:
        f = s.fleet
        assert f is not None
        self.f, self.s, self.plan, self.seed = f, s, plan, seed
        self.flavors = flavors = fleet_flavors(s)
        c = s.strategy.cluster_size
        self.geoms = {fl.root: OverlayGeometry(fl.root, c) for fl in flavors}
        empty = {z: OverlayGeometry(z, c).empty_bytes
                 for fl in flavors for z in (fl.ephemeral, fl.swap) if z}
        self.extra = np.array([DISK_INFO_BYTES + sum(empty[z] for z in (fl.ephemeral, fl.swap)
                                                     if z) for fl in flavors], dtype=float)
        self.phases = {(j, k): Phases.of(wc, fl.root, c) for j, fl in enumerate(flavors)
                       for k, wc in enumerate(f.classes.values())}
        self.bases = {i: BaseClusters(img.data_extents(), c) for i, img in enumerate(s.images)
                      if img.name in f.image_mix}
        self.table: np.ndarray | None = None
        self.slope = np.zeros(0)
        self.unions: np.ndarray | None = None

    def table_size(self, duration: float) -> int:
        """Entries :meth:`tabulate` would compute."""
        return self._keys(np.zeros(0, dtype=np.int64))[1] * (int(duration / TABLE_STEP_S) + 2)

    def tabulate(self, duration: float) -> None:
        """Tabulate every (flavor, class, image)'s root allocation over ages 0 to
        ``duration`` every :data:`TABLE_STEP_S` (fluid model only)."""
        assert self.f.model == "fluid"
        ages = np.arange(int(np.ceil(duration / TABLE_STEP_S)) + 2) * TABLE_STEP_S
        _, n_keys = self._keys(np.zeros(0, dtype=np.int64))
        table = np.zeros((n_keys, ages.size))
        for k, (j, klass, image) in self._kinds():
            st = fluid_state(self.phases[(j, klass)], self.bases[image], ages)
            used = np.rint(st.data_clusters + st.l2_tables).astype(np.int64)
            table[k] = self.geoms[self.flavors[j].root].allocated_bytes(used)
        self.table = table
        self.slope = np.zeros_like(table)  # to the next column
        self.slope[:, :-1] = np.diff(table, axis=1)

    def snapshot_union(self, vm: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Clusters of the flattened image of each (vm, t) snapshot, taken a whole number of
        ``snapshots.every_s`` after the VM's arrival (fluid model): the closed forms once per
        (disk kind, snapshot number)."""
        every = self.f.snapshots.every_s
        m = np.rint((t - self.plan.population.arrive[vm]) / every).astype(np.int64)
        if self.unions is None:
            n_m = int(self.plan.end / every) + 2
            _, n_keys = self._keys(np.zeros(0, dtype=np.int64))
            self.unions = np.zeros((n_keys, n_m))
            for k, (j, klass, image) in self._kinds():
                st = fluid_state(self.phases[(j, klass)], self.bases[image],
                                 np.arange(n_m) * every)
                self.unions[k] = st.union_clusters
        return np.asarray(self.unions.ravel()[self._keys(vm)[0] * self.unions.shape[1] + m])

    def _kinds(self) -> Iterator[tuple[int, tuple[int, int, int]]]:
        """Each (flavor, class, image) VMs can have, with its key."""
        _, n_keys = self._keys(np.zeros(0, dtype=np.int64))
        n_c, n_i = len(self.f.classes), len(self.s.images)
        for k in range(n_keys):
            j, rest = divmod(k, n_c * n_i)
            klass, image = divmod(rest, n_i)
            if image in self.bases:
                yield k, (j, klass, image)

    def extra_bytes(self, flavor: np.ndarray) -> np.ndarray:
        """Per VM beyond the root overlay: empty ephemeral and swap overlays, disk.info."""
        return np.asarray(self.extra[flavor])

    def _keys(self, vm: np.ndarray) -> tuple[np.ndarray, int]:
        """Each VM's (flavor, class, image) as one small integer, and how many there can be."""
        pop = self.plan.population
        n_c, n_i = len(self.f.classes), len(self.s.images)
        key = (pop.flavor[vm] * n_c + pop.klass[vm]) * n_i + pop.image[vm]
        return key, len(self.flavors) * n_c * n_i

    def state(self, vm: np.ndarray, t: np.ndarray) -> tuple[DiskState, np.ndarray]:
        """(DiskState, root overlay allocated_bytes) for each (vm, t) query: one sort by
        (flavor, class, image), then each group's closed forms on a contiguous slice."""
        age = t - self.plan.population.arrive[vm]
        key, n_keys = self._keys(vm)
        small = key.astype(np.int16) if n_keys < 1 << 15 else key
        order = np.argsort(small, kind="stable")  # a radix sort for 16-bit keys
        count = np.bincount(key, minlength=n_keys)
        stop = np.cumsum(count)
        out = DiskState(np.empty(vm.size), np.empty(vm.size), np.empty(vm.size))
        alloc = np.empty(vm.size)
        for k in np.flatnonzero(count).tolist():
            idx = order[stop[k] - count[k]:stop[k]]
            j, rest = divmod(k, n_keys // len(self.flavors))
            klass, image = divmod(rest, len(self.s.images))
            ph, base = self.phases[(j, klass)], self.bases[image]
            if self.f.model == "fluid":
                st = fluid_state(ph, base, age[idx])
            else:
                st = self._exact(ph, image, vm[idx], age[idx])
            out.data_clusters[idx], out.l2_tables[idx] = st.data_clusters, st.l2_tables
            out.union_clusters[idx] = st.union_clusters
            used = np.rint(st.data_clusters + st.l2_tables).astype(np.int64)
            alloc[idx] = self.geoms[self.flavors[j].root].allocated_bytes(used)
        return out, alloc

    def _exact(self, ph: Phases, image: int, vm: np.ndarray, age: np.ndarray) -> DiskState:
        out = DiskState(np.zeros(vm.size), np.zeros(vm.size), np.zeros(vm.size))
        base = base_data(self.s.images[image])
        mask = self.bases[image].mask(ph.n_clusters)
        for v in np.unique(vm).tolist():
            idx = np.flatnonzero(vm == v)
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x0FF5E7, v]))
            disk = ExactDisk(ph, base, mask, rng, float(age[idx].max()))
            st = exact_states(disk, age[idx])
            out.data_clusters[idx], out.l2_tables[idx] = st.data_clusters, st.l2_tables
            out.union_clusters[idx] = st.union_clusters
        return out


class Span:
    """The placements of the VMs ``v0 <= vm < v1``: a slice of the plan's (vm, t0)-sorted
    segments, with what the queries of those VMs need."""

    def __init__(self, plan: Plan, v0: int, v1: int) -> None:
        a, b = np.searchsorted(plan.seg_vm, [v0, v1], side="left").tolist()
        self.plan, self.v0, self.v1 = plan, v0, v1
        self.vm, self.host = plan.seg_vm[a:b], plan.seg_host[a:b]
        self.t0, self.t1 = plan.seg_t0[a:b], plan.seg_t1[a:b]

    def sample_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vm, host, sample index) for every sample each placement covers."""
        seg, si = _covered(self.plan.sample_t, self.t0, self.t1)
        return self.vm[seg], self.host[seg], si

    def host_at(self, vm: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Host of each of the span's VMs at each instant."""
        scale = self.plan.end * 4 + 1.0
        keys = (self.vm - self.v0) * scale + self.t0
        i = np.searchsorted(keys, (vm - self.v0) * scale + t, side="right") - 1
        return np.asarray(self.host[i])


def _covered(sample_t: np.ndarray, t0: np.ndarray, t1: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(span index, sample index) for every sample in each span ``[t0, t1)``."""
    i0 = np.searchsorted(sample_t, t0, side="left")
    n = np.searchsorted(sample_t, t1, side="left") - i0
    seg = np.repeat(np.arange(n.size), n)
    starts = np.repeat(i0 - (np.cumsum(n) - n), n)
    return seg, starts + np.arange(seg.size)


def _chunks(plan: Plan, snaps: np.ndarray) -> Iterator[tuple[int, int]]:
    """VM ranges whose queries (samples, snapshots, migrations, end) add up to about
    :data:`CHUNK_QUERIES` each (a VM is never split)."""
    n_vm = plan.population.arrive.size
    t = plan.sample_t
    per_seg = np.searchsorted(t, plan.seg_t1, side="left") - np.searchsorted(t, plan.seg_t0)
    cost = np.bincount(plan.seg_vm, weights=per_seg, minlength=n_vm)
    cost += snaps + np.bincount(plan.mig_vm, minlength=n_vm) + 1
    cum = np.cumsum(cost)
    total = int(cum[-1]) if n_vm else 0
    cuts = np.searchsorted(cum, np.arange(1, total // CHUNK_QUERIES + 1) * CHUNK_QUERIES)
    edges = np.unique(np.concatenate([[0], cuts + 1, [n_vm]]).clip(0, n_vm))
    yield from zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)


def _on_table_grid(plan: Plan) -> bool:
    """Samples every whole number of table steps, and a disk young (closed forms) at one
    sample at most (what :func:`_table_demand` reads the table for)."""
    t = plan.sample_t
    if t.size < 2:
        return False
    dt = float(t[1] - t[0])
    return dt >= TABLE_FROM_S and dt % TABLE_STEP_S == 0 and np.allclose(np.diff(t), dt)


def _sample_count(plan: Plan) -> int:
    """(VM, sample) pairs of the whole run."""
    t = plan.sample_t
    return int((np.searchsorted(t, plan.seg_t1) - np.searchsorted(t, plan.seg_t0)).sum())


def _snapshot_counts(f: Fleet, plan: Plan, end: np.ndarray) -> np.ndarray:
    """Snapshots of each VM: one each ``interval`` after its arrival, while it lives."""
    pop = plan.population
    count = np.floor((end - pop.arrive) / f.snapshots.every_s - 1e-9).astype(np.int64)
    return np.where(pop.snap & plan.placed, count.clip(0), 0)


def _snapshots(f: Fleet, plan: Plan, count: np.ndarray, v0: int, migs: np.ndarray) -> Query:
    """(vm, t) of every snapshot of the VMs ``v0, v0 + 1, ...`` (``count`` of each) that Nova
    takes: none while the VM's cold migration awaits its confirm (``migs``: the VMs'
    migrations, by VM then time; :func:`_awaiting_confirm`)."""
    vm = np.repeat(np.arange(v0, v0 + count.size), count)
    m = np.arange(vm.size) - np.repeat(np.cumsum(count) - count, count) + 1
    t = plan.population.arrive[vm] + m * f.snapshots.every_s
    if f.migrations.kind == "cold" and migs.size:
        keep = ~_awaiting_confirm(plan, migs, vm, t)
        vm, t = vm[keep], t[keep]
    return vm, t


def snapshots_taken(s: Scenario, plan: Plan) -> Query:
    """(vm, t) of every snapshot the fleet's VMs take, by VM then time (as
    :func:`simulate_fleet` takes them, a chunk of VMs at a time)."""
    f = s.fleet
    assert f is not None
    count = _snapshot_counts(f, plan, np.minimum(plan.population.life_end, plan.end))
    return _snapshots(f, plan, count, 0, np.argsort(plan.mig_vm, kind="stable"))


def _awaiting_confirm(plan: Plan, migs: np.ndarray, vm: np.ndarray, t: np.ndarray
                      ) -> np.ndarray:
    """Which of the (``vm``, ``t``) pairs (by VM, then time) fall while the VM's migration
    awaits its confirm (VERIFY_RESIZE: Nova refuses a snapshot then,
    ``cowbench.nova.resize.REFUSED``): after a migration of ``migs`` (by VM, then time), before
    its copy goes (``mig_confirm``). As in a timeline, an instant's snapshot comes after its
    confirm and before its migration."""
    n = vm.size
    every_vm = np.concatenate([vm, plan.mig_vm[migs]])
    every_t = np.concatenate([t, plan.mig_t[migs]])
    is_mig = np.arange(every_vm.size) >= n
    order = np.lexsort((is_mig, every_t, every_vm))
    # each pair's latest migration before it in that order (-1: none); another VM's if it has
    # none of its own
    last = np.maximum.accumulate(np.where(is_mig[order], order - n, -1))[~is_mig[order]]
    at = order[~is_mig[order]]
    own = (last >= 0) & (plan.mig_vm[migs][last] == vm[at])
    out = np.zeros(n, dtype=bool)
    out[at] = own & (t[at] < plan.mig_confirm[migs][last])
    return out


def _interval_of(plan: Plan, t: np.ndarray) -> np.ndarray:
    """Sample index closing the interval (t_{s-1}, t_s] that holds ``t``."""
    return np.minimum(np.searchsorted(plan.sample_t, t, side="left"), plan.sample_t.size - 1)


def _by_host_sample(plan: Plan, s: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    shape = (plan.sample_t.size, len(plan.hosts))
    flat = np.bincount(s * shape[1] + h, weights=w, minlength=shape[0] * shape[1])
    return np.asarray(flat.reshape(shape))


def simulate_fleet(s: Scenario, seed: int) -> pd.DataFrame:
    """Run a fleet scenario once (fluid or exact disks); return its records."""
    f = s.fleet
    assert f is not None
    plan = run_events(s, streams(seed))
    disks = FleetDisks(s, plan, seed)
    end = np.minimum(plan.population.life_end, plan.end)
    tot = Totals.zeros(plan)
    snaps = _snapshot_counts(f, plan, end)
    boot = boot_read_bytes(s, plan)
    by_vm = np.argsort(plan.mig_vm, kind="stable")
    mig_vm = plan.mig_vm[by_vm]
    if f.model == "fluid" and _sample_count(plan) > 4 * disks.table_size(plan.end) \
            and _on_table_grid(plan):
        disks.tabulate(plan.end)  # cheaper than the closed forms at every sample
    for v0, v1 in _chunks(plan, snaps):
        span = Span(plan, v0, v1)
        m0, m1 = np.searchsorted(mig_vm, [v0, v1]).tolist()
        _add_chunk(tot, disks, span, snaps[v0:v1], by_vm[m0:m1], (end, boot))
    tot.settle()
    rows = Rows()
    record_hosts(rows, np.array([h.weighed_disk for h in s.hosts], dtype=float),
                 plan, tot)
    record_vms(rows, s, plan, tot, end, boot)
    return rows.frame(seed)


def _add_chunk(tot: Totals, disks: FleetDisks, span: Span, snaps: np.ndarray,
               migs: np.ndarray, per_vm: tuple[np.ndarray, np.ndarray]) -> None:
    """Evaluate one span's disks at every instant that matters and add them to the totals
    (``snaps``: the span's snapshot counts, ``migs``: its migrations, ``per_vm``: every VM's
    end of life and boot burst)."""
    end, boot = per_vm
    f, plan = disks.f, span.plan
    pop = plan.population
    placed = span.v0 + np.flatnonzero(plan.placed[span.v0:span.v1])
    # one evaluation for every other instant that matters: the exact model replays each disk
    # once (the samples with them, unless the fluid model's table answers them)
    samples: dict[str, Query] = {}
    if disks.table is None:
        vm, host, si = span.sample_pairs()
        samples["samples"] = (vm, plan.sample_t[si])
    snap_vm, snap_t = _snapshots(f, plan, snaps, span.v0, migs)
    if f.model == "exact":  # the fluid model's are read from a table of snapshot numbers
        samples["snapshots"] = (snap_vm, snap_t)
    q = _evaluate(disks, {**samples, "migrations": (plan.mig_vm[migs], plan.mig_t[migs]),
                          "ends": (placed, end[placed])})
    if "samples" in q:
        tot.demand += _by_host_sample(plan, si, host,
                                      q["samples"][3] + disks.extra_bytes(pop.flavor[vm]))
    else:
        tot.demand += _table_demand(disks, span, tot.steps)
    c = disks.s.strategy.cluster_size
    union = q["snapshots"][2].union_clusters if "snapshots" in q else \
        disks.snapshot_union(snap_vm, snap_t)
    tot.snapshot += _by_host_sample(plan, _interval_of(plan, snap_t),
                                    span.host_at(snap_vm, snap_t), union * c)
    mig_vm, mig_t, mig_state, mig_alloc = q["migrations"]
    moved = mig_state.data_clusters * c if f.migrations.kind == "live" else mig_alloc
    tot.migration += _by_host_sample(plan, _interval_of(plan, mig_t), plan.mig_src[migs], moved)
    if f.migrations.kind == "cold":
        tot.demand += _resize_copies(plan, migs, mig_alloc + disks.extra_bytes(
            pop.flavor[mig_vm]))
    arrive = pop.arrive[placed]
    tot.boot += _by_host_sample(plan, _interval_of(plan, arrive), span.host_at(placed, arrive),
                                boot[placed])
    _, _, end_state, end_alloc = q["ends"]
    tot.end_allocated[placed] = end_alloc + disks.extra_bytes(pop.flavor[placed])
    tot.end_clusters[placed] = end_state.data_clusters


def _table_demand(disks: FleetDisks, span: Span, steps: np.ndarray) -> np.ndarray:
    """Per sample and host, the demand of the span's VMs read from the fluid model's table:
    per placement, the table's column at its first sample and the columns a sample interval
    apart after it (the interpolation weight is the placement's own), a disk younger than
    :data:`TABLE_FROM_S` at its first sample by the closed forms; the files beside the root
    overlay added to ``steps`` (``Totals.steps``) where each placement's first sample is and
    taken away after its last."""
    plan, table = span.plan, disks.table
    assert table is not None
    t, pop, n_h = plan.sample_t, plan.population, len(plan.hosts)
    i0 = np.searchsorted(t, span.t0, side="left")
    n = np.searchsorted(t, span.t1, side="left") - i0
    on = np.flatnonzero(n > 0)
    vm, host, i0, n = span.vm[on], span.host[on], i0[on], n[on]
    age0 = t[i0] - pop.arrive[vm]
    x0 = age0 / TABLE_STEP_S
    col = np.floor(x0)
    step = int(round((t[1] - t[0]) / TABLE_STEP_S))
    first = np.cumsum(n) - n
    ar = np.arange(int(n.sum()), dtype=np.int64)
    at = np.repeat(disks._keys(vm)[0] * table.shape[1] + col.astype(np.int64) - first * step,
                   n) + ar * step
    value = table.ravel()[at] + np.repeat(x0 - col, n) * disks.slope.ravel()[at]
    young = np.flatnonzero(age0 < TABLE_FROM_S)
    if young.size:
        value[first[young]] = disks.state(vm[young], t[i0[young]])[1]
    cell = np.repeat(i0 * n_h + host - first * n_h, n) + ar * n_h
    out = np.bincount(cell, weights=value, minlength=t.size * n_h)
    extra = disks.extra_bytes(pop.flavor[vm])
    size = (t.size + 1) * n_h
    steps += (np.bincount(i0 * n_h + host, weights=extra, minlength=size)
              - np.bincount((i0 + n) * n_h + host, weights=extra, minlength=size)
              ).reshape(steps.shape)
    return np.asarray(out.reshape(t.size, n_h))


def _resize_copies(plan: Plan, migs: np.ndarray, files: np.ndarray) -> np.ndarray:
    """Per sample and host, the cold migrations' sources' ``<uuid>_resize`` directories: each
    the VM's files as they were when it left (no guest writes there), until confirmed."""
    mig, si = _covered(plan.sample_t, plan.mig_t[migs], plan.mig_confirm[migs])
    return _by_host_sample(plan, si, plan.mig_src[migs][mig], files[mig])


def _evaluate(disks: FleetDisks, queries: dict[str, Query]) -> dict[str, Answer]:
    vm = np.concatenate([v for v, _ in queries.values()]).astype(np.int64)
    t = np.concatenate([x for _, x in queries.values()]).astype(np.float64)
    st, alloc = disks.state(vm, t)
    out: dict[str, Answer] = {}
    i = 0
    for name, (v, x) in queries.items():
        sl = slice(i, i + v.size)
        out[name] = (v, x, DiskState(st.data_clusters[sl], st.l2_tables[sl],
                                     st.union_clusters[sl]), alloc[sl])
        i += v.size
    return out
