"""Which filesystem and device hold a path (cowbench.fsinfo): mountinfo's answer, and the
kernel's own for the path where mountinfo has none (a chroot, whose root is no mount)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cowbench import fsinfo
from cowbench.fsinfo import block_device, filesystem_of, mount_of, statfs_type
from cowbench.profile_cache import fingerprint, fingerprint_key


def findmnt(path: Path) -> tuple[str, str]:
    out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1]


def without_cover(path: Path) -> str:
    """This process's mountinfo less every mount covering ``path`` (a chroot's view: its
    root is not listed)."""
    target = str(path.resolve())
    keep = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if not (target == point or target.startswith(point.rstrip("/") + "/")):
            keep.append(line)
    return "\n".join(keep) + "\n"


def test_mountinfo_gives_the_mount_covering_the_path(tmp_path: Path) -> None:
    assert filesystem_of(tmp_path) == findmnt(tmp_path)
    assert filesystem_of(Path("/dev/shm"))[0] == "tmpfs"


def test_the_deepest_mount_wins_and_escapes_are_read() -> None:
    text = ("27 1 254:0 / / rw - ext4 /dev/vda rw\n"
            "40 27 0:45 / /srv/my\\040disks rw - xfs /dev/my\\134vg rw\n"
            "41 27 0:46 / /srv/my rw - tmpfs tmpfs rw\n")
    assert mount_of(Path("/srv/my disks/a"), text) == ("xfs", "/dev/my\\vg")
    assert mount_of(Path("/srv/my/a"), text) == ("tmpfs", "tmpfs")
    assert mount_of(Path("/srv/other"), text) == ("ext4", "/dev/vda")
    assert mount_of(Path("/srv/other"), text.splitlines()[1] + "\n") is None


def test_without_a_mount_covering_the_path_the_kernel_answers_for_the_path(
        tmp_path: Path) -> None:
    text = without_cover(tmp_path)
    assert mount_of(tmp_path, text) is None
    fs, source = findmnt(tmp_path)
    got = filesystem_of(tmp_path, text)
    assert got[0] == ("ext4" if fs in ("ext2", "ext3") else fs)
    st_dev = os.stat(tmp_path).st_dev
    if Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}").exists():
        assert os.path.realpath(got[1]) == os.path.realpath(source)  # /dev/vda, /dev/mapper/..
    else:  # no block device under it: its number still keys it (the caller's)
        assert got[1] == "unknown"
    shm = Path("/dev/shm")
    assert filesystem_of(shm, without_cover(shm)) == ("tmpfs", "unknown")


def test_a_chroot_keys_the_same_storage_as_the_machine_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile made outside the chroot is found inside it (and no fingerprint says
    "unknown on unknown" where the kernel knows better)."""
    outside = fingerprint(tmp_path)
    monkeypatch.setattr(fsinfo, "_mountinfo", lambda: without_cover(tmp_path))
    inside = fingerprint(tmp_path)
    assert inside["fs_type"] != "unknown" and not inside["device"].startswith("unknown")
    assert fingerprint_key(inside) == fingerprint_key(outside)


def test_statfs_names_the_filesystems_and_says_where_an_unknown_one_came_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert statfs_type(Path("/proc")) == "proc"
    assert statfs_type(Path("/dev/shm")) == "tmpfs"
    assert statfs_type(tmp_path / "missing") == "unknown"
    monkeypatch.setattr(fsinfo, "MAGIC", {})
    assert statfs_type(Path("/dev/shm")) == "statfs:0x1021994"


def test_block_devices_are_named_by_sysfs(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    vda, dm = sys / "dev/block/254:0", sys / "dev/block/253:3"
    (dm / "dm").mkdir(parents=True)
    vda.mkdir(parents=True)
    (vda / "uevent").write_text("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
    (dm / "uevent").write_text("MAJOR=253\nMINOR=3\nDEVNAME=dm-3\n")
    (dm / "dm" / "name").write_text("vg0-data\n")
    assert block_device(os.makedev(254, 0), sys) == "/dev/vda"
    assert block_device(os.makedev(253, 3), sys) == "/dev/mapper/vg0-data"
    assert block_device(os.makedev(0, 45), sys) is None  # tmpfs, overlay: no block device
    assert block_device(os.makedev(254, 0), tmp_path / "nosys") is None
