"""A reflink-capable filesystem for the real backend: XFS on a loop device, in the run's work.

``reflink_copy`` disks need a filesystem that shares extents; this machine's may not. As root
with loop devices, the backend makes a sparse image file under the run's work directory,
``mkfs.xfs -m reflink=1``, and mounts it with ``-o loop``; the hosts' trees go inside it.
Whatever happens, the context manager unmounts it (the loop device goes with it) and removes
the image (a completed run with ``real.keep_images`` keeps it, unmounted). Measurements:
``xfs_spaceman -c "prealloc -s"`` first hands back XFS's speculative CoW reservations (as its
background collection would), then FIEMAP's SHARED flag (``xfs_io -c "fiemap -v"``) splits each
file into shared and exclusive bytes. It does not free the 1 MiB pieces past a qcow2 file's
end that QEMU's extent size hint made XFS allocate (``sim.storage.xfs``): those go only when
the inode leaves the cache.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cowbench.errors import CowbenchError, UsageError
from cowbench.fdtree import detach_mount
from cowbench.lease import Lease
from cowbench.signals import shielded
from cowbench.tools import RawLog, install_hint, run

FIEMAP_SHARED = 0x2000
SECTOR = 512
_ROW = re.compile(r"^\s*\d+:\s*\[(\d+)\.\.(\d+)\]:\s*(\S+)(?:\s+\d+)?(?:\s+(0x[0-9a-f]+))?",
                  re.M)


def require_loop_mount() -> None:
    """reflink_copy needs root, loop devices and xfsprogs; say which is missing."""
    if os.geteuid() != 0:
        raise UsageError("reflink_copy needs root (it loop-mounts an XFS image)")
    if not Path("/dev/loop-control").exists():
        raise UsageError("reflink_copy needs loop devices (/dev/loop-control is missing)")
    for tool in ("mkfs.xfs", "xfs_io", "xfs_spaceman", "mount", "umount"):
        if shutil.which(tool) is None:
            raise UsageError(f"reflink_copy needs {tool}; {install_hint(tool)}")


def _never() -> bool:
    return False


@contextmanager
def xfs_mount(work: Path, size: int, log: RawLog | None, lease: Lease | None = None,
              keep: Callable[[], bool] = _never) -> Iterator[Path]:
    """A reflink XFS of ``size`` bytes (sparse) mounted at ``work/reflink-xfs``; the mount is
    in the run's ``lease`` while it lasts (a killed run's is detached by ``cowbench gc``; the
    loop device of ``mount -o loop`` is set to autoclear, so it goes with the last user).
    Always unmounted; the image file ``work/reflink-xfs.img`` is removed unless ``keep()``
    says otherwise then (a completed run with ``real.keep_images``: it holds every host's
    tree, to be looked at with ``mount -o loop,ro``)."""
    require_loop_mount()
    image, mnt = work / "reflink-xfs.img", work / "reflink-xfs"
    work.mkdir(parents=True, exist_ok=True)
    mounted = False
    try:
        with open(image, "wb") as f:
            f.truncate(size)
        run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], log=log, label="mkfs-xfs")
        mnt.mkdir(exist_ok=True)
        with shielded():
            run(["mount", "-o", "loop", str(image), str(mnt)], log=log, label="mount-xfs")
            mounted = True
            if lease is not None:
                lease.add_mount(mnt)
        yield mnt
    finally:
        if mounted:
            _umount(mnt, log)
            if lease is not None:
                lease.drop_mount(mnt)
        if mnt.exists():
            shutil.rmtree(mnt, ignore_errors=True)
        if not (mounted and keep()):
            image.unlink(missing_ok=True)


def _umount(mnt: Path, log: RawLog | None) -> None:
    """Detach the filesystem through a descriptor of its mount point (``umount2`` with
    MNT_DETACH: a qemu-nbd that just exited may still hold it; it goes once released)."""
    if not detach_mount(mnt.parent, mnt.name):
        raise CowbenchError(f"{mnt}: could not unmount the reflink XFS")
    if log is not None:
        log.record("umount-xfs-lazy", ["umount2", str(mnt), "MNT_DETACH"], 0, "", "")


def collect_cow_reservations(mnt: Path, log: RawLog | None) -> None:
    run(["xfs_spaceman", "-c", "prealloc -s", str(mnt)], log=log, label="xfs-spaceman-gc")


def shared_exclusive(path: Path, log: RawLog | None) -> tuple[int, int]:
    """(shared, exclusive) bytes of ``path`` by FIEMAP flags."""
    out = run(["xfs_io", "-c", "fiemap -v", str(path)], log=log, label="xfs-io-fiemap").stdout
    shared = exclusive = 0
    for first, last, where, flags in _ROW.findall(out):
        if where == "hole":
            continue
        n = (int(last) - int(first) + 1) * SECTOR
        if flags and int(flags, 16) & FIEMAP_SHARED:
            shared += n
        else:
            exclusive += n
    return shared, exclusive
