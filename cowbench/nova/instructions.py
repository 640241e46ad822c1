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
