"""A VM that names no host is scheduled, as ``openstack server create`` without a host is: a VM of
``vms`` without ``host`` (booted at t=0, or by a ``boot`` event) goes where Nova's scheduler
puts it at its boot, against the claims standing then, exactly as an arrival would; only a VM
that names its host is pinned there (Nova's forced host). Before, every VM without a host was
on the first host: three hosts and thirty plain VMs put all thirty on ``host-001`` (and on
hosts of 20 GiB, 60 GiB claimed there, every VM past the tenth a validation error), where the
same VMs written as a fleet spread ten a host.

The same VMs written as a fleet and as plain ``vms`` booted (and deleted) at the fleet's
instants land on the same hosts, and the same ones are refused (NoValidHost); a refused plain
VM is counted, listed and said as a refused arrival is, and none of its operations happen."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.drift import vm_needs
from cowbench.lifecycle import boot_hosts, expand_timeline, refused_arrivals
from cowbench.nova.draws import streams
from cowbench.scenario import Scenario, parse_scenario
from sim.fleet.fleet_events import run_events

from .clirun import cowbench
from .test_cli import write
from .test_nova_same_decisions import COMMON, LIFETIME, MIXED, POOL, SEED, VMS, nova

HOSTS = ["host-001", "host-002", "host-003"]


def fleet_of(hosts: str) -> Scenario:
    """40 VMs expected over 2 days on three hosts (``POOL`` or ``MIXED``), never migrated."""
    return parse_scenario({
        **COMMON, "name": "as-fleet", "nova": nova("2h"),
        "hosts": {"POOL": POOL, "MIXED": MIXED}[hosts],
        "fleet": {"vms": VMS, "sample_interval_s": "1h", "lifetime": LIFETIME,
                  "flavor_mix": {"f": 1}, "image_mix": {"img": 1}, "classes": {"idle": {}}}})


def as_plain_vms(fleet: Scenario, hosts: str) -> tuple[Scenario, dict[str, str | None]]:
    """The fleet's VMs written as ``vms`` without a host, each booted at its arrival and
    deleted at the end of its life (within the run) by timeline events; and where the fleet
    put each (None: refused, NoValidHost)."""
    plan = run_events(fleet, streams(SEED))
    placed = {}
    for vm, host in zip(plan.seg_vm.tolist(), plan.seg_host.tolist(), strict=True):
        placed.setdefault(vm, plan.hosts[host])  # its first segment: where it booted
    arrive, life_end = plan.population.arrive.tolist(), plan.population.life_end.tolist()
    names = [f"vm-{i + 1}" for i in range(len(arrive))]
    events: list[dict[str, Any]] = []
    for name, t0, t1 in zip(names, arrive, life_end, strict=True):
        events.append({"t": t0, "op": "boot", "vm": name})
        if t1 < 2 * 86400:  # a refused VM's delete too: it does nothing
            events.append({"t": t1, "op": "delete", "vm": name})
    s = parse_scenario({
        **COMMON, "name": "as-vms", "nova": nova("2h"),
        "hosts": {"POOL": POOL, "MIXED": MIXED}[hosts],
        "vms": [{"name": n, "image": "img", "flavor": "f"} for n in names],
        "timeline": {"sample_interval_s": "1h", "end_s": "2d", "events": events}})
    return s, {n: placed.get(i) for i, n in enumerate(names)}


@pytest.mark.parametrize("hosts", ["POOL", "MIXED"])
def test_plain_vms_are_placed_where_the_same_vms_as_a_fleet_are(hosts: str) -> None:
    fleet = fleet_of(hosts)
    s, fleet_hosts = as_plain_vms(fleet, hosts)
    ops = expand_timeline(s)
    booted = {op.vm: op.to for op in ops if op.op == "boot"}
    refused = [vm for vm, _ in refused_arrivals(s)]
    assert booted == {vm: h for vm, h in fleet_hosts.items() if h is not None}
    assert refused == [vm for vm, h in fleet_hosts.items() if h is None]
    assert refused and len(set(booted.values())) == 3  # the hosts filled, and all took VMs
    # a refused VM's delete does not happen (its boot did not); the others' do
    deleted = {op.vm for op in ops if op.op == "delete"}
    assert deleted and not deleted & set(refused)
    assert boot_hosts(s) == booted


def three_hosts(capacity: str, count: int, **vm: Any) -> dict[str, Any]:
    """Three hosts of ``capacity`` and ``count`` VMs of a 2 GiB flavor naming no host."""
    return {
        "name": "three", "seed": 1,
        "hosts": [{"name": "host", "count": 3, "capacity_bytes": capacity}],
        "images": [{"name": "img", "virtual_size": "1GiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
        "flavors": [{"name": "small", "root": "2GiB"}],
        "vms": [{"name": "web", "count": count, "image": "img", "flavor": "small", **vm}],
        "timeline": {"sample_interval_s": "1h", "end_s": "1h"}}


def hosts_of(s: Scenario) -> dict[str, list[str]]:
    on: dict[str, list[str]] = defaultdict(list)
    for op in expand_timeline(s):
        if op.op == "boot":
            assert op.to is not None
            on[op.to].append(op.vm)
    return dict(on)


def test_thirty_plain_vms_spread_over_three_hosts_in_the_order_listed() -> None:
    """The issue's capacity planner: 30 VMs without a host on three hosts were all on
    host-001; now ten a host, placed one after the other in the order of ``vms`` (web-1,
    web-2, web-3, web-4 ... on host-001, -002, -003, -001 ...), though they boot at one
    instant. A VM that names its host stays there, the emptier hosts notwithstanding, and its
    claim counts when the others are placed."""
    s = parse_scenario(three_hosts("100GiB", 30))
    on = hosts_of(s)
    assert {h: len(v) for h, v in on.items()} == dict.fromkeys(HOSTS, 10)
    for k in range(1, 31):
        assert f"web-{k}" in on[HOSTS[(k - 1) % 3]]
    d = three_hosts("100GiB", 4)
    d["vms"].insert(0, {"name": "pinned", "image": "img", "flavor": "small",
                        "host": "host-003"})
    d["vms"].insert(1, {"name": "pinned-too", "image": "img", "flavor": "small",
                        "host": "host-003"})
    on = hosts_of(parse_scenario(d))
    assert on == {"host-003": ["pinned", "pinned-too"], "host-001": ["web-1", "web-3"],
                  "host-002": ["web-2", "web-4"]}


def test_plain_vms_without_a_timeline_are_scheduled_too() -> None:
    """A scenario without a timeline boots its VMs at t=0 through the same scheduler; the
    drift check's I/O needs count the VMs beside each one on its scheduled host."""
    d = three_hosts("100GiB", 6)
    del d["timeline"]
    d["workloads"] = {"w": {"rw": "randwrite", "bs": "64k", "io_size": "1MiB"}}
    d["vms"][0]["workload"] = "w"
    s = parse_scenario(d)
    assert boot_hosts(s) == {f"web-{k}": HOSTS[(k - 1) % 3] for k in range(1, 7)}
    assert {(n.vm, n.host, n.exports) for n in vm_needs(s)} == \
        {(f"web-{k}", HOSTS[(k - 1) % 3], 2) for k in range(1, 7)}


def test_a_plain_vm_no_host_has_room_for_is_refused_as_an_arrival_is(tmp_path: Path) -> None:
    """33 VMs of 2 GiB on three hosts of 20 GiB: the first 30 fill them, the last three are
    refused (NoValidHost), as arrivals would be: validate counts them, the run goes on,
    run.json lists them, run and show say so, the fleet figures count them, and none of
    their operations (their run, a snapshot, their delete) happen. Before, every VM was on
    host-001 and the scenario was refused at validation (exit 2), 23 'no room' problems."""
    d = three_hosts("20GiB", 33, workload="w")
    d["workloads"] = {"w": {"rw": "randwrite", "bs": "64k", "io_size": "1MiB"}}
    d["timeline"]["events"] = [{"t": 600, "op": "snapshot", "vm": "web-32"},
                               {"t": 1200, "op": "delete", "vm": "web-33"},
                               {"t": 1200, "op": "delete", "vm": "web-1"}]
    s = parse_scenario(d)
    assert refused_arrivals(s) == [("web-31", 0.0), ("web-32", 0.0), ("web-33", 0.0)]
    ops = expand_timeline(s)
    assert not [op for op in ops if op.vm in ("web-31", "web-32", "web-33")]
    assert [(op.op, op.vm) for op in ops if op.t > 0] == [("delete", "web-1")]
    path = write(tmp_path, d)
    shown = cowbench("validate", str(path))
    assert shown.code == 0, shown.stderr
    assert "timeline: 30 VM(s) boot by its end, 3 arrival(s) refused (NoValidHost" in \
        shown.stdout
    ran = cowbench("run", str(path), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["refused_arrivals"] == [{"vm": f"web-{k}", "t_s": 0.0} for k in (31, 32, 33)]
    line = ("arrivals refused (NoValidHost, no host had room): 3: web-31 at t=0 s, web-32 at "
            "t=0 s, web-33 at t=0 s; none of their operations happen")
    assert line in ran.stdout and line in cowbench("show", str(tmp_path / "run")).stdout
    rec = pd.read_parquet(tmp_path / "run" / "predicted.parquet")
    end = rec[(rec.entity == "fleet:all") & rec.t_s.isna()].set_index("metric").value
    assert (end["arrived_vms"], end["rejected_vms"]) == (33, 3)
    assert not rec.entity.isin([f"vm:web-{k}" for k in (31, 32, 33)]).any()
    claimed = rec[rec.entity.str.startswith("host:") & (rec.metric == "provisioned_bytes")]
    assert claimed.groupby("entity").value.max().tolist() == [20 * 2**30] * 3


def test_a_pinned_vm_is_still_refused_where_its_host_has_no_room() -> None:
    """Nova's forced host skips the scheduler's filters, not placement's claim: a VM that
    names a host without room for it is a problem at its key path, as before."""
    from cowbench.errors import ScenarioError

    with pytest.raises(ScenarioError) as err:
        parse_scenario(three_hosts("20GiB", 11, host="host-002"))
    assert [p for p, _ in err.value.problems] == ["vms[10]"]
    assert "no room on host 'host-002'" in err.value.problems[0][1]
