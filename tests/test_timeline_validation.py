"""A timeline's mistakes refused by `cowbench validate` before anything runs, each once, at the
key path that was written, in the order of the file (an SRE's findings: an event after the
end dropped silently, a bare number for a size or a host's disk, one root cause repeated as
many follow-on errors, errors out of order, a kind's typo named at its event)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cowbench.scenario import parse_scenario

from .clirun import cowbench
from .test_cli import assert_clean_error, write
from .test_lifecycle import events, life, problems

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


# -- an event after timeline.end_s ------------------------------------------------------------

def test_an_event_after_the_end_is_refused_at_its_t(tmp_path: Path) -> None:
    """The timeline ends at end_s: a delete after it never happened, silently, and the VM kept
    its disk in every figure. It is refused at its own ``t``, the end named."""
    d = life()  # end_s 600
    d["timeline"]["events"].append({"t": 900, "op": "delete", "vm": "a"})
    at = len(d["timeline"]["events"]) - 1
    assert problems(d) == [(f"timeline.events[{at}].t",
                            "t=15 min is after timeline.end_s (10 min): the timeline ends "
                            "before it, so the delete of 'a' would never happen; give it an "
                            "earlier t or a later end_s")]
    f = write(tmp_path, d)
    ran = cowbench("run", str(f), "--backend", "sim", "--out", str(tmp_path / "out"))
    assert_clean_error(ran, f"timeline.events[{at}].t: t=15 min is after timeline.end_s")
    assert not (tmp_path / "out").exists()


def test_an_event_at_the_end_is_accepted() -> None:
    d = life()
    d["timeline"]["events"][-1]["t"] = 600  # the delete, at end_s exactly
    parse_scenario(d)


# -- sizes written as bare numbers ------------------------------------------------------------

def _two_vms(**flavor: Any) -> dict[str, Any]:
    """``a`` and ``b`` of flavor ``tiny`` (updated by ``flavor``), both running ``w``."""
    d = life()
    d["flavors"][0].update(flavor)
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": "h2",
                     "workload": "w"})
    return d


def test_a_flavors_root_too_small_is_named_at_the_flavor_once() -> None:
    """``root: 4`` is 4 bytes: the problem was reported at ``vms[i].root_size`` (a key the
    file does not have) of every VM of the flavor, in bytes, each with its workload's misfit
    on the 4-byte disk besides. Now: once, at ``flavors[0].root``, in binary units."""
    assert problems(_two_vms(root=4)) == [
        ("flavors[0].root", "4 bytes (a bare number is bytes: write a unit, as in 4GiB) is "
                            "smaller than image 'img' (64.0 MiB); Nova refuses this "
                            "(FlavorDiskSmallerThanImage)")]


def test_a_vms_own_root_size_too_small_is_named_at_it() -> None:
    d = life()
    d["vms"][0]["root_size"] = "32MiB"
    assert problems(d) == [("vms[0].root_size", "32.0 MiB is smaller than image 'img' "
                            "(64.0 MiB); Nova refuses this (FlavorDiskSmallerThanImage)")]


def test_a_bare_host_capacity_is_refused_at_its_key_with_arrivals() -> None:
    """``capacity_bytes: 40`` (40 bytes) under arrivals validated, and the run refused all 30
    arrivals; with pinned VMs the problem was named at timeline.events[1]."""
    d = life()
    d["hosts"][0]["capacity_bytes"] = 40
    d["timeline"]["arrivals"] = [{"prefix": "web", "count": 3, "rate_per_s": 0.01,
                                  "image": "img", "flavor": "tiny"}]
    assert problems(d) == [("hosts[0].capacity_bytes", "40 bytes (a bare number is bytes: "
                            "write a unit, as in 40GiB): less than 1.0 MiB, which holds no "
                            "VM's disk")]


def test_a_reserve_as_large_as_the_disk_is_refused_at_its_key() -> None:
    """Before, a timeline's pinned VMs each reported 'no room' at their boot events."""
    d = life()
    d["hosts"][0].update(capacity_bytes="40GiB", reserved_host_disk_bytes="50GiB")
    assert problems(d) == [("hosts[0].reserved_host_disk_bytes", "reserves 50.0 GiB of the "
                            "host's 40.0 GiB disk (capacity_bytes): nothing is left for "
                            "instances")]


def test_the_hosts_of_a_count_are_refused_once_at_their_entry() -> None:
    d = life()
    d["hosts"] = [{"name": "h", "count": 3, "capacity_bytes": 40}]
    d["vms"][0]["host"] = "h-001"
    d["timeline"]["events"] = [e for e in d["timeline"]["events"] if e["op"] != "migrate"]
    assert [p for p, _ in problems(d)] == ["hosts[0].capacity_bytes"]


# -- claims count only the VMs placed ---------------------------------------------------------

def test_a_boot_refused_for_want_of_room_claims_nothing() -> None:
    """``db`` (160 MiB) and ``web`` (96 MiB) boot at t=0 on a 128 MiB host; ``db`` comes first
    (listed first: the boots of one instant are placed in the order of ``vms``) and does not
    fit. Its claim was counted all the same, and ``web`` was refused too ('256 MiB
    claimed'), as events[0] was in the SRE's file (16 GiB claimed: db-1's 11 GiB, itself
    refused, and web-1's 5 GiB)."""
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "boot", "vm": "web"},
               {"t": 0, "op": "boot", "vm": "db"})
    d["flavors"].append({"name": "large", "root": "160MiB"})
    d["vms"][0]["host"] = "h2"
    d["vms"] += [{"name": "db", "image": "img", "flavor": "large", "host": "h1"},
                 {"name": "web", "image": "img", "flavor": "tiny", "host": "h1"}]
    d["hosts"][0]["capacity_bytes"] = "128MiB"
    assert problems(d) == [("timeline.events[2]", "boot of 'db' at t=0 s: no room on host "
                            "'h1': it claims 160.0 MiB of DISK_GB, beside 0 B claimed there by "
                            "the VMs placed, of 128.0 MiB (capacity 128.0 MiB - reserved 0 B x "
                            "allocation ratio 1)")]


def test_a_migration_refused_for_want_of_room_leaves_the_source_claimed_only() -> None:
    """``a`` cannot move to the full h2: it stays on h1, so ``c`` does not fit beside it
    there, and ``b`` (on h2) still fits where ``a`` would have gone."""
    d = events({"t": 0, "op": "boot", "vm": "a"}, {"t": 0, "op": "boot", "vm": "b"},
               {"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "live"},
               {"t": 6, "op": "boot", "vm": "c"})
    d["vms"] += [{"name": "b", "image": "img", "flavor": "tiny", "host": "h2"},
                 {"name": "c", "image": "img", "flavor": "tiny", "host": "h1"}]
    d["hosts"][0]["capacity_bytes"] = "128MiB"
    d["hosts"][1]["capacity_bytes"] = "128MiB"
    got = problems(d)
    assert [p for p, _ in got] == ["timeline.events[2]", "timeline.events[3]"], got
    assert "beside 96.0 MiB claimed there by the VMs placed" in got[1][1]


# -- one root cause, one error; errors in the file's order -------------------------------------

def test_a_refused_migration_is_not_followed_by_its_confirm() -> None:
    """A migration to the host the VM is on, or to a host that does not exist: its confirm
    was refused besides ('Nova refuses it: the VM has no resize or cold migration to
    confirm'), a consequence, not a mistake of its own."""
    for to, why in (("h1", "the VM is already on that host"), ("h9", "no host named 'h9'")):
        d = events({"t": 0, "op": "boot", "vm": "a"},
                   {"t": 5, "op": "migrate", "vm": "a", "to": to},
                   {"t": 8, "op": "confirm", "vm": "a"}, {"t": 9, "op": "run", "vm": "a"})
        assert problems(d) == [("timeline.events[1]", f"migrate of 'a' at t=5 s: {why} (the "
                                "later operations of 'a' were not checked)")]


def test_a_typo_for_a_vm_is_not_followed_by_the_confirm_it_lost() -> None:
    """``migrate`` of ``db1`` (a typo for ``db-1``), then ``confirm`` of ``db-1``: the confirm
    was refused besides, for the migration the typo lost. A name close to none is not
    guessed at."""
    d = events({"t": 0, "op": "boot", "vm": "db-1"},
               {"t": 5, "op": "migrate", "vm": "db1", "to": "h2"},
               {"t": 8, "op": "confirm", "vm": "db-1"}, {"t": 9, "op": "run", "vm": "nobody"})
    d["vms"].append({"name": "db-1", "image": "img", "flavor": "tiny", "host": "h1"})
    assert problems(d) == [
        ("timeline.events[1]", "migrate of 'db1' at t=5 s: no such VM in 'vms' (did you mean "
                               "'db-1'?) (the later operations of 'db-1' were not checked)"),
        ("timeline.events[3]", "run of 'nobody' at t=9 s: no such VM in 'vms'")]


def test_a_boot_nova_refuses_is_not_followed_by_every_later_event_of_its_vm() -> None:
    """A flavor with swap under full_copy: each boot is refused, and every later event of its
    VM said 'the VM has not booted yet' (9 of the sweep's 14 errors)."""
    d = life(strategy={"kind": "full_copy"})
    d["flavors"][0]["swap"] = "64MiB"
    d["timeline"]["events"] = [e for e in d["timeline"]["events"]
                               if e["op"] != "snapshot" and e["op"] != "migrate"]
    d["timeline"]["events"] += [{"t": 80, "op": "boot", "vm": "b"},
                                {"t": 90, "op": "run", "vm": "b"}]
    d["timeline"]["events"].sort(key=lambda e: e["t"])
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": "h2",
                     "workload": "w"})
    got = problems(d)
    assert [p for p, _ in got] == ["timeline.events[0]", "timeline.events[6]"], got
    assert all("has ephemeral or swap disks" in r and "not checked" in r for _, r in got)
    assert not any("not booted yet" in r for _, r in got)


def test_a_misfit_run_does_not_stop_the_vms_later_checks() -> None:
    """A workload that does not fit its disk is named; Nova ran nothing else differently, so
    the VM's later events are still checked."""
    d = events({"t": 0, "op": "boot", "vm": "a"},
               {"t": 5, "op": "run", "vm": "a", "workload": "far"},
               {"t": 9, "op": "migrate", "vm": "a", "to": "h1"})
    d["workloads"]["far"] = {"rw": "write", "bs": "4k", "offset": "100MiB", "size": "8MiB"}
    got = problems(d)
    assert [p for p, _ in got] == ["timeline.events[1]", "timeline.events[2]"], got
    assert "not checked" not in got[0][1]


def test_problems_come_in_the_order_of_the_events() -> None:
    """Two boots at t=0 are carried out by the VMs' names (``db`` before ``web``); their
    problems came out in that order, events[1] before events[0]. events[10] comes after
    events[2], not between events[1] and events[2] as a string."""
    evs: list[dict[str, Any]] = [{"t": 0, "op": "boot", "vm": "web"},
                                 {"t": 0, "op": "boot", "vm": "db"},
                                 {"t": 0, "op": "boot", "vm": "a"},
                                 {"t": 1, "op": "run", "vm": "nobody"}]
    evs += [{"t": 2 + i, "op": "run", "vm": "a"} for i in range(6)]
    evs += [{"t": 0.5, "op": "snapshot", "vm": "gone"}]  # events[10]
    d = events(*evs)
    d["vms"][0]["host"] = "h2"
    d["vms"] += [{"name": n, "image": "img", "flavor": "tiny", "host": "h1"}
                 for n in ("web", "db")]
    d["hosts"][0]["capacity_bytes"] = "64MiB"
    got = [p for p, _ in problems(d)]
    assert got == ["timeline.events[0]", "timeline.events[1]", "timeline.events[3]",
                   "timeline.events[10]"], got


# -- a kind's typo ----------------------------------------------------------------------------

def test_a_kinds_typo_is_named_at_kind_with_the_kinds_of_its_op() -> None:
    d = events({"t": 0, "op": "boot", "vm": "a"},
               {"t": 5, "op": "migrate", "vm": "a", "to": "h2", "kind": "clod"},
               {"t": 6, "op": "snapshot", "vm": "a", "kind": "lve"})
    assert problems(d) == [
        ("timeline.events[1].kind", "Input should be 'cold', 'live' or 'flatten' (op 'migrate' "
                                    "has no kind 'clod')"),
        ("timeline.events[2].kind", "Input should be 'live', 'external' or 'internal' (op "
                                    "'snapshot' has no kind 'lve')")]


def test_a_kind_given_to_an_op_without_kinds_is_still_named() -> None:
    d = events({"t": 0, "op": "boot", "vm": "a", "kind": "cold"})
    [(path, reason)] = problems(d)
    assert path == "timeline.events[0]" and reason.startswith("op 'boot' takes no 'kind'")
