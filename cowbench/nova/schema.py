"""How a scenario spells Nova's settings, once for timelines and fleets (FACTS.md section 1).

- :class:`Flavor`: a flavor's disks (root, ephemeral, swap) and the DISK_GB it claims;
- :class:`Lifetime`: how long a VM lives (one distribution family, mean in ``mean_s``);
- :class:`ImageCacheSettings`: ``[image_cache]`` (the scenario's ``nova.image_cache``);
- :class:`HostDisk`: a host's disk as placement sees it (``hosts[]``, a fleet's as a timeline's).

Keys renamed when timelines and fleets were given one language (``mean`` -> ``mean_s``,
``capacity`` -> ``capacity_bytes``, ...) are still read: :func:`renamed` moves them to their
new spelling and warns, naming the full key path (``cowbench.oldkeys`` walks a scenario).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from ..units import format_bytes, parse_duration, parse_size
from .claims import disk_gb_bytes, inventory

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

GIB = 1 << 30
MIB = 1 << 20


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BothSpellings(ValueError):
    """A setting given in its old and its new spelling at once; ``key`` is the old one's path."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def renamed(data: Any, where: str, old_to_new: dict[str, str]) -> Any:
    """``data`` (the mapping at key path ``where``, e.g. ``fleet.hosts.``) with old keys moved
    to their new names; a FutureWarning names each by its full path, and both spellings at once
    raise :class:`BothSpellings` naming the old key's path."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for old, new in old_to_new.items():
        if old not in out:
            continue
        if new in out:
            raise BothSpellings(f"{where}{old}", f"{old} and {new} are the same setting "
                                f"({old} is its old name): give only {new}")
        warnings.warn(f"{where}{old} is now spelt {where}{new}", FutureWarning, stacklevel=2)
        out[new] = out.pop(old)
    return out


class Flavor(_Frozen):
    """A Nova flavor's disks, in bytes. Nova counts ephemeral in GB and swap in MB."""

    name: Name
    root: Bytes = Field(gt=0, description="root_gb, in bytes")
    ephemeral: Bytes = Field(default=0, description="ephemeral_gb, in bytes (whole GiB)")
    swap: Bytes = Field(default=0, description="swap (MB), in bytes (whole MiB)")

    @field_validator("ephemeral")
    @classmethod
    def _whole_gib(cls, size: int) -> int:
        """The ephemeral base is made and named per size in GB (``_base/ephemeral_<GB>_<fs>``),
        so only whole GiB can be built; a root (and a resize's ``root_size``) may be any size:
        Nova counts it in GB too, but nothing is named by it, and small roots keep real runs
        small (README, "A lifecycle over time")."""
        if size % GIB:
            raise ValueError(f"must be whole GiB, not {format_bytes(size)}: Nova makes and "
                             "names the ephemeral base per size in GB (_base/ephemeral_<GB>_"
                             "<fs>); a root may be any size")
        return size

    @field_validator("swap")
    @classmethod
    def _whole_mib(cls, size: int) -> int:
        if size % MIB:
            raise ValueError(f"must be whole MiB, not {size} bytes: Nova makes and names the "
                             "swap base per size in MB (_base/swap_<MB>)")
        return size

    @property
    def disk_gb_bytes(self) -> int:
        """Placement's DISK_GB for this flavor, in bytes (swap rounded up to a GiB)."""
        return disk_gb_bytes(self.root, self.ephemeral, self.swap)


class Lifetime(_Frozen):
    """How long a VM lives: ``fixed`` (always ``mean_s``), ``exponential``, ``uniform`` on
    [0, 2 mean_s] or ``lognormal`` (with ``sigma``), of mean ``mean_s``."""

    distribution: Literal["fixed", "exponential", "uniform", "lognormal"] = "exponential"
    mean_s: Seconds = Field(gt=0)
    sigma: float = Field(default=1.0, gt=0, le=5, description="lognormal only")


class ImageCacheSettings(_Frozen):
    """``[image_cache]``: the cache manager's pass and how old an unused base must be."""

    manager_interval_s: Seconds = Field(default=2400.0, gt=0)
    remove_unused_base_images: bool = True
    remove_unused_original_minimum_age_s: Seconds = Field(default=86400.0, ge=0)
    remove_unused_resized_minimum_age_s: Seconds = Field(default=3600.0, ge=0)


class HostDisk(_Frozen):
    """A host's disk for instances as placement sees it (``hosts[]``, a fleet's as a timeline's)."""

    capacity_bytes: Bytes | None = Field(
        default=None, gt=0,
        description="Disk for instances; with disk_allocation_ratio, what placement may give.")
    disk_allocation_ratio: float = Field(default=1.0, gt=0, le=100)
    reserved_host_disk_bytes: Bytes = Field(
        default=0, ge=0, description="reserved_host_disk_mb, in bytes")

    @property
    def placement_capacity(self) -> float:
        """DISK_GB inventory: ``(capacity - reserved) x disk_allocation_ratio`` (inf without a
        capacity)."""
        return inventory(self.capacity_bytes, self.disk_allocation_ratio,
                         self.reserved_host_disk_bytes)

    @property
    def weighed_disk(self) -> float:
        """What the DiskWeigher counts before the claims: ``capacity - reserved``, no ratio
        (the resource tracker's ``local_gb`` less ``reserved_host_disk_mb``; inf without a
        capacity). See :mod:`cowbench.nova.placement`."""
        return inventory(self.capacity_bytes, 1.0, self.reserved_host_disk_bytes)


#: the least disk a host may have for instances: a smaller one holds no VM's disk (a qcow2
#: overlay's header and tables alone take hundreds of KiB), and is a unit left out (a bare
#: number is bytes: ``capacity_bytes: 40`` is 40 bytes, not 40 GiB)
MIN_HOST_DISK = MIB


def host_disk_problems(hosts: Sequence[HostDisk]) -> list[tuple[str, str]]:
    """A host disk that can hold no instance, at its own key path (``hosts[i].``): a capacity
    under :data:`MIN_HOST_DISK`, else a reserve that takes all of it (the reserve is what is
    wrong then, not the disk)."""
    out = []
    for i, h in enumerate(hosts):
        cap, reserved = h.capacity_bytes, h.reserved_host_disk_bytes
        if cap is None:
            continue
        if cap < MIN_HOST_DISK:
            out.append((f"hosts[{i}].capacity_bytes",
                        f"{cap} bytes (a bare number is bytes: write a unit, as in "
                        f"{cap}GiB): less than {format_bytes(MIN_HOST_DISK)}, which holds no "
                        "VM's disk"))
        elif reserved >= cap:
            out.append((f"hosts[{i}].reserved_host_disk_bytes",
                        f"reserves {format_bytes(reserved)} of the host's {format_bytes(cap)} "
                        "disk (capacity_bytes): nothing is left for instances"))
    return out
