"""A fleet run's records, from the totals its disk evaluation summed up (``sim.fleet.fleet``).

Everything here is per host and sample, per fleet, or a distribution over the VMs: the records
grow with hosts x samples, not with VMs. One record per VM and figure is written only when the
scenario asks for it (``fleet.records: per_vm``); the VMs' distributions are always kept as a
grid of 101 quantiles (``cowbench.vmdist``). The record kinds are listed in ``sim.fleet.fleet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from cowbench.records import UNITS
from cowbench.scenario import Scenario
from cowbench.vmdist import LEVELS, grid_entities
from sim.storage.images import backing_data

from .plan import Plan


class Rows:
    """Columns of the records frame, appended as arrays (one DataFrame at the end). The
    string columns are kept as codes into lists of names and become Arrow strings through a
    dictionary at the end (a few names for millions of rows)."""

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.entity: list[np.ndarray] = []
        self.metric: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.names: dict[str, int] = {}
        self.metrics: dict[str, int] = {}

    def add(self, t: np.ndarray | float, entity: np.ndarray | str, metric: str,
            value: np.ndarray) -> None:
        if metric not in UNITS:
            raise KeyError(f"unknown metric {metric!r}: add it to cowbench.records.UNITS")
        n = np.broadcast(t, entity, value).shape
        keep = ~np.isnan(np.broadcast_to(np.asarray(value, dtype=np.float64), n))
        self.t.append(np.broadcast_to(np.asarray(t, dtype=np.float64), n)[keep])
        ent = np.asarray(entity, dtype=object)
        codes = np.array([self.names.setdefault(x, len(self.names)) for x in ent.ravel()],
                         dtype=np.int32).reshape(ent.shape)
        self.entity.append(np.broadcast_to(codes, n)[keep])
        code = self.metrics.setdefault(metric, len(self.metrics))
        self.metric.append(np.full(int(keep.sum()), code, dtype=np.int32))
        self.value.append(np.broadcast_to(np.asarray(value, dtype=np.float64), n)[keep])

    def frame(self, seed: int) -> pd.DataFrame:
        """The records, each column built once in its final type (the lists are emptied as
        they are joined: a fleet-region's 3 million records are never held twice over)."""
        metric = _take(self.metric)
        n = metric.size
        metrics = list(self.metrics)
        columns = {"backend": _strings(np.zeros(n, dtype=np.int32), ["sim"]),
                   "t_s": _take(self.t), "entity": _strings(_take(self.entity), list(self.names)),
                   "metric": _strings(metric, metrics), "value": _take(self.value),
                   "unit": _strings(metric, [UNITS[m] for m in metrics]),
                   "seed": np.full(n, seed, dtype=np.int64),
                   "replication": np.zeros(n, dtype=np.int64)}
        return pd.DataFrame(columns, copy=False)


def _strings(codes: np.ndarray, names: list[str]) -> pd.api.extensions.ExtensionArray:
    """``names[codes]`` as pandas' ``string`` column (Arrow), without a Python str per row."""
    table = pa.array(names, type=pa.string())
    out = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), table)
    return pd.arrays.ArrowStringArray(out.cast(pa.string()))


def _take(parts: list[np.ndarray]) -> np.ndarray:
    """The parts joined into one array; the list is left empty."""
    out = np.concatenate(parts) if parts else np.zeros(0)
    parts.clear()
    return out


@dataclass
class Totals:
    """What the records need, summed while the disks are evaluated chunk by chunk.

    Per sample and host (``samples x hosts``): overlay demand, snapshot and migration traffic
    in the interval ending at the sample, boot reads; per VM (NaN for a VM never placed): its
    allocated bytes and data clusters at the end of its life or of the run. ``steps``
    (``samples + 1 x hosts``): how demand of a constant size (files beside the root overlays)
    changes at each sample, summed over the samples into ``demand`` at the end.
    """

    demand: np.ndarray
    snapshot: np.ndarray
    migration: np.ndarray
    boot: np.ndarray
    end_allocated: np.ndarray
    end_clusters: np.ndarray
    steps: np.ndarray

    @classmethod
    def zeros(cls, plan: Plan) -> Totals:
        shape = (plan.sample_t.size, len(plan.hosts))
        n = plan.population.arrive.size
        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape),
                   np.full(n, np.nan), np.full(n, np.nan), np.zeros((shape[0] + 1, shape[1])))

    def settle(self) -> None:
        """Add the constant-size demand to ``demand`` (after the last chunk)."""
        self.demand += np.cumsum(self.steps, axis=0)[:-1]
        self.steps[:] = 0


def time_to_full(t: np.ndarray, used: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per column, the first instant ``used`` reaches its ``capacity`` (one per column, or one
    for all; linear between samples)."""
    cap = np.broadcast_to(np.asarray(capacity, dtype=np.float64), used.shape[1:])
    out = np.full(used.shape[1], np.nan)
    full = used >= cap
    for h in np.flatnonzero(full.any(axis=0)).tolist():
        i = int(np.argmax(full[:, h]))
        if i == 0:
            out[h] = t[0]
            continue
        a, b = used[i - 1, h], used[i, h]
        out[h] = t[i - 1] + (cap[h] - a) / (b - a) * (t[i] - t[i - 1])
    return out


def record_hosts(rows: Rows, capacity: np.ndarray, plan: Plan, tot: Totals) -> None:
    """Per host and sample, their sums over the fleet, the caches, and times to full (each
    host against its own disk for instances: ``capacity`` bytes per host, its capacity less
    the reserve)."""
    demand = tot.demand + plan.cache_bytes
    t = plan.sample_t[:, None]
    names = np.array([f"host:{h}" for h in plan.hosts], dtype=object)[None, :]
    fleet = np.array("fleet:all", dtype=object)
    for metric, value in (("allocated_bytes", demand), ("provisioned_bytes", plan.provisioned),
                          ("vm_count", plan.vm_count), ("snapshot_transfer_bytes", tot.snapshot),
                          ("migration_transfer_bytes", tot.migration),
                          ("image_fetch_bytes", plan.fetch_bytes),
                          ("host_read_bytes", tot.boot)):
        rows.add(t, names, metric, value)
        rows.add(plan.sample_t, fleet, metric, value.sum(axis=1))
    caches = np.array([f"cache:{h}" for h in plan.hosts], dtype=object)[None, :]
    rows.add(t, caches, "allocated_bytes", plan.cache_bytes)
    ttf = time_to_full(plan.sample_t, demand, capacity)
    rows.add(np.nan, names[0], "time_to_full_s", ttf)
    first = np.nanmin(ttf) if np.isfinite(ttf).any() else np.nan
    rows.add(np.nan, fleet, "time_to_full_s", np.array(first))


def record_vms(rows: Rows, s: Scenario, plan: Plan, tot: Totals, end: np.ndarray,
               boot: np.ndarray) -> None:
    """Arrivals and rejections; the VMs' end-of-life figures as quantiles (and per VM if the
    scenario asks: ``fleet.records: per_vm``)."""
    f = s.fleet
    assert f is not None
    pop = plan.population
    fleet = np.array("fleet:all", dtype=object)
    rows.add(np.nan, fleet, "arrived_vms", np.array(float(pop.arrive.size)))
    rows.add(np.nan, fleet, "rejected_vms", np.array(float((~plan.placed).sum())))
    refused = np.minimum(np.searchsorted(plan.sample_t, pop.arrive[~plan.placed], side="left"),
                         plan.sample_t.size - 1)
    rows.add(plan.sample_t, fleet, "rejected_vms",
             np.bincount(refused, minlength=plan.sample_t.size).astype(np.float64))
    vms = np.flatnonzero(plan.placed)
    figures = (("allocated_bytes", end[vms], tot.end_allocated[vms]),
               ("data_clusters", end[vms], tot.end_clusters[vms]),
               ("host_read_bytes", pop.arrive[vms], boot[vms]))
    if vms.size:
        for metric, _, value in figures:
            rows.add(np.nan, grid_entities(), metric, np.percentile(value, LEVELS))
    if f.records == "per_vm":
        width = max(6, len(str(pop.arrive.size)))
        names = np.array([f"vm:vm-{v:0{width}d}" for v in vms.tolist()], dtype=object)
        for metric, t, value in figures:
            rows.add(t, names, metric, value)


def boot_read_bytes(s: Scenario, plan: Plan) -> np.ndarray:
    """Each VM's boot burst, read from its base: no more than the base holds on disk (holes
    are free; a raw image's base is dense, its zeros read as data, ``backing_data``)."""
    f = s.fleet
    assert f is not None
    pop = plan.population
    force_raw = s.nova.force_raw_images
    base_bytes = np.array([backing_data(i, force_raw).held_bytes if i.name in f.image_mix
                           else 0 for i in s.images], dtype=np.float64)
    boot = np.array([c.boot_read_bytes for c in f.classes.values()], dtype=np.float64)
    return np.asarray(np.minimum(boot[pop.klass], base_bytes[pop.image]))
