"""The scenario: one validated, frozen description that both backends run.

A scenario names hosts, base images, a copy-on-write strategy, fio workloads and the VMs that
run them. Files use human units (``64KiB``, ``10m``); once loaded, every size is bytes and every
time is seconds, every default is filled in, and the content hash is the scenario's id
(STYLE.md points 2-3). Unknown keys are refused everywhere (``extra="forbid"``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .bounds import MAX_ARRIVALS, MAX_VMS, exact_problems, too_many_vms
from .errors import ScenarioError
from .fleet import Fleet, fleet_problems
from .jobopts import as_written, expand_scenario, job_file_of
from .lifecycle import Flavor, Nova, Timeline, check_timeline, nova_problems
from .nova.schema import BothSpellings, host_disk_problems
from .oldkeys import upgrade
from .profile import PerfParams
from .safeload import load_yaml_file
from .schema_base import Bytes, Frozen, Name, Seconds
from .storage_schema import (
    MAX_CLUSTER,
    MAX_HOSTS,
    MIN_CLUSTER,
    MIN_EXT_L2_CLUSTER,
    QCOW_MAX_L1_ENTRIES,
    SYSTEM_TREES,
    Extent,
    Host,
    Image,
    Strategy,
    Synthetic,
    in_system_tree,
)
from .units import format_bytes
from .workload_schema import RW, Replaced, Workload, WorkloadProblem, workload_misfit

SCHEMA_VERSION = 1


class VM(Frozen):
    """A VM (or ``count`` of them, named ``NAME-1`` .. ``NAME-count`` once loaded)."""

    name: Name
    image: Name
    host: Name | None = Field(
        default=None, description="The host this VM is pinned to (Nova's forced host); "
        "without one, Nova's scheduler places it when it boots, as an arrival.")
    flavor: Name | None = None
    root_size: Bytes | None = Field(default=None, gt=0)
    workload: Name | None = None
    count: int = Field(default=1, ge=1, le=MAX_VMS)
    strategy: Strategy | None = Field(
        default=None, description="This VM's own strategy (default: the scenario's), so one "
        "scenario can compare cluster sizes or formats side by side.")

    @field_validator("workload", mode="before")
    @classmethod
    def _named(cls, v: Any) -> Any:
        if isinstance(v, dict):  # a job_file mapping was read before (cowbench.jobopts)
            raise ValueError("the name of a workload under `workloads` (fio options go "
                             "there, under a name), or {job_file: FILE}")
        return v


class Device(Frozen):
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
    profile: str | None = Field(
        default=None, description="A calibration profile (JSON from `cowbench calibrate`), "
        "relative to the scenario file: the model then predicts I/O with the profile's "
        "fitted parameters, and the figures above are not used.")
    calibrated: PerfParams | None = Field(
        default=None, description="The I/O model's parameters; filled from `profile` when "
        "the scenario is resolved (a run's scenario.yaml keeps the ones it used).")


class RealOptions(Frozen):
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


class Scenario(Frozen):
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
    nova: Nova = Nova()
    flavors: list[Flavor] = Field(default_factory=list)
    timeline: Timeline | None = None

    @model_validator(mode="before")
    @classmethod
    def _arrival_vms(cls, data: Any) -> Any:
        """VMs that arrive through ``timeline.arrivals`` join ``vms`` (no ``host``: the
        scheduler places each when it boots, ``cowbench.nova.scheduler``)."""
        if not isinstance(data, dict):
            return data
        too_many = too_many_vms(data)  # on the file's own counts, before any expansion
        if too_many:
            raise ValueError(too_many)
        tl = data.get("timeline")
        arrivals = tl.get("arrivals") if isinstance(tl, dict) else None
        if not isinstance(arrivals, list) or not isinstance(data.get("vms", []), list):
            return data
        vms = list(data.get("vms", []))
        names = {v.get("name") for v in vms if isinstance(v, dict)}
        for a in arrivals:
            if not isinstance(a, dict) or not isinstance(a.get("count"), int) or \
                    not 0 < a["count"] <= MAX_ARRIVALS:  # over the cap: its key reports it
                continue
            for i in range(1, a["count"] + 1):
                name = f"{a.get('prefix')}-{i}"
                if name not in names:
                    vm = {"name": name, "image": a.get("image")}
                    vm.update({k: a[k] for k in ("flavor", "root_size", "workload") if a.get(k)})
                    vms.append(vm)
        return {**data, "vms": vms}
    fleet: Fleet | None = Field(default=None, description="A fleet of VMs arriving and "
                                "leaving over the duration (cowbench.fleet), instead of vms.")

    @model_validator(mode="after")
    def _vms_or_fleet(self) -> Scenario:
        if not self.vms and self.fleet is None:
            raise ValueError("vms: give at least one VM, or a 'fleet' section")
        return self

    @field_validator("vms", mode="before")
    @classmethod
    def _expand_counts(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for item in v:
            count = item.get("count", 1) if isinstance(item, dict) else 1
            if isinstance(count, int) and not isinstance(count, bool) and \
                    1 < count <= MAX_VMS:  # over the cap: not expanded, refused at its key
                for i in range(1, count + 1):
                    out.append({**item, "name": f"{item.get('name')}-{i}", "count": 1})
            else:
                out.append(item)
        return out

    @field_validator("hosts", mode="before")
    @classmethod
    def _expand_host_counts(cls, v: Any) -> Any:
        """``{name: host, count: 3}`` -> ``host-001``, ``host-002``, ``host-003``."""
        if not isinstance(v, list):
            return v
        counts = [_count(item, MAX_HOSTS) for item in v]
        if sum(counts) > MAX_HOSTS:
            raise ValueError(f"{sum(counts)} hosts in all; at most {MAX_HOSTS}")
        out: list[Any] = []
        for item, count in zip(v, counts, strict=True):
            if count == 1:
                out.append(item)
                continue
            width = max(3, len(str(count)))
            out += [{**item, "name": f"{item.get('name')}-{i:0{width}d}", "count": 1}
                    for i in range(1, count + 1)]
        return out

    # -- lookups ---------------------------------------------------------------------------
    def image(self, name: str) -> Image:
        return next(i for i in self.images if i.name == name)

    def host_of(self, vm: VM) -> Host:
        """The host ``vm`` names (pinned there), else the first: where a hand-made boot
        without a host goes. A VM that names none boots where the scheduler places it
        (:func:`cowbench.lifecycle.boot_hosts`), which this does not ask."""
        name = vm.host or self.hosts[0].name
        return next(h for h in self.hosts if h.name == name)

    def root_size(self, vm: VM) -> int:
        flavor = next((f.root for f in self.flavors if f.name == vm.flavor), None)
        size = vm.root_size or flavor or self.image(vm.image).virtual_size
        assert size is not None, "resolve path images before asking for sizes"
        return size

    def strategy_of(self, vm: VM) -> Strategy:
        return vm.strategy or self.strategy

    def model_only(self, vm: VM) -> bool:
        """True for VMs no real backend here can build (Ceph RBD clones)."""
        return self.strategy_of(vm).kind == "rbd_clone"

    def workload_of(self, vm: VM) -> Workload | None:
        return self.workloads[vm.workload] if vm.workload else None

    @property
    def scenario_id(self) -> str:
        return scenario_hash(self)


def _count(item: Any, cap: int) -> int:
    """An entry's ``count`` if it is one to expand (an integer from 2 to ``cap``), else 1 (an
    entry over the cap is refused at its own key)."""
    count = item.get("count", 1) if isinstance(item, dict) else 1
    ok = isinstance(count, int) and not isinstance(count, bool) and 1 < count <= cap
    return count if ok else 1


#: what a run fills in, not the user: left out of the id, so ``cowbench validate``'s id of a
#: file is its runs' (``hosts[].model_disks_fs``, decided where the run's disks land, and
#: ``nova.model_glance_fs``, where its Glance store lands)
RUN_DECIDED: dict[str, Any] = {"hosts": {"__all__": {"model_disks_fs"}},
                               "nova": {"model_glance_fs"}}


def scenario_hash(s: Scenario) -> str:
    """Content hash of the resolved scenario, less what a run decides (:data:`RUN_DECIDED`):
    its id in every result."""
    dump = s.model_dump(mode="json", exclude=RUN_DECIDED)
    blob = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")
#: Longest key an error quotes whole: a longer one (a line of some file read as YAML) is cut,
#: so an "unknown key" error names the key without echoing the line.
MAX_SHOWN_KEY = 40


def _shown(part: str) -> str:
    if len(part) <= MAX_SHOWN_KEY:
        return part
    return f"{part[:MAX_SHOWN_KEY // 2]}...({len(part)} characters)"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in ("int", "str"):
            continue
        elif len(part) > MAX_SHOWN_KEY or not _PLAIN_KEY.fullmatch(part):
            out += f"[{_shown(part)!r}]"  # control characters, spaces, quotes: shown escaped
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """``(key path, reason)`` of each of pydantic's errors, relative to the validated model."""
    out = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        path = _loc(tuple(e["loc"]))
        problem = (e.get("ctx") or {}).get("error")
        if isinstance(problem, WorkloadProblem):  # the field it concerns
            path = f"{path}.{problem.fields[0]}" if path else problem.fields[0]
        out.append((path, msg))
    return out


def vm_keys(s: Scenario) -> dict[str, str]:
    """Each VM's key path in the scenario file, by name: ``vms[N]``, or for a VM that
    ``timeline.arrivals`` made, its entry's (``timeline.arrivals[N]``)."""
    arrived = _arrived(s)
    return {vm.name: arrived.get(vm.name, f"vms[{i}]") for i, vm in enumerate(s.vms)}


def _arrived(s: Scenario) -> dict[str, str]:
    """The VMs ``timeline.arrivals`` made (``Scenario._arrival_vms``: named after the entry,
    no host, its image), each with its entry's key path."""
    out: dict[str, tuple[str, str]] = {}
    for j, a in enumerate(s.timeline.arrivals if s.timeline is not None else []):
        for i in range(1, a.count + 1):
            out.setdefault(f"{a.prefix}-{i}", (f"timeline.arrivals[{j}]", a.image))
    return {vm.name: out[vm.name][0] for vm in s.vms
            if vm.name in out and vm.host is None and vm.image == out[vm.name][1]}


def _cross_check(s: Scenario) -> list[tuple[str, str]]:
    """Problems pydantic cannot see: references between sections, duplicate names, sizes."""
    problems: list[tuple[str, str]] = []
    flavors = {f.name for f in s.flavors}
    for section, names in (("flavors", [f.name for f in s.flavors]),
                           ("hosts", [h.name for h in s.hosts]),
                           ("images", [i.name for i in s.images]),
                           ("vms", [v.name for v in s.vms])):
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                problems.append((f"{section}[{i}].name", f"duplicate name {n!r}"))
            seen.add(n)
    problems += host_disk_problems(s.hosts)
    images = {i.name: i for i in s.images}
    hosts = {h.name for h in s.hosts}
    arrived = _arrived(s)
    flavor_at = {f.name: j for j, f in reversed(list(enumerate(s.flavors)))}  # the first
    for i, vm in enumerate(s.vms):
        # a VM of timeline.arrivals is not in the file: its problems are its entry's
        where = arrived.get(vm.name, f"vms[{i}]")
        if vm.image not in images:
            problems.append((f"{where}.image", f"no image named {vm.image!r}"))
        if vm.host is not None and vm.host not in hosts:
            problems.append((f"{where}.host", f"no host named {vm.host!r}"))
        if vm.workload is not None and vm.workload not in s.workloads:
            problems.append((f"{where}.workload", f"no workload named {vm.workload!r}"))
        if vm.flavor is not None and vm.flavor not in flavors:
            problems.append((f"{where}.flavor", f"no flavor named {vm.flavor!r}"))
        img = images.get(vm.image)
        root, root_key = _root_of(s, vm, where, flavor_at)
        disk_size = root or (img.virtual_size if img else None)
        cluster = s.strategy.cluster_size
        limit = QCOW_MAX_L1_ENTRIES * (cluster // 8) * cluster
        if s.strategy.kind == "qcow2_overlay" and disk_size and disk_size > limit:
            key = root_key if root else f"{where}.image"
            problems.append((key, f"a {format_bytes(disk_size)} qcow2 disk with "
                             f"{format_bytes(cluster)} clusters needs more than QEMU's 32 MiB "
                             f"L1 table (at most {format_bytes(limit)})"))
        if img is not None and img.virtual_size and root is not None and \
                root < img.virtual_size:
            problems.append((root_key, f"{_size_as_written(root)} is smaller than image "
                             f"{img.name!r} ({format_bytes(img.virtual_size)}); Nova refuses "
                             "this (FlavorDiskSmallerThanImage)"))
            continue  # its workload's fit on that disk follows from it: not checked
        wl = s.workloads.get(vm.workload or "")
        disk = root or (img.virtual_size if img else None)
        misfit = None if wl is None or disk is None else workload_misfit(wl, disk)
        if misfit:
            problems.append((f"{where}.workload", f"workload {vm.workload!r} {misfit}"))
    problems = list(dict.fromkeys(problems))  # an arrivals entry's VMs fail alike: once
    if not problems:
        problems += nova_problems(s)
    if not problems and s.timeline is not None:
        problems += check_timeline(s)
    return problems


def _root_of(s: Scenario, vm: VM, where: str, flavor_at: dict[str, int]
             ) -> tuple[int | None, str]:
    """The VM's root disk as written, if it is (its own ``root_size``, else its flavor's
    ``root``), and the key path it is written at (``flavors[j].root`` for a flavor's: one
    problem for every VM of the flavor)."""
    if vm.root_size is not None:
        return vm.root_size, f"{where}.root_size"
    j = flavor_at.get(vm.flavor or "")
    if j is None:
        return None, f"{where}.root_size"
    return s.flavors[j].root, f"flavors[{j}].root"


def _size_as_written(n: int) -> str:
    """A size for a problem: binary units; under 1 MiB, its bytes and that a bare number is
    bytes (``root: 4`` is 4 bytes, not 4 GiB)."""
    if n >= 1 << 20:
        return format_bytes(n)
    return f"{n} bytes (a bare number is bytes: write a unit, as in {n}GiB)"


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a mapping into a :class:`Scenario`, or raise :class:`ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError(source, [("", "the file must hold a mapping (key: value) at the top")])
    try:
        data = upgrade(data)
        s = Scenario.model_validate(data)
    except BothSpellings as err:
        raise ScenarioError(source, [(err.key, str(err))]) from None
    except ValidationError as err:
        raise ScenarioError(source, _as_written(validation_problems(err), data)) from None
    problems = _cross_check(s) + fleet_problems(s)
    if not problems and s.fleet is None:
        problems = exact_problems(s)
    if problems:
        raise ScenarioError(source, _as_written(problems, data))
    return s


_HOST_PATH = re.compile(r"hosts\[(\d+)\]")


def _as_written(problems: list[tuple[str, str]], data: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems at ``hosts[i]`` of the loaded (count-expanded) hosts named by the entry of the
    file that made host i (``hosts[1]`` for the fourth host after a ``count: 3``), once."""
    hosts = data.get("hosts")
    if not isinstance(hosts, list):
        return problems
    entry = [j for j, item in enumerate(hosts) for _ in range(_count(item, MAX_HOSTS))]
    out: dict[tuple[str, str], None] = {}
    for path, reason in problems:
        m = _HOST_PATH.match(path)
        if m and int(m.group(1)) < len(entry):
            path = f"hosts[{entry[int(m.group(1))]}]{path[m.end():]}"
        out[(path, reason)] = None
    return list(out)


def load_scenario(path: str | Path, resolved: bool = False) -> Scenario:
    """Read, parse and validate a scenario file. Every problem names its key path.

    The file is read and parsed under :mod:`cowbench.safeload`'s limits (a regular file of
    bounded size; YAML without duplicate keys, deep nesting or alias bombs); ``resolved``: a
    run directory's own scenario.yaml, with the larger caps its resolved form needs."""
    return scenario_of(load_yaml_file(path, "scenario", resolved), path)


def scenario_of(document: Any, path: str | Path) -> Scenario:
    """:func:`load_scenario` of the document already read from the file at ``path`` (its job
    files and includes are found beside it)."""
    origins: dict[str, str] = {}
    data = expand_scenario(document, Path(path).parent, origins)
    try:
        return parse_scenario(data, str(path))
    except ScenarioError as err:  # an option from a job file: named by its place there
        if not origins:
            raise
        problems = [(as_written(origins, k), r) for k, r in err.problems]
        files = {job_file_of(origins, k) for k, _ in problems}
        source = files.pop() if len(files) == 1 and None not in files else err.source
        raise ScenarioError(str(source), problems) from None


def as_written_in(path: str | Path, key: str) -> tuple[str, str]:
    """The file and key path a problem of the scenario at ``path`` is named by: a key that
    came from a job file (``workloads.w.read_iolog``) as the file's section and option."""
    origins: dict[str, str] = {}
    try:
        expand_scenario(load_yaml_file(path, "scenario"), Path(path).parent, origins)
    except ScenarioError:
        return str(path), key
    written = as_written(origins, key)
    return job_file_of(origins, written) or str(path), written


def dump_scenario(s: Scenario) -> str:
    """The resolved scenario as YAML (defaults filled, bytes and seconds)."""
    return yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False)


__all__ = ["MAX_CLUSTER", "MIN_CLUSTER", "MIN_EXT_L2_CLUSTER", "QCOW_MAX_L1_ENTRIES", "RW",
           "SCHEMA_VERSION", "SYSTEM_TREES", "VM", "Bytes", "Device", "Extent", "Host", "Image",
           "Name", "RealOptions", "Replaced", "Scenario", "Seconds", "Strategy", "Synthetic",
           "Workload", "dump_scenario", "in_system_tree", "load_scenario", "parse_scenario",
           "scenario_of",
           "scenario_hash"]
