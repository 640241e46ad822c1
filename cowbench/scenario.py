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
import warnings
from pathlib import Path, PurePosixPath
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

from . import randdist
from .bounds import MAX_ARRIVALS, MAX_VMS, exact_problems, too_many_vms
from .errors import ScenarioError
from .fleet import Fleet, fleet_problems
from .jobopts import CARRIED, expand_scenario
from .lifecycle import Flavor, Nova, Timeline, check_timeline, nova_problems
from .nova.schema import HostDisk
from .profile import PerfParams
from .safeload import load_yaml_file
from .units import is_power_of_two, parse_duration, parse_size

SCHEMA_VERSION = 1

Bytes = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024
#: QEMU's largest qcow2 L1 table (QCOW_MAX_L1_SIZE, block/qcow2.h): 32 MiB of 8-byte entries.
QCOW_MAX_L1_ENTRIES = (32 << 20) // 8
#: Trees a ``storage_dir`` may never be in: the system's own (real/world/containment.py).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                "/run", "/sbin", "/sys", "/usr")


def in_system_tree(path: PurePosixPath | Path) -> bool:
    """True for ``/`` itself and anything inside ``/etc``, ``/usr``, ``/proc``, ..."""
    p = PurePosixPath(path)
    return p == PurePosixPath("/") or any(
        p == PurePosixPath(t) or PurePosixPath(t) in p.parents for t in SYSTEM_TREES)
MIN_EXT_L2_CLUSTER = 16 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Host(HostDisk):
    """A compute host: its own image cache (``_base``) and instance directories, and its disk
    as placement sees it (``capacity_bytes``, ``disk_allocation_ratio``,
    ``reserved_host_disk_bytes``: :class:`cowbench.nova.schema.HostDisk`)."""

    name: Name
    storage_dir: str | None = Field(
        default=None,
        description="Real backend: directory holding this host's instances path "
        "(default: inside the run directory's work/). Absolute, no '..', outside system "
        "directories; cowbench writes only into a fresh cowbench-<run> directory inside it.",
    )
    profile: str | None = Field(
        default=None, description="This host's own calibration profile (JSON from `cowbench "
        "calibrate` on that host), relative to the scenario file: the model predicts this "
        "host's I/O with it, whatever device.profile says (`run --profile` overrides it).")
    calibrated: PerfParams | None = Field(
        default=None, description="This host's I/O model parameters; filled from `profile` "
        "when the scenario is resolved.")

    @field_validator("storage_dir")
    @classmethod
    def _contained(cls, v: str | None) -> str | None:
        if v is None:
            return v
        p = PurePosixPath(v)
        if "\0" in v or not p.is_absolute():
            raise ValueError(f"must be an absolute path, got {v!r}")
        if ".." in p.parts:
            raise ValueError(f"must not contain '..', got {v!r}")
        if in_system_tree(p):
            raise ValueError(f"{v!r} is a system directory; refused")
        return v


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
    path: str | None = Field(
        default=None, description="An image file; a relative path is relative to the "
        "scenario file's directory (made absolute when the scenario is resolved).")
    allow_untrusted_path: bool = Field(
        default=False,
        description="Use a `path` file owned by someone other than root or the invoking user "
        "(it is copied into the run's private tree before it is inspected).",
    )
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
    ``full_copy`` is Nova's Flat backend (a copy of the base, resized to the flavor; ``sparse``
    keeps its holes); ``resized_base`` is Nova before Dec 2012 (a full copy of the base per
    flavor size, ``_base/<sha1>_<size>``, shared by the host's overlays of that size, FACTS.md
    1.1); ``snapshot_chain`` stacks ``chain_depth`` qcow2 overlays (external snapshots), the
    VM writing to the top one; ``reflink_copy`` clones the raw base with ``cp --reflink`` on
    XFS (the real backend loop-mounts one, as root); ``rbd_clone`` is a Ceph RBD clone
    (model only: marked ``model_only`` in the records, the real backend skips such VMs);
    ``internal_snapshot``
    gives each VM a standalone qcow2 copy of the base (``qemu-img convert``) with an internal
    snapshot taken at once (``qemu-img snapshot -c``), so first writes copy clusters inside
    the file. The qcow2 knobs are
    ``qemu-img create -o`` options with QEMU's defaults (FACTS.md 1.3, 2.2):
    ``extended_l2`` (32 subclusters per cluster, clusters of 16 KiB or more), ``preallocation``
    (over a backing file QEMU allows it only with ``extended_l2``), ``refcount_bits``.
    """

    kind: Literal["qcow2_overlay", "full_copy", "resized_base", "snapshot_chain",
                  "internal_snapshot", "rbd_clone", "reflink_copy"] = "qcow2_overlay"
    cluster_size: Bytes = 65536
    refcount_bits: int = 16
    extended_l2: bool = False
    preallocation: Literal["off", "metadata", "falloc", "full"] = "off"
    sparse: bool = Field(default=True, description="full_copy: keep the base's holes "
                         "(cp --sparse=always) or write them out (cp --sparse=never)")
    chain_depth: int = Field(default=1, ge=1, le=1000, description="snapshot_chain: qcow2 "
                             "layers over the base, the VM's writable top included")
    object_size: Bytes = Field(default=4 << 20, description="rbd_clone: RBD object size "
                               "(the unit of copy-up), 4 MiB by default")
    clone_depth: int = Field(default=1, ge=1, le=16, description="rbd_clone: parents above the "
                             "clone (kernel RBD refuses more than 16)")
    max_clone_depth: int = Field(default=5, ge=1, le=16, description="rbd_clone: Cinder's "
                                 "rbd_max_clone_depth; a deeper clone is flattened")
    discard: Literal["ignore", "unmap"] = Field(
        default="ignore", description="The drive's discard option (Nova hw_disk_discard, "
        "qemu-nbd --discard): guest trims reach the image only with unmap")
    detect_zeroes: Literal["off", "on", "unmap"] = Field(
        default="off", description="The drive's detect-zeroes option (qemu-nbd "
        "--detect-zeroes): all-zero writes become zero clusters; unmap also frees")

    @field_validator("cluster_size")
    @classmethod
    def _cluster(cls, v: int) -> int:
        if not is_power_of_two(v) or not MIN_CLUSTER <= v <= MAX_CLUSTER:
            raise ValueError(f"cluster_size must be a power of two from 512 B to 2 MiB, got {v}")
        return v

    @field_validator("refcount_bits")
    @classmethod
    def _refbits(cls, v: int) -> int:
        if v not in (1, 2, 4, 8, 16, 32, 64):
            raise ValueError(f"refcount_bits must be a power of two from 1 to 64, got {v}")
        return v

    @model_validator(mode="after")
    def _qemu_rules(self) -> Strategy:
        if self.extended_l2 and self.cluster_size < MIN_EXT_L2_CLUSTER:
            raise ValueError("extended_l2 needs cluster_size of at least 16KiB (QEMU refuses "
                             "smaller)")
        if self.kind == "internal_snapshot" and (self.extended_l2 or self.refcount_bits < 2):
            raise ValueError("internal_snapshot is modelled without extended_l2 and needs "
                             "refcount_bits of 2 or more (a snapshot adds a reference)")
        if self.kind == "rbd_clone" and (not is_power_of_two(self.object_size)
                                         or not 4096 <= self.object_size <= 32 << 20):
            raise ValueError("object_size must be a power of two from 4 KiB to 32 MiB")
        if self.detect_zeroes == "unmap" and self.discard != "unmap":
            raise ValueError("detect_zeroes: unmap needs discard: unmap (qemu-nbd refuses it)")
        if self.detect_zeroes != "off" and (self.extended_l2 or self.kind in ("rbd_clone",
                                                                             "reflink_copy")):
            raise ValueError("detect_zeroes is modelled for qcow2 without extended_l2 and for "
                             "raw files only")
        if self.chain_depth > 1 and self.kind != "snapshot_chain":
            raise ValueError("chain_depth applies to kind: snapshot_chain only")
        if self.preallocation != "off" and not self.extended_l2:
            raise ValueError("preallocation over a backing file needs extended_l2 (QEMU: "
                             "'Backing file and preallocation can only be used at the same "
                             "time if extended_l2 is on')")
        return self


RW = Literal["read", "write", "randread", "randwrite", "rw", "readwrite", "randrw", "trim",
             "randtrim", "trimwrite"]


class Replaced(_Frozen):
    """A job-file option the backend set itself (cowbench.jobopts.REPLACED says why)."""

    option: str
    value: str | None = None
    reason: str


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
    verify: Literal["crc32c", "crc32c-intel", "md5", "sha1", "sha256", "sha512",
                    "xxhash"] | None = Field(
        default=None,
        description="fio's verify: each written block carries a checksum, and (with do_verify) "
        "fio reads every block back after the write phase and checks it. Write jobs only.",
    )
    do_verify: bool = True
    random_distribution: str = Field(
        default="random", description="fio's random_distribution: random, zipf:THETA, "
        "pareto:H, normal:DEV (or gauss), zoned:..., zoned_abs:... (fio HOWTO)")
    bssplit: str | None = Field(
        default=None, description="fio's bssplit, e.g. '4k/50:64k/50' (sizes and percentages)")
    loops: int = Field(default=1, ge=1, le=1_000_000)
    zero_buffers: bool = Field(default=False, description="fio's zero_buffers: write all-zero "
                               "data (what detect_zeroes acts on)")
    offsets: Literal["auto", "model", "fio", "iolog"] = Field(
        default="auto", description="Where the model gets the offsets: 'auto' asks fio itself "
        "for the exact stream (ioengine=null, same options) when fio is installed, else the "
        "model generates them; 'fio' always asks fio; 'model' generates them (fio 3.33's "
        "generators and algorithms, sim/workload/fio.py); 'iolog' reads read_iolog (set by it).")
    read_iolog: str | None = Field(
        default=None, description="A fio iolog (v2 or v3) to replay instead of generating I/O; "
        "the real backend hands it to fio, the model applies it.")
    write_iolog: bool = Field(
        default=False, description="Real backend: record the I/Os fio issued (under raw/), so "
        "`cowbench repredict` can re-run the model on them.")
    fio_extra: dict[str, str | None] = Field(
        default_factory=dict, description="fio options that shape only the offsets "
        "(offset_increment, bsrange ...), handed to fio as-is in the null-engine stream and "
        "the real run; offsets: auto or fio (filled from a job_file).")
    replaced: list[Replaced] = Field(
        default_factory=list, description="Job-file options the backend replaced with its "
        "own (ioengine, filename, direct, output ...): which, what value, why.")

    @field_validator("bs")
    @classmethod
    def _bs(cls, v: int) -> int:
        if v <= 0 or v % 512:
            raise ValueError(f"bs must be a positive multiple of 512 bytes, got {v}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _iolog_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("read_iolog") and "offsets" not in data:
            return {**data, "offsets": "iolog"}
        return data

    @field_validator("random_distribution")
    @classmethod
    def _distribution(cls, v: str) -> str:
        return randdist.check(v)

    @field_validator("bssplit")
    @classmethod
    def _bssplit(cls, v: str | None) -> str | None:
        if v is None:
            return v
        total = 0
        for part in v.split(":"):
            size, _, pct = part.partition("/")
            if parse_size(size) % 512:
                raise ValueError(f"bssplit sizes must be multiples of 512 bytes, got {size!r}")
            try:
                total += int(pct or 0)
            except ValueError:
                raise ValueError(f"bssplit percentage {pct!r} is not an integer") from None
        if total > 100:
            raise ValueError(f"bssplit percentages add up to {total}, more than 100")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if self.time_based and self.runtime is None:
            raise ValueError("time_based needs a runtime")
        if self.offset % self.bs and self.offsets == "model":
            raise ValueError("offset must be a multiple of bs for the model's own offsets "
                             "(offsets: auto or fio carry fio's own rounding)")
        if self.verify is not None and self.rw not in ("write", "randwrite"):
            raise ValueError("verify is for write jobs (rw: write or randwrite)")
        if self.verify is not None and self.time_based:
            raise ValueError("verify with time_based: the write phase ends with the runtime, "
                             "so fio would never read back; drop one")
        return self._offsets_source_ok()

    def _offsets_source_ok(self) -> Workload:
        unknown = sorted(set(self.fio_extra) - set(CARRIED) - {"bs", "blocksize"})
        for key in ("rw", "readwrite"):
            if key in self.fio_extra and ":" not in (self.fio_extra[key] or ""):
                unknown.append(f"{key} without ':N'")
        if unknown:
            raise ValueError(f"fio_extra carries only offset options ({', '.join(CARRIED)}, "
                             f"bs ranges), not {', '.join(unknown)}")
        if self.fio_extra and self.offsets not in ("fio", "auto"):
            raise ValueError(f"{', '.join(self.fio_extra)}: carried to fio only with "
                             "offsets: auto or fio (the model does not generate it)")
        if self.offsets == "iolog" and not self.read_iolog:
            raise ValueError("offsets: iolog needs read_iolog (a fio iolog file)")
        if self.read_iolog and self.offsets != "iolog":
            raise ValueError("read_iolog replays a trace: offsets must be 'iolog'")
        if self.read_iolog and self.numjobs != 1:
            raise ValueError("read_iolog replays the trace once; numjobs must be 1 (a clone "
                             "would replay it again)")
        if self.offsets == "model" and self.beyond_model:
            raise ValueError(f"{', '.join(self.beyond_model)} is not generated by the model's "
                             "offset generator; set offsets: auto or fio (exact, from fio)")
        return self

    @property
    def beyond_model(self) -> list[str]:
        """What of this job the model's own offset generator does not do (fio must)."""
        return [k for k, on in (
            ("rw=" + self.rw, "trim" in self.rw),
            ("bssplit", self.bssplit is not None), ("loops", self.loops != 1),
            ("offset (not a multiple of bs)", self.offset % self.bs != 0),
            *((k, True) for k in self.fio_extra)) if on]

    @property
    def verifies(self) -> bool:
        """True when fio reads back and checks every written block after the write phase."""
        return self.verify is not None and self.do_verify

    @property
    def is_random(self) -> bool:
        return self.rw.startswith("rand")

    @property
    def random_map(self) -> bool:
        """Whether fio keeps its random map (no block twice a pass): a random, uniform job
        without ``norandommap`` or lfsr (zipf, pareto and normal have none; zoned measured
        without one: sim/workload/fiooffs.py)."""
        return (self.is_random and not self.norandommap and self.random_generator != "lfsr"
                and self.random_distribution.partition(":")[0] == "random")

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
    flavor: Name | None = None
    root_size: Bytes | None = Field(default=None, gt=0)
    workload: Name | None = None
    count: int = Field(default=1, ge=1, le=MAX_VMS)
    strategy: Strategy | None = Field(
        default=None, description="This VM's own strategy (default: the scenario's), so one "
        "scenario can compare cluster sizes or formats side by side.")


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
    profile: str | None = Field(
        default=None, description="A calibration profile (JSON from `cowbench calibrate`), "
        "relative to the scenario file: the model then predicts I/O with the profile's "
        "fitted parameters, and the figures above are not used.")
    calibrated: PerfParams | None = Field(
        default=None, description="The I/O model's parameters; filled from `profile` when "
        "the scenario is resolved (a run's scenario.yaml keeps the ones it used).")


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

    @model_validator(mode="before")
    @classmethod
    def _one_image_cache(cls, data: Any) -> Any:
        """A fleet's old ``fleet.image_cache`` is the scenario's ``nova.image_cache``."""
        fleet = data.get("fleet") if isinstance(data, dict) else None
        if not isinstance(fleet, dict) or "image_cache" not in fleet:
            return data
        nova = data.get("nova") or {}
        if not isinstance(nova, dict) or "image_cache" in nova:
            raise ValueError("fleet.image_cache and nova.image_cache are the same settings "
                             "(fleet.image_cache is their old place): give only "
                             "nova.image_cache")
        warnings.warn("fleet.image_cache is now nova.image_cache (keys with _s for seconds)",
                      FutureWarning, stacklevel=2)
        rest = {k: v for k, v in fleet.items() if k != "image_cache"}
        return {**data, "fleet": rest, "nova": {**nova, "image_cache": fleet["image_cache"]}}

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

    # -- lookups ---------------------------------------------------------------------------
    def image(self, name: str) -> Image:
        return next(i for i in self.images if i.name == name)

    def host_of(self, vm: VM) -> Host:
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


def scenario_hash(s: Scenario) -> str:
    """Content hash of the resolved scenario: its id in every result."""
    blob = json.dumps(s.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in ("int", "str"):
            continue
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{part!r}]"  # control characters, spaces, quotes: shown escaped
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
        if vm.flavor is not None and vm.flavor not in flavors:
            problems.append((f"{where}.flavor", f"no flavor named {vm.flavor!r}"))
        img = images.get(vm.image)
        root = vm.root_size or next((f.root for f in s.flavors if f.name == vm.flavor), None)
        disk_size = root or (img.virtual_size if img else None)
        cluster = s.strategy.cluster_size
        limit = QCOW_MAX_L1_ENTRIES * (cluster // 8) * cluster
        if s.strategy.kind == "qcow2_overlay" and disk_size and disk_size > limit:
            key = "root_size" if root else "image"
            problems.append((f"{where}.{key}", f"a {disk_size}-byte qcow2 disk with "
                             f"{cluster}-byte clusters needs more than QEMU's 32 MiB L1 table "
                             f"(at most {limit} bytes)"))
        if img is not None and img.virtual_size and root is not None:
            if root < img.virtual_size:
                problems.append((f"{where}.root_size",
                                 f"{root} is smaller than image {img.name!r} "
                                 f"({img.virtual_size}); Nova refuses this "
                                 "(FlavorDiskSmallerThanImage)"))
        wl = s.workloads.get(vm.workload or "")
        disk = root or (img.virtual_size if img else None)
        if wl is not None and disk is not None and wl.bs > disk:
            problems.append((f"{where}.workload", f"workload {vm.workload!r} has bs {wl.bs}, "
                             f"larger than the {disk}-byte disk"))
        elif wl is not None and disk is not None:
            end = wl.offset + (wl.size or 0)
            if wl.offset >= disk or end > disk:
                problems.append((f"{where}.workload",
                                 f"workload {vm.workload!r} spans [{wl.offset}, "
                                 f"{end or disk}) but the disk is {disk} bytes"))
    if not problems:
        problems += nova_problems(s)
    if not problems and s.timeline is not None:
        problems += check_timeline(s)
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
    if not problems and s.fleet is None:
        problems = exact_problems(s)
    if problems:
        raise ScenarioError(source, problems)
    return s


def load_scenario(path: str | Path, resolved: bool = False) -> Scenario:
    """Read, parse and validate a scenario file. Every problem names its key path.

    The file is read and parsed under :mod:`cowbench.safeload`'s limits (a regular file of
    bounded size; YAML without duplicate keys, deep nesting or alias bombs); ``resolved``: a
    run directory's own scenario.yaml, with the larger caps its resolved form needs."""
    origins: dict[str, str] = {}
    data = expand_scenario(load_yaml_file(path, "scenario", resolved), Path(path).parent, origins)
    try:
        return parse_scenario(data, str(path))
    except ScenarioError as err:  # an option from a job file: named by its place there
        if not origins:
            raise
        raise ScenarioError(err.source, [(origins.get(k, k), r) for k, r in err.problems]) \
            from None


def dump_scenario(s: Scenario) -> str:
    """The resolved scenario as YAML (defaults filled, bytes and seconds)."""
    return yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False)
