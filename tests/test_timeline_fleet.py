"""A timeline records what placement decided and when its hosts fill as a fleet does (the same
``fleet:all`` and ``host:`` figures, ``cowbench.timeline_fleet``), so the capacity report, a
sweep's summary.csv and ``cowbench show`` read a timeline's through the fleet's code.

Before, a timeline's refused arrivals (NoValidHost) were only in run.json: a user's sweep of 30
arrivals on 2 hosts refused 16, and the report said "VMs refused: -" beside "fullest host 7%,
never full"; summary.csv had no refusal and no time to full, show no "rejected", "fullest host"
or "first full" column, and summary.csv's fullest host share left the reserve in the disk
(7.102e9 / 20 GiB = 0.33 where the report said 37%)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cowbench.units import format_bytes, format_duration
from sim import simulate

from .clirun import cowbench, table_rows
from .test_nova_same_decisions import SEED, as_fleet, as_timeline

GIB = 1 << 30


def fleet_rows(rec: pd.DataFrame, metric: str) -> pd.DataFrame:
    return rec[(rec.entity == "fleet:all") & (rec.metric == metric)]


def refused_by(rec: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    """VMs refused up to each instant ``t`` (the per-interval figures summed)."""
    timed = fleet_rows(rec, "rejected_vms").dropna(subset=["t_s"])
    return np.array([timed[timed.t_s <= x].value.sum() for x in t])


def claims_at(rec: pd.DataFrame, t: np.ndarray) -> pd.DataFrame:
    """Each host's provisioned_bytes at the instants ``t`` (the last sample of an instant: a
    timeline samples after each step)."""
    p = rec[rec.entity.str.startswith("host:") & (rec.metric == "provisioned_bytes")]
    p = p.drop_duplicates(["t_s", "entity"], keep="last")
    return p.pivot(index="t_s", columns="entity", values="value").loc[t]


@pytest.mark.parametrize("hosts", ["POOL", "MIXED"])
@pytest.mark.slow
def test_the_same_vms_as_a_fleet_and_as_a_timeline_give_the_same_refusals(hosts: str) -> None:
    """The same arrivals on the same hosts, written as a fleet and as a timeline: the same
    VMs arrive and are refused, in the same intervals, and each host's claims are the same at
    every sample."""
    fleet = simulate(as_fleet("cold", hosts=hosts), SEED)
    timeline = simulate(as_timeline("cold", hosts=hosts), SEED)
    end = {name: rec[(rec.entity == "fleet:all") & rec.t_s.isna()].set_index("metric").value
           for name, rec in (("fleet", fleet), ("timeline", timeline))}
    for metric in ("arrived_vms", "rejected_vms"):
        assert end["timeline"][metric] == end["fleet"][metric], metric
    assert end["fleet"]["rejected_vms"] > 0  # the case: hosts full at some arrivals
    t = np.unique(fleet_rows(fleet, "rejected_vms").t_s.dropna().to_numpy())
    assert refused_by(timeline, t).tolist() == refused_by(fleet, t).tolist()
    sampled = t[t > 0]  # a timeline's first sample is at its first step
    assert claims_at(timeline, sampled).to_numpy().tolist() == \
        claims_at(fleet, sampled).to_numpy().tolist()
    assert claims_at(timeline, sampled).to_numpy().max() > 0


#: a timeline on two hosts of 1.5 GiB reserving 512 MiB (1 GiB each for instances), DISK_GB
#: overcommitted 3 times: 3 VMs of a 1 GiB root each, 6 of 8 arrivals placed, 2 refused; each
#: VM writes 400 MiB, so each host's disk fills
TIMELINE: dict[str, Any] = {
    "name": "tlfull", "seed": 3,
    "images": [{"name": "img", "virtual_size": "1GiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "hosts": [{"name": "h", "count": 2, "capacity_bytes": "1536MiB",
               "reserved_host_disk_bytes": "512MiB", "disk_allocation_ratio": 3}],
    "flavors": [{"name": "f1", "root": "1GiB"}],
    "workloads": {"w": {"rw": "write", "bs": "1M", "size": "400MiB"}},
    "vms": [],
    "timeline": {"sample_interval_s": "1h", "end_s": "1d", "arrivals": [
        {"prefix": "vm", "count": 8, "rate_per_s": 1 / 3600, "image": "img", "flavor": "f1",
         "workload": "w", "lifetime": {"distribution": "fixed", "mean_s": "2d"}}]}}
USABLE = GIB  # 1.5 GiB less the 512 MiB reserve


@pytest.fixture(scope="module")
def timeline_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tlsweep")
    (d / "tl.yaml").write_text(yaml.safe_dump(TIMELINE))
    (d / "sw.yaml").write_text(yaml.safe_dump({
        "scenario": "tl.yaml", "grid": {"hosts[0].disk_allocation_ratio": [3.0]},
        "seeds": [1]}))
    ran = cowbench("sweep", str(d / "sw.yaml"), "--out", str(d / "out"), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    return d / "out"


def host_peaks(point: Path) -> dict[str, float]:
    rec = pd.read_parquet(point / "predicted.parquet")
    h = rec[rec.entity.str.startswith("host:") & (rec.metric == "used_bytes")]
    return {str(e).removeprefix("host:"): float(g.value.max()) for e, g in h.groupby("entity")}


@pytest.mark.slow
def test_a_timeline_sweep_summary_counts_refusals_and_time_to_full(timeline_sweep: Path) -> None:
    point = timeline_sweep / "points" / "p0000"
    refused = json.loads((point / "run.json").read_text())["refused_arrivals"]
    assert len(refused) == 2
    s = pd.read_csv(timeline_sweep / "summary.csv").iloc[0]
    assert s.rejected_vms == len(refused)
    assert s.arrived_vms == 8
    assert s.time_to_full_s > 0 and s.hosts_full == 2
    rec = pd.read_parquet(point / "predicted.parquet")
    host_ttf = rec[rec.entity.str.startswith("host:") & (rec.metric == "time_to_full_s")]
    assert s.time_to_full_s == host_ttf.value.min()
    # the claims that refused them: each host's inventory, (1.5 - 0.5) x 3 GiB, taken
    prov = rec[rec.entity.str.startswith("host:") & (rec.metric == "provisioned_bytes")]
    assert prov.groupby("entity").value.max().tolist() == [3 * GIB, 3 * GIB]


def test_a_sweep_counts_the_reserve_in_the_fullest_hosts_share(timeline_sweep: Path) -> None:
    """summary.csv's host_peak_share_max is the peak against the disk for instances
    (capacity less reserve), as show and the reports say it; before, against the capacity."""
    peaks = host_peaks(timeline_sweep / "points" / "p0000")
    top = max(peaks, key=lambda h: peaks[h])
    s = pd.read_csv(timeline_sweep / "summary.csv").iloc[0]
    assert s.fullest_host == top
    assert s.host_peak_share_max == pytest.approx(peaks[top] / USABLE)
    point = cowbench("show", str(timeline_sweep / "points" / "p0000")).stdout
    assert f"({peaks[top] / USABLE:.1%})" in point


def test_a_timeline_sweep_shows_fullest_host_first_full_and_rejected(
        timeline_sweep: Path) -> None:
    shown = cowbench("show", str(timeline_sweep))
    assert shown.code == 0, shown.stderr
    s = pd.read_csv(timeline_sweep / "summary.csv").iloc[0]
    row = table_rows(shown.stdout)["p0000"]
    assert row[3:] == [f"{format_bytes(s.fullest_host_peak_bytes)} "
                       f"({s.host_peak_share_max:.1%})",
                       format_bytes(s.fleet_allocated_bytes_peak),
                       format_duration(s.time_to_full_s), "2"]


def test_show_of_a_timeline_with_capacities_names_its_fullest_host(timeline_sweep: Path) -> None:
    point = timeline_sweep / "points" / "p0000"
    peaks = host_peaks(point)
    top = max(peaks, key=lambda h: peaks[h])
    s = pd.read_csv(timeline_sweep / "summary.csv").iloc[0]
    shown = cowbench("show", str(point)).stdout
    assert f"fullest host: {top}, peak {format_bytes(peaks[top])} of 1.0 GiB" in shown
    assert f"after {format_duration(s.time_to_full_s)}; 2 of 2 host(s) full by the end" in shown


def test_refusals_of_every_seed_are_counted_on_one_grid() -> None:
    """Refusals per interval fall on the timeline's periodic samples, the same instants for
    every seed, as a fleet's: counted at each run's own operation instants, the report's band
    over replications took one replication's cumulative count at each instant, and its
    median line jumped between 16 and 11 refused."""
    from cowbench.scenario import parse_scenario

    grids = []
    for seed in (1, 2):
        rec = simulate(parse_scenario({**TIMELINE, "seed": seed}), seed)
        timed = fleet_rows(rec, "rejected_vms").dropna(subset=["t_s"])
        assert timed.value.sum() == fleet_rows(rec, "rejected_vms").value[
            fleet_rows(rec, "rejected_vms").t_s.isna()].sum() > 0
        grids.append(timed.t_s.tolist())
    assert grids[0] == grids[1] == [3600.0 * k for k in range(1, 25)]
