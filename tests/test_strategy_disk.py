"""The strategies report's bytes per setting (cowbench.strategy_plots.host_disk): what the
hosts hold at the end, the bases apart from the instances' disks, RBD clones in Ceph, and a
setting's seeds as a median and a range."""

from __future__ import annotations

import math

import pandas as pd
import yaml

from cowbench.capacity import ceph_parent_bytes
from cowbench.results import load_results
from cowbench.strategy_plots import (
    SETTING,
    StrategyView,
    _disk_by_setting,
    host_disk,
    strategy_table,
    strategy_view,
)
from cowbench.units import format_bytes

from .reportkit import sim_run

GiB = float(1 << 30)


def rows(point: str, *entries: tuple[str, str, float, float | None]) -> list[dict[str, object]]:
    return [{"point": point, "backend": "sim", "entity": e, "metric": m, "value": v, "t_s": t}
            for e, m, v, t in entries]


def test_the_end_of_each_host_the_bases_apart_and_rbd_clones_in_ceph() -> None:
    nan = math.nan
    rec = pd.DataFrame(
        rows("p1", ("host:a", "allocated_bytes", 5 * GiB, nan), ("host:a", "used_bytes",
             3 * GiB, nan), ("host:b", "allocated_bytes", 9 * GiB, 10.0),
             ("host:b", "allocated_bytes", 2 * GiB, 20.0),  # a timed host: its last sample
             ("cache:a", "allocated_bytes", 1 * GiB, nan), ("vm:x", "allocated_bytes", GiB, nan))
        + rows("p2", ("host:a", "allocated_bytes", 0.0, nan), ("vm:r", "allocated_bytes",
               4 * GiB, nan), ("vm:r", "model_only", 1.0, nan), ("vm:s", "allocated_bytes",
               GiB, nan), ("vm:s", "model_only", 0.0, nan)))
    d = host_disk(rec).set_index("point")
    # physical bytes where known (reflink: shared extents once), else allocated; summed hosts
    assert d.loc["p1", "host_bytes"] == 5 * GiB and d.loc["p1", "base_bytes"] == GiB
    assert d.loc["p1", "instance_bytes"] == 4 * GiB and d.loc["p1", "ceph_bytes"] == 0
    assert d.loc["p2", "host_bytes"] == 0 and d.loc["p2", "ceph_bytes"] == 4 * GiB


def test_a_setting_of_several_seeds_gives_its_median_and_range() -> None:
    disk = pd.DataFrame({"point": ["p1", "p2", "p3"], "backend": "sim",
                         "host_bytes": [2 * GiB, 3 * GiB, 7 * GiB], "base_bytes": GiB,
                         "instance_bytes": [GiB, 2 * GiB, 6 * GiB], "ceph_bytes": 0.0,
                         SETTING: "qcow2_overlay"})
    amp = pd.DataFrame({SETTING: ["qcow2_overlay"], "entity": ["vm:x"], "point": ["p1"],
                        **{c: [1.0] for c in ("space_amplification", "write_amplification",
                                              "read_amplification", "iops", "lat_mean_s",
                                              "lat_p99_s")}})
    view = StrategyView(amp, ["qcow2_overlay"], disk)
    by = _disk_by_setting(view).loc["qcow2_overlay"]
    assert (by["host_bytes"], by["low"], by["high"], by["points"]) == (3 * GiB, 2 * GiB,
                                                                       7 * GiB, 3)
    cell = strategy_table(view)["host disk at the end"].iloc[0]
    assert cell == "3.0 GiB; 2.0 GiB to 7.0 GiB over 3 seeds"


def test_an_rbd_clones_io_is_not_drawn_as_rbds() -> None:
    """The model times an RBD clone's I/O as the local device's (Ceph is not modelled): its
    VMs are marked and carry no IOPS or latency in the strategies view."""
    from cowbench.strategy_plots import _io_columns, _no_io_in_ceph

    amp = pd.DataFrame({"entity": ["vm:a", "vm:b"], "point": ["p1", "p2"],
                        "model_only": [1.0, math.nan], "write_iops": [900.0, 800.0],
                        "write_ios": [10.0, 10.0], "write_lat_mean_s": [1e-3, 2e-3],
                        "write_lat_p99_s": [3e-3, 4e-3]})
    _io_columns(amp)
    _no_io_in_ceph(amp)
    assert list(amp["in_ceph"]) == [True, False]
    assert amp.loc[0, ["iops", "lat_mean_s", "lat_p99_s"]].isna().all()
    assert amp.loc[1, "iops"] == 800.0


def test_an_rbd_clones_parent_image_is_its_base_in_ceph(tmp_path) -> None:
    """F7 of the strategies user test: every other strategy's bar and row had its base (grey,
    ``_base``) but an RBD clone's had only the clones' objects ("0 B (+ 536.0 MiB in Ceph)"),
    so RBD looked cheaper than it is by its parent image. The parent is counted once per
    image, by its data, as the base of the bar, and named in the table."""
    root = tmp_path / "kinds"
    root.mkdir()
    sim_run(root / "c", {"strategy.kind": "full_copy"})
    run = sim_run(root / "d", {"strategy.kind": "rbd_clone"})
    res = load_results(root)
    scenario = next(r for r in res.points.to_dict("records") if r["point"] == "d")
    parent = scenario["ceph_parent_bytes"]
    data = yaml.safe_load((run / "scenario.yaml").read_text())
    assert parent == ceph_parent_bytes(data) > 0
    view = strategy_view(res)
    disk = _disk_by_setting(view)
    assert disk.loc["rbd_clone", "ceph_base_bytes"] == parent
    assert disk.loc["full_copy", "ceph_base_bytes"] == 0
    clones = disk.loc["rbd_clone", "ceph_bytes"]
    assert disk.loc["rbd_clone", "total"] == parent + clones
    row = strategy_table(view).set_index("strategy and knobs")
    assert row.loc["rbd_clone", "host disk at the end"] == (
        f"0 B (+ {format_bytes(parent + clones)} in Ceph: {format_bytes(parent)} parent image, "
        f"{format_bytes(clones)} clones' objects)")
