"""A timeline's mistakes refused by `cowbench validate` before anything runs, each once, at the
key path that was written, in the order of the file (an SRE's findings: an event after the
end dropped silently, a bare number for a size or a host's disk, one root cause repeated as
many follow-on errors, errors out of order, a kind's typo named at its event)."""

from __future__ import annotations

from typing import Any

from .test_lifecycle import life, problems

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


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
