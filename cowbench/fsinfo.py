"""Which filesystem, on which device, holds a path: what keys a calibration profile
(``cowbench.profile_cache``) and what run.json's ``host.work_dir_fs`` says.

The first answer is ``/proc/self/mountinfo`` (proc(5)): the mount covering the path, with its
filesystem type and mount source, as ``findmnt --target`` finds it. In a chroot that answer may
not exist: mountinfo lists only the mounts reachable from the process's root, and a chroot's
root is a directory, not a mount, so nothing covers ``/`` (a debootstrap root showed its
storage as "unknown on unknown"). The kernel still knows the path itself; then:

- the type from ``statfs(2)``'s ``f_type``, by the magic numbers of ``linux/magic.h`` (the
  names mountinfo uses; a magic number not in the table is given as ``statfs:0x...``, which
  says where it came from). ext2, ext3 and ext4 share one magic number and one driver today:
  all three are ``ext4`` here;
- the source from the path's device number (``st_dev``) through
  ``/sys/dev/block/MAJ:MIN/uevent`` (``/dev/vda``; a device-mapper volume by its
  ``/dev/mapper/`` name, as mountinfo names it), where the device is a block device; a
  filesystem on none (tmpfs, overlay, a btrfs subvolume) is ``unknown`` (its number is kept
  beside it by the caller).

On the machine itself both ways give the same answer, so a profile made outside a chroot is
found inside it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from pathlib import Path

UNKNOWN = "unknown"
#: statfs(2) f_type -> the filesystem's name as mountinfo gives it (linux/magic.h)
MAGIC = {
    0xEF53: "ext4",  # ext2, ext3 and ext4 (one driver)
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
    0xCA451A4E: "bcachefs",
    0x2FC12FC1: "zfs",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x794C7630: "overlay",
    0x6969: "nfs",
    0xFF534D42: "cifs",
    0xFE534D42: "smb3",
    0x00C36400: "ceph",
    0x65735546: "fuse",
    0x73717368: "squashfs",
    0x4D44: "vfat",
    0x5346544E: "ntfs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x1373: "devfs",
    0x01021997: "9p",
}
_OCTAL = re.compile(r"\\([0-7]{3})")
#: room for any architecture's struct statfs (x86-64's is 120 bytes)
_STATFS_SIZE = 256


def filesystem_of(path: Path, mountinfo: str | None = None) -> tuple[str, str]:
    """(filesystem type, source) of the filesystem holding ``path``:
    mountinfo's mount covering it, else what the kernel says of the path itself (see the
    module docstring). ``mountinfo``: its text (default: this process's)."""
    found = mount_of(path, _mountinfo() if mountinfo is None else mountinfo)
    if found is not None:
        return found
    try:
        st_dev = os.stat(path).st_dev
    except OSError:
        return UNKNOWN, UNKNOWN
    return statfs_type(path), block_device(st_dev) or UNKNOWN


def _mountinfo() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


def mount_of(path: Path, mountinfo: str) -> tuple[str, str] | None:
    """(type, source) of the deepest mount in ``mountinfo`` covering ``path``; None if none
    does."""
    target = str(path.resolve())
    best, found = "", None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, found = point, (_unescape(rest[0]), _unescape(rest[1]))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo``."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def statfs_type(path: Path) -> str:
    """The filesystem's name from ``statfs(2)``'s ``f_type`` (``statfs:0x...`` if not in
    :data:`MAGIC`; ``unknown`` if statfs fails)."""
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    if ctypes.CDLL(None, use_errno=True).statfs(os.fsencode(path), buf) != 0:
        return UNKNOWN
    # f_type is the first member: a word (__fsword_t, a long) on every Linux architecture but
    # s390x (an unsigned int); the magic numbers all fit 32 bits
    word = ctypes.c_uint if platform.machine() == "s390x" else ctypes.c_ulong
    magic = word.from_buffer(buf).value & 0xFFFFFFFF
    return MAGIC.get(magic, f"statfs:0x{magic:x}")


def block_device(st_dev: int, sys: Path = Path("/sys")) -> str | None:
    """The ``/dev`` name of the block device numbered ``st_dev`` (``/sys/dev/block``), a
    device-mapper volume by its ``/dev/mapper/`` name; None if there is none (an anonymous
    device, no sysfs)."""
    node = sys / "dev" / "block" / f"{os.major(st_dev)}:{os.minor(st_dev)}"
    try:
        uevent = (node / "uevent").read_text()
    except OSError:
        return None
    names = dict(line.partition("=")[::2] for line in uevent.splitlines())
    name = names.get("DEVNAME")
    if not name:
        return None
    try:
        return f"/dev/mapper/{(node / 'dm' / 'name').read_text().strip()}"
    except OSError:
        return f"/dev/{name}"
