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


@dataclass(frozen=True)
class Base:
    """A file in a host's ``_base``: an image's base, or (``size``) its copy resized to
    ``size`` bytes (``<sha1>_<size>``, Nova's Qcow2 backend before Dec 2012, FACTS.md 1.1)."""

    image: str
    size: int | None = None

    @property
    def resized(self) -> bool:
        return self.size is not None


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
    ``dst``'s ``backing`` (None: it names no base)."""

    vm: str
    src: str
    dst: str
    transport: str
    backing: Base | None = None


@dataclass(frozen=True)
class BlockCopy(Instruction):
    """A live (block) migration: an empty overlay on ``dst``'s ``backing``, then only the
    top overlay's clusters."""

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
