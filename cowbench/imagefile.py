"""A user's image file, opened once and then only used through that descriptor.

cowbench runs as root on files other users name and own, so a ``path`` image is held to a
policy before a byte of it is read (README, "Faults and bad input", "Root-safe"):

- a plain file name: ``json:{...}``, ``nbd:``, ``http:``, ``file:`` and every other
  ``<protocol>:`` spelling qemu would parse is refused (qemu never sees the user's string: it
  gets ``/proc/self/fd/N`` of the descriptor opened here);
- opened with ``O_PATH | O_NOFOLLOW`` (a symlink is refused, a FIFO or a device is never opened
  for reading) and checked with ``fstat``: a regular file, not under ``/etc``, ``/proc``,
  ``/sys`` or ``/dev``, owned by root or the invoking user (``SUDO_UID`` under sudo) unless the
  image sets ``allow_untrusted_path: true``, and readable by the invoking user (root does not
  read for them what they could not);
- then re-opened for reading through ``/proc/self/fd/N`` (the same inode, checked).

Inspection (``qemu-img info``/``map``) and conversion run under Nova's limits
(``cowbench.tools.untrusted_limits``) with a timeout. The real backend copies the file into its
private tree (``glance/``) through the descriptor and inspects and converts that copy, so the
file a user swaps after the check is never the one used.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: qemu parses ``<protocol>:`` and ``json:`` in a filename (block.c, path_has_protocol).
PROTOCOL_RE = re.compile(r"^[^/]*:")
#: Trees an image is never read from, whatever its owner.
FORBIDDEN_TREES = ("/etc", "/proc", "/sys", "/dev")
COPY_CHUNK = 8 << 20


class ImagePolicyError(ValueError):
    """The file may not be used as an image; the message says why (one line)."""


@dataclass
class UserImage:
    """A user's image file, open for reading; ``fd`` is closed by :meth:`close`."""

    fd: int
    st: os.stat_result
    real: str

    @property
    def proc_path(self) -> str:
        """The file as a child given ``pass_fds=(fd,)`` opens it."""
        return f"/proc/self/fd/{self.fd}"

    @property
    def world_readable(self) -> bool:
        return bool(self.st.st_mode & stat.S_IROTH)

    def copy_mode(self) -> int:
        """Mode for copies of it: never more readable than the file itself (0600/0640/0644)."""
        return 0o600 | (self.st.st_mode & (stat.S_IRGRP | stat.S_IROTH))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> UserImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def protocol_refusal(path: str) -> str:
    return (f"{path[:40]!r} names a qemu protocol or json: filename, not a file; refused (a "
            "file whose name has a colon: write ./NAME)")


def invoking_user() -> tuple[int, int]:
    """(uid, gid) of who asked: ``SUDO_UID``/``SUDO_GID`` when root runs under sudo."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 and os.environ.get("SUDO_UID", "").isdigit():
        uid = int(os.environ["SUDO_UID"])
        gid = int(os.environ.get("SUDO_GID", "0")) if os.environ.get("SUDO_GID",
                                                                     "").isdigit() else gid
    return uid, gid


def untrusted_writer(path: Path) -> str | None:
    """Why another user could rename or replace ``path`` or a directory above it (so root
    must not write there through its name), or None. Each directory from ``/`` down must be
    owned by root or the invoking user and writable by no one else, unless sticky (``/tmp``:
    others cannot rename what they do not own)."""
    real = path.resolve()
    for d in [*reversed(real.parents), real]:
        why = untrusted_dir(os.stat(d), d)
        if why is not None:
            return why
    return None


def untrusted_dir(st: os.stat_result, shown: Path | str) -> str | None:
    """:func:`untrusted_writer`'s rule for one directory, from its ``stat`` (``fstat`` of a
    descriptor held: nothing to swap between the check and the use): why another user could
    add, rename or replace names in it, or None. ``shown`` names it in the reason."""
    uid, gid = invoking_user()
    sticky = bool(st.st_mode & stat.S_ISVTX)
    if st.st_uid not in (0, uid):
        return f"{shown} is owned by uid {st.st_uid}"
    if st.st_mode & stat.S_IWOTH and not sticky:
        return f"{shown} is writable by every user"
    if st.st_mode & stat.S_IWGRP and st.st_gid not in (0, gid) and not sticky:
        return f"{shown} is writable by group {st.st_gid}"
    return None


def invoker_may_read_own(st: os.stat_result) -> bool:
    """Whether a file cowbench reads back from a run or sweep directory (``fstat`` of its
    open descriptor) may be read for the invoking user: its own permission bits let them
    read it, or this process wrote it (owned by this process's user, one link: a hardlink
    planted to a file they cannot read has two). The directories above are not asked: the
    user named the directory, and ``sudo cowbench run --out /root/x`` reads its own files
    back from a directory they cannot enter."""
    uid, gid = invoking_user()
    if uid == 0 or (st.st_uid == os.geteuid() and st.st_nlink == 1):
        return True
    return _allows(st, uid, _groups(uid, gid), stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def _in_tree(real: str, trees: tuple[str, ...]) -> bool:
    p = PurePosixPath(real)
    return any(p == PurePosixPath(t) or PurePosixPath(t) in p.parents for t in trees)


def _groups(uid: int, gid: int) -> set[int]:
    groups = {gid}
    try:
        import pwd

        groups |= set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except (KeyError, OSError):
        pass
    return groups


def _allows(st: os.stat_result, uid: int, groups: set[int], usr: int, grp: int,
            oth: int) -> bool:
    """Whether ``st``'s mode gives ``uid`` (in ``groups``) the permission whose bits for
    owner, group and others are ``usr``, ``grp``, ``oth`` (the kernel's order: the owner's
    bits alone decide for the owner, then the group's, then the others')."""
    if st.st_uid == uid:
        return bool(st.st_mode & usr)
    if st.st_gid in groups:
        return bool(st.st_mode & grp)
    return bool(st.st_mode & oth)


def _readable_by(st: os.stat_result, real: str, uid: int, gid: int) -> bool:
    """Whether ``uid`` could open the file ``st`` at ``real`` for reading itself: read
    permission on it and search permission on every directory above it."""
    if uid == 0:
        return True
    groups = _groups(uid, gid)
    if not _allows(st, uid, groups, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
        return False
    for d in PurePosixPath(real).parents:
        try:
            dst = os.stat(d)
        except OSError:
            return False
        if not _allows(dst, uid, groups, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    return True


def check_policy(st: os.stat_result, real: str, allow_untrusted: bool) -> None:
    """Raise :class:`ImagePolicyError` if the opened file may not be used.

    The one rule for every file cowbench reads for a user: an image, and (through
    :func:`cowbench.safeload.read_input`, with ``allow_untrusted=True``) a scenario, a sweep
    file, a job file and its includes, a ``read_iolog`` trace, a profile. Root never reads
    for the invoking user what they could not read themselves, nor anything under
    :data:`FORBIDDEN_TREES`. The owner rule matters only for an image, which qemu opens
    again later; a text input is read once, through the descriptor that was checked."""
    if not stat.S_ISREG(st.st_mode):
        raise ImagePolicyError("is not a regular file (a device, FIFO, socket or directory); "
                               "refused")
    if _in_tree(real, FORBIDDEN_TREES):
        raise ImagePolicyError(f"is {real}, under {', '.join(FORBIDDEN_TREES)}; refused")
    uid, gid = invoking_user()
    if not allow_untrusted and st.st_uid not in (0, uid):
        raise ImagePolicyError(f"is owned by uid {st.st_uid}, neither root nor the invoking "
                               f"user (uid {uid}); refused (set allow_untrusted_path: true on "
                               "the image to use it: it is copied before it is inspected)")
    if not _readable_by(st, real, uid, gid):
        raise ImagePolicyError(f"is not readable by the invoking user (uid {uid}); refused")


def open_user_image(path: str, allow_untrusted: bool = False) -> UserImage:
    """Open ``path`` under the policy (module docstring); the caller closes it."""
    if PROTOCOL_RE.match(path):
        raise ImagePolicyError(protocol_refusal(path))
    try:
        opath = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImagePolicyError(f"no such file: {path}") from None
    except OSError as err:
        if os.path.islink(path):
            raise ImagePolicyError(f"{path} is a symbolic link; name the file itself") from None
        raise ImagePolicyError(f"{path}: {err.strerror}") from None
    try:
        st = os.fstat(opath)
        real = os.readlink(f"/proc/self/fd/{opath}")
        if stat.S_ISLNK(st.st_mode):
            raise ImagePolicyError(f"{path} is a symbolic link; name the file itself")
        check_policy(st, real, allow_untrusted)
        fd = os.open(f"/proc/self/fd/{opath}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(opath)
    again = os.fstat(fd)
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):  # pragma: no cover (kernel)
        os.close(fd)
        raise ImagePolicyError(f"{path} changed while it was opened; refused")
    return UserImage(fd, again, real)


def copy_sparse(src_fd: int, dest: Path, mode: int) -> None:
    """Copy the open file ``src_fd`` to a new file ``dest`` (created with ``mode``), keeping
    its holes (SEEK_DATA/SEEK_HOLE) and its size."""
    size = os.fstat(src_fd).st_size
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  mode)
    try:
        os.fchmod(out, mode)
        pos = 0
        while pos < size:
            try:
                start = os.lseek(src_fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(src_fd, start, os.SEEK_HOLE)
            _copy_range(src_fd, out, start, end)
            pos = end
        os.ftruncate(out, size)
    finally:
        os.close(out)


def _copy_range(src: int, out: int, start: int, end: int) -> None:
    while start < end:
        n = min(COPY_CHUNK, end - start)
        data = os.pread(src, n, start)
        if not data:
            return
        os.pwrite(out, data, start)
        start += len(data)
