"""The model's side of each copy-on-write strategy: the disk a VM gets, as an allocation map.

The real backend's counterpart is ``real/strategies.py``; the two must build the same thing.
"""

from __future__ import annotations

from cowbench.scenario import Strategy

from .disk import BaseData, Qcow2Image, RawImage
from .qcow2_ext import Qcow2ExtImage

Disk = Qcow2Image | RawImage


def overlay(size: int, st: Strategy, backing: BaseData | None) -> Qcow2Image:
    """``qemu-img create -f qcow2 -o backing_file=...,cluster_size=...[,extended_l2=on]``."""
    if st.extended_l2:
        return Qcow2ExtImage(size, st.cluster_size, backing=backing,
                             refcount_bits=st.refcount_bits, preallocation=st.preallocation)
    return Qcow2Image(size, st.cluster_size, backing=backing, refcount_bits=st.refcount_bits)


def root_disk(size: int, st: Strategy, base: BaseData) -> Disk:
    """The VM's root disk over a raw base holding ``base``'s data."""
    if st.kind == "qcow2_overlay":
        return overlay(size, st, base)
    return RawImage(size, base)
