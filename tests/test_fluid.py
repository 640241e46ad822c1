"""The fluid fleet model against the exact engines it must agree with (issue 6, point 2).

- ``OverlayGeometry`` reproduces ``Qcow2Image.allocated_bytes`` exactly, for any number of
  allocated clusters, across cluster sizes and refcount-block growth;
- the closed forms reproduce the mean of the existing exact model (``sim.simulate``, fio with
  ``norandommap=1``: uniform writes with replacement) on single disks;
- whole fleets run in fluid and in exact mode (same lifecycle, every write drawn and applied to
  a ``Qcow2Image``) agree on every host's ``allocated_bytes`` within 1%, over seeds and shapes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cowbench.fleet import WorkloadClass
from cowbench.scenario import parse_scenario
from sim import simulate
from sim.fleet.fluid import BaseClusters, OverlayGeometry, Phases, fluid_state
from sim.storage.disk import Qcow2Image
from sim.storage.images import base_data

from .conftest import small_scenario

MIB, GIB = 1 << 20, 1 << 30


@pytest.mark.parametrize("size,cluster,nbytes", [
    (64 * MIB, 4096, 64 * MIB),      # every cluster: many refcount blocks
    (1 * GIB, 65536, 200 * MIB),
    (3 * GIB + 5 * 65536, 65536, 3 * GIB),
    (4 * GIB, 2 * MIB, 4 * GIB),
])
def test_geometry_matches_qcow2image(size: int, cluster: int, nbytes: int) -> None:
    geom = OverlayGeometry(size, cluster)
    img = Qcow2Image(size, cluster)
    assert geom.allocated_bytes(np.array([0]))[0] == img.allocated_bytes
    rng = np.random.default_rng(7)
    order = rng.permutation(-(-size // cluster))
    step = max(1, nbytes // cluster // 40)
    for i in range(0, nbytes // cluster, step):
        for g in order[i:i + step].tolist():
            img.write(g * cluster, min(4096, size - g * cluster))
        k = np.array([img.n_data + img.n_l2])
        assert geom.host_clusters(k)[0] == img.host_clusters
        assert geom.allocated_bytes(k)[0] == img.allocated_bytes


def _exact_overlay(bs: int, ios: int, seed: int) -> float:
    """The existing exact model's overlay for one fio job: randwrite with norandommap."""
    s = small_scenario(
        workloads={"w": {"rw": "randwrite", "bs": bs, "io_size": bs * ios, "norandommap": True,
                         # fio 3.33 pins the offsets with randrepeat=1 even when randseed is
                         # set (sim/workload/fiorand.py): only randrepeat=0 lets seeds differ
                         "randrepeat": False, "randseed": seed}},
        vms=[{"name": "a", "image": "img", "root_size": "1GiB", "workload": "w"}])
    rec = simulate(s)
    return float(rec[(rec.entity == "vm:a") & (rec.metric == "allocated_bytes")].value.iloc[0])


def _fluid_overlay(bs: int, ios: int) -> float:
    s = small_scenario()
    ph = Phases.of(WorkloadClass(write_bytes_per_day=bs * ios, bs=bs), 1 * GIB, 65536)
    base = BaseClusters(s.images[0].data_extents(), 65536)
    st = fluid_state(ph, base, np.array([86400.0]))
    k = np.rint(st.data_clusters + st.l2_tables).astype(np.int64)
    return float(OverlayGeometry(GIB, 65536).allocated_bytes(k)[0])


@pytest.mark.parametrize("bs,ios", [(4096, 4000), (4096, 20000), (65536, 6000),
                                    (262144, 2000)])
@pytest.mark.slow
def test_fluid_is_the_mean_of_the_exact_model_on_one_disk(bs: int, ios: int) -> None:
    """One disk's occupancy is random (a few hundred clusters of spread on a few thousand):
    the closed form is its expectation, so it is compared with the mean over seeds."""
    exact = [_exact_overlay(bs, ios, seed) for seed in range(11, 17)]
    fluid = _fluid_overlay(bs, ios)
    assert abs(fluid - np.mean(exact)) / np.mean(exact) < 0.01, (fluid, exact)
    assert min(exact) < fluid * 1.001 and max(exact) > fluid * 0.999  # inside the spread


FLEET: dict[str, Any] = {
    "name": "agree", "duration": "8d",
    "images": [{"name": "a", "virtual_size": "1GiB",
                "synthetic": {"data": [{"offset": 0, "length": "300MiB"}]}},
               {"name": "b", "virtual_size": "512MiB",
                "synthetic": {"data": [{"offset": "64MiB", "length": "128MiB"}]}}],
    "strategy": {"cluster_size": "256KiB"},
    "hosts": [{"name": "host", "count": 2, "capacity_bytes": "64GiB"}],
    "flavors": [{"name": "f1", "root": "1GiB"}, {"name": "f2", "root": "2GiB", "swap": "64MiB"}],
    "fleet": {
        "vms": 30, "sample_interval_s": "12h",
        "lifetime": {"distribution": "exponential", "mean_s": "5d"},
        "flavor_mix": {"f1": 2, "f2": 1},
        "image_mix": {"a": 1, "b": 1},
        "classes": {},
        "snapshots": {"share": 0.5, "every_s": "1d"},
        "migrations": {"share": 0.3, "every_s": "2d"},
    },
}
SHAPES: dict[str, dict[str, Any]] = {
    "uniform": {"u": {"write_bytes_per_day": "12MiB"}},
    "hot-cold": {"h": {"write_bytes_per_day": "64MiB", "hot_fraction": 0.2, "hot_share": 0.85},
                 "g": {"write_bytes_per_day": "8MiB", "growth_bytes_per_day": "32MiB",
                       "growth_start": 0.3}},
    "large-bs": {"l": {"write_bytes_per_day": "1GiB", "bs": "1MiB", "hot_fraction": 0.5,
                       "hot_share": 0.6}},
}
# 1 MiB writes allocate 1 MiB units: bigger disks keep a VM's unit count in the thousands
FLAVORS = {"large-bs": [{"name": "f4", "root": "4GiB"}, {"name": "f8", "root": "8GiB"}]}
MIXES = {"large-bs": {"f4": 1, "f8": 1}}


def agreement_fleet(shape: str, model: str, cluster: str = "256KiB") -> Any:
    d = copy.deepcopy(FLEET)
    d["fleet"]["classes"] = SHAPES[shape]
    d["flavors"] = FLAVORS.get(shape, d["flavors"])
    d["fleet"]["flavor_mix"] = MIXES.get(shape, d["fleet"]["flavor_mix"])
    d["fleet"]["model"] = model
    d["strategy"]["cluster_size"] = cluster
    return parse_scenario(d)


def _hosts(rec: Any, metric: str = "allocated_bytes") -> Any:
    h = rec[rec.entity.str.startswith("host:") & (rec.metric == metric)]
    return h.set_index(["entity", "t_s"]).value


@pytest.mark.parametrize("shape,cluster", [("uniform", "64KiB"), ("hot-cold", "256KiB"),
                                           ("large-bs", "256KiB")])
@pytest.mark.slow
def test_fluid_and_exact_fleets_agree(shape: str, cluster: str) -> None:
    """Every host, every sample where it runs at least 4 VMs, within 1%, for each seed.

    One VM's overlay is one random draw whose spread is about 1% (see the one-disk test), so a
    host running one or two VMs enters only the mean error over every host, sample and seed.
    """
    means = []
    for seed in (1, 2, 3):
        fluid_rec = simulate(agreement_fleet(shape, "fluid", cluster), seed)
        exact_rec = simulate(agreement_fleet(shape, "exact", cluster), seed)
        fluid, exact = _hosts(fluid_rec), _hosts(exact_rec)
        assert fluid.index.equals(exact.index)
        rel = (fluid - exact) / exact
        crowded = _hosts(fluid_rec, "vm_count") >= 4
        assert crowded.sum() >= 10
        assert rel[crowded].abs().max() < 0.01, (seed, rel[crowded].abs().max())
        means.append(rel[exact > 0])
    bias = float(pd.concat(means).mean())  # every host and sample, lone VMs included
    assert abs(bias) < 0.002, bias


def test_fluid_matches_exact_on_everything_but_the_disks() -> None:
    """Same seed, same lifecycle: placements, cache and provisioned bytes are identical."""
    fluid, exact = (simulate(agreement_fleet("large-bs", m), 5) for m in ("fluid", "exact"))
    for metric in ("provisioned_bytes", "vm_count", "image_fetch_bytes"):
        a = fluid[fluid.metric == metric].value.to_numpy()
        b = exact[exact.metric == metric].value.to_numpy()
        assert np.array_equal(a, b), metric
    cache = fluid[fluid.entity.str.startswith("cache:")].value.to_numpy()
    assert np.array_equal(cache, exact[exact.entity.str.startswith("cache:")].value.to_numpy())


def test_a_unit_that_takes_every_write_is_missed_only_before_the_first() -> None:
    ph = Phases.of(WorkloadClass(write_bytes_per_day=GIB, bs=4096, hot_fraction=0.5, hot_share=0.5),
                   GIB, 4096)
    n = np.array([0.0, 1.0, 7.0])
    assert ph.untouched(n, 1.0, 1).tolist() == [1.0, 0.0, 0.0]
    assert np.allclose(ph.untouched(n, 0.5, 2), 0.75 ** n)


def test_base_clusters_count_the_image_data() -> None:
    s = small_scenario()
    base = BaseClusters(s.images[0].data_extents(), 65536)
    assert base.total * 65536 == base_data(s.images[0]).data_bytes  # extents are aligned
    assert base.within(np.array(0), np.array(base.mask(2048).size)) == base.total


@settings(max_examples=60, deadline=None)
@given(hot=st.floats(0.05, 1.0), share=st.floats(0.0, 1.0), bs_log=st.integers(9, 20),
       c_log=st.integers(12, 21), daily=st.integers(1, 8 << 30), growth=st.integers(0, 1 << 30),
       start=st.floats(0.0, 0.95), root_gib=st.integers(1, 64))
# found by this test in CI: the hot region is all of the disk but one cluster, which takes every
# random write (the cold share is 1), and the fluid state at age 0 was NaN
@example(hot=0.9999999999999999, share=0.0, bs_log=9, c_log=12, daily=1, growth=0, start=0.0,
         root_gib=1)
def test_fluid_state_is_a_sane_occupancy(hot: float, share: float, bs_log: int, c_log: int,
                                         daily: int, growth: int, start: float,
                                         root_gib: int) -> None:
    """Grows with age, never past the disk, L2 within the table count, union within bounds."""
    share = 1.0 if hot == 1.0 else share
    wc = WorkloadClass(write_bytes_per_day=daily, bs=1 << bs_log, hot_fraction=hot, hot_share=share,
                       growth_bytes_per_day=growth, growth_start=start)
    ph = Phases.of(wc, root_gib * GIB, 1 << c_log)
    base = BaseClusters([(0, GIB // 2)], 1 << c_log)
    ages = np.array([0.0, 3600.0, 86400.0, 30 * 86400.0, 400 * 86400.0])
    s = fluid_state(ph, base, ages)
    n, tables = ph.n_clusters, -(-ph.n_clusters // ((1 << c_log) // 8))
    assert s.data_clusters[0] == 0 and s.l2_tables[0] == 0
    assert np.all(np.diff(s.data_clusters) >= -1e-9) and np.all(np.diff(s.l2_tables) >= -1e-9)
    assert np.all(s.data_clusters <= n + 1e-6) and np.all(s.l2_tables <= tables + 1e-9)
    assert np.all(s.union_clusters >= base.total - 1e-9)
    assert np.all(s.union_clusters <= base.total + s.data_clusters + 1e-6)
    assert np.all(s.union_clusters <= n + 1e-6)


@pytest.mark.parametrize("shape", ["hot-cold", "large-bs"])
def test_the_exact_fleet_disk_applies_its_writes_as_the_per_write_engine_does(shape: str) -> None:
    """ExactDisk hands its writes to the batch engine: the overlay it builds, at every age, is
    the one Qcow2Image.write builds taking the same writes one by one."""
    from sim.fleet.fleet_exact import ExactDisk

    cls = WorkloadClass.model_validate(next(iter(SHAPES[shape].values())))
    size, c = 1 << 30, 256 << 10
    ph = Phases.of(cls, size, c)
    img = base_data(agreement_fleet(shape, "fluid").images[0])
    mask = np.zeros(ph.n_clusters, dtype=bool)
    disk = ExactDisk(ph, img, mask, np.random.default_rng(5), 4 * 86400.0)
    ref = Qcow2Image(size, c, backing=img)
    done = (0, 0)
    for age in (0.5 * 86400, 2 * 86400, 4 * 86400):
        n, g = (int(x[0]) for x in ph.counts(np.array([age])))
        for off in [*disk.random[done[0]:n].tolist(), *disk.growth[done[1]:g].tolist()]:
            ref.write(off, ph.bs)
        done = (n, g)
        assert disk.advance(age)[:2] == (ref.n_data, ref.n_l2)
        assert np.array_equal(disk.img.allocated, ref.allocated)
        assert np.array_equal(disk.img.data_host, ref.data_host)
