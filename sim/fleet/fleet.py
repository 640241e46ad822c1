"""``simulate`` for fleet scenarios: the lifecycle's plan, turned into bytes per host over time.

``fleet_lifecycle`` decides who runs where and when (SimPy); a disk model (``fluid``: closed
forms, vectorised over every VM and instant with numpy; ``exact``: every write applied to a
qcow2 map) gives each root overlay's allocation at the instants that matter: the samples, each
snapshot, each migration, each VM's end. Records (the run directory's tidy shape):

- ``host:<h>``: ``allocated_bytes`` (demand: cache + every overlay + disk.info),
  ``provisioned_bytes`` (placement's DISK_GB in bytes), ``vm_count``, per sample; per interval
  ending at a sample, ``snapshot_transfer_bytes`` (flattened images uploaded, FACTS.md 1.4),
  ``migration_transfer_bytes`` (overlays copied, 1.5), ``image_fetch_bytes`` (Glance downloads),
  ``host_read_bytes`` (boot bursts of the VMs that started there);
  ``time_to_full_s`` (end of run, absent if the host never fills);
- ``cache:<h>``: ``allocated_bytes`` of ``_base`` per sample;
- ``vm:<id>``: ``allocated_bytes``, ``data_clusters``, ``host_read_bytes`` (the boot burst) at
  the end of the VM's life or of the run: the per-VM distribution;
- ``fleet:all``: the sums per sample, ``rejected_vms`` per interval ending at a sample (VMs
  placement refused, NoValidHost); at the end of the run ``arrived_vms``, ``rejected_vms`` (the
  total) and ``time_to_full_s`` (when the first host fills).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cowbench.fleet import Fleet
from cowbench.nova.draws import streams
from cowbench.records import UNITS
from cowbench.scenario import Scenario
from sim.storage.images import DISK_INFO_BYTES, base_data

from .fleet_exact import ExactDisk, exact_states
from .fleet_lifecycle import Plan, run_lifecycle
from .fluid import BaseClusters, DiskState, OverlayGeometry, Phases, fluid_state

Query = tuple[np.ndarray, np.ndarray]


class FleetDisks:
    """Root-overlay state of any VM at any instant, by the fluid or the exact model."""

    def __init__(self, s: Scenario, plan: Plan, seed: int) -> None:
        f = s.fleet
        assert f is not None
        self.f, self.s, self.plan, self.seed = f, s, plan, seed
        c = s.strategy.cluster_size
        self.geoms = {fl.root: OverlayGeometry(fl.root, c) for fl in f.flavors}
        self.empty = {z: OverlayGeometry(z, c).empty_bytes
                      for fl in f.flavors for z in (fl.ephemeral, fl.swap) if z}
        self.phases = {(j, k): Phases.of(wc, fl.root, c) for j, fl in enumerate(f.flavors)
                       for k, wc in enumerate(f.classes.values())}
        self.bases = {i: BaseClusters(img.data_extents(), c) for i, img in enumerate(s.images)
                      if img.name in f.image_mix}

    def extra_bytes(self, flavor: np.ndarray) -> np.ndarray:
        """Per VM beyond the root overlay: empty ephemeral and swap overlays, disk.info."""
        per = [DISK_INFO_BYTES + sum(self.empty[z] for z in (fl.ephemeral, fl.swap) if z)
               for fl in self.f.flavors]
        return np.asarray(np.asarray(per, dtype=np.float64)[flavor])

    def state(self, vm: np.ndarray, t: np.ndarray) -> tuple[DiskState, np.ndarray]:
        """(DiskState, root overlay allocated_bytes) for each (vm, t) query."""
        pop = self.plan.population
        age = t - pop.arrive[vm]
        key = (pop.flavor[vm] * len(self.f.classes) + pop.klass[vm]) * len(self.s.images)
        key = key + pop.image[vm]
        out = DiskState(np.zeros(vm.size), np.zeros(vm.size), np.zeros(vm.size))
        for k in np.unique(key).tolist():
            idx = np.flatnonzero(key == k)
            j, rest = divmod(k, len(self.f.classes) * len(self.s.images))
            klass, image = divmod(rest, len(self.s.images))
            ph, base = self.phases[(j, klass)], self.bases[image]
            if self.f.model == "fluid":
                st = fluid_state(ph, base, age[idx])
            else:
                st = self._exact(ph, image, vm[idx], age[idx])
            out.data_clusters[idx], out.l2_tables[idx] = st.data_clusters, st.l2_tables
            out.union_clusters[idx] = st.union_clusters
        alloc = np.zeros(vm.size)
        roots = np.array([fl.root for fl in self.f.flavors])[pop.flavor[vm]]
        for root, geom in self.geoms.items():
            m = roots == root
            k = np.rint(out.data_clusters[m] + out.l2_tables[m]).astype(np.int64)
            alloc[m] = geom.allocated_bytes(k)
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


class _Rows:
    """Columns of the records frame, appended as arrays (one DataFrame at the end)."""

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.entity: list[np.ndarray] = []
        self.metric: list[np.ndarray] = []
        self.value: list[np.ndarray] = []

    def add(self, t: np.ndarray | float, entity: np.ndarray, metric: str,
            value: np.ndarray) -> None:
        if metric not in UNITS:
            raise KeyError(f"unknown metric {metric!r}: add it to cowbench.records.UNITS")
        n = np.broadcast(t, entity, value).shape
        keep = ~np.isnan(np.broadcast_to(np.asarray(value, dtype=np.float64), n))
        self.t.append(np.broadcast_to(np.asarray(t, dtype=np.float64), n)[keep])
        self.entity.append(np.broadcast_to(np.asarray(entity, dtype=object), n)[keep])
        self.metric.append(np.full(int(keep.sum()), metric, dtype=object))
        self.value.append(np.broadcast_to(np.asarray(value, dtype=np.float64), n)[keep])

    def frame(self, seed: int) -> pd.DataFrame:
        metric = np.concatenate(self.metric)
        df = pd.DataFrame({
            "backend": "sim", "t_s": np.concatenate(self.t),
            "entity": np.concatenate(self.entity), "metric": metric,
            "value": np.concatenate(self.value),
            "unit": pd.Series(metric).map(UNITS).to_numpy(), "seed": seed, "replication": 0})
        return df.astype({"backend": "string", "t_s": "float64", "entity": "string",
                          "metric": "string", "value": "float64", "unit": "string",
                          "seed": "int64", "replication": "int64"})


def _covered(sample_t: np.ndarray, t0: np.ndarray, t1: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(span index, sample index) for every sample in each span ``[t0, t1)``."""
    i0 = np.searchsorted(sample_t, t0, side="left")
    i1 = np.searchsorted(sample_t, t1, side="left")
    n = i1 - i0
    seg = np.repeat(np.arange(n.size), n)
    starts = np.repeat(i0 - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return seg, starts + np.arange(seg.size)


def _sample_pairs(plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vm, host, sample index) for every sample each placement segment covers."""
    seg, si = _covered(plan.sample_t, plan.seg_t0, plan.seg_t1)
    return plan.seg_vm[seg], plan.seg_host[seg], si


def _host_at(plan: Plan, vm: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Host of each VM at each instant, from the (vm, t0)-sorted segments."""
    scale = plan.end * 4 + 1.0
    keys = plan.seg_vm * scale + plan.seg_t0
    i = np.searchsorted(keys, vm * scale + t, side="right") - 1
    return np.asarray(plan.seg_host[i])


def _snapshots(f: Fleet, plan: Plan, end: np.ndarray) -> Query:
    """(vm, t) of every snapshot: each ``interval`` after arrival, while the VM lives."""
    pop = plan.population
    vms = np.flatnonzero(pop.snap & plan.placed)
    every = f.snapshots.interval
    count = np.floor((end[vms] - pop.arrive[vms]) / every - 1e-9).astype(np.int64).clip(0)
    vm = np.repeat(vms, count)
    m = np.arange(vm.size) - np.repeat(np.cumsum(count) - count, count) + 1
    return vm, pop.arrive[vm] + m * every


def _interval_of(plan: Plan, t: np.ndarray) -> np.ndarray:
    """Sample index closing the interval (t_{s-1}, t_s] that holds ``t``."""
    return np.minimum(np.searchsorted(plan.sample_t, t, side="left"), plan.sample_t.size - 1)


def _by_host_sample(plan: Plan, s: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    shape = (plan.sample_t.size, len(plan.hosts))
    flat = np.bincount(s * shape[1] + h, weights=w, minlength=shape[0] * shape[1])
    return np.asarray(flat.reshape(shape))


def time_to_full(t: np.ndarray, used: np.ndarray, capacity: float) -> np.ndarray:
    """Per column, the first instant ``used`` reaches ``capacity`` (linear between samples)."""
    out = np.full(used.shape[1], np.nan)
    full = used >= capacity
    for h in np.flatnonzero(full.any(axis=0)).tolist():
        i = int(np.argmax(full[:, h]))
        if i == 0:
            out[h] = t[0]
            continue
        a, b = used[i - 1, h], used[i, h]
        out[h] = t[i - 1] + (capacity - a) / (b - a) * (t[i] - t[i - 1])
    return out


def simulate_fleet(s: Scenario, seed: int) -> pd.DataFrame:
    """Run a fleet scenario once (fluid or exact disks); return its records."""
    f = s.fleet
    assert f is not None
    plan = run_lifecycle(s, streams(seed))
    disks = FleetDisks(s, plan, seed)
    end = np.minimum(plan.population.life_end, plan.end)
    vm, host, si = _sample_pairs(plan)
    placed = np.flatnonzero(plan.placed)
    # one evaluation for every instant that matters: the exact model replays each disk once
    q = _evaluate(disks, {"samples": (vm, plan.sample_t[si]),
                          "snapshots": _snapshots(f, plan, end),
                          "migrations": (plan.mig_vm, plan.mig_t),
                          "ends": (placed, end[placed])})
    rows = _Rows()
    _record_hosts(rows, f, plan, disks, q, (vm, host, si))
    _record_vms(rows, s, plan, disks, q["ends"], end)
    return rows.frame(seed)


Answer = tuple[np.ndarray, np.ndarray, DiskState, np.ndarray]  # vm, t, state, root alloc


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


def _resize_copies(plan: Plan, disks: FleetDisks, frozen: np.ndarray) -> np.ndarray:
    """Per sample and host, the cold migrations' sources' ``<uuid>_resize`` directories: each
    the VM's files as they were when it left (no guest writes there), until confirmed."""
    files = frozen + disks.extra_bytes(plan.population.flavor[plan.mig_vm])
    mig, si = _covered(plan.sample_t, plan.mig_t, plan.mig_confirm)
    return _by_host_sample(plan, si, plan.mig_src[mig], files[mig])


def _record_hosts(rows: _Rows, f: Fleet, plan: Plan, disks: FleetDisks,
                  q: dict[str, Answer], pairs: tuple[np.ndarray, ...]) -> None:
    pop = plan.population
    vm, host, si = pairs
    alloc = q["samples"][3]
    demand = _by_host_sample(plan, si, host, alloc + disks.extra_bytes(pop.flavor[vm]))
    demand += plan.cache_bytes
    if f.migrations.kind == "cold":
        demand += _resize_copies(plan, disks, q["migrations"][3])
    c = disks.s.strategy.cluster_size
    snap_vm, snap_t, snap_state, _ = q["snapshots"]
    snap = _by_host_sample(plan, _interval_of(plan, snap_t), _host_at(plan, snap_vm, snap_t),
                           snap_state.union_clusters * c)
    _, _, mig_state, mig_alloc = q["migrations"]
    moved = mig_state.data_clusters * c if f.migrations.kind == "live" else mig_alloc
    mig = _by_host_sample(plan, _interval_of(plan, plan.mig_t), plan.mig_src, moved)
    placed = np.flatnonzero(plan.placed)
    boot = _by_host_sample(plan, _interval_of(plan, pop.arrive[placed]),
                           _host_at(plan, placed, pop.arrive[placed]),
                           boot_read_bytes(disks.s, plan)[placed])
    t = plan.sample_t[:, None]
    names = np.array([f"host:{h}" for h in plan.hosts], dtype=object)[None, :]
    for metric, value in (("allocated_bytes", demand), ("provisioned_bytes", plan.provisioned),
                          ("vm_count", plan.vm_count), ("snapshot_transfer_bytes", snap),
                          ("migration_transfer_bytes", mig),
                          ("image_fetch_bytes", plan.fetch_bytes),
                          ("host_read_bytes", boot)):
        rows.add(t, names, metric, value)
        rows.add(plan.sample_t, np.array("fleet:all", dtype=object), metric, value.sum(axis=1))
    caches = np.array([f"cache:{h}" for h in plan.hosts], dtype=object)[None, :]
    rows.add(t, caches, "allocated_bytes", plan.cache_bytes)
    ttf = time_to_full(plan.sample_t, demand, float(f.hosts.capacity_bytes))
    rows.add(np.nan, names[0], "time_to_full_s", ttf)
    first = np.nanmin(ttf) if np.isfinite(ttf).any() else np.nan
    rows.add(np.nan, np.array("fleet:all", dtype=object), "time_to_full_s", np.array(first))


def _record_vms(rows: _Rows, s: Scenario, plan: Plan, disks: FleetDisks, ends: Answer,
                end: np.ndarray) -> None:
    f = s.fleet
    assert f is not None
    pop = plan.population
    fleet = np.array("fleet:all", dtype=object)
    rows.add(np.nan, fleet, "arrived_vms", np.array(float(pop.arrive.size)))
    rows.add(np.nan, fleet, "rejected_vms", np.array(float((~plan.placed).sum())))
    refused = _interval_of(plan, pop.arrive[~plan.placed])
    rows.add(plan.sample_t, fleet, "rejected_vms",
             np.bincount(refused, minlength=plan.sample_t.size).astype(np.float64))
    vms, _, state, alloc = ends
    width = max(6, len(str(pop.arrive.size)))
    names = np.array([f"vm:vm-{v:0{width}d}" for v in vms.tolist()], dtype=object)
    rows.add(end[vms], names, "allocated_bytes", alloc + disks.extra_bytes(pop.flavor[vms]))
    rows.add(end[vms], names, "data_clusters", state.data_clusters)
    rows.add(pop.arrive[vms], names, "host_read_bytes", boot_read_bytes(s, plan)[vms])


def boot_read_bytes(s: Scenario, plan: Plan) -> np.ndarray:
    """Each VM's boot burst, read from its base: no more than the base's data (holes are free)."""
    f = s.fleet
    assert f is not None
    pop = plan.population
    base_bytes = np.array([base_data(i).data_bytes if i.name in f.image_mix else 0
                           for i in s.images], dtype=np.float64)
    boot = np.array([c.boot_read for c in f.classes.values()], dtype=np.float64)
    return np.asarray(np.minimum(boot[pop.klass], base_bytes[pop.image]))
