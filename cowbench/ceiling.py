"""The most a fleet host's disk can ever hold: the ceiling a time to full is bounded by.

A linear extrapolation of a host's demand ("full after about 102 days") assumes the demand
keeps growing. It cannot grow past what the VMs placed there can hold, and placement caps those:
a host admits claims (root + ephemeral + swap, :func:`cowbench.nova.claims.disk_gb_bytes`) only
while their sum stays within its DISK_GB inventory, ``(capacity - reserved) x
disk_allocation_ratio``. So a host of 64 GiB and a flavor claiming 23 GiB hold two VMs at most
(46 GiB claimed: a third does not fit), and their disks, written in full, with the bases in
``_base``, are all the host can ever hold. When that is less than the disk for instances
(``capacity - reserved``), the host never fills, whatever the growth.

Per host, at most (:func:`demand_ceiling`):

- the claims: the largest sum of flavor claims of ``fleet.flavor_mix`` that fits the inventory
  (any number of each flavor: an unbounded subset sum, in the claims' common unit, usually a
  GiB); a migration or a resize holds its claim on both hosts until it ends, so it is counted
  there too;
- per byte claimed, the most a VM's files hold per byte of its claim (the highest over the
  flavors): each disk (root, ephemeral, swap) a qcow2 overlay of its virtual size written in
  full with its metadata at the widest (:func:`cowbench.spacebound.qcow2_max_bytes`), and its
  ``disk.info``;
- the bases: every image of ``fleet.image_mix`` at its virtual size (raw, or converted under
  ``force_raw_images``) or as a qcow2 file written in full, and one ephemeral and one swap base
  per size (raw files of that size at most).

It covers what the fleet model covers (``strategy.kind: qcow2_overlay``, one overlay per disk);
anything else (another strategy, a host without a capacity, results too old to say) has no
ceiling here (``inf``), and the extrapolation stands as it was.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import numpy as np

from .nova.claims import disk_gb_bytes, inventory
from .spacebound import GLANCE_CLUSTER, qcow2_max_bytes

#: ``instances/<uuid>/disk.info``: one filesystem block per VM
DISK_INFO_BYTES = 4096
#: the most units (claims' common divisor) the subset sum is worked out over; beyond, the
#: inventory itself is the bound on the claims (an upper bound all the same)
MAX_UNITS = 1 << 23


def max_claimed(claims: list[int], limit: float) -> float:
    """The largest sum of ``claims`` (each any number of times) not above ``limit``: the most
    placement can have claimed on a host whose inventory is ``limit``. Exact (a subset sum
    over the claims' greatest common divisor, each claim added in doubling steps: ``O(N log
    N)`` per flavor for ``N`` units); ``limit`` itself where the units are too many."""
    claims = [c for c in claims if c > 0]
    if not claims or not math.isfinite(limit):
        return limit if claims else 0.0
    unit = reduce(math.gcd, claims)
    n = int(limit // unit)
    if n > MAX_UNITS:
        return float(limit)
    reach = np.zeros(n + 1, dtype=bool)
    reach[0] = True
    for c in sorted({c // unit for c in claims}):
        step = c
        while step <= n:  # 1, 2, 4, ... copies of the claim: any count up to n // c
            reach[step:] |= reach[:n + 1 - step].copy()
            step *= 2
    return float(np.flatnonzero(reach)[-1] * unit)


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def _size(x: Any) -> int:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) and x > 0 else 0


def _per_claimed_byte(flavors: list[dict[str, Any]], strategy: dict[str, Any]) -> float:
    """The most a VM's files hold per byte it claims, over ``flavors``."""
    cluster = _size(strategy.get("cluster_size")) or 65536
    bits = _size(strategy.get("refcount_bits")) or 16
    wide = bool(strategy.get("extended_l2"))

    def disk(size: int) -> int:
        return qcow2_max_bytes(size, cluster, bits, wide) if size else 0

    ratio = 0.0
    for fl in flavors:
        root, eph, swap = (_size(fl.get(k)) for k in ("root", "ephemeral", "swap"))
        held = disk(root) + disk(eph) + disk(swap) + DISK_INFO_BYTES
        ratio = max(ratio, held / disk_gb_bytes(root, eph, swap))
    return ratio


def _bases(scenario: dict[str, Any], flavors: list[dict[str, Any]], images: list[str]) -> float:
    """The most every base a host's ``_base`` may hold at once holds."""
    raw = bool(_get(scenario.get("nova"), "force_raw_images"))
    total = 0
    for img in scenario.get("images") or []:
        if not isinstance(img, dict) or img.get("name") not in images:
            continue
        size = _size(img.get("virtual_size"))
        total += size if raw or img.get("format") == "raw" else \
            max(size, qcow2_max_bytes(size, GLANCE_CLUSTER))
    for kind in ("ephemeral", "swap"):
        total += sum({_size(fl.get(kind)) for fl in flavors})
    return float(total)


def demand_ceiling(scenario: dict[str, Any]) -> dict[str, float]:
    """Per host name, the most its disk can ever hold in a fleet run of ``scenario`` (a
    resolved scenario as a run directory keeps it; module docstring): ``inf`` where no
    ceiling is known, and an empty mapping for anything but a fleet of qcow2 overlays."""
    fleet, strategy = scenario.get("fleet"), scenario.get("strategy")
    if not isinstance(fleet, dict) or not isinstance(strategy, dict) \
            or strategy.get("kind", "qcow2_overlay") != "qcow2_overlay":
        return {}
    mix, images = fleet.get("flavor_mix"), fleet.get("image_mix")
    by_name = {fl.get("name"): fl for fl in scenario.get("flavors") or []
               if isinstance(fl, dict)}
    if not isinstance(mix, dict) or not isinstance(images, dict) or not mix \
            or any(not _size(_get(by_name.get(n), "root")) for n in mix):
        return {}
    flavors = [by_name[n] for n in mix]
    claims = [disk_gb_bytes(*(_size(fl.get(k)) for k in ("root", "ephemeral", "swap")))
              for fl in flavors]
    per_byte = _per_claimed_byte(flavors, strategy)
    bases = _bases(scenario, flavors, list(images))
    out: dict[str, float] = {}
    for host in scenario.get("hosts") or []:
        if not isinstance(host, dict) or not _size(host.get("capacity_bytes")):
            continue
        ratio = host.get("disk_allocation_ratio", 1.0)
        limit = inventory(_size(host["capacity_bytes"]),
                          float(ratio) if isinstance(ratio, int | float) else math.inf,
                          _size(host.get("reserved_host_disk_bytes")))
        out[str(host.get("name"))] = max_claimed(claims, limit) * per_byte + bases
    return out
