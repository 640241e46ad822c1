"""A host's ceiling: the most its disk can ever hold, which bounds an extrapolated time to full.

A user's sweep point (flavors of 20 GiB root + 2 GiB ephemeral + 1 GiB swap, ratio 1.0, hosts
of 64 GiB) printed "full after about 102 days (extrapolated)": two VMs fit a host (46 GiB
claimed, a third does not), their disks cannot outgrow 46 GiB plus the bases, so the host never
fills whatever its growth.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from cowbench.capacity import time_to_full
from cowbench.ceiling import demand_ceiling, max_claimed

GIB = 1 << 30


def fleet_scenario(ratio: float = 1.0, reserved: int = 0, kind: str = "qcow2_overlay",
                   ) -> dict[str, Any]:
    """A resolved fleet scenario as a run directory keeps it (the user's point p0012)."""
    return {
        "hosts": [{"name": f"h-00{i}", "capacity_bytes": 64 * GIB,
                   "disk_allocation_ratio": ratio, "reserved_host_disk_bytes": reserved}
                  for i in (1, 2, 3)],
        "images": [{"name": "ubu", "virtual_size": 2 * GIB, "format": "qcow2"}],
        "flavors": [{"name": "m", "root": 20 * GIB, "ephemeral": 2 * GIB, "swap": GIB}],
        "strategy": {"kind": kind, "cluster_size": 65536, "refcount_bits": 16,
                     "extended_l2": False},
        "nova": {"force_raw_images": True},
        "fleet": {"flavor_mix": {"m": 1.0}, "image_mix": {"ubu": 1.0}},
    }


def test_the_claims_a_host_admits_are_the_largest_sum_that_fits() -> None:
    assert max_claimed([23 * GIB], 64 * GIB) == 46 * GIB  # two VMs: a third does not fit
    assert max_claimed([3, 5], 7) == 6
    assert max_claimed([3, 5], 11) == 11  # 3 + 3 + 5
    assert max_claimed([4, 6], 9) == 8
    assert max_claimed([23 * GIB], math.inf) == math.inf  # a host without a disk given
    assert max_claimed([], 64 * GIB) == 0


def test_a_host_holding_two_vms_of_its_flavor_has_a_ceiling_under_its_disk() -> None:
    ceiling = demand_ceiling(fleet_scenario())
    assert set(ceiling) == {"h-001", "h-002", "h-003"}
    # two VMs' disks written in full (46 GiB and their qcow2 metadata) and the bases: the
    # raw image (2 GiB), an ephemeral base (2 GiB) and a swap base (1 GiB)
    assert 51 * GIB <= ceiling["h-001"] < 51.1 * GIB
    # the reserve shrinks what placement admits: one VM of 23 GiB in 64 - 30 GiB
    one = demand_ceiling(fleet_scenario(reserved=30 * GIB))["h-001"]
    assert 28 * GIB <= one < 28.1 * GIB
    # overcommit: 128 GiB admits five VMs (115 GiB), a ceiling above the disk
    assert demand_ceiling(fleet_scenario(ratio=2.0))["h-001"] > 115 * GIB
    # what the bound does not cover has none
    assert demand_ceiling(fleet_scenario(kind="full_copy")) == {}
    assert demand_ceiling({"hosts": fleet_scenario()["hosts"]}) == {}


def test_a_series_under_a_ceiling_below_capacity_never_fills() -> None:
    t = np.arange(61.0) * 86400
    y = 10 * GIB + t / 86400 * 0.5 * GIB  # 40 GiB after 60 days, growing
    cap = 64.0 * GIB
    extra, how = time_to_full(t, y, cap)
    assert how == "extrapolated" and extra == pytest.approx(108 * 86400)
    assert time_to_full(t, y, cap, 51.0 * GIB) == (math.inf, "bounded")
    # a ceiling at or above capacity (overcommit) leaves the extrapolation as it is
    assert time_to_full(t, y, cap, 120.0 * GIB) == (extra, "extrapolated")
    # a ceiling the series already passed is no ceiling
    assert time_to_full(t, y, cap, 30.0 * GIB) == (extra, "extrapolated")
    # a series that reached its capacity reached it, whatever the ceiling says
    assert time_to_full(t, y, 20.0 * GIB, 10.0 * GIB)[1] == "reached"
