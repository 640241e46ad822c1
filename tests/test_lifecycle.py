"""Nova's lifecycle over time: the timeline's schema, its expansion, and both backends on it."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench.errors import ScenarioError
from cowbench.lifecycle import expand_timeline, schedule
from cowbench.runner import run_scenario
from cowbench.scenario import Scenario, load_scenario, parse_scenario
from sim import simulate

from .clirun import cowbench
from .conftest import needs_tools
from .test_cli import assert_clean_error, write
from .test_hostbytes_cow import assert_within

ROOT = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "name": "life",
    "seed": 5,
    "hosts": [{"name": "h1"}, {"name": "h2"}],
    "images": [{"name": "img", "virtual_size": "64MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
    "flavors": [{"name": "tiny", "root": "96MiB"}],
    "workloads": {"w": {"rw": "write", "bs": "4k", "iodepth": 4, "offset": "12MiB",
                        "io_size": "6MiB"},
                  "seq": {"rw": "write", "bs": "64k", "iodepth": 2, "offset": "70MiB",
                          "io_size": "4MiB"}},
    "nova": {"image_cache": {"manager_interval_s": 60,
                             "remove_unused_original_minimum_age_s": 300}},
    "vms": [{"name": "a", "image": "img", "flavor": "tiny", "host": "h1", "workload": "w"}],
    "timeline": {"end_s": 600, "events": [
        {"t": 0, "op": "boot", "vm": "a"},
        {"t": 0, "op": "run", "vm": "a"},
        {"t": 10, "op": "snapshot", "vm": "a", "kind": "live", "name": "s1"},
        {"t": 15, "op": "snapshot", "vm": "a", "kind": "internal", "name": "i1"},
        {"t": 16, "op": "run", "vm": "a"},
        {"t": 20, "op": "snapshot", "vm": "a", "kind": "external", "name": "e1"},
        {"t": 30, "op": "run", "vm": "a", "workload": "seq"},
        {"t": 40, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"},
        {"t": 50, "op": "confirm", "vm": "a"},
        {"t": 70, "op": "delete", "vm": "a"},
    ]},
}


def life(**update: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d.update(update)
    return d


def events(*evs: dict[str, Any]) -> dict[str, Any]:
    d = life()
    d["timeline"]["events"] = list(evs)
    return d


def problems(d: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(d)
    return info.value.problems


# -- bad input at validate time ---------------------------------------------------------------

def test_event_after_delete_is_refused():
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 5, "op": "delete", "vm": "a"},
               {"t": 9, "op": "snapshot", "vm": "a", "kind": "live"})
    [(path, reason)] = problems(d)
    assert path == "timeline.events[2]" and "already deleted" in reason


def test_event_for_missing_vm_host_and_workload():
    d = events({"t": 0, "op": "boot", "vm": "ghost"})
    assert "no such VM" in problems(d)[0][1]
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 1, "op": "migrate", "vm": "a",
                                                   "to": "nowhere"})
    assert "no host named 'nowhere'" in problems(d)[0][1]
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 1, "op": "run", "vm": "a",
                                                   "workload": "zz"})
    assert "no workload named 'zz'" in problems(d)[0][1]


def test_run_before_boot_and_migrate_to_same_host():
    d = events({"t": 0, "op": "run", "vm": "a"}, {"t": 1, "op": "boot", "vm": "a"})
    assert "not booted" in problems(d)[0][1]
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 1, "op": "migrate", "vm": "a",
                                                   "to": "h1"})
    assert "already on that host" in problems(d)[0][1]


def test_two_runs_of_a_vm_at_one_instant_are_refused(tmp_path: Path) -> None:
    """A VM without a boot event runs its workload at t=0; a run event then too made two
    workloads on one disk at once: the model ran both, the real backend's second qemu-nbd
    found the image locked (exit 1) mid-run."""
    d = events({"t": 0, "op": "run", "vm": "a"})
    [(path, reason)] = problems(d)
    assert path == "timeline.events[0]"
    assert reason.startswith("vm 'a' already runs a workload at t=0 s (vms[0]: ")
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 3, "op": "run", "vm": "a"},
               {"t": 3, "op": "run", "vm": "a", "workload": "seq"})
    [(path, reason)] = problems(d)
    assert path == "timeline.events[2]"
    assert "already runs a workload at t=3 s (timeline.events[1]; " in reason
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 3, "op": "run", "vm": "a"},
               {"t": 4, "op": "run", "vm": "a", "workload": "seq"})
    parse_scenario(d)  # one after the other: allowed
    dup = str(write(tmp_path, events({"t": 0, "op": "run", "vm": "a"})))
    needle = "timeline.events[0]: vm 'a' already runs a workload at t=0 s"
    assert_clean_error(cowbench("validate", dup), needle)
    for backend in ("sim", "both"):
        out = str(tmp_path / "out")
        assert_clean_error(cowbench("run", dup, "--backend", backend, "--out", out), needle)
    assert not (tmp_path / "out").exists()


def test_missing_flavor():
    d = life()
    d["vms"][0]["flavor"] = "huge"
    assert ("vms[0].flavor", "no flavor named 'huge'") in problems(d)


def test_migration_to_a_host_without_room():
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "boot", "vm": "b"},
               {"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"})
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": "h2"})
    d["hosts"][1]["capacity_bytes"] = "128MiB"
    [(path, reason)] = problems(d)
    assert path == "timeline.events[2]" and "no room on host 'h2'" in reason


def test_reserved_disk_is_taken_off_a_hosts_inventory_before_the_ratio():
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "boot", "vm": "b"})
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": "h1"})
    d["hosts"][0].update(capacity_bytes="160MiB", reserved_host_disk_bytes="64MiB",
                         disk_allocation_ratio=2)  # (160 - 64) x 2 = 192 MiB: two 96 MiB roots
    parse_scenario(d)
    d["hosts"][0]["reserved_host_disk_bytes"] = "65MiB"
    [(path, reason)] = problems(d)
    assert path == "timeline.events[1]" and "no room on host 'h1'" in reason
    assert "of 190.0 MiB (capacity 160.0 MiB - reserved 65.0 MiB x allocation ratio 2)" in reason


@pytest.mark.parametrize("kind, confirm, full", [("cold", None, True), ("cold", 6.5, False),
                                                  ("live", None, False)])
def test_a_cold_migration_holds_its_source_claim_until_confirmed(kind: str, confirm: Any,
                                                                 full: bool) -> None:
    evs = [{"t": 0, "op": "boot", "vm": "a"},
           {"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": kind},
           {"t": 6, "op": "boot", "vm": "b"}]
    if confirm is not None:
        evs.append({"t": confirm, "op": "confirm", "vm": "a"})
    evs.append({"t": 7, "op": "boot", "vm": "c"})
    d = events(*evs)
    d["vms"] += [{"name": n, "image": "img", "flavor": "tiny", "host": "h1"} for n in "bc"]
    d["hosts"][0]["capacity_bytes"] = "192MiB"  # two 96 MiB roots
    if not full:
        parse_scenario(d)
        return
    [(path, reason)] = problems(d)
    assert path == f"timeline.events[{len(evs) - 1}]" and "no room on host 'h1'" in reason


def _again(second: dict[str, Any], window: float = 0, *extra: dict[str, Any]) -> dict[str, Any]:
    """``a`` cold-migrated to h2 at 5 s, then ``second`` (events[2]) at 20 s."""
    d = events({"t": 0, "op": "boot", "vm": "a"},
               {"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"},
               {"t": 20, "vm": "a", **second}, *extra)
    d["nova"]["resize_confirm_window_s"] = window
    return d


@pytest.mark.parametrize("second", [{"op": "migrate", "to": "h1", "kind": "cold"},
                                    {"op": "migrate", "to": "h1", "kind": "live"},
                                    {"op": "resize", "root_size": "128MiB"},
                                    {"op": "snapshot", "kind": "live"}])
def test_nova_refuses_to_move_a_vm_whose_cold_migration_awaits_its_confirm(
        second: dict[str, Any], tmp_path: Path) -> None:
    """VERIFY_RESIZE: after a cold migration Nova accepts only a confirm, a revert or a delete
    (a fleet's VMs migrate and are snapshotted no more until then,
    tests/test_nova_same_decisions.py)."""
    [(path, reason)] = problems(_again(second))
    assert path == "timeline.events[2]"
    assert reason.startswith(f"{second['op']} of 'a' at t=20 s: Nova refuses it: the cold "
                             "migration at t=5 s awaits its confirm (VERIFY_RESIZE")
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_again(second)))
    ran = cowbench("validate", str(f))
    assert ran.code == 2 and "Traceback" not in ran.stderr + ran.stdout
    assert ran.stderr.strip().splitlines() == [f"error: {f}: {path}: {reason}"]
    # confirmed before it, by an event or by Nova itself (the window ends at 15 s): accepted
    parse_scenario(_again(second, 0, {"t": 12, "op": "confirm", "vm": "a"}))
    parse_scenario(_again(second, 10))
    assert problems(_again(second, 20))[0][0] == "timeline.events[2]"  # ends at 25 s: too late


NOTHING = "Nova refuses it: the VM has no resize or cold migration to confirm"


@pytest.mark.parametrize("evs", [
    [],  # booted, never moved
    [{"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "live"}],  # needs no confirm
    [{"t": 5, "op": "migrate", "vm": "a", "to": "h2"}, {"t": 8, "op": "confirm", "vm": "a"}],
    [{"t": 5, "op": "resize", "vm": "a", "root_size": "128MiB"},
     {"t": 8, "op": "confirm", "vm": "a"}],
    [{"t": 20, "op": "migrate", "vm": "a", "to": "h2"}],  # the confirm of 20 s comes first
], ids=["never-moved", "live", "confirmed-already", "resize-confirmed", "same-instant"])
def test_a_confirm_with_nothing_to_confirm_is_refused(evs: list[dict[str, Any]],
                                                      tmp_path: Path) -> None:
    """Nova answers confirm_resize with 409 unless the instance awaits one (VERIFY_RESIZE);
    such a confirm was accepted and did nothing (a confirm written at the instant of its
    migration left the _resize copy in place)."""
    d = events({"t": 0, "op": "boot", "vm": "a"}, *evs, {"t": 20, "op": "confirm", "vm": "a"})
    at = len(evs) + 1
    # the migration at the confirm's instant comes after it: its VM's later operation
    later = " (the later operations of 'a' were not checked)" if evs and evs[-1]["t"] == 20 \
        else ""
    assert problems(d) == [(f"timeline.events[{at}]", f"confirm of 'a' at t=20 s: {NOTHING} "
                            "(a live migration needs none; an earlier confirm, its delete or "
                            "Nova's own after nova.resize_confirm_window_s confirmed the last "
                            "one; a confirm at the instant of a migration comes before it)"
                            + later)]
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(d))
    ran = cowbench("validate", str(f))
    assert_clean_error(ran, f"{f}: timeline.events[{at}]: confirm of 'a' at t=20 s: {NOTHING}")
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr


def test_a_confirm_after_nova_confirmed_by_itself_is_refused() -> None:
    """The window (10 s) ends at 15 s: Nova confirmed the migration then, so a confirm at 30 s
    confirms nothing; at 12 s it is the migration's."""
    [(path, reason)] = problems(_again({"op": "run"}, 10, {"t": 30, "op": "confirm", "vm": "a"}))
    assert path == "timeline.events[3]" and NOTHING in reason
    parse_scenario(_again({"op": "run"}, 10, {"t": 12, "op": "confirm", "vm": "a"}))


def test_a_confirm_follows_a_cold_or_flatten_migration_or_a_resize() -> None:
    """What Nova leaves awaiting its confirm: accepted, each once."""
    for move in ({"op": "migrate", "to": "h2", "kind": "cold"},
                 {"op": "migrate", "to": "h2", "kind": "flatten"},
                 {"op": "resize", "root_size": "128MiB"}):
        parse_scenario(events({"t": 0, "op": "boot", "vm": "a"}, {"t": 5, "vm": "a", **move},
                              {"t": 8, "op": "confirm", "vm": "a"}))
    # a resize, then a cold migration, before one confirm: VERIFY_RESIZE once
    parse_scenario(events({"t": 0, "op": "boot", "vm": "a"},
                          {"t": 5, "op": "resize", "vm": "a", "root_size": "128MiB"},
                          {"t": 6, "op": "migrate", "vm": "a", "to": "h2"},
                          {"t": 8, "op": "confirm", "vm": "a"}))


def test_a_confirm_at_the_instant_of_the_next_migration_comes_first() -> None:
    """As in a fleet, where the confirm was booked first: Nova's own confirm at 20 s, then the
    migration of the same instant."""
    ops = expand_timeline(parse_scenario(_again({"op": "migrate", "to": "h1"}, 15)))
    assert [(o.t, o.op, o.to) for o in ops if o.op != "run"] == [
        (0, "boot", "h1"), (5, "migrate", "h2"), (20, "confirm", None), (20, "migrate", "h1"),
        (35, "confirm", None)]


def test_a_confirm_at_the_instant_of_a_snapshot_comes_first() -> None:
    """Nova's own confirm at 20 s, then the snapshot of the same instant: taken (a fleet's
    too, tests/test_nova_same_decisions.py)."""
    s = parse_scenario(_again({"op": "snapshot", "kind": "live"}, 15))
    assert [(o.t, o.op) for o in expand_timeline(s) if o.op != "run"] == [
        (0, "boot"), (5, "migrate"), (20, "confirm"), (20, "snapshot")]


def test_an_explicit_confirm_after_the_window_does_not_stop_nova_confirming_first() -> None:
    """Nova confirms by itself at 15 s; a later confirm event (at 30 s) confirms nothing."""
    ops = expand_timeline(parse_scenario(_again(
        {"op": "migrate", "to": "h1"}, 10, {"t": 30, "op": "confirm", "vm": "a"})))
    assert [(o.t, o.op) for o in ops if o.op != "run"] == [
        (0, "boot"), (5, "migrate"), (15, "confirm"), (20, "migrate"), (30, "confirm")]


def test_arrivals_are_placed_by_the_scheduler_and_refused_when_nothing_fits():
    d = life()
    d["vms"] = []
    d["hosts"] = [{"name": "h1", "capacity_bytes": "192MiB"},
                  {"name": "h2", "capacity_bytes": "288MiB"}]
    d["timeline"] = {"end_s": 36000, "arrivals": [{
        "prefix": "web", "count": 8, "rate_per_s": 0.01, "image": "img", "flavor": "tiny"}]}
    boots = [(o.vm, o.to) for o in expand_timeline(parse_scenario(d)) if o.op == "boot"]
    # most free first (h2: 288 MiB), then the tie at 192 MiB goes to the less used h1, ...
    assert [to for _, to in boots] == ["h2", "h1", "h2", "h1", "h2"]
    assert [vm for vm, _ in boots] == [f"web-{i}" for i in range(1, 6)]  # 6-8: NoValidHost


def test_bad_kind_and_missing_keys():
    d = events({"t": 0, "op": "snapshot", "vm": "a", "kind": "sideways"})
    assert "no kind 'sideways'" in problems(d)[0][1]
    d = events({"t": 0, "op": "migrate", "vm": "a"})
    assert "needs 'to'" in problems(d)[0][1]


def test_keys_an_op_does_not_read_are_refused_never_ignored():
    """A ``migrate`` carrying ``root_size`` reads as a resize, a snapshot carrying ``to`` as a
    move: each is refused with the keys the op does read."""
    d = events({"t": 0, "op": "boot", "vm": "a"},
               {"t": 5, "op": "snapshot", "vm": "a", "to": "h2", "workload": "w"},
               {"t": 9, "op": "migrate", "vm": "a", "to": "h2", "root_size": "1GiB"},
               {"t": 12, "op": "confirm", "vm": "a", "name": "c"})
    assert problems(d) == [
        ("timeline.events[1]", "op 'snapshot' takes no 'workload' or 'to' (it reads kind and "
                               "name, besides t, op and vm)"),
        ("timeline.events[2]", "op 'migrate' takes no 'root_size' (it reads to and kind, "
                               "besides t, op and vm)"),
        ("timeline.events[3]", "op 'confirm' takes no 'name' (it reads only t, op and vm)")]


def test_a_later_runs_workload_must_fit_the_disk_it_has_then():
    """As a VM's own workload is checked against its disk, so is a later ``run``'s, against
    the disk at that time (a resize grows it): refused before anything runs, not failed in
    the middle of a run with its directory half-written."""
    d = life()
    d["workloads"]["far"] = {"rw": "write", "bs": "1MiB", "offset": "100MiB", "size": "8MiB"}
    d["workloads"]["big"] = {"rw": "write", "bs": "128MiB", "io_size": "128MiB"}
    d["timeline"]["events"] = [
        {"t": 0, "op": "boot", "vm": "a"},
        {"t": 5, "op": "run", "vm": "a", "workload": "far"},
        {"t": 6, "op": "run", "vm": "a", "workload": "big"},
        {"t": 10, "op": "resize", "vm": "a", "root_size": "112MiB"},
        {"t": 20, "op": "run", "vm": "a", "workload": "far"}]
    disk = 96 << 20  # the flavor's root
    assert problems(d) == [
        ("timeline.events[1]", f"run of 'a' at t=5 s: workload 'far' spans [{100 << 20}, "
                               f"{108 << 20}) but the disk is {disk} bytes"),
        ("timeline.events[2]", f"run of 'a' at t=6 s: workload 'big' has bs {128 << 20}, "
                               f"larger than the {disk}-byte disk")]


def test_an_arrivals_entry_is_blamed_once_for_what_all_its_vms_share():
    """Its VMs are not in the file: a bad reference is the entry's, said once, not once per
    VM at a ``vms[N]`` the file does not have; a refusal every VM meets is shown three times,
    then counted."""
    d = life()
    d["timeline"] = {"end_s": 600, "arrivals": [{
        "prefix": "x", "count": 500, "rate_per_s": 1, "image": "ghost", "flavor": "nof",
        "workload": "none"}]}
    assert problems(d) == [("timeline.arrivals[0].image", "no image named 'ghost'"),
                           ("timeline.arrivals[0].workload", "no workload named 'none'"),
                           ("timeline.arrivals[0].flavor", "no flavor named 'nof'")]
    d["timeline"]["arrivals"][0].update(image="img", flavor="tiny", workload="w",
                                        migrate_every_s=30, migrate_kind="cold",
                                        count=40, rate_per_s=0.5)
    d["strategy"] = {"kind": "reflink_copy"}  # whose disks cannot migrate
    found = problems(d)
    assert len(found) == 4 and {p for p, _ in found} == {"timeline.arrivals[0]"}
    assert all("cannot migrate" in r for _, r in found[:3]), found
    assert re.fullmatch(r"and \d+ more problem\(s\) like these", found[3][1]), found


# -- expansion ------------------------------------------------------------------------------

def test_arrivals_expand_deterministically_with_lifetimes():
    d = life()
    d["timeline"] = {"end_s": 3600, "arrivals": [{
        "prefix": "web", "count": 6, "rate_per_s": 0.01, "image": "img", "flavor": "tiny",
        "workload": "w", "lifetime": {"distribution": "exponential", "mean_s": 900},
        "snapshot_every_s": 400, "migrate_every_s": 1000}]}
    s = parse_scenario(d)
    assert [v.name for v in s.vms][-6:] == [f"web-{i}" for i in range(1, 7)]
    ops = expand_timeline(s)
    assert ops == expand_timeline(parse_scenario(d))
    assert [o.t for o in ops] == sorted(o.t for o in ops)
    boots = [o for o in ops if o.op == "boot" and o.vm.startswith("web")]
    assert len(boots) == 6
    for o in ops:
        if o.vm.startswith("web-") and o.op != "boot":
            boot = next(b for b in boots if b.vm == o.vm)
            assert o.t >= boot.t
    other = expand_timeline(parse_scenario(life(seed=6) | {"timeline": d["timeline"]}))
    assert [o.t for o in other] != [o.t for o in ops]


def test_implicit_boot_and_auto_confirm():
    d = events({"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"})
    d["nova"]["resize_confirm_window_s"] = 30
    ops = expand_timeline(parse_scenario(d))
    assert [(o.t, o.op) for o in ops] == [(0, "boot"), (0, "run"), (5, "migrate"),
                                          (35, "confirm")]


def test_schedule_orders_passes_samples_and_ops():
    s = parse_scenario(life())
    steps = schedule(s)
    assert [t for t, _, _ in steps] == sorted(t for t, _, _ in steps)
    assert sum(1 for _, k, _ in steps if k == "pass") == 10  # every 60 s up to 600 s


# -- the model ------------------------------------------------------------------------------

def series(df: pd.DataFrame, entity: str, metric: str = "allocated_bytes") -> pd.Series:
    x = df[(df.entity == entity) & (df.metric == metric) & df.t_s.notna()]
    return x.groupby("t_s").value.last()


def test_cache_manager_removes_an_unused_base_after_its_minimum_age():
    """FACTS.md 1.6: a pass sets the mtime of every base in use; an unused base goes at the
    first pass at least 300 s (here) after its mtime. h1's base was last touched by the boot
    at 0 s (the VM left at 40 s, its _resize copy at 50 s): removed at 300 s. h2's was fetched
    at 40 s and seen in use by the pass at 60 s (the VM was deleted at 70 s): removed at 360 s.
    """
    df = simulate(parse_scenario(life()))
    h1 = series(df, "cache:h1")
    assert h1[240.0] > 0 and h1[300.0] == 0
    h2 = series(df, "cache:h2")
    assert h2[300.0] > 0 and h2[360.0] == 0


def assert_durations(s: Scenario, predicted: pd.DataFrame,
                     measured: pd.DataFrame | None = None,
                     comparison: pd.DataFrame | None = None) -> None:
    """Every operation has a predicted ``duration_s`` above 0 but those that move no bytes: a
    delete, a confirm, a boot that fetches nothing onto a disk that copies nothing, which have
    none (their time is the tools' start-up, not modelled; a 0 made rel_error -100%). The real
    backend times every one, and the comparison holds every one the model predicts."""
    def of(df: pd.DataFrame, metric: str) -> pd.Series:
        return df[df.metric == metric].set_index("entity").value

    pred, fetched = of(predicted, "duration_s"), of(predicted, "transfer_bytes")
    vms = {vm.name: vm for vm in s.vms}
    ops = expand_timeline(s)
    for o in ops:
        if o.op in ("delete", "confirm"):
            assert o.entity not in pred.index, o
        elif o.op == "boot" and o.entity not in pred.index:
            assert fetched[o.entity] == 0, o
            assert s.strategy_of(vms[o.vm]).kind not in ("full_copy", "internal_snapshot"), o
        else:
            assert pred[o.entity] > 0, o
    if measured is not None:
        assert {o.entity for o in ops} <= set(of(measured, "duration_s").index)
    if comparison is not None:
        assert set(of(comparison.rename(columns={"predicted": "value"}), "duration_s").index) \
            == set(pred.index) & {o.entity for o in ops}


def test_every_operation_is_an_entity():
    df = simulate(parse_scenario(life()))
    ops = [o.entity for o in expand_timeline(parse_scenario(life()))]
    assert_durations(parse_scenario(life()), df)
    transfer = df[df.metric == "transfer_bytes"].set_index("entity").value
    assert transfer[ops[0]] > 0  # the boot fetched the image
    assert transfer[ops[2]] > 0  # the live snapshot uploaded a flattened image


def test_internal_snapshot_then_rewrites_copy_inside_the_file():
    """After ``qemu-img snapshot -c`` every cluster is shared: rewriting the same 6 MiB makes
    the file grow by about 6 MiB again (new copies), while data_clusters stays the same."""
    df = simulate(parse_scenario(life()))
    vm = series(df, "vm:a")
    assert vm[16.0] - vm[15.0] > 6 * 2**20 * 0.99
    assert vm[15.0] - vm[10.0] < 256 * 1024  # the snapshot itself: L1 copy and table only


def test_internal_snapshot_needs_a_qcow2_disk():
    d = life(strategy={"kind": "full_copy"})
    d["timeline"]["events"] = [{"t": 0, "op": "boot", "vm": "a"},
                               {"t": 1, "op": "snapshot", "vm": "a", "kind": "internal"}]
    assert "needs a qcow2 disk" in problems(d)[0][1]


# -- both backends --------------------------------------------------------------------------

def _compare(tmp_path: Path, d: dict[str, Any]) -> pd.DataFrame:
    out = tmp_path / "run"
    run_scenario(parse_scenario(d), out, "both")
    return pd.read_csv(out / "comparison.csv")


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("transport,bound", [("ssh", 0.001), ("rsync", 0.001)])
def test_small_lifecycle_both_backends(tmp_path: Path, transport: str, bound: float,
                                       no_leaks: None) -> None:
    d = life()
    d["nova"]["remote_filesystem_transport"] = transport
    comp = _compare(tmp_path, d)
    run = tmp_path / "run"
    assert_durations(parse_scenario(d), pd.read_csv(run / "predicted.csv"),
                     pd.read_csv(run / "measured.csv"), comp)
    sizes = comp[comp.metric.isin(["allocated_bytes", "transfer_bytes", "file_bytes"])]
    # sequential workloads: the offsets are known exactly, so every size is exact (within 0.1%:
    # ext4 may add an extent-tree block to a fragmented file), rsync --sparse's copies too (the
    # model counts the file's non-zero 4 KiB blocks; held to issue 4's 2% while the real
    # backend re-pointed every copy at its base, a header rewrite that allocated 16 blocks)
    bad = sizes[sizes.rel_error.abs() > bound]
    assert bad.empty, bad
    caches = comp[(comp.entity == "cache:h1") & (comp.metric == "allocated_bytes")]
    gone = caches[caches.t_s >= 360]
    assert len(gone) and (gone.measured == 0).all() and (gone.predicted == 0).all()


@pytest.mark.real
@pytest.mark.slow
@needs_tools
def test_nova_lifecycle_scenario_meets_its_target(tmp_path: Path, no_leaks: None) -> None:
    """Issue 4's "done when": every operation in both backends, every allocated_bytes and
    transfer_bytes figure within 2%."""
    s = load_scenario(ROOT / "scenarios" / "nova-lifecycle.yaml")
    out = tmp_path / "run"
    run_scenario(s, out, "both")
    comp = pd.read_csv(out / "comparison.csv")
    assert_durations(s, pd.read_csv(out / "predicted.csv"), pd.read_csv(out / "measured.csv"),
                     comp)
    kinds = {(o.op, o.kind) for o in expand_timeline(s)}
    assert {("snapshot", "live"), ("snapshot", "external"), ("snapshot", "internal"),
            ("migrate", "cold"),
            ("migrate", "live"), ("migrate", "flatten"), ("resize", None),
            ("delete", None)} <= kinds
    figures = comp[comp.metric.isin(["allocated_bytes", "transfer_bytes"])]
    assert len(figures) > 300
    assert (figures.rel_error.abs() <= 0.02).all(), figures[figures.rel_error.abs() > 0.02]


LIVE_COPY: dict[str, Any] = {
    "name": "live-copy-holes", "seed": 4, "hosts": [{"name": "h1"}, {"name": "h2"}],
    "images": [{"name": "img", "virtual_size": "256MiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "32MiB"}]}}],
    "strategy": {"kind": "resized_base"},
    "workloads": {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "2MiB"},
                  "w2": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "2MiB",
                         "randseed": 8},
                  "rd": {"rw": "read", "bs": "64k", "iodepth": 1}},
    "vms": [{"name": "a", "image": "img", "root_size": "1GiB", "workload": "w", "host": "h1"}],
    "timeline": {"end_s": 100, "events": [
        {"t": 10, "op": "migrate", "vm": "a", "to": "h2", "kind": "live"},
        {"t": 20, "op": "run", "vm": "a", "workload": "rd"},
        {"t": 30, "op": "run", "vm": "a", "workload": "w2"}]},
}


@pytest.mark.real
@needs_tools
def test_a_block_migration_copies_each_cluster_from_its_first_data_block(
        tmp_path: Path, no_leaks: None) -> None:
    """A live migration (``qemu-img convert -O qcow2 -B``) copies the top's clusters into a
    file opened without its backing: each from its first non-zero block to its end, its head
    a zero write left unwritten by fallocate, so reading it back moves no host bytes; the
    copy is closed with its metadata on disk. The destination's overlay stands on the
    resized_base copy the source's disk names (raw to the root size). Every session's
    host_read_bytes and host_write_bytes within 2% of qemu-nbd's /proc/PID/io, and
    allocated_bytes within 0.2%. Measured 2026-12-05: every figure exact or within 0.2%;
    before, the whole read after the migration 65863680 bytes where qemu-nbd read 49664000
    (+32.6%; the user-test's s14 reads after a live migration +29.5%), with 131072 bytes of
    metadata written where it wrote none."""
    run_scenario(parse_scenario(LIVE_COPY), tmp_path / "run", "both")
    comp = pd.read_csv(tmp_path / "run" / "comparison.csv")
    rows = comp[comp.metric.isin(["host_read_bytes", "host_write_bytes"])]
    assert len(rows) == 2 * 3
    assert_within(rows, 0.02)  # a measured 0: a predicted 0
    vm = comp[(comp.entity == "vm:a") & (comp.metric == "allocated_bytes")]
    bad = vm[vm.rel_error.abs() > 0.002]
    assert bad.empty, bad
