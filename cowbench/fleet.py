"""The fleet section of a scenario: what a capacity planner describes instead of single VMs.

A fleet is a stream of VM arrivals over ``duration`` (a Poisson process with ``vms`` arrivals
expected), each with a lifetime, a flavor, an image and a workload class drawn from the mixes;
Nova places it on a host (placement's DISK_GB with ``disk_allocation_ratio``, FACTS.md 1.6), the
image cache manager ages unused bases (FACTS.md 1.6), some VMs are snapshotted and some migrated
on a schedule (FACTS.md 1.4-1.5). It speaks the timeline's language: the hosts are the
scenario's ``hosts`` (``count: N`` for a pool of alike hosts; entries of different sizes mix),
the flavors its ``flavors`` (drawn by ``flavor_mix`` as images by ``image_mix``), lifetimes are
``cowbench.nova.schema``'s, the image cache is the scenario's ``nova.image_cache``, and every
decision is ``cowbench.nova``'s. The model answers per host over time: demand
(``allocated_bytes``), allocation (``provisioned_bytes``), cache bytes, and when each host's
disk fills.

A workload class is a set of phases in fluid form: a boot read burst, a daily volume of random
writes over a hot/cold split of the root disk, and a daily sequential growth. Writes are uniform
with replacement within their region (fio's ``norandommap=1``), which the fluid model solves in
closed form and the exact fleet model draws offset by offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .bounds import fleet_problems as stream_problems
from .nova.schema import Flavor, Lifetime, host_disk_problems
from .units import format_bytes, is_power_of_two, parse_duration, parse_size

if TYPE_CHECKING:
    from .scenario import Scenario

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Weight = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]

GIB = 1 << 30
MIB = 1 << 20
DAY = 86400.0


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadClass(_Frozen):
    """What a VM of this class does to its root disk, per phase, in fluid terms.

    ``write_bytes_per_day`` of random ``bs`` writes: a share ``hot_share`` lands uniformly in
    the first ``hot_fraction`` of the disk, the rest uniformly in the remainder.
    ``growth_bytes_per_day`` are appended sequentially from ``growth_start`` (a fraction of the
    disk), as logs and databases grow. ``boot_read_bytes`` are read from the base at boot.
    """

    share: Weight = 1.0
    boot_read_bytes: Bytes = 0
    write_bytes_per_day: Bytes = 0
    bs: Bytes = 4096
    hot_fraction: Fraction = 1.0
    hot_share: Fraction = 1.0
    growth_bytes_per_day: Bytes = 0
    growth_start: Fraction = 0.5

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadClass:
        if not is_power_of_two(self.bs) or not 512 <= self.bs <= MIB:
            raise ValueError(f"bs must be a power of two from 512 B to 1 MiB, got {self.bs}")
        if self.hot_fraction == 0 and self.hot_share > 0:
            raise ValueError("hot_share > 0 needs a hot_fraction > 0")
        if self.hot_fraction == 1 and self.hot_share < 1:
            raise ValueError("hot_share < 1 needs a cold region (hot_fraction < 1)")
        if self.growth_start >= 1 and self.growth_bytes_per_day:
            raise ValueError("growth_start must be below 1 when growth_bytes_per_day is set")
        return self


class Periodic(_Frozen):
    """A policy applied to a ``share`` of VMs (chosen at arrival) every ``every_s`` (a
    timeline's arrivals spell it ``snapshot_every_s``, ``migrate_every_s``)."""

    share: Fraction = 0.0
    every_s: Seconds = Field(default=DAY, gt=0)


class Migrations(Periodic):
    """``live`` block migration copies the overlay's data (VIR_MIGRATE_NON_SHARED_INC); ``cold``
    copies the overlay file as is (scp keeps no holes) and leaves the source's
    ``<dir>_resize`` copy until it is confirmed (``nova.resize_confirm_window_s`` after, never
    with 0, at the latest when the VM is deleted). Backing files are never copied; a
    destination without the base fetches it from Glance (FACTS.md 1.5)."""

    every_s: Seconds = Field(default=30 * DAY, gt=0)
    kind: Literal["live", "cold"] = "live"


class Fleet(_Frozen):
    """A fleet of VMs arriving, living and leaving over the scenario's ``duration``."""

    model: Literal["fluid", "exact"] = Field(
        default="fluid", description="fluid: closed forms per phase; exact: every write "
        "applied to an exact qcow2 allocation map (small fleets only)")
    vms: int = Field(ge=1, le=10_000_000, description="expected arrivals over the duration")
    sample_interval_s: Seconds = Field(default=DAY, gt=0)
    records: Literal["aggregate", "per_vm"] = Field(
        default="aggregate", description="aggregate: records per host and sample, the VMs' "
        "end-of-life figures as a grid of quantiles (entities vms:p0 ... vms:p100, "
        "cowbench.vmdist); per_vm: one record per VM and figure as well (vm:<id>), for "
        "fleets small enough to list")
    lifetime: Lifetime = Lifetime(mean_s=30 * DAY)
    flavor_mix: dict[Name, Weight] = Field(
        min_length=1, description="the scenario's flavors (by name) the VMs are drawn from, "
        "with their weights")
    image_mix: dict[Name, Weight] = Field(min_length=1)
    classes: dict[Name, WorkloadClass] = Field(min_length=1)
    snapshots: Periodic = Periodic()
    migrations: Migrations = Migrations()


def fleet_flavors(s: Scenario) -> list[Flavor]:
    """The flavors of ``fleet.flavor_mix``, in its order (the order the mix is drawn in)."""
    assert s.fleet is not None
    by_name = {fl.name: fl for fl in s.flavors}
    return [by_name[name] for name in s.fleet.flavor_mix]


def fleet_problems(s: Scenario) -> list[tuple[str, str]]:
    """What pydantic cannot see in a fleet scenario: references, sizes, what the model covers."""
    f = s.fleet
    if f is None:
        return []
    out: list[tuple[str, str]] = []
    for key, given in (("vms", bool(s.vms)), ("workloads", bool(s.workloads))):
        if given:
            out.append((key, f"a fleet scenario generates its {key}: describe them in fleet"))
    if s.duration is None:
        out.append(("duration", "a fleet scenario needs a duration (e.g. 365d)"))
    if s.strategy.kind != "qcow2_overlay":
        out.append(("strategy.kind", "the fleet model covers qcow2_overlay only so far"))
    if s.strategy.cluster_size < 4096:
        out.append(("strategy.cluster_size", "the fleet model needs clusters of at least 4 KiB"))
    default = type(s.strategy)()
    for knob in ("extended_l2", "refcount_bits", "preallocation", "discard", "detect_zeroes"):
        if getattr(s.strategy, knob) != getattr(default, knob):  # never silently the default's
            out.append((f"strategy.{knob}", "the fleet model does not model it (its figures "
                        f"would be those of {knob}: {getattr(default, knob)!r}); describe "
                        "these VMs as a timeline (timeline.arrivals) to compare it"))
    out += _host_problems(s) + _flavor_problems(s)
    if s.duration is not None and f.sample_interval_s > s.duration:
        out.append(("fleet.sample_interval_s", "longer than the scenario's duration"))
    if f.model == "exact" and s.duration is not None and exact_writes(f, s.duration) > 2e7:
        out.append(("fleet.model", f"about {exact_writes(f, s.duration):.1e} writes: too many "
                                   "for the exact model (2e7 at most); use fluid"))
    if not out:
        out += _oversized_flavors(s)
    if s.duration is not None and not out:
        out += stream_problems(f, len(s.hosts), s.duration,
                               s.nova.image_cache.manager_interval_s)
    return out


def _host_problems(s: Scenario) -> list[tuple[str, str]]:
    """A fleet's hosts: each with its disk's size (hosts may differ in size, allocation ratio
    and reserved disk: placement weighs each by its own inventory), and a reserve that leaves
    some of it to instances (the key path is the reserve's: the disk is not what is wrong)."""
    out = [(f"hosts[{i}].capacity_bytes", "a fleet's hosts need their disk's size (the model "
            "reports when it fills)") for i, h in enumerate(s.hosts)
           if h.capacity_bytes is None][:1]
    out += [(f"hosts[{i}].filesystem", "the fleet model allocates every disk as ext4 does "
             "(it has no XFS allocation); describe these VMs as a timeline "
             "(timeline.arrivals) to predict them on XFS") for i, h in enumerate(s.hosts)
            if h.filesystem == "xfs"][:1]
    return out + host_disk_problems(s.hosts)


def _oversized_flavors(s: Scenario) -> list[tuple[str, str]]:
    """Each flavor of the mix whose DISK_GB claim fits on no host, at its own key path
    (``flavors[N].root`` when its root alone is too large, else ``flavors[N]``), saying what
    the roomiest host offers: one flavor too large would refuse every VM drawn from it. When
    no flavor of the mix fits, the hosts are what is too small: the roomiest one's
    ``capacity_bytes`` is named."""
    largest = max(range(len(s.hosts)), key=lambda i: s.hosts[i].placement_capacity)
    h = s.hosts[largest]
    room = h.placement_capacity
    offers = (f"the roomiest, hosts[{largest}], offers (capacity_bytes "
              f"{format_bytes(h.capacity_bytes or 0)} - reserved_host_disk_bytes "
              f"{format_bytes(h.reserved_host_disk_bytes)}) x disk_allocation_ratio "
              f"{h.disk_allocation_ratio:g} = {format_bytes(max(room, 0))} of DISK_GB")
    mixed = {fl.name for fl in fleet_flavors(s)}
    smallest = min(fl.disk_gb_bytes for fl in fleet_flavors(s))
    if smallest > room:
        return [(f"hosts[{largest}].capacity_bytes",
                 f"no flavor of fleet.flavor_mix fits on any host (the smallest claims "
                 f"{format_bytes(smallest)} of DISK_GB): {offers}")]
    out = []
    for n, fl in enumerate(s.flavors):
        if fl.name not in mixed or fl.disk_gb_bytes <= room:
            continue
        parts = f"root {format_bytes(fl.root)}"
        if fl.ephemeral or fl.swap:
            parts += (f" + ephemeral {format_bytes(fl.ephemeral)} + swap "
                      f"{format_bytes(fl.swap)} (rounded up to a GiB)")
        where = f"flavors[{n}].root" if fl.root > room else f"flavors[{n}]"
        out.append((where, f"flavor {fl.name!r} claims {format_bytes(fl.disk_gb_bytes)} of "
                           f"DISK_GB ({parts}) and fits on no host: {offers}; every VM of "
                           "fleet.flavor_mix drawn from it would be refused"))
    return out


def _flavor_problems(s: Scenario) -> list[tuple[str, str]]:
    """``fleet.flavor_mix`` names flavors; their roots are whole GiB and hold each image."""
    assert s.fleet is not None
    index = {fl.name: j for j, fl in enumerate(s.flavors)}
    sizes = {i.name: i.virtual_size for i in s.images}
    out = [(f"fleet.flavor_mix.{name}", f"no flavor named {name!r}")
           for name in s.fleet.flavor_mix if name not in index]
    out += [(f"fleet.image_mix.{name}", f"no image named {name!r}")
            for name in s.fleet.image_mix if name not in sizes]
    for j in sorted(index[name] for name in s.fleet.flavor_mix if name in index):
        fl = s.flavors[j]
        if fl.root % GIB:
            out.append((f"flavors[{j}].root", "must be whole GiB (Nova flavors count GB)"))
        for name in s.fleet.image_mix:
            size = sizes.get(name)
            if size is not None and fl.root < size:
                out.append((f"flavors[{j}].root",
                            f"{format_bytes(fl.root)} is smaller than image {name!r} "
                            f"({format_bytes(size)}); Nova refuses "
                            "this (FlavorDiskSmallerThanImage)"))
    return out


def exact_writes(f: Fleet, duration: float) -> float:
    """Rough number of writes the exact model would draw: arrivals x life x daily writes."""
    total = sum(c.share for c in f.classes.values())
    per_day = sum(c.share / total * (c.write_bytes_per_day + c.growth_bytes_per_day) / c.bs
                  for c in f.classes.values())
    return f.vms * min(f.lifetime.mean_s, duration) / DAY * per_day
