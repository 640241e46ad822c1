"""The real backend's side of each copy-on-write strategy: the disk a VM gets, built with
qemu-img / cp. The model's counterpart is ``sim/storage/strategies.py``; the two must agree."""

from __future__ import annotations

import os
from pathlib import Path

from cowbench.scenario import Strategy
from cowbench.tools import RawLog, run


def overlay_options(st: Strategy, backing: Path | None, backing_fmt: str = "raw",
                    relative_to: Path | None = None) -> str:
    """The ``-o`` string of ``qemu-img create -f qcow2`` for this strategy.

    The backing file is named relative to ``relative_to`` (the overlay's directory) when
    given: ``../_base/<sha1>``, which qemu resolves from wherever the overlay is opened, so
    inside the run's private tree (``real.world.containment``) it cannot be redirected, and a copied
    overlay still names its host's own base. Nova writes the absolute path, which on a real
    host is a root-owned ``/var/lib/nova/instances``; without ``relative_to``, so does this.
    """
    opts = []
    if backing is not None:
        name = (os.path.relpath(backing, relative_to) if relative_to is not None
                else str(backing.resolve()))
        opts += [f"backing_file={name}", f"backing_fmt={backing_fmt}"]
    opts.append(f"cluster_size={st.cluster_size}")
    if st.refcount_bits != 16:
        opts.append(f"refcount_bits={st.refcount_bits}")
    if st.extended_l2:
        opts.append("extended_l2=on")
    if st.preallocation != "off":
        opts.append(f"preallocation={st.preallocation}")
    return ",".join(opts)


def create_overlay(st: Strategy, backing: Path | None, disk: Path, size: int, log: RawLog | None,
                   label: str, backing_fmt: str = "raw") -> None:
    """``qemu-img create`` of a qcow2 overlay of ``size`` bytes over ``backing``, which qemu-img
    opens (with everything below it) to check that it can; see :func:`create_layer`."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
         overlay_options(st, backing, backing_fmt, disk.parent), str(disk), str(size)],
        log=log, label=label, timeout=3600)


def create_layer(below: Path, disk: Path, size: int, options: str, log: RawLog | None,
                 label: str, below_fmt: str = "qcow2") -> None:
    """A qcow2 layer of ``size`` bytes over ``below`` (a ``below_fmt`` file), made without
    opening it (``-u``); ``options`` is the rest of its ``-o`` (``cluster_size=...``).

    Without ``-u``, ``qemu-img create`` opens the backing file to check it, and a qcow2 backing
    file opens its own backing file in turn: creating layer k of a chain opens the k-1 below
    (2.47 s per create at depth 674, the strategies user test). Opening grows about as the
    square of the depth (qemu-io over 100, 500 and 1000 layers: 0.07, 0.89 and 4.4 s), so the
    n creates of a chain cost O(n^3) in all. With ``-u`` ("unsafe backing file mode",
    qemu-img(1)) nothing is opened, so the size, which qemu-img would otherwise take from the
    backing file, is given: the virtual size of ``below``, which the caller knows (a chain's
    layers all have the disk's size; the top an external snapshot puts over a disk has the
    disk's size as it stands). The images are byte for byte those of the opening form
    (``cmp`` and ``qemu-img info --backing-chain`` of a depth-4 chain, of one with extended L2
    and preallocation, and of a timeline's external snapshots: tests/test_chain_create.py).
    The backing file is named relative to the layer's directory, as
    :func:`overlay_options` names it.

    Both makers of a layer over a layer use it: a ``snapshot_chain``'s layers above the lowest
    (:func:`create_chain`) and the new top of a timeline's external snapshot
    (``real.world.lifecycle``).
    """
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", below_fmt, "-b",
         os.path.relpath(below, disk.parent), "-o", options, str(disk), str(size)], log=log,
        label=label, timeout=3600)


def copy_file(src: Path, dest: Path, sparse: bool, log: RawLog | None, label: str) -> None:
    """A copy of ``src`` with data of its own: holes kept (``sparse``) or written out.

    ``--reflink=never`` because coreutils 9 clones by default (FICLONE, then copy_file_range):
    on a reflink XFS ``cp --sparse=never`` shared the base's extents and kept its holes, so a
    dense 1 GiB copy of a base with 240 MiB of data held 252 MiB, all of it shared.
    """
    run(["cp", "--reflink=never", f"--sparse={'always' if sparse else 'never'}", str(src),
         str(dest)], log=log, label=label, timeout=3600)


def size_tag(size: int) -> str:
    """Nova names resized bases ``<sha1>_<GB>``; sizes that are not whole GiB keep bytes."""
    return str(size >> 30) if size % (1 << 30) == 0 else f"{size}B"


def resized_base(base: Path, size: int, log: RawLog | None) -> Path:
    """``_base/<sha1>_<size>``: a sparse full copy of the base grown to ``size``, made once per
    host and size (Nova's Qcow2 backend before Dec 2012, FACTS.md 1.1)."""
    copy = base.with_name(f"{base.name}_{size_tag(size)}")
    if not copy.exists():
        tmp = copy.with_name(copy.name + ".part")
        copy_file(base, tmp, True, log, "cp-resized-base")
        run(["qemu-img", "resize", "-q", "-f", "raw", str(tmp), str(size)], log=log,
            label="qemu-img-resize-base")
        tmp.rename(copy)
    return copy


def chain_layers(disk: Path, depth: int) -> list[Path]:
    """The files of a ``snapshot_chain`` disk, bottom first; the top is ``disk`` itself."""
    return [disk.with_name(f"{disk.name}.chain-{k}") for k in range(1, depth)] + [disk]


def create_chain(st: Strategy, base: Path, disk: Path, size: int, log: RawLog | None,
                 label: str, base_fmt: str = "raw") -> None:
    """``chain_depth`` qcow2 overlays, each backed by the one below, the lowest by the base.

    The lowest opens the base (a missing or unreadable base fails here, not in qemu-nbd);
    each layer above is made without opening the chain below it (:func:`create_layer`), so the
    chain is built in time linear in its depth.
    """
    layers = chain_layers(disk, st.chain_depth)
    create_overlay(st, base, layers[0], size, log, f"{label}-{layers[0].name}", base_fmt)
    for below, layer in zip(layers, layers[1:], strict=False):
        create_layer(below, layer, size, overlay_options(st, None), log, f"{label}-{layer.name}")


def full_copy(st: Strategy, base: Path, disk: Path, size: int, log: RawLog | None,
              label: str) -> None:
    """Nova's Flat backend: copy the base (holes kept or written out), then grow it."""
    copy_file(base, disk, st.sparse, log, f"cp-{label}")
    run(["qemu-img", "resize", "-q", "-f", "raw", str(disk), str(size)], log=log,
        label=f"qemu-img-resize-{label}")


def snapshotted_copy(st: Strategy, base: Path, disk: Path, size: int, log: RawLog | None,
                     label: str) -> None:
    """A standalone qcow2 copy of the base with an internal snapshot ``golden``."""
    create_overlay(st, None, disk, size, log, f"qemu-img-create-{label}")
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(base), str(disk)],
        log=log, label=f"qemu-img-convert-{label}", timeout=3600)
    run(["qemu-img", "snapshot", "-c", "golden", str(disk)], log=log,
        label=f"qemu-img-snapshot-{label}")


def make_root_disk(st: Strategy, base: Path, disk: Path, size: int, log: RawLog | None,
                   label: str, base_fmt: str = "raw") -> str:
    """Build the VM's root disk by the strategy over ``base`` (a ``base_fmt`` file: qcow2 for
    overlays when Nova's ``force_raw_images`` is off); return its format."""
    create = f"qemu-img-create-{label}"
    if st.kind == "qcow2_overlay":
        create_overlay(st, base, disk, size, log, create, base_fmt)
    elif st.kind == "resized_base":
        create_overlay(st, resized_base(base, size, log), disk, size, log, create)
    elif st.kind == "snapshot_chain":
        create_chain(st, base, disk, size, log, create, base_fmt)
    elif st.kind == "internal_snapshot":
        snapshotted_copy(st, base, disk, size, log, label)
    elif st.kind == "reflink_copy":
        run(["cp", "--reflink=always", str(base), str(disk)], log=log,
            label=f"cp-reflink-{label}", timeout=3600)
        run(["qemu-img", "resize", "-q", "-f", "raw", str(disk), str(size)], log=log,
            label=f"qemu-img-resize-{label}")
        return "raw"
    else:
        full_copy(st, base, disk, size, log, label)
        return "raw"
    return "qcow2"


def disk_files(st: Strategy, disk: Path) -> list[Path]:
    """Every file of a VM's new root disk, bottom first (a chain's lower layers included)."""
    return chain_layers(disk, st.chain_depth) if st.kind == "snapshot_chain" else [disk]


def vm_files(disk: Path) -> list[Path]:
    """Every file of a VM's root disk found beside it (the chain's lower layers included)."""
    return sorted(disk.parent.glob(f"{disk.name}.chain-*")) + [disk]
