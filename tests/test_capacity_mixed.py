"""The capacity report on a fleet whose hosts differ in size: each host fills against its own
disk, the fleet against the sum. Two hosts, worked out by hand: ``h0`` (12 GiB) grows 1 GiB a
day from 10 GiB, ``h1`` (40 GiB) 1.2 GiB a day from 10 GiB, sampled daily for 4 days.

- h0 reaches its 12 GiB at day 2.0; h1 never reaches 40 GiB (14.8 GiB at day 4): censored.
  Against the smallest host's 12 GiB (the report before), h1 "filled" first, at day 1.67.
- The fullest host is the highest share of its own disk: h0, 14 GiB of 12 (117%), not h1's
  larger 14.8 GiB (37% of 40).
- All hosts: 20 + 2.2 GiB a day, 28.8 GiB at day 4, of 12 + 40 = 52 GiB (55%).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cowbench import capacity_plots
from cowbench.capacity_view import capacity_view, headline_table, host_table
from cowbench.records import records_frame
from cowbench.results import load_results

from .reportkit import synthetic_run

GiB = 2**30
DAY = 86400.0
SCENARIO = (f"name: mixed\nduration: {4 * DAY}\n"
            f"hosts: [{{name: h0, capacity_bytes: {12 * GiB}}},"
            f" {{name: h1, capacity_bytes: {40 * GiB}}}]\n")


def mixed_run(out: Path) -> Path:
    rows = [("sim", day * DAY, f"host:{h}", "allocated_bytes", (10 + rate * day) * GiB, "B", 1, 0)
            for h, rate in (("h0", 1.0), ("h1", 1.2)) for day in range(5)]
    return synthetic_run(out, records_frame(rows), scenario=SCENARIO)


@pytest.mark.slow  # the capacity figures drawn: 1.2 s of CPU, 2.0-2.3 s wall
def test_each_host_fills_against_its_own_disk_and_the_fleet_against_the_sum(
        tmp_path: Path) -> None:
    view = capacity_view(load_results(mixed_run(tmp_path / "run")))
    ttf = view.ttf.set_index("entity")
    assert ttf.loc["host:h0", "capacity_bytes"] == 12 * GiB
    assert ttf.loc["host:h1", "capacity_bytes"] == 40 * GiB
    assert ttf.loc["host:h0", "t_full_s"] == pytest.approx(2.0 * DAY)
    assert math.isnan(ttf.loc["host:h1", "t_full_s"]) and ttf.loc["host:h1", "how"] == "not full"
    [first] = view.first.to_dict("records")
    assert first["t_first_full_s"] == pytest.approx(2.0 * DAY)
    assert (first["peak_bytes"], first["capacity_bytes"]) == (14 * GiB, 12 * GiB)
    assert first["fleet_peak_bytes"] == pytest.approx(28.8 * GiB)
    assert first["fleet_capacity_bytes"] == 52 * GiB
    assert sorted(view.capacity.tolist()) == [12 * GiB, 40 * GiB]
    [row] = headline_table(view).to_dict("records")
    assert row["capacity"] == "12 GiB to 40 GiB"
    assert row["first host full, median"] == "2.00 d"
    assert row["fullest host's peak (median)"] == "14 GiB (117% of capacity)"
    assert row["all hosts' peak (median)"] == "28.8 GiB of 52 GiB (55%)"
    # one run: per host, no "point" column of dots
    assert list(host_table(view).columns) == ["group", "host", "final", "peak", "time to full"]
    # host demand over time: a capacity line per host size (GiB), one legend entry for them
    ax = capacity_plots.disk_use_facets(view.disk_band, view.capacity, "group",
                                        view.order).axes[0]
    assert [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"] == \
        [12.0, 40.0]
    assert ax.get_legend_handles_labels()[1].count("its hosts' capacities") == 1


def test_a_capacity_given_replaces_every_hosts_own(tmp_path: Path) -> None:
    """``--capacity 13GiB``: h1 (1.2 GiB a day from 10) reaches it at day 2.5, h0 at 3.0."""
    view = capacity_view(load_results(mixed_run(tmp_path / "run")), 13 * GiB)
    ttf = view.ttf.set_index("entity")["t_full_s"] / DAY
    assert ttf.to_dict() == pytest.approx({"host:h0": 3.0, "host:h1": 2.5})
    [row] = headline_table(view).to_dict("records")
    assert row["capacity"] == "13 GiB"
    assert row["all hosts' peak (median)"] == "28.8 GiB of 26 GiB (111%)"


def test_a_host_is_full_at_its_capacity_less_its_reserve() -> None:
    """``reserved_host_disk_bytes`` is the host's own (Nova's ``reserved_host_disk_mb``): no
    instance may have it, so a host is full for instances at capacity - reserved. A user's
    host of 10 GiB reserving 2 GiB whose demand grows past 8 GiB: before, its time to full was
    where demand reached 10 GiB (5 days 7 h) and its peak was a share of 10 GiB; now the
    model's ``time_to_full_s``, ``show``'s capacities and the report's all take 8 GiB."""
    import yaml

    from cowbench.capacity import host_capacities
    from cowbench.scenario import parse_scenario
    from sim import simulate

    raw = yaml.safe_load("""
name: fcr
seed: 5
duration: 10d
images:
  - {name: ubu, virtual_size: 1GiB, format: qcow2,
     synthetic: {data: [{offset: 0, length: 256MiB}]}}
hosts:
  - {name: h, capacity_bytes: 10GiB, disk_allocation_ratio: 3.75,
     reserved_host_disk_bytes: 2GiB}
flavors: [{name: m8, root: 8GiB}]
strategy: {kind: qcow2_overlay, cluster_size: 64KiB}
fleet:
  vms: 12
  sample_interval_s: 1h
  lifetime: {distribution: fixed, mean_s: 100d}
  flavor_mix: {m8: 1}
  image_mix: {ubu: 1}
  classes: {grow: {share: 1, growth_bytes_per_day: 1GiB, growth_start: 0.5}}
""")
    rec = simulate(parse_scenario(raw), 5)
    demand = rec[(rec.entity == "host:h") & (rec.metric == "allocated_bytes")]
    ttf = float(rec[(rec.entity == "host:h") & (rec.metric == "time_to_full_s")].value.iloc[0])
    before, after = demand[demand.t_s < ttf].value, demand[demand.t_s >= ttf].value
    assert before.max() < 8 * GiB <= after.iloc[0] < 10 * GiB  # crossed 8 GiB, not 10
    hosts = [{"name": "h", "capacity_bytes": 10 * GiB, "reserved_host_disk_bytes": 2 * GiB},
             {"name": "k", "capacity_bytes": 4 * GiB}]
    assert host_capacities({"hosts": hosts}) == {"h": 8 * GiB, "k": 4 * GiB, "*": 4 * GiB}
