"""Every external program cowbench, its tests and its scripts can start, and the Debian 12
package that provides it: the one table scripts/bootstrap.sh installs from and
:class:`~cowbench.errors.MissingToolError` names packages from.

Standard library only, and no import from the package: bootstrap runs this file with the
system's python3 before any venv exists (``python3 cowbench/packages.py [GROUP ...]`` prints
``program package`` lines of the groups asked for). tests/test_packages.py scans the sources
for programs started and fails on one missing here.

Groups: ``run`` (the real backend and its tools), ``test`` (what only the test suite starts,
``bootstrap.sh --test``), ``fresh-check`` (scripts/fresh-check.sh on the host).
"""

from __future__ import annotations

import sys

#: program -> (Debian package, group)
PROGRAMS: dict[str, tuple[str, str]] = {
    "qemu-img": ("qemu-utils", "run"),
    "qemu-io": ("qemu-utils", "run"),
    "qemu-nbd": ("qemu-utils", "run"),
    "fio": ("fio", "run"),
    "rsync": ("rsync", "run"),  # lifecycle cold migrations with remote_filesystem_transport
    "cp": ("coreutils", "run"),
    "mount": ("mount", "run"),  # reflink_copy: a loop-mounted XFS
    "umount": ("mount", "run"),
    "mkfs.xfs": ("xfsprogs", "run"),
    "xfs_io": ("xfsprogs", "run"),
    "xfs_spaceman": ("xfsprogs", "run"),
    "unshare": ("util-linux", "run"),  # fio in its own PID namespace; sweep tests' workers
    "mkfs.ext4": ("e2fsprogs", "run"),  # a flavor's ephemeral base (Nova's mkfs -t ext4)
    "mkswap": ("util-linux", "run"),  # a flavor's swap base
    "sh": ("dash", "run"),  # benchmarks/autogroup.py's busy sessions (essential in Debian)
    "losetup": ("mount", "test"),
    "filefrag": ("e2fsprogs", "test"),
    "truncate": ("coreutils", "test"),
    "sleep": ("coreutils", "test"),
    "dd": ("coreutils", "test"),
    "findmnt": ("util-linux", "test"),  # the filesystem under a directory (profile tests)
    "pgrep": ("procps", "test"),
    "chromium": ("chromium", "test"),  # report.html opened headless
    "bash": ("bash", "test"),  # runs scripts/bootstrap.sh (essential in Debian)
    "dpkg": ("dpkg", "test"),  # which package provides a program (essential in Debian)
    # a clean clone of the committed HEAD; and, when present, whether a checkout cowbench
    # runs from is dirty (run.json's tools; optional: without git it says None)
    "git": ("git", "fresh-check"),
    "debootstrap": ("debootstrap", "fresh-check"),
    "chroot": ("coreutils", "fresh-check"),
}

#: What bootstrap.sh installs with apt-get before it can run this file or make the venv (a
#: minimal Debian 12 has none of them); bootstrap.sh lists them itself, the test checks it.
PREREQUISITES = ("python3", "python3-venv", "ca-certificates")

GROUPS = ("run", "test", "fresh-check")


def package_of(program: str) -> str | None:
    """The Debian package that provides ``program``, or None if it is not in the table."""
    entry = PROGRAMS.get(program)
    return entry[0] if entry else None


def programs(*groups: str) -> list[tuple[str, str]]:
    """``(program, package)`` of the groups asked for, in the table's order."""
    return [(prog, pkg) for prog, (pkg, group) in PROGRAMS.items() if group in groups]


def main(argv: list[str]) -> int:
    unknown = [g for g in argv if g not in GROUPS]
    if unknown or not argv:
        print(f"usage: packages.py GROUP... (groups: {', '.join(GROUPS)})", file=sys.stderr)
        return 2
    for prog, pkg in programs(*argv):
        print(prog, pkg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
