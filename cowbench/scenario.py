"""The scenario: one validated, frozen description that both backends run.

A scenario names hosts, base images, a copy-on-write strategy, fio workloads and the VMs that
run them. Files use human units (``64KiB``, ``10m``); once loaded, every size is bytes and every
time is seconds, every default is filled in, and the content hash is the scenario's id
(STYLE.md points 2-3). Unknown keys are refused everywhere (``extra="forbid"``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ScenarioError
from .fleet import Fleet, fleet_problems
from .units import is_power_of_two, parse_duration, parse_size

SCHEMA_VERSION = 1

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Host(_Frozen):
    """A compute host: its own image cache (``_base``) and instance directories."""

    name: Name
    storage_dir: str | None = Field(
        default=None,
        description="Real backend: directory holding this host's instances path "
        "(default: inside the run directory's work/).",
    )


class Extent(_Frozen):
    offset: Bytes
    length: Bytes = Field(gt=0)


class Synthetic(_Frozen):
    """Generated content: these extents hold data (a deterministic pattern), the rest is zero."""

    data: list[Extent] = Field(min_length=1)


class Image(_Frozen):
    """A base image as uploaded to Glance: generated (``synthetic``) or a file (``path``)."""

    name: Name
    virtual_size: Bytes | None = Field(default=None, gt=0)
    format: Literal["qcow2", "raw"] = "qcow2"
    synthetic: Synthetic | None = None
    path: str | None = None
    data_map: list[Extent] | None = Field(
        default=None,
        description="Where a path image holds data, as `qemu-img map` reported when the scenario "
        "was resolved; filled in by cowbench, not written by hand.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Image:
        if (self.synthetic is None) == (self.path is None):
            raise ValueError("give exactly one of 'synthetic' (generated content) or 'path'")
        if self.synthetic is not None:
            if self.virtual_size is None:
                raise ValueError("a synthetic image needs 'virtual_size'")
            spans = sorted((e.offset, e.offset + e.length) for e in self.synthetic.data)
            for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
                if s1 < e0:
                    raise ValueError(f"synthetic data extents overlap at offset {s1}")
            if spans[-1][1] > self.virtual_size:
                raise ValueError(
                    f"synthetic data ends at {spans[-1][1]}, past virtual_size {self.virtual_size}"
                )
            for s, e in spans:
                if s % 512 or e % 512:
                    raise ValueError("synthetic data extents must be multiples of 512 bytes")
        return self

    def data_extents(self) -> list[tuple[int, int]]:
        """Sorted ``(offset, length)`` pairs where the image holds data."""
        source = self.synthetic.data if self.synthetic is not None else self.data_map
        assert source is not None, "resolve path images (cowbench.resolve) before asking"
        return sorted((e.offset, e.length) for e in source)


class Strategy(_Frozen):
    """How each VM's root disk is made from the cached base.

    ``qcow2_overlay`` is Nova's default (a qcow2 file backed by the raw base in ``_base``);
    ``full_copy`` is Nova's Flat backend (a sparse copy of the base, resized to the flavor).
    """

    kind: Literal["qcow2_overlay", "full_copy"] = "qcow2_overlay"
    cluster_size: Bytes = 65536
    refcount_bits: int = 16

    @field_validator("cluster_size")
    @classmethod
    def _cluster(cls, v: int) -> int:
        if not is_power_of_two(v) or not MIN_CLUSTER <= v <= MAX_CLUSTER:
            raise ValueError(f"cluster_size must be a power of two from 512 B to 2 MiB, got {v}")
        return v

    @field_validator("refcount_bits")
    @classmethod
    def _refbits(cls, v: int) -> int:
        if v != 16:
            raise ValueError("only refcount_bits=16 (QEMU's default) is modelled so far")
        return v


RW = Literal["read", "write", "randread", "randwrite", "rw", "readwrite", "randrw"]


class Workload(_Frozen):
    """One fio job, in fio's own option names and meanings (fio HOWTO).

    Sizes in bytes and times in seconds once loaded. ``size`` defaults to the rest of the disk
    after ``offset``; ``io_size`` to ``size``. Each of ``numjobs`` clones runs the whole job.
    """

    rw: RW = "randwrite"
    bs: Bytes = 4096
    iodepth: int = Field(default=1, ge=1, le=1024)
    numjobs: int = Field(default=1, ge=1, le=64)
    size: Bytes | None = Field(default=None, gt=0)
    offset: Bytes = 0
    io_size: Bytes | None = Field(default=None, gt=0)
    runtime: Seconds | None = Field(default=None, gt=0)
    time_based: bool = False
    rate_iops: int | None = Field(default=None, gt=0)
    rwmixread: int = Field(default=50, ge=0, le=100)
    norandommap: bool = False
    random_generator: Literal["tausworthe", "lfsr", "tausworthe64"] = "tausworthe"
    randseed: int | None = Field(default=None, ge=0, lt=2**64)
    randrepeat: bool = True

    @field_validator("bs")
    @classmethod
    def _bs(cls, v: int) -> int:
        if v <= 0 or v % 512:
            raise ValueError(f"bs must be a positive multiple of 512 bytes, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if self.time_based and self.runtime is None:
            raise ValueError("time_based needs a runtime")
        if self.offset % self.bs:
            raise ValueError("offset must be a multiple of bs")
        return self

    @property
    def is_random(self) -> bool:
        return self.rw.startswith("rand")

    @property
    def read_fraction(self) -> float:
        if self.rw in ("read", "randread"):
            return 1.0
        if self.rw in ("write", "randwrite"):
            return 0.0
        return self.rwmixread / 100.0


class VM(_Frozen):
    """A VM (or ``count`` of them, named ``NAME-1`` .. ``NAME-count`` once loaded)."""

    name: Name
    image: Name
    host: Name | None = None
    root_size: Bytes | None = Field(default=None, gt=0)
    workload: Name | None = None
    count: int = Field(default=1, ge=1, le=100_000)


class Device(_Frozen):
    """The model's first storage device: one queue shared by every VM on a host.

    A host I/O costs ``op_latency_s`` plus its bytes over the bandwidth; ``channels`` I/Os are
    served at once. Defaults are rough figures for a virtio disk on this project's CI machine
    (FACTS.md E13); ``cowbench calibrate`` will replace them with measured ones.
    """

    channels: int = Field(default=4, ge=1, le=1024)
    read_latency_s: Seconds = 80e-6
    write_latency_s: Seconds = 60e-6
    read_bandwidth_bytes_per_s: Bytes = 1_500 * 2**20
    write_bandwidth_bytes_per_s: Bytes = 1_000 * 2**20
    metadata_latency_s: Seconds = 20e-6


class RealOptions(_Frozen):
    """How the real backend exports disks (qemu-nbd flags, FACTS.md 3.1)."""

    cache: Literal["none", "writeback", "writethrough", "directsync", "unsafe"] = "none"
    aio: Literal["threads", "native", "io_uring"] = "threads"
    keep_images: bool = False

    @model_validator(mode="after")
    def _native_needs_direct(self) -> RealOptions:
        if self.aio == "native" and self.cache not in ("none", "directsync"):
            raise ValueError("aio=native requires cache=none or directsync (qemu-nbd refuses it)")
        return self


def _default_hosts() -> list[Host]:
    return [Host(name="host1")]


class Scenario(_Frozen):
    schema_version: Literal[1] = 1
    name: Name
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**63)
    duration: Seconds | None = Field(default=None, gt=0)
    hosts: list[Host] = Field(default_factory=_default_hosts, min_length=1)
    images: list[Image] = Field(min_length=1)
    strategy: Strategy = Strategy()
    workloads: dict[Name, Workload] = Field(default_factory=dict)
    vms: list[VM] = Field(default_factory=list)
    device: Device = Device()
    real: RealOptions = RealOptions()
    fleet: Fleet | None = Field(default=None, description="A fleet of VMs arriving and "
                                "leaving over the duration (cowbench.fleet), instead of vms.")

    @model_validator(mode="after")
    def _vms_or_fleet(self) -> Scenario:
        if not self.vms and self.fleet is None:
            raise ValueError("give 'vms' (at least one) or a 'fleet' section")
        return self

    @field_validator("vms", mode="before")
    @classmethod
    def _expand_counts(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for item in v:
            count = item.get("count", 1) if isinstance(item, dict) else 1
            if isinstance(count, int) and not isinstance(count, bool) and count > 1:
                for i in range(1, count + 1):
                    out.append({**item, "name": f"{item.get('name')}-{i}", "count": 1})
            else:
                out.append(item)
        return out

    # -- lookups ---------------------------------------------------------------------------
    def image(self, name: str) -> Image:
        return next(i for i in self.images if i.name == name)

    def host_of(self, vm: VM) -> Host:
        name = vm.host or self.hosts[0].name
        return next(h for h in self.hosts if h.name == name)

    def root_size(self, vm: VM) -> int:
        size = vm.root_size or self.image(vm.image).virtual_size
        assert size is not None, "resolve path images before asking for sizes"
        return size

    def workload_of(self, vm: VM) -> Workload | None:
        return self.workloads[vm.workload] if vm.workload else None

    @property
    def scenario_id(self) -> str:
        return scenario_hash(self)


def scenario_hash(s: Scenario) -> str:
    """Content hash of the resolved scenario: its id in every result."""
    blob = json.dumps(s.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in ("int", "str"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    out = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        out.append((_loc(tuple(e["loc"])), msg))
    return out


def _cross_check(s: Scenario) -> list[tuple[str, str]]:
    """Problems pydantic cannot see: references between sections, duplicate names, sizes."""
    problems: list[tuple[str, str]] = []
    for section, names in (("hosts", [h.name for h in s.hosts]),
                           ("images", [i.name for i in s.images]),
                           ("vms", [v.name for v in s.vms])):
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                problems.append((f"{section}[{i}].name", f"duplicate name {n!r}"))
            seen.add(n)
    images = {i.name: i for i in s.images}
    hosts = {h.name for h in s.hosts}
    for i, vm in enumerate(s.vms):
        where = f"vms[{i}]"
        if vm.image not in images:
            problems.append((f"{where}.image", f"no image named {vm.image!r}"))
        if vm.host is not None and vm.host not in hosts:
            problems.append((f"{where}.host", f"no host named {vm.host!r}"))
        if vm.workload is not None and vm.workload not in s.workloads:
            problems.append((f"{where}.workload", f"no workload named {vm.workload!r}"))
        img = images.get(vm.image)
        if img is not None and img.virtual_size and vm.root_size is not None:
            if vm.root_size < img.virtual_size:
                problems.append((f"{where}.root_size",
                                 f"{vm.root_size} is smaller than image {img.name!r} "
                                 f"({img.virtual_size}); Nova refuses this "
                                 "(FlavorDiskSmallerThanImage)"))
        wl = s.workloads.get(vm.workload or "")
        disk = vm.root_size or (img.virtual_size if img else None)
        if wl is not None and disk is not None:
            end = wl.offset + (wl.size or 0)
            if wl.offset >= disk or end > disk:
                problems.append((f"{where}.workload",
                                 f"workload {vm.workload!r} spans [{wl.offset}, "
                                 f"{end or disk}) but the disk is {disk} bytes"))
    return problems


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a mapping into a :class:`Scenario`, or raise :class:`ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError(source, [("", "the file must hold a mapping (key: value) at the top")])
    try:
        s = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(source, _problems(err)) from None
    problems = _cross_check(s) + fleet_problems(s)
    if problems:
        raise ScenarioError(source, problems)
    return s


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file. Every problem names its key path."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ScenarioError(str(p), [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(str(p), [("", f"cannot read: {err}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ScenarioError(str(p), [("", f"not valid YAML: {where}{problem}")]) from None
    return parse_scenario(data, str(p))


def dump_scenario(s: Scenario) -> str:
    """The resolved scenario as YAML (defaults filled, bytes and seconds)."""
    return yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False)
