"""Every scenario is a timeline, and every strategy works in one: plain VMs are boot + run at
t=0 of a timeline (the same end-of-run figures as ``timeline: {}``), each strategy takes the
operations ``cowbench.lifecycle.STRATEGY_OPS`` allows in both backends, and the others are
refused at validation with the key path and the reason."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.errors import ScenarioError
from cowbench.lifecycle import STRATEGY_OPS
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from sim import simulate

from .conftest import needs_tools
from .test_lifecycle import assert_durations

KINDS = sorted(STRATEGY_OPS)
IO = {"host_read_bytes", "host_write_bytes", "read_ios", "write_ios", "read_iops", "write_iops",
      "read_bw_bytes_per_s", "write_bw_bytes_per_s", "read_lat_mean_s", "write_lat_mean_s",
      "read_lat_p99_s", "write_lat_p99_s"}
CAN_LOOP = os.geteuid() == 0 and Path("/dev/loop-control").exists()

BASE: dict[str, Any] = {
    "name": "kinds",
    "seed": 11,
    "hosts": [{"name": "h1"}, {"name": "h2"}],
    "images": [{"name": "img", "virtual_size": "64MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "16MiB"},
                                       {"offset": "40MiB", "length": "4MiB"}]}}],
    "workloads": {"w": {"rw": "write", "bs": "16k", "iodepth": 2, "offset": "8MiB",
                        "io_size": "6MiB"},
                  "r": {"rw": "randread", "bs": "4k", "iodepth": 2, "io_size": "1MiB"}},
    "vms": [{"name": "a", "image": "img", "root_size": "96MiB", "workload": "w"},
            {"name": "b", "image": "img", "root_size": "64MiB", "workload": "r", "host": "h2"},
            {"name": "c", "image": "img", "root_size": "80MiB"}],
}


def scenario(kind: str, **update: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d["strategy"] = {"kind": kind, "cluster_size": "64KiB",
                     **({"chain_depth": 3} if kind == "snapshot_chain" else {})}
    d.update(update)
    return d


def _end_figures(records: pd.DataFrame) -> pd.DataFrame:
    """End-of-run figures: space at the end, and the I/O of each VM's one run (a timeline
    stamps it with the run's start, t=0), as (entity, metric, value)."""
    r = records[~records.entity.str.startswith("op:")]
    end = r[r.t_s.isna() & ~r.metric.isin(IO)]
    runs = r[r.metric.isin(IO) & (r.t_s.isna() | (r.t_s == 0))]
    out = pd.concat([end, runs])[["entity", "metric", "value"]]
    return out.sort_values(["entity", "metric"]).reset_index(drop=True)


@pytest.mark.parametrize("kind", KINDS)
def test_plain_vms_are_a_timeline_at_t0(kind: str) -> None:
    """A scenario without a timeline gives what ``timeline: {}`` gives at its end, bit for bit,
    and nothing else: no operation entities, no samples at t=0."""
    plain = simulate(parse_scenario(scenario(kind)))
    timed = simulate(parse_scenario(scenario(kind, timeline={})))
    assert plain.t_s.isna().all()
    assert not plain.entity.str.startswith("op:").any()
    pd.testing.assert_frame_equal(_end_figures(plain), _end_figures(timed))
    assert {"vm:a", "vm:b", "vm:c"} <= set(plain.entity)


def _allowed_events(kind: str) -> list[dict[str, Any]]:
    """Boot, run, then every operation the strategy allows, on VM ``a``."""
    ops = STRATEGY_OPS[kind]
    ev: list[dict[str, Any]] = [{"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "run", "vm": "a"}]
    t, host = 10, "h1"
    if ("migrate", "live") in ops:  # first: after an external snapshot Nova's would lose it
        host = "h2"
        ev += [{"t": t, "op": "migrate", "vm": "a", "to": host, "kind": "live"},
               {"t": t + 5, "op": "run", "vm": "a", "workload": "r"}]
        t += 10
    for snap in ("live", "external", "internal"):
        if ("snapshot", snap) in ops:
            ev.append({"t": t, "op": "snapshot", "vm": "a", "kind": snap, "name": f"{snap}-a"})
            t += 10
    if ("resize", None) in ops:
        ev.append({"t": t, "op": "resize", "vm": "a", "root_size": "112MiB"})
        t += 10
    for mig in ("cold", "flatten"):
        if ("migrate", mig) in ops:
            host = "h2" if host == "h1" else "h1"
            ev += [{"t": t, "op": "migrate", "vm": "a", "to": host, "kind": mig},
                   {"t": t + 5, "op": "run", "vm": "a", "workload": "r"},
                   # Nova migrates it no more until confirmed (VERIFY_RESIZE)
                   {"t": t + 7, "op": "confirm", "vm": "a"}]
            t += 10
    # no confirm here: each migration's came after it, and one with nothing to confirm is
    # refused (tests/test_lifecycle.py)
    ev += [{"t": t + 10, "op": "delete", "vm": "b"}]
    return ev


@pytest.mark.parametrize("kind", KINDS)
def test_every_strategy_takes_what_it_allows_in_the_model(kind: str) -> None:
    s = parse_scenario(scenario(kind, timeline={"events": _allowed_events(kind)}))
    rec = simulate(s)
    assert_durations(s, rec)
    end = rec[rec.t_s.isna()].set_index(["entity", "metric"]).value
    assert end["vm:a", "allocated_bytes"] > 0 and ("vm:b", "allocated_bytes") not in end
    if kind == "rbd_clone":  # in Ceph: no base in _base, nothing on the hosts
        assert end["vm:a", "model_only"] == 1.0 and end["cache:h1", "allocated_bytes"] == 0
    if kind == "resized_base":  # the base and one copy per root size, on h1
        assert end["cache:h1", "file_bytes"] > 64 << 20


@pytest.mark.parametrize("knob,reason", [({"extended_l2": True}, "without extended_l2"),
                                         ({"refcount_bits": 1}, "refcount_bits 1 cannot")])
def test_an_internal_snapshot_is_refused_where_the_model_cannot_follow_it(
        knob: dict[str, Any], reason: str) -> None:
    """As the internal_snapshot strategy refuses these knobs, so does a timeline's snapshot."""
    d = scenario("qcow2_overlay", timeline={"events": [
        {"t": 0, "op": "boot", "vm": "a"},
        {"t": 5, "op": "snapshot", "vm": "a", "kind": "internal"}]})
    d["strategy"] = {**d.get("strategy", {}), "kind": "qcow2_overlay",
                     "cluster_size": "128KiB", **knob}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    [(where, why)] = err.value.problems
    assert where == "timeline.events[1]" and reason in why


def test_a_live_migration_after_an_external_snapshot_is_refused_until_flattened() -> None:
    """libvirt's block migration mirrors the top layer onto a disk over the destination's
    base: the layer an external snapshot left below it would not reach the destination. A
    cold migration copies every layer; a flatten ships one file, after which a live one is
    whole again."""
    def events(*middle: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "run", "vm": "a"},
                {"t": 5, "op": "snapshot", "vm": "a", "kind": "external"}, *middle]

    live = {"t": 30, "op": "migrate", "vm": "a", "to": "h2", "kind": "live"}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario("qcow2_overlay", timeline={"events": events(live)}))
    [(where, why)] = err.value.problems
    assert where == "timeline.events[3]"
    assert "copies only the disk's top layer" in why and "1 layer below it" in why
    cold = [{"t": 10, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"},
            {"t": 20, "op": "confirm", "vm": "a"}, {**live, "to": "h1"}]
    with pytest.raises(ScenarioError, match="copies only the disk's top layer"):
        parse_scenario(scenario("qcow2_overlay", timeline={"events": events(*cold)}))
    flat = [{"t": 10, "op": "migrate", "vm": "a", "to": "h2", "kind": "flatten"},
            {"t": 20, "op": "confirm", "vm": "a"}, {**live, "to": "h1"}]
    parse_scenario(scenario("qcow2_overlay", timeline={"events": events(*flat)}))


@pytest.mark.parametrize("kind,event,reason", [
    ("full_copy", {"op": "snapshot", "kind": "external"}, "needs a qcow2 disk, not full_copy"),
    ("internal_snapshot", {"op": "migrate", "kind": "live", "to": "h2"},
     "needs an overlay over the base, not internal_snapshot"),
    ("reflink_copy", {"op": "migrate", "kind": "cold", "to": "h2"},
     "reflink_copy disk cannot migrate"),
    ("rbd_clone", {"op": "resize", "root_size": "128MiB"}, "lives in Ceph"),
    ("rbd_clone", {"op": "snapshot"}, "a live snapshot needs a qcow2 disk, not rbd_clone"),
])
def test_what_a_strategy_cannot_do_is_refused(kind: str, event: dict[str, Any],
                                              reason: str) -> None:
    events = [{"t": 0, "op": "boot", "vm": "a"}, {"t": 5, "vm": "a", **event}]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(kind, timeline={"events": events}))
    where, why = err.value.problems[0]
    assert where == "timeline.events[1]" and reason in why, err.value.problems


@pytest.mark.parametrize("kind", ["full_copy", "resized_base", "internal_snapshot",
                                  "reflink_copy"])
def test_a_qcow2_base_is_refused_under_disks_that_are_not_overlays(kind: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(kind, nova={"force_raw_images": False}))
    assert err.value.problems[0][0] == "nova.force_raw_images"
    assert kind in err.value.problems[0][1]


def test_a_qcow2_base_is_honoured_without_a_timeline() -> None:
    """``force_raw_images: false`` keeps the qcow2 image in ``_base`` (it used to be silently
    ignored by scenarios without a timeline)."""
    raw = simulate(parse_scenario(scenario("qcow2_overlay")))
    kept = simulate(parse_scenario(scenario("qcow2_overlay", nova={"force_raw_images": False})))
    raw_end, kept_end = (r.set_index(["entity", "metric"]).value for r in (raw, kept))
    assert raw_end["cache:h1", "file_bytes"] == 64 << 20
    assert kept_end["cache:h1", "file_bytes"] == kept_end["image:img", "file_bytes"] < 64 << 20


# -- both backends --------------------------------------------------------------------------

def _real_kinds() -> list[Any]:
    out: list[Any] = []
    for kind in KINDS:
        if kind == "rbd_clone":
            continue
        marks = [pytest.mark.skipif(not CAN_LOOP, reason="needs root and loop devices")] \
            if kind == "reflink_copy" else []
        out.append(pytest.param(kind, marks=marks))
    return out


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("kind", _real_kinds())
def test_every_strategy_takes_what_it_allows_in_both_backends(tmp_path: Path, kind: str,
                                                              no_leaks: None) -> None:
    """Every operation carried out for real too, and every size the model predicts for it
    within issue 4's 2% of what the real backend measures."""
    s = parse_scenario(scenario(kind, timeline={"events": _allowed_events(kind)}))
    out = tmp_path / "run"
    run_scenario(s, out, "both")
    comp = pd.read_csv(out / "comparison.csv")
    assert_durations(s, pd.read_csv(out / "predicted.csv"), pd.read_csv(out / "measured.csv"),
                     comp)
    sizes = comp[comp.metric.isin(["allocated_bytes", "file_bytes", "transfer_bytes"])]
    assert len(sizes) > 20
    bad = sizes[sizes.rel_error.abs() > 0.02]
    assert bad.empty, bad
