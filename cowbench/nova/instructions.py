"""What Nova does, as typed values: the answer of :meth:`cowbench.nova.machine.Machine.apply`.

The machine decides (which base a boot needs and whether it is cached, which disk is made,
what a migration copies and how, when the cache manager removes a base); each executor carries
the instructions out by class (``functools.singledispatchmethod``): the model's world on its
allocation maps (``sim.world.timeline``), the real backend with real tools
(``real.world.lifecycle``), and the validator (``cowbench.lifecycle.check_timeline``), which
carries out nothing and only collects :class:`Refuse`. Pure values: no I/O, no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

#: the file system Nova formats an ephemeral base with (``mkfs -t ext4 -F -L ephemeral0``: the
#: default for a Linux guest, nova/privsep/fs.py), and the label it gives it
EPHEMERAL_FS = "ext4"
EPHEMERAL_LABEL = "ephemeral0"
#: a flavor's local disks beside the root disk: the kind of base each stands on -> its file
#: in the instance directory (nova/virt/libvirt/driver.py ``_create_image``)
LOCAL_DISKS = {"ephemeral": "disk.local", "swap": "disk.swap"}


@dataclass(frozen=True)
class Base:
    """A file in a host's ``_base``: an image's base, or (``size``) its copy resized to
    ``size`` bytes (``<sha1>_<size>``, Nova's Qcow2 backend before Dec 2012, FACTS.md 1.1);
    or (``kind`` ``ephemeral`` or ``swap``, ``image`` empty) the base of a flavor's local disk
    of ``size`` bytes, made on the host rather than fetched: ``ephemeral_<GiB>_ext4`` (a raw
    file formatted by mkfs) or ``swap_<MiB>`` (one made by mkswap)."""

    image: str
    size: int | None = None
    kind: str = "image"

    @classmethod
    def local(cls, kind: str, size: int) -> Base:
        """The base of a flavor's ``kind`` disk (``ephemeral`` or ``swap``) of ``size``."""
        assert kind in LOCAL_DISKS, kind
        return cls("", size, kind)

    @property
    def resized(self) -> bool:
        return self.kind == "image" and self.size is not None

    @property
    def is_local(self) -> bool:
        """The base of an ephemeral or swap disk (made on the host, never from Glance)."""
        return self.kind != "image"

    @property
    def name(self) -> str:
        """A local base's file name in ``_base``, as Nova names it (``_get_ephemeral_filename``:
        the size in GB and the file system; ``swap_<MB>``)."""
        assert self.is_local and self.size is not None
        if self.kind == "ephemeral":
            return f"ephemeral_{self.size >> 30}_{EPHEMERAL_FS}"
        return f"swap_{self.size >> 20}"

    @property
    def disk_name(self) -> str:
        """The file of the instance's disk standing on this local base."""
        return LOCAL_DISKS[self.kind]


@dataclass(frozen=True)
class Instruction:
    """One thing to carry out."""


@dataclass(frozen=True)
class Refuse(Instruction):
    """Nova refuses the operation, for ``reason`` (nothing else is carried out)."""

    reason: str


@dataclass(frozen=True)
class FetchBase(Instruction):
    """Fetch ``image`` from Glance into ``host``'s ``_base`` (converted to raw when
    ``force_raw_images``); its mtime is ``t``."""

    host: str
    image: str
    t: float


@dataclass(frozen=True)
class MakeResizedBase(Instruction):
    """Copy ``host``'s cached base of ``image`` into ``<sha1>_<size>``, grown to ``size``
    bytes; its mtime is ``t``."""

    host: str
    image: str
    size: int
    t: float


@dataclass(frozen=True)
class TouchBase(Instruction):
    """Set the mtime of ``host``'s ``base`` to ``t`` (a disk made from it, or the cache
    manager's pass finding it in use)."""

    host: str
    base: Base
    t: float


@dataclass(frozen=True)
class RemoveBase(Instruction):
    """The cache manager removes ``host``'s unused ``base``."""

    host: str
    base: Base
    t: float


@dataclass(frozen=True)
class MakeDisk(Instruction):
    """Make ``vm``'s root disk of ``size`` bytes on ``host`` by its strategy, over the host's
    base of ``image`` (an RBD clone: in Ceph)."""

    vm: str
    host: str
    image: str
    size: int


@dataclass(frozen=True)
class MakeLocalBase(Instruction):
    """Make ``host``'s local ``base`` in ``_base``: a sparse raw file of its size, formatted
    (``mkfs -t ext4 -F -L ephemeral0``) or made swap (``mkswap``), as Nova's
    ``_create_ephemeral`` and ``_create_swap`` do; its mtime is ``t``."""

    host: str
    base: Base
    t: float


@dataclass(frozen=True)
class MakeLocalDisk(Instruction):
    """Make ``vm``'s ``disk.local`` or ``disk.swap`` on ``host``: a qcow2 overlay of the local
    ``base``'s size over it, with the strategy's options (Nova's Qcow2 image backend)."""

    vm: str
    host: str
    base: Base


@dataclass(frozen=True)
class SnapshotInternal(Instruction):
    """``qemu-img snapshot -c name`` on ``vm``'s top file (clusters shared inside it)."""

    vm: str
    host: str
    name: str


@dataclass(frozen=True)
class SnapshotExternal(Instruction):
    """``vm``'s top file becomes ``disk.<name>``, a new qcow2 ``disk`` on top of the chain."""

    vm: str
    host: str
    name: str


@dataclass(frozen=True)
class UploadSnapshot(Instruction):
    """Nova's live snapshot: the chain flattened into a ``fmt`` image ``name`` in Glance."""

    vm: str
    host: str
    name: str
    fmt: str


@dataclass(frozen=True)
class CopyFiles(Instruction):
    """A cold migration: ``vm``'s files copied from ``src`` to ``dst`` by ``transport``
    (``ssh``: scp writes holes out; ``rsync``: ``--sparse``); the bottom file re-pointed at
    ``dst``'s ``backing`` (None: it names no base), its local disks at ``dst``'s bases."""

    vm: str
    src: str
    dst: str
    transport: str
    backing: Base | None = None


@dataclass(frozen=True)
class BlockCopy(Instruction):
    """A live (block) migration: an empty overlay on ``dst``'s ``backing``, then only the
    top overlay's clusters; its local disks made afresh over ``dst``'s bases (the guest's
    workloads never write them: none of their clusters moves)."""

    vm: str
    src: str
    dst: str
    backing: Base | None = None


@dataclass(frozen=True)
class FlattenCopy(Instruction):
    """A 2012 migration: the whole chain flattened into one qcow2 on ``dst`` (no base)."""

    vm: str
    src: str
    dst: str


@dataclass(frozen=True)
class KeepResize(Instruction):
    """``vm``'s instance directory on ``host`` becomes ``<uuid>_resize`` (until confirmed)."""

    vm: str
    host: str


@dataclass(frozen=True)
class RemoveResize(Instruction):
    """``vm``'s ``<uuid>_resize`` directory on ``host`` is removed."""

    vm: str
    host: str


@dataclass(frozen=True)
class RemoveInstance(Instruction):
    """``vm``'s instance directory on ``host`` is removed."""

    vm: str
    host: str


@dataclass(frozen=True)
class GrowDisk(Instruction):
    """``vm``'s root disk (its top file) grows to ``size`` bytes."""

    vm: str
    host: str
    size: int


@dataclass(frozen=True)
class RunWorkload(Instruction):
    """``vm`` runs ``workload`` on ``host`` (its device), on its disk of ``size`` bytes then
    (which exact stream it takes: ``cowbench.lifecycle.stream_key``)."""

    vm: str
    host: str
    workload: str
    size: int


Ins = TypeVar("Ins", bound=Instruction)


def only(instructions: list[Instruction], kind: type[Ins]) -> Ins:
    """The one instruction answering an operation, of ``kind``; a refusal raises ValueError
    with Nova's reason."""
    for ins in instructions:
        if isinstance(ins, Refuse):
            raise ValueError(f"Nova refuses the operation: {ins.reason}")
    (one,) = instructions
    assert isinstance(one, kind), f"expected {kind.__name__}, got {one!r}"
    return one


@dataclass(frozen=True)
class Sample(Instruction):
    """Every figure at ``t`` (None: at the end of the run, with the figures only the end
    has: data clusters, a reflink copy's shared bytes)."""

    t: float | None
