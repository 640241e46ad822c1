"""The fleet section (cowbench.fleet) and the fleet model's behaviour (sim.fleet)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cowbench.errors import ScenarioError
from cowbench.fleet import fleet_flavors
from cowbench.montecarlo import median_ci, time_to_full_summary
from cowbench.scenario import dump_scenario, load_scenario, parse_scenario
from cowbench.sweep import load_sweep
from sim import simulate

from .test_cli import cowbench

ROOT = Path(__file__).resolve().parents[1]


def small() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    return data


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return info.value.problems


def test_fleet_year_is_what_the_issue_asks() -> None:
    s = load_scenario(ROOT / "scenarios" / "fleet-year.yaml")
    f = s.fleet
    assert f is not None and f.model == "fluid"
    assert (f.vms, len(s.hosts), s.duration) == (100_000, 100, 365 * 86400)
    assert [h.name for h in s.hosts][::99] == ["host-001", "host-100"]
    assert (len(f.image_mix), len(f.flavor_mix), len(f.classes)) == (3, 4, 3)
    assert 0 < f.snapshots.share < 1 and f.snapshots.every_s == 86400
    assert 0 < f.migrations.share < 1 and f.migrations.every_s == 30 * 86400


def test_fleet_scenario_round_trips() -> None:
    s = load_scenario(ROOT / "scenarios" / "fleet-small.yaml")
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s


def old_spelling(d: dict[str, Any]) -> dict[str, Any]:
    """A fleet scenario as written before the fleet spoke the timeline's language."""
    old = copy.deepcopy(d)
    f = old["fleet"]
    pool = old.pop("hosts")[0]
    f["hosts"] = {"prefix": pool["name"], "count": pool["count"], "capacity": pool[
        "capacity_bytes"], "disk_allocation_ratio": pool["disk_allocation_ratio"]}
    f["flavors"] = [{**fl, "share": f["flavor_mix"][fl["name"]]} for fl in old.pop("flavors")]
    del f["flavor_mix"]
    f["lifetime"]["mean"] = f["lifetime"].pop("mean_s")
    f["image_cache"] = {"manager_interval": "1200s", "remove_unused_original_minimum_age": "2h"}
    f["sample_interval"] = f.pop("sample_interval_s")
    f["snapshots"]["interval"] = f["snapshots"].pop("every_s")
    f["migrations"]["interval"] = f["migrations"].pop("every_s")
    web = f["classes"]["web"]
    web["boot_read"], web["daily_write"] = web.pop("boot_read_bytes"), \
        web.pop("write_bytes_per_day")
    f["classes"]["db"]["growth_per_day"] = f["classes"]["db"].pop("growth_bytes_per_day")
    return old


OLD_KEYS = ["fleet.hosts.capacity is now spelt fleet.hosts.capacity_bytes",
            "fleet.hosts is now hosts (a list; {name: host, count: N, ...} describes N alike "
            "hosts host-001 ...)",
            "fleet.flavors is now flavors, their shares fleet.flavor_mix (name: share)",
            "fleet.lifetime.mean is now spelt fleet.lifetime.mean_s",
            "fleet.image_cache.manager_interval is now spelt "
            "fleet.image_cache.manager_interval_s",
            "fleet.image_cache.remove_unused_original_minimum_age is now spelt "
            "fleet.image_cache.remove_unused_original_minimum_age_s",
            "fleet.image_cache is now nova.image_cache",
            "fleet.sample_interval is now spelt fleet.sample_interval_s",
            "fleet.snapshots.interval is now spelt fleet.snapshots.every_s",
            "fleet.migrations.interval is now spelt fleet.migrations.every_s",
            "fleet.classes.web.boot_read is now spelt fleet.classes.web.boot_read_bytes",
            "fleet.classes.web.daily_write is now spelt fleet.classes.web.write_bytes_per_day",
            "fleet.classes.db.growth_per_day is now spelt "
            "fleet.classes.db.growth_bytes_per_day"]


def test_a_fleet_in_the_old_spelling_still_loads_with_a_warning_naming_each_key() -> None:
    d = small()
    with pytest.warns(FutureWarning) as seen:
        old = parse_scenario(old_spelling(d))
    assert sorted(str(w.message) for w in seen) == sorted(OLD_KEYS)
    d["nova"] = {"image_cache": {"manager_interval_s": "1200s",
                                 "remove_unused_original_minimum_age_s": "2h"}}
    assert old == parse_scenario(d)
    both = old_spelling(small())
    both["nova"] = {"image_cache": {}}
    with pytest.warns(FutureWarning):
        got = problems(both)
    assert got == [("fleet.image_cache", "fleet.image_cache and nova.image_cache are the same "
                    "settings (fleet.image_cache is their old place): give only "
                    "nova.image_cache")]


@pytest.mark.parametrize(("path", "old", "new"), [
    (("fleet", "lifetime"), "mean", "mean_s"),
    (("fleet",), "sample_interval", "sample_interval_s"),
    (("fleet", "migrations"), "interval", "every_s"),
    (("fleet", "classes", "db"), "daily_write", "write_bytes_per_day")])
def test_both_spellings_of_one_key_name_the_old_key_path(path: tuple[str, ...], old: str,
                                                         new: str) -> None:
    d = small()
    node = d
    for key in path:
        node = node[key]
    node[old] = node.get(new, "1d")
    node.setdefault(new, node[old])
    where = ".".join(path)
    assert problems(d) == [(f"{where}.{old}", f"{old} and {new} are the same setting ({old} is "
                            f"its old name): give only {new}")]


def test_validate_refuses_both_spellings_on_one_line_with_exit_2(tmp_path: Path) -> None:
    d = small()
    d["fleet"]["sample_interval"] = "1d"
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(d))
    ran = cowbench("validate", str(path))
    assert (ran.code, ran.stdout) == (2, "")
    assert ran.stderr == (f"error: {path}: fleet.sample_interval: sample_interval and "
                          "sample_interval_s are the same setting (sample_interval is its old "
                          "name): give only sample_interval_s\n")


def test_old_keys_in_hosts_and_arrivals_are_named_by_their_full_paths() -> None:
    data = {"name": "t", "images": [{"name": "i", "virtual_size": "1GiB",
                                     "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
            "hosts": [{"name": "a"}, {"name": "b", "capacity": "8GiB"}], "vms": [],
            "timeline": {"arrivals": [{"prefix": "vm", "count": 2, "rate_per_s": 1.0,
                                       "image": "i", "lifetime": {"mean": "1h"}}]}}
    with pytest.warns(FutureWarning) as seen:
        s = parse_scenario(data)
    assert sorted(str(w.message) for w in seen) == [
        "hosts[1].capacity is now spelt hosts[1].capacity_bytes",
        "timeline.arrivals[0].lifetime.mean is now spelt timeline.arrivals[0].lifetime.mean_s"]
    assert s.hosts[1].capacity_bytes == 8 << 30


def test_an_old_fleet_hosts_key_over_a_new_file_goes_to_hosts_0() -> None:
    """A sweep's old axis (fleet.hosts.count) over a scenario that describes its hosts once."""
    d = small()
    d["fleet"]["hosts"] = {"count": 2, "prefix": "cn"}
    del d["hosts"][0]["count"], d["hosts"][0]["name"]
    with pytest.warns(FutureWarning) as seen:
        s = parse_scenario(d)
    assert sorted(str(w.message) for w in seen) == ["fleet.hosts.count is now hosts[0].count",
                                                    "fleet.hosts.prefix is now hosts[0].name"]
    assert [h.name for h in s.hosts] == ["cn-001", "cn-002"]
    d = small()
    d["fleet"]["hosts"] = {"capacity_bytes": "1TiB"}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(d)
    assert info.value.problems == [("fleet.hosts.capacity_bytes", "fleet.hosts.capacity_bytes "
                                    "and hosts[0].capacity_bytes are the same setting "
                                    "(fleet.hosts is the old place of hosts): give only "
                                    "hosts[0].capacity_bytes")]


def test_a_problem_of_a_counted_host_names_the_entry_as_written_once() -> None:
    d = small()
    d["hosts"].append({"name": "big", "count": 2, "capacity_bytes": "64GiB",
                       "disk_allocation_ratio": 1.5, "storage_dir": "relative"})
    assert problems(d) == [("hosts[1].storage_dir", "must be an absolute path, got 'relative'")]
    d["hosts"][1].update(storage_dir="/srv/x", name="host")  # host-001, host-002 again
    assert problems(d) == [("hosts[1].name", "duplicate name 'host-001'"),
                           ("hosts[1].name", "duplicate name 'host-002'")]


def test_an_old_fleet_without_hosts_keeps_its_one_host_of_4_tib() -> None:
    d = old_spelling(small())
    del d["fleet"]["hosts"]
    with pytest.warns(FutureWarning) as seen:
        s = parse_scenario(d)
    assert "a fleet without hosts had one host of 4 TiB (host-001): now give it in hosts" in \
        [str(w.message) for w in seen]
    assert [(h.name, h.capacity_bytes) for h in s.hosts] == [("host-001", 4 << 40)]


def test_validate_names_each_old_key_on_one_warning_line(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old_spelling(small())))
    ran = cowbench("validate", str(path))
    assert ran.code == 0, ran.stderr
    lines = ran.stderr.splitlines()
    assert sorted(lines) == sorted(f"warning: {key}" for key in OLD_KEYS)
    assert "Traceback" not in ran.stderr


def test_every_scenario_and_sweep_in_the_repository_loads_without_a_warning() -> None:
    paths = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert {p.name for p in paths} >= {"quickstart.yaml", "fleet-small.yaml", "fleet-year.yaml"}
    sweeps = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert {p.name for p in sweeps} >= {"capacity.yaml", "fleet-small-cluster.yaml"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in paths:
            load_scenario(path)
        for path in sweeps:
            assert load_sweep(path).points


def test_fleet_problems_name_their_key_paths() -> None:
    d = small()
    d["fleet"]["image_mix"]["nope"] = 1
    d["images"][0]["virtual_size"] = "2GiB"  # bigger than flavor tiny (1 GiB)
    d["fleet"]["classes"]["web"]["bogus"] = 1
    assert ("fleet.classes.web.bogus", "unknown key") in problems(copy.deepcopy(d))
    del d["fleet"]["classes"]["web"]["bogus"]
    got = problems(d)
    assert ("fleet.image_mix.nope", "no image named 'nope'") in got
    assert any(p == "flavors[0].root" and "FlavorDiskSmallerThanImage" in r for p, r in got)


@pytest.mark.parametrize("edit,where", [
    (lambda d: d.update(vms=[{"name": "a", "image": "ubuntu"}]), "vms"),
    (lambda d: d.pop("duration"), "duration"),
    (lambda d: d["strategy"].update(kind="full_copy"), "strategy.kind"),
    (lambda d: d["flavors"][0].update(root="1.5GiB"), "flavors[0].root"),
    (lambda d: d["fleet"]["flavor_mix"].update(huge=1), "fleet.flavor_mix.huge"),
    (lambda d: d["hosts"][0].pop("capacity_bytes"), "hosts[0].capacity_bytes"),
    (lambda d: d["hosts"].append({"name": "big"}), "hosts[1].capacity_bytes"),
    (lambda d: d["hosts"][0].update(count=10_001), "hosts[0].count"),
    (lambda d: d["fleet"]["classes"]["web"].update(bs="3KiB"), "fleet.classes.web"),
    (lambda d: d["hosts"][0].update(capacity_bytes="512MiB"), "hosts[0].capacity_bytes"),
    (lambda d: d["hosts"][0].update(capacity_bytes="1GiB"), "flavors[1].root"),  # tiny fits
    (lambda d: d["fleet"].update(model="exact", vms=100000), "fleet.model"),
    # knobs the fleet model does not follow: refused, never the default's figures silently
    (lambda d: d["strategy"].update(extended_l2=True, cluster_size="64KiB"),
     "strategy.extended_l2"),
    (lambda d: d["strategy"].update(refcount_bits=64), "strategy.refcount_bits"),
    (lambda d: d["strategy"].update(preallocation="metadata", extended_l2=True),
     "strategy.preallocation"),
    (lambda d: d["strategy"].update(discard="unmap"), "strategy.discard"),
    (lambda d: d["strategy"].update(detect_zeroes="on"), "strategy.detect_zeroes"),
])
def test_bad_fleets_are_refused(edit: Any, where: str) -> None:
    d = small()
    edit(d)
    assert any(p.startswith(where) for p, _ in problems(d)), problems(d)


def test_a_reserve_beyond_the_disk_is_named_at_its_own_key_path() -> None:
    """A reserve of 20 GiB on a 16 GiB host: the reserve is wrong, not the disk (before, the
    problem was reported at hosts[0].capacity_bytes)."""
    d = small()
    d["hosts"][0].update(capacity_bytes="16GiB", reserved_host_disk_bytes="20GiB")
    [(path, reason)] = problems(d)
    assert path == "hosts[0].reserved_host_disk_bytes"
    assert reason == ("reserves 20.0 GiB of the host's 16.0 GiB disk (capacity_bytes): "
                      "nothing is left for instances")


def test_an_oversized_flavor_of_a_mix_is_named_at_its_key_path() -> None:
    """One flavor too large for every host in a mix: the problem names it (flavors[N].root,
    or flavors[N] when its disks together are too large), not hosts[0].capacity_bytes."""
    d = small()
    d["hosts"][0].update(capacity_bytes="16GiB", disk_allocation_ratio=1.0)
    d["flavors"].append({"name": "huge", "root": "20GiB"})
    d["flavors"].append({"name": "wide", "root": "12GiB", "ephemeral": "4GiB", "swap": "1MiB"})
    d["fleet"]["flavor_mix"].update(huge=1, wide=1)
    n = len(d["flavors"])
    got = dict(problems(d))
    assert set(got) == {f"flavors[{n - 2}].root", f"flavors[{n - 1}]"}, got
    assert got[f"flavors[{n - 2}].root"].startswith(
        "flavor 'huge' claims 20.0 GiB of DISK_GB (root 20.0 GiB) and fits on no host: the "
        "roomiest, hosts[0], offers (capacity_bytes 16.0 GiB - reserved_host_disk_bytes 0 B) x "
        "disk_allocation_ratio 1 = 16.0 GiB of DISK_GB")
    assert "claims 17.0 GiB of DISK_GB (root 12.0 GiB + ephemeral 4.0 GiB + swap 1.0 MiB" \
        in got[f"flavors[{n - 1}]"]


def test_cli_validate_summarises_a_fleet() -> None:
    proc = cowbench("validate", str(ROOT / "scenarios" / "fleet-year.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "100000 VM arrivals" in proc.stdout and "100 host(s)" in proc.stdout


def test_cli_runs_a_fleet_in_the_model_only(tmp_path: Path) -> None:
    d = small()
    d["fleet"]["vms"] = 8
    p = tmp_path / "f.yaml"
    p.write_text(yaml.safe_dump(d))
    proc = cowbench("run", str(p), "--backend", "both", "--out", str(tmp_path / "both"))
    assert proc.returncode == 2 and "--backend sim" in proc.stderr
    assert not (tmp_path / "both").exists()
    proc = cowbench("run", str(p), "--backend", "sim", "--out", str(tmp_path / "sim"))
    assert proc.returncode == 0, proc.stderr
    rec = pd.read_parquet(tmp_path / "sim" / "predicted.parquet")
    assert {"host:host-001", "cache:host-001", "fleet:all"} <= set(rec.entity)


def run(d: dict[str, Any], seed: int = 1) -> Any:
    return simulate(parse_scenario(d), seed)


def test_same_seed_same_records_other_seed_other_fleet() -> None:
    a, b, c = run(small(), 1), run(small(), 1), run(small(), 2)
    assert a.equals(b)
    assert not a.value.equals(c.value)


def host_series(rec: Any, metric: str) -> Any:
    r = rec[rec.entity.str.startswith("host:") & (rec.metric == metric)]
    return r.pivot(index="t_s", columns="entity", values="value")


def test_placement_respects_the_allocation_ratio_and_rejects_beyond() -> None:
    d = small()
    d["fleet"]["vms"] = 400
    d["hosts"][0].update(capacity_bytes="16GiB", disk_allocation_ratio=1.25)
    rec = run(d)
    prov = host_series(rec, "provisioned_bytes")
    assert prov.to_numpy().max() <= 16 * 1.25 * 2**30
    assert prov.to_numpy().max() > 16 * 2**30  # overcommitted beyond the disk
    fleet = rec[(rec.entity == "fleet:all") & rec.t_s.isna()].set_index("metric").value
    assert fleet["rejected_vms"] > 0


def test_demand_grows_with_writes_and_hosts_fill() -> None:
    d = small()
    d["hosts"][0]["capacity_bytes"] = "12GiB"
    d["fleet"]["lifetime"] = {"distribution": "fixed", "mean_s": "30d"}
    d["fleet"]["migrations"] = {"share": 0}  # a migration takes a VM's overlay off its host
    rec = run(d)
    demand = host_series(rec, "allocated_bytes")
    assert (demand.diff().iloc[1:] >= 0).all().all()  # nobody leaves, overlays only grow
    ttf = rec[rec.metric == "time_to_full_s"]
    assert len(ttf) >= 2
    first = ttf[ttf.entity == "fleet:all"].value.iloc[0]
    assert first == ttf[ttf.entity.str.startswith("host:")].value.min()
    host = ttf[ttf.entity.str.startswith("host:")].iloc[0]
    col = demand[host.entity]
    before = col[col.index < host.value]
    after = col[col.index >= host.value]
    assert before.iloc[-1] < 12 * 2**30 <= after.iloc[0]


def test_hosts_of_different_sizes_fill_each_against_its_own_disk() -> None:
    d = small()
    d["hosts"] = [{"name": "big", "capacity_bytes": "40GiB", "reserved_host_disk_bytes": "4GiB"},
                  {"name": "small", "count": 2, "capacity_bytes": "6GiB",
                   "disk_allocation_ratio": 2.5}]
    d["fleet"]["lifetime"] = {"distribution": "fixed", "mean_s": "30d"}
    d["fleet"]["migrations"] = {"share": 0}
    rec = run(d)
    demand = host_series(rec, "allocated_bytes")
    cap = {"host:big": 40 * 2**30, "host:small-001": 6 * 2**30, "host:small-002": 6 * 2**30}
    ttf = rec[(rec.metric == "time_to_full_s") & rec.entity.str.startswith("host:")]
    assert set(ttf.entity) == {"host:small-001", "host:small-002"}  # big has room to spare
    for host in ttf.itertuples():
        col = demand[host.entity]
        assert col[col.index < host.value].iloc[-1] < cap[host.entity] <= \
            col[col.index >= host.value].iloc[0]
    assert demand["host:big"].max() > 12 * 2**30  # twice a small host's disk, not full
    prov = host_series(rec, "provisioned_bytes").max()  # (capacity - reserved) x ratio
    assert prov.to_dict() == {"host:big": 36 * 2**30, "host:small-001": 15 * 2**30,
                              "host:small-002": 15 * 2**30}


def test_unused_bases_leave_the_cache_a_day_after_their_last_vm() -> None:
    d = small()
    d["fleet"].update(vms=6, sample_interval_s="1h", migrations={"share": 0})
    d["fleet"]["lifetime"] = {"distribution": "fixed", "mean_s": "1d"}
    d["duration"] = "12d"
    rec = run(d, seed=3)
    vms = host_series(rec, "vm_count")
    cache = rec[rec.entity.str.startswith("cache:")].assign(
        entity=lambda r: r.entity.str.replace("cache:", "host:"))
    cache = cache.pivot(index="t_s", columns="entity", values="value")
    delays = []
    for host in vms.columns:
        busy = vms[host].to_numpy() > 0
        t = vms.index.to_numpy()
        for i in np.flatnonzero(busy[:-1] & ~busy[1:]):  # the host's last VM left
            quiet = t[(t > t[i]) & busy] if busy[i + 1:].any() else np.array([np.inf])
            nxt = quiet.min() if quiet.size else np.inf
            empty = t[(t > t[i]) & (t < nxt) & (cache[host].to_numpy() == 0)]
            if nxt - t[i] > 2 * 86400:
                assert empty.size, f"{host}: cache never emptied after {t[i]}"
                delays.append(empty.min() - t[i])
            else:
                assert cache[host].to_numpy()[(t > t[i]) & (t < min(nxt, t[i] + 86400))].min() > 0
    assert delays, "no host stayed idle long enough to age its cache"
    # removed at the first 2400 s pass with now - last use >= 86400 s (FACTS.md 1.6); the
    # samples are hourly, so the last use lies up to an hour before the last busy sample
    assert all(86400 - 3600 <= x <= 86400 + 2400 + 3600 for x in delays), delays


def test_snapshots_and_migrations_move_bytes() -> None:
    rec = run(small())
    totals = rec[rec.entity == "fleet:all"].groupby("metric").value.sum()
    assert totals["snapshot_transfer_bytes"] > 0 and totals["migration_transfer_bytes"] > 0
    d = small()
    d["fleet"]["snapshots"]["share"] = 0
    d["fleet"]["migrations"]["share"] = 0
    totals = run(d)[lambda r: r.entity == "fleet:all"].groupby("metric").value.sum()
    assert totals["snapshot_transfer_bytes"] == 0 and totals["migration_transfer_bytes"] == 0


def test_median_interval_by_order_statistics() -> None:
    assert median_ci(np.arange(10.0)) == (1.0, 8.0)  # [X(2), X(9)] covers 97.9%
    lo, hi = median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.isnan(lo) and np.isnan(hi)  # five replications cannot give 95% (93.75%)
    assert median_ci(np.arange(6.0)) == (0.0, 5.0)  # six can: 1 - 2/64 = 96.9%
    few = time_to_full_summary([1.0, 2.0, 3.0], 10.0)
    assert few["seeds_needed"] == 6 and np.isnan(few["median_ci_low_s"])
    # every replication filled: the mean with Student's t interval (t(0.975, 3) = 3.182)
    full = time_to_full_summary([10.0, 12.0, 14.0, 16.0], 100.0)
    half = 3.1824463 * np.std([10.0, 12.0, 14.0, 16.0], ddof=1) / 2
    assert full["mean_ci_low_s"] == pytest.approx(13.0 - half)
    s = time_to_full_summary([100.0, 110.0, np.nan, 120.0, 105.0, 130.0, 90.0, 95.0], 200.0)
    assert s["filled"] == 7 and s["median_ci_high_s"] == np.inf  # censored upper bound
    assert np.isnan(s["mean_s"])


def test_boot_bursts_add_up_per_host_and_per_vm() -> None:
    d = small()
    d["fleet"]["records"] = "per_vm"
    rec = run(d)
    per_vm = rec[rec.entity.str.startswith("vm:") & (rec.metric == "host_read_bytes")].value
    per_host = rec[rec.entity.str.startswith("host:") & (rec.metric == "host_read_bytes")].value
    assert per_vm.sum() == pytest.approx(per_host.sum()) and per_vm.sum() > 0
    assert per_vm.max() <= 96 << 20  # the web class's burst, the largest


def cold_fleet(window: str) -> dict[str, Any]:
    d = small()
    d["fleet"].update(vms=12, sample_interval_s="6h", snapshots={"share": 0},
                      migrations={"share": 1.0, "every_s": "2d", "kind": "cold"})
    d["hosts"][0]["count"] = 2
    d["fleet"]["lifetime"] = {"distribution": "exponential", "mean_s": "8d"}
    d["nova"] = {"resize_confirm_window_s": window}
    return d


@pytest.mark.parametrize("window", ["1d", "0"])
def test_a_cold_migration_keeps_its_source_copy_until_confirmed(window: str) -> None:
    """The source's <uuid>_resize holds its claim in placement and its disk until confirmed
    (after the window; never with 0, until the VM goes), and the VM cannot migrate again
    before (VERIFY_RESIZE)."""
    from cowbench.nova.draws import streams

    from .fleet_reference import run_lifecycle

    s = parse_scenario(cold_fleet(window))
    plan = run_lifecycle(s, streams(1))
    life = plan.population.life_end[plan.mig_vm]
    wait = 86400.0 if window == "1d" else np.inf
    assert np.array_equal(plan.mig_confirm, np.minimum(plan.mig_t + wait, life))
    for vm in np.unique(plan.mig_vm).tolist():
        mine = plan.mig_vm == vm
        assert np.all(plan.mig_t[mine][1:] >= plan.mig_confirm[mine][:-1])
    assert (np.bincount(plan.mig_vm).max() > 1) == (window == "1d")
    # placement: each host's claims are its VMs' and the copies it still holds
    assert s.fleet is not None
    req = np.array([fl.disk_gb_bytes for fl in fleet_flavors(s)])[plan.population.flavor]
    t = plan.sample_t[:, None]
    on = (plan.seg_t0[None, :] <= t) & (t < plan.seg_t1[None, :])
    held = (plan.mig_t[None, :] <= t) & (t < plan.mig_confirm[None, :])
    copies = np.stack([(held & (plan.mig_src == h)).sum(axis=1) for h in (0, 1)], axis=1)
    for h in (0, 1):
        claims = (on & (plan.seg_host == h)) @ req[plan.seg_vm] + \
            (held & (plan.mig_src == h)) @ req[plan.mig_vm]
        assert np.array_equal(plan.provisioned[:, h], claims)
    assert copies.sum() > 0
    # demand: a host with no VM left holds more than its cache while it keeps a copy
    rec = simulate(s, 1)
    alone = (plan.vm_count == 0) & (copies > 0)
    extra = host_series(rec, "allocated_bytes").to_numpy() - plan.cache_bytes
    assert alone.any() and np.all(extra[alone] > 2**20)
    assert np.all(extra[(plan.vm_count == 0) & (copies == 0)] == 0)


def test_vms_are_recorded_as_quantiles_unless_per_vm_is_asked() -> None:
    """The default keeps no record per VM: each end-of-life figure is a grid of 101 quantiles
    equal to numpy's percentiles of the per-VM records; every other record is the same."""
    agg = run(small())
    d = small()
    d["fleet"]["records"] = "per_vm"
    per = run(d)
    assert not agg.entity.str.startswith("vm:").any()
    vm = per[per.entity.str.startswith("vm:")]
    assert vm.entity.nunique() > 40
    for metric in ("allocated_bytes", "data_clusters", "host_read_bytes"):
        grid = agg[agg.entity.str.startswith("vms:p") & (agg.metric == metric)]
        assert list(grid.entity) == [f"vms:p{q}" for q in range(101)] and grid.t_s.isna().all()
        want = np.percentile(vm[vm.metric == metric].value, np.arange(101))
        assert np.array_equal(grid.value.to_numpy(), want), metric
    rest = per[~per.entity.str.startswith("vm:")].reset_index(drop=True)
    assert rest.equals(agg)


@pytest.mark.parametrize("model,migrations", [
    ("fluid", "live"), pytest.param("exact", "live", marks=pytest.mark.slow),  # 1.2 s of CPU
    ("fluid", "cold")])
def test_evaluating_in_chunks_changes_no_record(model: str, migrations: str,
                                                monkeypatch: Any) -> None:
    """The disks are evaluated a chunk of VMs at a time: chunks of ~50 instants (a dozen
    chunks) give the records one chunk does (sums of expected, fractional clusters in another
    order: equal to the last bits)."""
    import sim.fleet.fleet as fleet_model

    d = small()
    d["fleet"].update(model=model, records="per_vm")
    d["fleet"]["migrations"].update(kind=migrations, share=0.5)
    d["nova"] = {"resize_confirm_window_s": "2d"}
    whole = run(d)
    monkeypatch.setattr(fleet_model, "CHUNK_QUERIES", 50)
    chunks = list(fleet_model._chunks(*_plan_and_snaps(d)))
    assert len(chunks) >= 10 and chunks[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    chunked = run(d)
    assert chunked.drop(columns="value").equals(whole.drop(columns="value"))
    assert np.allclose(chunked.value, whole.value, rtol=1e-12, atol=0)
    assert (chunked.value != whole.value).mean() < 0.05


def _plan_and_snaps(d: dict[str, Any]) -> tuple[Any, Any]:
    import sim.fleet.fleet as fleet_model

    s = parse_scenario(d)
    assert s.fleet is not None
    plan = fleet_model.run_events(s, fleet_model.streams(1))
    end = np.minimum(plan.population.life_end, plan.end)
    return plan, fleet_model._snapshot_counts(s.fleet, plan, end)


def test_records_grow_with_hosts_and_samples_not_with_vms() -> None:
    few, many = small(), small()
    many["fleet"]["vms"] = 600
    a, b = run(few), run(many)
    assert b[b.entity == "fleet:all"].query("metric == 'arrived_vms'").value.iloc[0] > 500
    hosts = few["hosts"][0]["count"]
    assert abs(len(a) - len(b)) <= hosts + 1  # only the hosts' time_to_full_s may differ


def test_the_fluid_table_answers_samples_within_1e4_of_the_closed_forms(monkeypatch: Any
                                                                        ) -> None:
    """A large fleet's samples read a table of each disk kind's allocation every 15 min of
    age (disks younger than a day directly): host demand within 1e-4 of the closed forms
    (hosts of a few small VMs; 5e-6 on fleet-year), far inside the 1% fluid-exact budget,
    everything else the same."""
    import sim.fleet.fleet as fleet_model

    d = small()
    d["fleet"]["records"] = "per_vm"
    direct = run(d)
    monkeypatch.setattr(fleet_model, "_sample_count", lambda plan: 1 << 40)
    tabled = run(d)
    demand = direct.entity.str.startswith(("host:", "fleet:")) & (
        direct.metric == "allocated_bytes")
    rel = (tabled.value - direct.value).abs() / direct.value
    assert 0 < rel[demand].max() < 1e-4, rel[demand].max()
    assert tabled[~demand].drop(columns="value").equals(direct[~demand].drop(columns="value"))
    ttf = direct.metric == "time_to_full_s"
    assert np.allclose(tabled.value[~demand & ~ttf], direct.value[~demand & ~ttf], rtol=0)
