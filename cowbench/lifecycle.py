"""Nova's lifecycle over time: the scenario's ``nova``, ``flavors`` and ``timeline`` sections.

A timeline lists operations at given times (``events``) and generators of them (``processes``:
arrivals with a rate, lifetimes from a distribution, per-VM snapshot and migration policies).
``expand_timeline(scenario)`` turns both into one ordered list of concrete :class:`Op` values,
drawing every random choice from the scenario's seed, so the model and the real backend run the
very same operations. Nova's behaviour and defaults are FACTS.md section 1; each is overridable.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .bounds import (
    MAX_ARRIVALS,
    MAX_SAMPLE_VALUES,
    MAX_SAMPLES,
    MAX_TIMELINE_OPS,
)
from .nova.clock import PASS, clock_ticks
from .nova.clock import tick_count as ticks
from .nova.instructions import Instruction, RunWorkload
from .nova.machine import (
    Boot,
    Confirm,
    Delete,
    Machine,
    Migrate,
    Operation,
    Resize,
    Run,
    Snapshot,
    refusal,
)
from .nova.resize import auto_confirms
from .nova.scheduler import schedule_ops
from .nova.schema import Flavor, ImageCacheSettings, Lifetime
from .units import format_duration, parse_duration, parse_size
from .workload_schema import workload_misfit

if TYPE_CHECKING:
    from .scenario import VM, Scenario

__all__ = ["Flavor", "ImageCacheSettings", "Lifetime"]  # spelt once, in cowbench.nova.schema

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Nova(_Frozen):
    """The Nova options that decide what is on disk (FACTS.md 1.1-1.7)."""

    force_raw_images: bool = True
    image_cache: ImageCacheSettings = ImageCacheSettings()
    remote_filesystem_transport: Literal["ssh", "rsync"] = "ssh"
    snapshot_image_format: Literal["qcow2", "raw"] = "qcow2"
    resize_confirm_window_s: Seconds = 0.0
    glance_bandwidth_bytes_per_s: Bytes = 100 * 2**20
    migration_bandwidth_bytes_per_s: Bytes = 100 * 2**20
    model_glance_fs: Literal["ext4", "xfs"] | None = Field(
        default=None, description="Filled in by cowbench when a run starts: what the model "
        "allocated the Glance store's files as (the run directory's filesystem, where the "
        "real backend keeps them); not written by hand.")


OpKind = Literal["boot", "run", "snapshot", "migrate", "resize", "confirm", "delete"]
SnapshotKind = Literal["live", "external", "internal"]
MigrateKind = Literal["cold", "live", "flatten"]


class Event(_Frozen):
    """One operation at time ``t``. Which keys apply depends on ``op``.

    - ``boot``: the VM starts from its image on its host (``vms[].host``), or where Nova's
      scheduler places it when it names none (NoValidHost where no host has room);
    - ``run``: the VM runs ``workload`` (default: its own) to completion;
    - ``snapshot``: ``kind`` live (Nova's: delta, flatten, upload), external (deepen the chain)
      or internal (``qemu-img snapshot -c``: clusters shared inside the disk file);
    - ``migrate``: to host ``to``; ``kind`` cold (copy the overlay as a file), live (block
      migration: only the top overlay's data), flatten (2012 Nova: ship the full image);
      until a cold or flatten migration is confirmed the VM neither migrates, resizes nor is
      snapshotted (VERIFY_RESIZE: :mod:`cowbench.nova.resize`);
    - ``resize``: the root disk grows to ``root_size``;
    - ``confirm``: a cold migration's source ``_resize`` directory is removed; refused when
      the VM awaits none (no cold or flatten migration or resize since its last confirm);
    - ``delete``: the VM's instance directory is removed (its base stays in the cache).
    """

    t: Seconds
    op: OpKind
    vm: Name
    workload: Name | None = None
    kind: str | None = None
    to: Name | None = None
    root_size: Bytes | None = None
    name: Name | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A kind of its op, refused at ``kind`` with the op's kinds listed (an op without
        kinds is the model's check: it takes no ``kind``)."""
        kinds = _KINDS.get(str(info.data.get("op")), ())
        if v is not None and kinds and v not in kinds:
            listed = ", ".join(repr(k) for k in kinds[:-1]) + f" or {kinds[-1]!r}"
            raise ValueError(f"Input should be {listed} (op {info.data['op']!r} has no kind "
                             f"{v!r})")
        return v

    @model_validator(mode="after")
    def _keys(self) -> Event:
        need = {"migrate": ("to",), "resize": ("root_size",)}.get(self.op, ())
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"op {self.op!r} needs {key!r}")
        takes = _OP_KEYS[self.op]
        extra = [k for k in ("workload", "kind", "to", "root_size", "name")
                 if getattr(self, k) is not None and k not in takes]
        if extra:  # never silently: a migrate's root_size reads as a resize
            reads = " and ".join(takes) + ", besides t, op and vm" if takes else "only t, op and vm"
            raise ValueError(f"op {self.op!r} takes no {_either(extra)} (it reads {reads})")
        return self


#: the kinds of the ops that have kinds (``op: snapshot`` and ``op: migrate``)
_KINDS: dict[str, tuple[str, ...]] = {"snapshot": ("live", "external", "internal"),
                                      "migrate": ("cold", "live", "flatten")}


def _either(keys: list[str]) -> str:
    quoted = [repr(k) for k in keys]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


#: the keys each op reads, besides t, op and vm
_OP_KEYS: dict[str, tuple[str, ...]] = {
    "boot": (), "run": ("workload",), "snapshot": ("kind", "name"), "migrate": ("to", "kind"),
    "resize": ("root_size",), "confirm": (), "delete": ()}


class Arrivals(_Frozen):
    """VMs that arrive as a Poisson process and live for a random time.

    The VMs are named ``<prefix>-1`` .. ``<prefix>-<count>``; each boots where Nova's scheduler
    places it (spread over DISK_GB; refused when nothing fits), runs ``workload`` once after
    booting, takes a snapshot every ``snapshot_every_s`` and migrates every ``migrate_every_s``
    (to the scheduler's best other host), and is deleted when its lifetime ends. Arrivals and
    lifetimes are drawn as a fleet's (:mod:`cowbench.nova.draws`).
    """

    prefix: Name
    count: int = Field(ge=1, le=MAX_ARRIVALS)
    rate_per_s: float = Field(gt=0)
    image: Name
    flavor: Name | None = None
    root_size: Bytes | None = None
    workload: Name | None = None
    lifetime: Lifetime | None = None
    snapshot_every_s: Seconds | None = Field(default=None, gt=0)
    snapshot_kind: SnapshotKind = "live"
    migrate_every_s: Seconds | None = Field(default=None, gt=0)
    migrate_kind: MigrateKind = "cold"

    @model_validator(mode="after")
    def _chain_moves(self) -> Arrivals:
        if (self.snapshot_every_s is not None and self.snapshot_kind == "external"
                and self.migrate_every_s is not None and self.migrate_kind == "live"):
            raise ValueError("external snapshots with live migrations: a live migration "
                             "copies only the disk's top layer, and the layers the snapshots "
                             "leave below it would not reach the destination (migrate_kind "
                             "cold or flatten)")
        return self


class Timeline(_Frozen):
    """Operations over time, and how often every figure is sampled between them."""

    sample_interval_s: Seconds | None = Field(default=None, gt=0)
    end_s: Seconds | None = Field(default=None, gt=0)
    events: list[Event] = Field(default_factory=list)
    arrivals: list[Arrivals] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounded(self) -> Timeline:
        """Periodic operations end, and the operations are counted before they are made."""
        ops = float(len(self.events))
        for j, a in enumerate(self.arrivals):
            periodic = [e for e in (a.snapshot_every_s, a.migrate_every_s) if e is not None]
            if periodic and a.lifetime is None and self.end_s is None:
                raise ValueError(f"arrivals[{j}]: snapshot_every_s and migrate_every_s need a "
                                 "lifetime or timeline.end_s (else they never end)")
            horizon = min(self.end_s or math.inf, _longest_life(a.lifetime))
            ops += a.count * (3 + sum(horizon / e for e in periodic))
        if ops > MAX_TIMELINE_OPS:
            raise ValueError(f"about {ops:.3g} operations (events, and each arrival's boot, "
                             "run, snapshots, migrations and delete); at most "
                             f"{MAX_TIMELINE_OPS}: lengthen the intervals or shorten end_s")
        return self


def _longest_life(lt: Lifetime | None) -> float:
    """A lifetime's bound for counting operations: its mean for an exponential one (the
    expected count; the expansion itself stops at the hard cap)."""
    if lt is None:
        return math.inf
    return 2 * lt.mean_s if lt.distribution == "uniform" else lt.mean_s


class Op(BaseModel):
    """A concrete operation of the expanded timeline (events and processes merged)."""

    model_config = ConfigDict(frozen=True)

    index: int
    t: float
    op: OpKind
    vm: str
    workload: str | None = None
    kind: str | None = None
    to: str | None = None
    root_size: int | None = None
    name: str | None = None
    source: str = ""

    @property
    def entity(self) -> str:
        """The operation's own entity in the records: ``op:<index>-<op>-<vm>``."""
        return f"op:{self.index:04d}-{self.op}-{self.vm}"


#: ``ops.csv``'s columns (:func:`ops_csv`)
OPS_COLUMNS = ("entity", "index", "t_s", "op", "vm", "source", "event", "arrival")
_FROM = re.compile(r"timeline\.(events|arrivals)\[(\d+)\]$")


def ops_csv(ops: list[Op]) -> str:
    """A timeline run's ``ops.csv``: one row per operation, the join of its records (entity
    ``op:<index>-<op>-<vm>``) to the scenario. ``index`` is the operation's place in the order
    both backends apply them (time, then at one instant boot, run, confirm, snapshot,
    resize, migrate, delete, then the VMs' names: :data:`_ORDER`), zero-padded to 4 digits
    in the entity; it is not a position in ``timeline.events`` (three boots and runs before
    a confirm at one instant moved it), and operations also come from ``timeline.arrivals``
    and from ``vms`` (a VM without a boot event boots at t=0). ``source`` is the key path that
    made the operation (an automatic confirm: its migration's, with
    ``(resize_confirm_window_s)``); ``event`` its position in ``timeline.events`` and
    ``arrival`` its entry of ``timeline.arrivals`` where it is exactly that entry's, else
    empty."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(OPS_COLUMNS)
    for op in ops:
        m = _FROM.fullmatch(op.source)
        where = {"events": "", "arrivals": ""} if m is None else \
            {"events" if m[1] == "events" else "arrivals": m[2]}
        w.writerow([op.entity, op.index, repr(float(op.t)), op.op, op.vm, op.source,
                    where.get("events", ""), where.get("arrivals", "")])
    return out.getvalue()


def _arrival_ops(a: Arrivals, seed: int, group: int, end: float, source: str,
                 already: int = 0) -> list[dict[str, object]]:
    """Boot, run, snapshots, migrations and delete of each VM of one arrival group. Arrival
    times and lifetimes are :mod:`cowbench.nova.draws`' (group ``group`` of the seed's streams);
    the hosts are the scheduler's (``"choose"``: :mod:`cowbench.nova.scheduler`)."""
    from .nova.draws import arrival_times, lifetimes, streams  # numpy: not at validation

    rng = streams(seed, group)
    arrive = arrival_times(rng["arrivals"], a.rate_per_s, count=a.count, until=end).tolist()
    life = lifetimes(a.lifetime, rng["lifetimes"], a.count).tolist() if a.lifetime else []
    ops: list[dict[str, object]] = []
    for i, t in enumerate(arrive, start=1):
        vm = f"{a.prefix}-{i}"
        ops.append({"t": t, "op": "boot", "vm": vm, "choose": True})
        if a.workload:
            ops.append({"t": t, "op": "run", "vm": vm, "workload": a.workload})
        death = t + life[i - 1] if life else end
        for every, op, kind in ((a.snapshot_every_s, "snapshot", a.snapshot_kind),
                                (a.migrate_every_s, "migrate", a.migrate_kind)):
            if every is None:
                continue
            _room(already + len(ops) + (min(death, end) - t) / every, source)  # sized before made
            k = 1
            while t + k * every < min(death, end):
                ops.append({"t": t + k * every, "op": op, "vm": vm, "kind": kind,
                            "choose": True})
                k += 1
        if life and death < end:
            ops.append({"t": death, "op": "delete", "vm": vm})
    for entry in ops:
        entry["source"] = source
    return ops


class TimelineTooLarge(ValueError):
    """The timeline would expand to more than :data:`MAX_TIMELINE_OPS` operations."""


def _room(n: float, source: str) -> None:
    if not n <= MAX_TIMELINE_OPS:  # inf and NaN too
        raise TimelineTooLarge(f"{source}: more than {MAX_TIMELINE_OPS} operations; lengthen "
                               "the intervals, shorten the lifetime or set timeline.end_s")


#: what each strategy's disk allows besides boot, run, confirm and delete, as (op, kind)
#: pairs, in both backends: internal and external snapshots need a qcow2 top, block migration
#: (live) an overlay over the base, file operations a file on the host (an RBD clone is in
#: Ceph, and a reflink copy shares extents with its host's base)
_OVERLAY = frozenset({("snapshot", "live"), ("snapshot", "external"), ("snapshot", "internal"),
                      ("migrate", "cold"), ("migrate", "live"), ("migrate", "flatten"),
                      ("resize", None)})
STRATEGY_OPS: dict[str, frozenset[tuple[str, str | None]]] = {
    "qcow2_overlay": _OVERLAY,
    "resized_base": _OVERLAY,
    "snapshot_chain": _OVERLAY,
    "internal_snapshot": _OVERLAY - {("migrate", "live")},
    "full_copy": frozenset({("snapshot", "live"), ("migrate", "cold"), ("migrate", "flatten"),
                            ("resize", None)}),
    "reflink_copy": frozenset({("snapshot", "live")}),
    "rbd_clone": frozenset(),
}
#: strategies whose disk may stand on a qcow2 base (force_raw_images off): overlays, and RBD
#: clones (in Ceph, no _base)
OVER_ANY_BASE = frozenset({"qcow2_overlay", "snapshot_chain", "rbd_clone"})

#: the order of operations at one instant: a confirm before a snapshot, migration or resize
#: (the VM leaves VERIFY_RESIZE first, as in a fleet, where the confirm was booked first), a
#: snapshot before a migration
_ORDER = {"boot": 0, "run": 1, "confirm": 2, "snapshot": 3, "resize": 4, "migrate": 5,
          "delete": 6}


def expand_timeline(s: Scenario) -> list[Op]:
    """Every operation of the scenario, in the order both backends apply them.

    VMs listed in ``vms`` without a ``boot`` in the timeline boot at t=0 and run their workload
    then (the behaviour of a scenario without a timeline). Every ``boot`` names its host in
    ``to``: the VM's own ``host`` (pinned: Nova's forced host), or, for a VM that names none
    (arrivals, and VMs of ``vms`` without ``host``), the scheduler's choice
    (:mod:`cowbench.nova.scheduler`) against the claims standing at its boot; the boots of
    one instant are placed in the order of ``vms``. A VM the scheduler refuses
    (:func:`refused_arrivals`) has no operation at all. The scenario validation just
    expanded is not expanded again (:func:`timeline_plan`).
    """
    return timeline_plan(s)[0]


Expanded = tuple[list[Op], dict[int, str], list[tuple[str, float]]]
#: the last scenario :func:`check_timeline` expanded, and what it found: `cowbench validate`
#: counts the boots and refused arrivals of the scenario it just validated without a second
#: walk (0.8 s for 10,000 arrivals)
_checked: tuple[Scenario, Expanded] | None = None


def timeline_plan(s: Scenario) -> tuple[list[Op], list[tuple[str, float]]]:
    """:func:`expand_timeline` and :func:`refused_arrivals` in one walk of the scheduler (none,
    for the scenario validation just expanded)."""
    ops, _, refused = _checked[1] if _checked is not None and _checked[0] is s else _expand(s)
    return ops, refused


def refused_arrivals(s: Scenario) -> list[tuple[str, float]]:
    """The VMs the scheduler found no room for (NoValidHost), each with when it asked
    (its boot): arrivals, and VMs of ``vms`` that name no host; none of their operations
    happen."""
    if not scheduler_may_refuse(s):
        return []
    return timeline_plan(s)[1]


def boot_hosts(s: Scenario) -> dict[str, str]:
    """Where each VM of ``s`` boots (its first boot): its own ``host``, or the scheduler's
    choice for one that names none; VMs that never boot (refused, or arriving after the
    end) are not in it."""
    out: dict[str, str] = {}
    for op in timeline_plan(s)[0]:
        if op.op == "boot" and op.to is not None:
            out.setdefault(op.vm, op.to)
    return out


def scheduler_may_refuse(s: Scenario) -> bool:
    """Whether the scheduler places a VM of ``s`` (an arrival, or a VM of ``vms`` that names
    no host) where a host's DISK_GB is bounded (``capacity_bytes``): else nothing it places
    can be refused, and the scheduler need not be walked to know it."""
    tl = s.timeline
    placed = (tl is not None and bool(tl.arrivals)) or any(vm.host is None for vm in s.vms)
    return s.fleet is None and placed and any(h.capacity_bytes is not None for h in s.hosts)


def _expand(s: Scenario) -> Expanded:
    """The operations, the placement problems of forced hosts (by the operation's index), and
    the VMs the scheduler refused (NoValidHost).

    The scheduler walks the operations in time order, those of one instant in the order of
    :data:`_ORDER` and then of ``vms`` (Nova places the requests of one instant one after the
    other); they are applied in the order of :func:`_op_key`, the VMs' names (which orders a
    single host's simultaneous runs, unchanged since before the scheduler placed them)."""
    tl = s.timeline
    end = tl.end_s if tl is not None and tl.end_s is not None else float("inf")
    raw: list[dict[str, object]] = []
    if tl is not None:
        raw += [{**e.model_dump(), "source": f"timeline.events[{i}]"}
                for i, e in enumerate(tl.events)]
        for j, a in enumerate(tl.arrivals):
            raw += _arrival_ops(a, s.seed, j, end, f"timeline.arrivals[{j}]", len(raw))
    vms = {vm.name: vm for vm in s.vms}
    for r in raw:  # a boot event of a VM that names no host: the scheduler places it
        if r["op"] == "boot" and r["vm"] in vms and vms[str(r["vm"])].host is None:
            r["choose"] = True
    booted = {r["vm"] for r in raw if r["op"] == "boot"}
    for a in tl.arrivals if tl is not None else []:  # those arriving after the end never boot
        booted |= {f"{a.prefix}-{i}" for i in range(1, a.count + 1)}
    for i, vm in enumerate(s.vms):
        if vm.name not in booted:
            raw.append({"t": 0.0, "op": "boot", "vm": vm.name, "source": f"vms[{i}]",
                        "choose": vm.host is None})
            if vm.workload:
                raw.append({"t": 0.0, "op": "run", "vm": vm.name, "workload": vm.workload,
                            "source": f"vms[{i}]"})
    raw = [r for r in raw if float(str(r["t"])) <= end]
    raw += [c for c in auto_confirms(raw, s.nova.resize_confirm_window_s)
            if float(str(c["t"])) <= end]
    listed = {name: i for i, name in enumerate(vms)}
    raw.sort(key=lambda r: (*_op_key(r)[:2], listed.get(str(r["vm"]), len(listed)),
                            str(r["vm"])))
    raw, problems, refused = schedule_ops(s, raw)
    # placed in the order of vms, applied in the order of the names (see the docstring)
    order = sorted(range(len(raw)), key=lambda i: _op_key(raw[i]))
    at = {was: i for i, was in enumerate(order)}
    raw = [raw[i] for i in order]
    problems = {at[i]: why for i, why in problems.items()}
    # built from validated events and values made here: not validated again (for 10,000
    # arrivals that took 0.8 s of the scenario's validation)
    ops = [Op.model_construct(index=i, **cast(dict[str, Any], r)) for i, r in enumerate(raw)]
    return ops, problems, refused


def _op_key(r: dict[str, object]) -> tuple[float, int, str]:
    return float(str(r["t"])), _ORDER[str(r["op"])], str(r["vm"])


def nova_problems(s: Scenario) -> list[tuple[str, str]]:
    """Nova options a VM's strategy cannot follow: a non-raw base (``force_raw_images``
    off) under a disk that is not an overlay (:data:`OVER_ANY_BASE`)."""
    if s.nova.force_raw_images or s.fleet is not None:
        return []
    fmt = {i.name: i.format for i in s.images}
    kinds = {s.strategy_of(vm).kind for vm in s.vms if fmt.get(vm.image) != "raw"}
    kinds -= OVER_ANY_BASE
    if not kinds:
        return []
    return [("nova.force_raw_images", f"false (qcow2 bases in _base) is modelled for "
             f"{' and '.join(sorted(OVER_ANY_BASE))} disks; not {', '.join(sorted(kinds))}")]


def typed(op: Op) -> Operation:
    """The typed value of an expanded timeline's operation."""
    at = (op.index, op.t, op.vm, op.source)
    kind = op.kind or _DEFAULT_KIND.get(op.op, "")
    if op.op == "boot":
        return Boot(*at, host=op.to)
    if op.op == "run":
        return Run(*at, workload=op.workload)
    if op.op == "snapshot":
        return Snapshot(*at, kind=kind, name=op.name)
    if op.op == "migrate":
        return Migrate(*at, to=str(op.to), kind=kind)
    if op.op == "resize":
        assert op.root_size is not None
        return Resize(*at, root_size=op.root_size)
    return Confirm(*at) if op.op == "confirm" else Delete(*at)


_DEFAULT_KIND = {"snapshot": "live", "migrate": "cold"}


def check_timeline(s: Scenario) -> list[tuple[str, str]]:
    """Problems a timeline has that can be known before running it (key path, reason), in
    the order of their key paths (``timeline.events[2]`` before ``timeline.events[10]``).

    The operations are walked in time order through the scheduler's placement and Nova's state
    machine. Once Nova refuses one of a VM's operations (or a forced host has no room for it),
    the VM's later ones are not checked: their problems would follow from it (a confirm of a
    migration Nova refused, a run of a VM that never booted), so the refusal says so once
    instead; an operation of an unknown VM whose name is close to a VM's (``db1``, ``db-1``)
    names it, and that VM's later operations are not checked either (a confirm of the
    migration the typo lost). A run whose workload does not fit its disk is named and the walk
    goes on: Nova accepted it, and nothing after it depends on it."""
    global _checked
    try:
        expanded = _expand(s)
    except TimelineTooLarge as err:
        return [("timeline", str(err))]
    _checked = (s, expanded)
    ops, placement, _ = expanded
    problems = _stream_problems(s, ops) + _double_runs(ops)
    if problems:
        return _in_file_order(_after_end(s) + problems)
    problems = _after_end(s)  # the walk leaves them out, as the run would
    machine = nova_machine(s)  # the validator: Nova's state, nothing carried out
    refused: dict[str, int] = {}  # a VM whose operation was refused -> its problem's index
    later: set[str] = set()  # ... which has operations after it, not checked
    for op in ops:
        if op.vm in refused:
            later.add(op.vm)
            continue
        problem = placement.get(op.index)
        misfit = None
        if problem is None:
            answer = machine.apply(typed(op))
            problem, misfit = refusal(answer), _misfit(s, answer)
        if problem:  # Nova refuses it: the VM's state is not what its later operations expect
            meant = _meant(op.vm, machine.vms) if op.vm not in machine.vms else None
            if meant:  # a typo: the VM it meant misses this operation from now on
                problem += f" (did you mean {meant!r}?)"
                refused.setdefault(meant, len(problems))
            refused[op.vm] = len(problems)
        if problem or misfit:  # a workload that does not fit its disk changes nothing
            when = format_duration(op.t)
            problems.append((op.source, f"{op.op} of {op.vm!r} at t={when}: {problem or misfit}"))
    unchecked: dict[int, list[str]] = {}
    for vm in sorted(later):
        unchecked.setdefault(refused[vm], []).append(repr(vm))
    for i, vms in unchecked.items():
        where, why = problems[i]
        problems[i] = (where, f"{why} (the later operations of {' and '.join(vms)} were not "
                              "checked)")
    return _few_per_source(_in_file_order(problems))


def _meant(name: str, vms: Iterable[str]) -> str | None:
    """The VM an unknown name most likely misspells (``db1`` for ``db-1``), if one is close."""
    close = difflib.get_close_matches(name, list(vms), n=1, cutoff=0.75)
    return close[0] if close else None


def _after_end(s: Scenario) -> list[tuple[str, str]]:
    """Events after ``timeline.end_s``: the timeline ends before them, so they would never
    happen (a delete after the end would leave its VM's disk in every figure)."""
    tl = s.timeline
    if tl is None or tl.end_s is None:
        return []
    end = format_duration(tl.end_s)
    return [(f"timeline.events[{i}].t", f"t={format_duration(e.t)} is after timeline.end_s "
             f"({end}): the timeline ends before it, so the {e.op} of {e.vm!r} would never "
             "happen; give it an earlier t or a later end_s")
            for i, e in enumerate(tl.events) if e.t > tl.end_s]


_INDEX = re.compile(r"\[(\d+)\]")


def _in_file_order(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``problems`` ordered by key path, each list index as a number (``events[2]`` before
    ``events[10]``); the problems of one key path keep their order."""
    def key(problem: tuple[str, str]) -> list[tuple[str, int]]:
        parts = _INDEX.split(problem[0])  # names and indices in turn
        return [(p, 0) if k % 2 == 0 else ("", int(p)) for k, p in enumerate(parts)]
    return sorted(problems, key=key)


def _double_runs(ops: list[Op]) -> list[tuple[str, str]]:
    """Two runs of one VM at one instant: both backends would start both workloads together on
    one disk (the real one's second qemu-nbd finds the image locked). Named at the timeline's
    event rather than at ``vms[i]``, whose implicit t=0 run the event repeats."""
    first: dict[tuple[str, float], Op] = {}
    out = []
    for op in ops:
        if op.op != "run" or first.setdefault((op.vm, op.t), op) is op:
            continue
        here, other = first[(op.vm, op.t)].source, op.source
        if not other.startswith("vms["):
            here, other = other, here
        why = (f"{other}: a VM without a boot event boots and runs its workload at t=0; drop "
               "this run or boot the VM in the timeline" if other.startswith("vms[") else
               f"{other}; a disk runs one workload at a time: give one run a later t")
        out.append((here, f"vm {op.vm!r} already runs a workload at "
                          f"t={format_duration(op.t)} ({why})"))
    return out


def _misfit(s: Scenario, answer: list[Instruction]) -> str | None:
    """Why a run's workload cannot run on the disk it has then (a later ``run`` names any
    workload, and a resize may have grown the disk)."""
    for ins in answer:
        if isinstance(ins, RunWorkload):
            misfit = workload_misfit(s.workloads[ins.workload], ins.size)
            if misfit:
                return f"workload {ins.workload!r} {misfit}"
    return None


#: problems shown per key path of the file: an arrivals entry's VMs may all fail alike
FEW = 3


def _few_per_source(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first :data:`FEW` problems of each key path, then how many more it has."""
    count: dict[str, int] = {}
    out = []
    for where, why in problems:
        count[where] = count.get(where, 0) + 1
        if count[where] <= FEW:
            out.append((where, why))
    for where, n in count.items():
        if n > FEW:
            out.append((where, f"and {n - FEW} more problem(s) like these"))
    return out


def nova_machine(s: Scenario) -> Machine:
    """Nova's state machine for ``s``, with each strategy's limits (:data:`STRATEGY_OPS`)."""
    return Machine(s, _allowed)


def _stream_problems(s: Scenario, ops: list[Op]) -> list[tuple[str, str]]:
    """Samples and cache passes the schedule will make, counted before it makes them."""
    tl = s.timeline
    assert tl is not None
    end = tl.end_s if tl.end_s is not None else max((o.t for o in ops), default=0.0)
    out = []
    samples = ticks(tl.sample_interval_s, end)
    entities = len(s.vms) + len(s.hosts) + len(s.images)
    if samples > MAX_SAMPLES or samples * entities > MAX_SAMPLE_VALUES:
        out.append(("timeline.sample_interval_s", f"{samples} samples of {entities} "
                    f"entities over {end:g} s; at most {MAX_SAMPLES} samples and "
                    f"{MAX_SAMPLE_VALUES:.0e} sampled entities"))
    if ticks(s.nova.image_cache.manager_interval_s, end) > MAX_SAMPLES:
        out.append(("nova.image_cache.manager_interval_s", f"more than {MAX_SAMPLES} cache "
                    f"manager passes over {end:g} s"))
    return out


def _allowed(strategy: str, op: Operation) -> str | None:
    """Does the VM's strategy allow the operation (:data:`STRATEGY_OPS`)?"""
    if isinstance(op, Snapshot | Migrate):
        kind: str | None = op.kind
    elif isinstance(op, Resize):
        kind = None
    else:
        return None
    if (op.op, kind) in STRATEGY_OPS[strategy]:
        return None
    if isinstance(op, Snapshot):
        return f"a {kind} snapshot needs a qcow2 disk, not {strategy}"
    if kind == "live":
        return f"a live (block) migration needs an overlay over the base, not {strategy}"
    return f"a {strategy} disk cannot {op.op}: {_WHY[strategy]}"


_WHY = {"reflink_copy": "it shares its extents with its host's base (modelled on one host)",
        "rbd_clone": "it lives in Ceph, not on a host (model only)"}


Step = tuple[float, str, list[Op]]


def _ticks(step: float | None, end: float) -> list[float]:
    """Multiples of ``step`` up to ``end`` (none without a step or an end): the same floats
    as ``nova.clock.sample_times`` (one multiplication each), without numpy, so that
    ``validate`` walking the schedule (its open-files line) stays light."""
    n = ticks(step, end)
    if n > MAX_SAMPLES:  # validation refuses this; never build the list regardless
        raise TimelineTooLarge(f"{n} ticks of {step} s; at most {MAX_SAMPLES}")
    return [float(k) * (step or 0.0) for k in range(1, n + 1)]


def schedule(s: Scenario) -> list[Step]:
    """What both backends do, in order: ``("pass", t)`` the cache manager's pass, ``("sample",
    t)`` a sample of every figure, ``("ops", t, [...])`` the operations of one instant.

    The timeline ends at ``timeline.end_s``, else at its last operation. A pass and a sample
    falling at the same instant as operations come before them.
    """
    ops = expand_timeline(s)
    tl = s.timeline
    last = max((o.t for o in ops), default=0.0)
    end = tl.end_s if tl is not None and tl.end_s is not None else last
    clock = clock_ticks(_ticks(s.nova.image_cache.manager_interval_s, end),
                        _ticks(tl.sample_interval_s if tl else None, end))
    steps = [(t, kind, "pass" if kind == PASS else "sample", list[Op]()) for t, kind in clock]
    for t, group in itertools.groupby(ops, key=lambda o: o.t):
        steps.append((t, 2, "ops", list(group)))
    steps.sort(key=lambda x: (x[0], x[1]))
    return [(t, kind, group) for t, _, kind, group in steps]


def workload_runs(s: Scenario) -> list[tuple[str, str, int]]:
    """Every workload run of the scenario's timeline, in the order of ``vms`` (then time):
    ``(VM, workload name, the VM's disk size in bytes then)``, each once."""
    return list(run_times(s))


def run_ops(s: Scenario) -> list[tuple[Op, RunWorkload]]:
    """Every workload run of the expanded timeline, in order: its operation and what it runs
    (the machine's ``RunWorkload``)."""
    machine = nova_machine(s)  # what each run runs: the machine's RunWorkload
    return [(op, run) for op in expand_timeline(s) for run in machine.apply(typed(op))
            if isinstance(run, RunWorkload)]


def run_times(s: Scenario) -> dict[tuple[str, str, int], list[float]]:
    """:func:`workload_runs`, each with the instants it starts at (a VM may run the same
    workload on the same disk several times)."""
    index = {vm.name: i for i, vm in enumerate(s.vms)}
    out: dict[tuple[str, str, int], list[float]] = {}
    first: dict[tuple[str, str, int], int] = {}
    for op, run in run_ops(s):
        key = (run.vm, run.workload, run.size)
        first.setdefault(key, index[run.vm])
        out.setdefault(key, []).append(op.t)
    return {k: out[k] for k in sorted(out, key=lambda k: first[k])}


def stream_key(s: Scenario, vm: VM, workload: str, disk: int, run: int | None = None) -> str:
    """Whose exact stream ``traces[key]`` holds: the VM's name for its own workload on its own
    disk, ``<vm>:<workload>:<disk bytes>`` for any other run of a timeline (no name has a
    ``:``); ``run``: the VM's run number, for a workload seeded per run
    (``cowbench.runseed``), whose every run after its first takes a stream of its own:
    ``<key>@<run>`` (the first keeps the plain key: run.json's ``offsets`` of a VM that runs
    once is under its name, whatever its seeding)."""
    key = vm.name if workload == vm.workload and disk == s.root_size(vm) else \
        f"{vm.name}:{workload}:{disk}"
    return key if not run else f"{key}@{run}"


def batches(ops: list[Op]) -> list[tuple[bool, list[Op]]]:
    """Operations of one instant in order, consecutive workload runs batched (they run
    together): ``[(is_run, ops), ...]``."""
    return [(is_run, list(g)) for is_run, g in itertools.groupby(ops, key=lambda o: o.op == "run")]
