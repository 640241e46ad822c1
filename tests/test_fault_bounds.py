"""Bounded by construction (issue 20): every count, grid, seed list, sample and event stream is
sized on the file's own numbers before it is expanded, and refused (exit 2, the key path, the
figure it would reach) when over its cap. Each case below validated before (and then used
gigabytes or never ended); now it is refused in well under a second of work."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.bounds import MAX_SWEEP_POINTS, MAX_VMS, estimate
from cowbench.errors import ScenarioError
from cowbench.scenario import parse_scenario

from .clikit import assert_one_line, cli
from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]


def _refused(data: dict[str, Any], *needles: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "s.yaml")
    text = str(info.value)
    for n in needles:
        assert n in text, (n, text)


def test_a_count_over_the_cap_is_refused_before_expansion() -> None:
    d = small_dict(vms=[{"name": "v", "image": "img", "count": 10**12}])
    _refused(d, "vms[0].count", str(MAX_VMS))  # expanded, 10^12 VMs would never end


def test_counts_are_capped_together() -> None:
    d = small_dict(vms=[{"name": f"v{i}", "image": "img", "count": 60_000} for i in range(2)])
    _refused(d, "ask for 120000 VMs", "fleet")


def test_arrivals_count_is_refused_before_expansion() -> None:
    d = small_dict(vms=[], timeline={"arrivals": [
        {"prefix": "a", "count": 10**8, "rate_per_s": 1, "image": "img"}]})
    _refused(d, "timeline.arrivals[0].count", "10000")
    d["timeline"]["arrivals"] = [{"prefix": f"a{i}", "count": 10_000, "rate_per_s": 1,
                                  "image": "img"} for i in range(11)]
    _refused(d, "ask for 110000 VMs")


def _arrivals(**extra: Any) -> dict[str, Any]:
    return {"prefix": "a", "count": 1, "rate_per_s": 1, "image": "img", **extra}


def test_periodic_snapshots_without_an_end_are_refused_not_a_hang(tmp_path: Path) -> None:
    d = small_dict(vms=[], timeline={"arrivals": [_arrivals(snapshot_every_s=1)]})
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(d))
    assert_one_line(cli("validate", str(s)), 2, "need a lifetime or timeline.end_s")


@pytest.mark.parametrize("timeline", [
    {"end_s": "30d", "arrivals": [_arrivals(count=10, snapshot_every_s="1us",
                                            lifetime={"mean_s": "1d"})]},
    {"arrivals": [_arrivals(count=10, migrate_every_s="1ms",
                            lifetime={"distribution": "exponential", "mean_s": "1d"})]},
])
def test_timeline_operations_are_counted_before_they_are_made(timeline: dict[str, Any]) -> None:
    _refused(small_dict(vms=[], hosts=[{"name": "h1"}, {"name": "h2"}], timeline=timeline),
             "operations", "at most 1000000")


def test_a_runaway_expansion_stops_at_the_hard_cap() -> None:
    from cowbench.lifecycle import TimelineTooLarge, _room

    with pytest.raises(TimelineTooLarge, match="more than 1000000 operations"):
        _room(float("inf"), "timeline.arrivals[0]")


@pytest.mark.parametrize("timeline, key", [
    ({"sample_interval_s": "1us", "end_s": "1d"}, "timeline.sample_interval_s"),
    ({"sample_interval_s": "1s", "end_s": "100000d"}, "timeline.sample_interval_s"),
])
def test_timeline_samples_are_counted_first(timeline: dict[str, Any], key: str) -> None:
    _refused(small_dict(timeline=timeline), key, "samples")


def test_cache_passes_are_counted_first() -> None:
    d = small_dict(timeline={"end_s": "1d"},
                   nova={"image_cache": {"manager_interval_s": "1us"}})
    _refused(d, "nova.image_cache.manager_interval_s", "cache manager passes")


def _fleet() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    return data


@pytest.mark.parametrize("change, key", [
    ({"sample_interval_s": "1ms"}, "fleet.sample_interval_s"),
    # the old place and spelling of the cache settings: moved to nova.image_cache, named there
    ({"image_cache": {"manager_interval": "1us"}}, "nova.image_cache.manager_interval_s"),
    ({"snapshots": {"share": 1.0, "every_s": "1us"}}, "fleet: the fleet model would need"),
    ({"migrations": {"share": 1.0, "every_s": "1ms"}}, "fleet: the fleet model would need"),
])
def test_fleet_streams_are_sized_first(change: dict[str, Any], key: str) -> None:
    d = _fleet()
    d["duration"] = "100000d" if "sample_interval_s" in change else d["duration"]
    d["fleet"].update(change)
    with pytest.warns(FutureWarning) if "image_cache" in change else contextlib.nullcontext():
        _refused(d, key)


def test_a_2_pib_disk_is_refused_naming_fleet_mode() -> None:
    d = small_dict(images=[{"name": "img", "virtual_size": "2PiB",
                            "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
                   vms=[{"name": "a", "image": "img"}], workloads={})
    _refused(d, "vms: the exact model would need about", "TiB", "fleet")


@pytest.mark.slow
def test_1e5_vms_of_2_gib_in_exact_mode_are_refused_naming_fleet_mode() -> None:
    d = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    d["vms"] = [{"name": "v", "image": "ubuntu", "count": MAX_VMS}]
    _refused(d, "exact model would need about", "fleet")


@pytest.mark.slow
def test_a_large_scenario_that_fits_shows_its_memory_and_time(tmp_path: Path) -> None:
    d = small_dict(vms=[{"name": "v", "image": "img", "count": MAX_VMS}], workloads={})
    assert "expected: about" in str(estimate(parse_scenario(copy.deepcopy(d))))
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(d))
    r = cli("validate", str(s))
    assert r.code == 0 and "expected: about" in r.out and "of memory and" in r.out, r


def test_bs_larger_than_the_disk_is_refused() -> None:
    d = small_dict()
    d["workloads"]["w"]["bs"] = "1GiB"
    _refused(d, "vms[0].workload", "larger than the")


# -- sweeps ---------------------------------------------------------------------------------

def _sweep(tmp_path: Path, **spec: Any) -> Path:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({"scenario": "s.yaml", **spec}))
    return p


def test_seeds_1e10_are_refused_before_a_list_is_made(tmp_path: Path) -> None:
    r = cli("sweep", str(_sweep(tmp_path, seeds=10**10)), "--out", str(tmp_path / "o"))
    assert_one_line(r, 2, "seeds", f"at most {MAX_SWEEP_POINTS} points")
    assert not (tmp_path / "o").exists()


def test_a_1e9_point_grid_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    grid = {f"vms[0].name_{i}": list(range(10)) for i in range(9)}
    r = cli("sweep", str(_sweep(tmp_path, grid=grid)), "--out", str(tmp_path / "o"))
    assert_one_line(r, 2, "grid: 1000000000 cells x 1 seeds")


def test_a_sweep_over_a_large_scenario_is_bounded_by_the_vms_it_validates(
        tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict(
        vms=[{"name": "v", "image": "img", "count": MAX_VMS}], workloads={})))
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({"scenario": "s.yaml",
                                 "grid": {"strategy.cluster_size": [4096 * 2**i
                                                                     for i in range(30)]}}))
    r = cli("sweep", str(p), "--out", str(tmp_path / "o"))
    assert_one_line(r, 2, "VMs to validate up front")


def _region(vms: int, hosts: int) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "fleet-region.yaml").read_text())
    d["fleet"]["vms"] = vms
    d["hosts"][0]["count"] = hosts
    return d


def test_a_worker_with_more_memory_raises_the_model_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """10^7 VMs plan about 9.3 GiB: refused under the 8 GiB default, naming the variable that
    gives a bigger worker more, and admitted when it does."""
    monkeypatch.delenv("COWBENCH_MODEL_MEMORY", raising=False)
    _refused(_region(10**7, 10_000), "fleet: the fleet model would need about",
             "COWBENCH_MODEL_MEMORY")
    monkeypatch.setenv("COWBENCH_MODEL_MEMORY", "12GiB")
    parse_scenario(_region(10**7, 10_000), "s.yaml")


@pytest.mark.parametrize("value,reason", [("lots", "as a size"), ("0", "between"),
                                          ("4096TiB", "this machine's memory")])
def test_a_bad_model_budget_is_refused_in_one_line(tmp_path: Path, value: str, reason: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    monkeypatch.setenv("COWBENCH_MODEL_MEMORY", value)
    assert_one_line(cli("validate", str(scenario)), 2, "COWBENCH_MODEL_MEMORY", reason)
