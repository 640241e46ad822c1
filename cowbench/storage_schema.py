"""Where VMs live and what their disks are made from: hosts, base images and the
copy-on-write strategy of a scenario (``hosts``, ``images``, ``strategy``), with QEMU's own
limits on qcow2 (FACTS.md 1.3, 2.2)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .nova.schema import HostDisk
from .profile import PerfParams
from .schema_base import Bytes, Frozen, Name
from .units import is_power_of_two

MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024
#: QEMU's largest qcow2 L1 table (QCOW_MAX_L1_SIZE, block/qcow2.h): 32 MiB of 8-byte entries.
QCOW_MAX_L1_ENTRIES = (32 << 20) // 8
#: Trees a ``storage_dir`` may never be in: the system's own (real/world/containment.py).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                "/run", "/sbin", "/sys", "/usr")
MIN_EXT_L2_CLUSTER = 16 * 1024
#: The deepest ``snapshot_chain``. Production chains reach 1000 files ("Virtual Disk Snapshot
#: Management at Scale", FACTS.md b.3 item 11). QEMU sets no limit of its own (7.2 opens 1100
#: layers), but each layer is a BlockDriverState with an open file: qemu-nbd over a chain of
#: 1000 holds 1011 descriptors and 143 MB, and opens it in 4.4 s (the work is quadratic in the
#: depth); at 1100 it fails with "Too many open files" under Linux's usual soft limit of 1024
#: descriptors. 1000 is both the deepest chain seen in production and the deepest one qemu-nbd
#: opens under that limit; the model builds it in about 5 s per VM.
MAX_CHAIN_DEPTH = 1000
#: Hosts a scenario may describe, counts included (a region of 10^4 compute hosts).
MAX_HOSTS = 10_000


def in_system_tree(path: PurePosixPath | Path) -> bool:
    """True for ``/`` itself and anything inside ``/etc``, ``/usr``, ``/proc``, ..."""
    p = PurePosixPath(path)
    return p == PurePosixPath("/") or any(
        p == PurePosixPath(t) or PurePosixPath(t) in p.parents for t in SYSTEM_TREES)


class Host(HostDisk):
    """A compute host: its own image cache (``_base``) and instance directories, and its disk
    as placement sees it (``capacity_bytes``, ``disk_allocation_ratio``,
    ``reserved_host_disk_bytes``: :class:`cowbench.nova.schema.HostDisk`). ``count: N`` (N > 1)
    describes N alike hosts, named ``NAME-001`` ... ``NAME-N`` once loaded (a fleet's pool)."""

    name: Name
    count: int = Field(default=1, ge=1, le=MAX_HOSTS, description="Alike hosts this entry "
                       "describes, named NAME-001 ... NAME-count once loaded (count > 1).")
    storage_dir: str | None = Field(
        default=None,
        description="Real backend: directory holding this host's instances path "
        "(default: inside the run directory's work/). Absolute, no '..', outside system "
        "directories; cowbench writes only into a fresh cowbench-<run> directory inside it.",
    )
    filesystem: Literal["auto", "ext4", "xfs"] = Field(
        default="auto", description="The filesystem the model allocates this host's disk "
        "files as: ext4, xfs (as XFS allocates the images QEMU makes, in 1 MiB pieces: QEMU's "
        "extent size hint), or auto: the one they are on when the run starts (its "
        "storage_dir's, else the run directory's; xfs in a run with a reflink_copy VM), ext4 "
        "with a warning for one the model has no allocator for (tmpfs, btrfs, ...). A run with "
        "the real backend refuses a value its disks are not on. A fleet is ext4.")
    model_disks_fs: Literal["ext4", "xfs"] | None = Field(
        default=None, description="Filled in by cowbench when a run starts, from filesystem: "
        "what the model allocated this host's disks as; not written by hand.")
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


class Extent(Frozen):
    offset: Bytes
    length: Bytes = Field(gt=0)


class Synthetic(Frozen):
    """Generated content: these extents hold data (a deterministic pattern), the rest is zero."""

    data: list[Extent] = Field(min_length=1)


class Image(Frozen):
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


class Strategy(Frozen):
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
    chain_depth: int = Field(default=1, ge=1, description="snapshot_chain: qcow2 layers over "
                             f"the base, the VM's writable top included (at most "
                             f"{MAX_CHAIN_DEPTH})")
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

    @field_validator("chain_depth")
    @classmethod
    def _depth(cls, v: int) -> int:
        if v > MAX_CHAIN_DEPTH:
            raise ValueError(
                f"chain_depth must be at most {MAX_CHAIN_DEPTH}, got {v}: production chains "
                f"reach {MAX_CHAIN_DEPTH} files, and qemu-nbd keeps one file open per layer "
                f"(1011 at depth {MAX_CHAIN_DEPTH}, under the usual limit of 1024)")
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
