"""Directories root creates, uses and removes through descriptors it holds (STYLE.md: CPython's
``shutil.rmtree`` safe path), so a name swapped by another user cannot redirect it.

A :class:`PrivateDir` is made with ``mkdir(name, 0o700, dir_fd=parent)``, opened with
``O_NOFOLLOW | O_DIRECTORY`` and checked with ``fstat``: a directory, owned by this process's
user, empty; its mode is set to 0700 with ``fchmod`` and its device and inode are recorded. From
then on it is reached only through its descriptor: :attr:`PrivateDir.path` is
``/proc/<pid>/fd/<fd>``, which the kernel resolves to the directory itself whatever happens to
the names above it (a parent renamed, a symlink put in its place). Below it nothing can be
swapped: no other user can write into, or even traverse, a 0700 directory of root. External
tools get paths under :attr:`PrivateDir.path`; they resolve while this process lives.

:meth:`PrivateDir.remove` empties the directory through its descriptor, never following a
symlink and never crossing into another filesystem (a mount inside is left alone), then removes
its entry from the parent only if that entry is still the directory created (same ``st_dev`` and
``st_ino``); if the entry was renamed meanwhile, the parent is searched for it by inode.
:func:`remove_recorded` does the same for a tree a dead run recorded (``cowbench gc``).

A :class:`HeldDir` is a run's or a sweep's directory, made and held the same way, but readable
by others (0755) and named to the user as they gave it; it is not removed. The commands that
come back to a finished one (``show``, ``report``, ``repredict``, ``fio-json``) hold it with
:meth:`HeldDir.open_existing` and reach the folders they write in it with :meth:`HeldDir.sub`.
"""

from __future__ import annotations

import ctypes
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .signals import shielded

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MNT_DETACH = 2


def fd_path(fd: int) -> Path:
    """A path to what ``fd`` refers to, valid for this process and its children."""
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


def real_path(fd: int) -> str:
    """The path the kernel currently knows ``fd`` by (for messages and records)."""
    return os.readlink(f"/proc/self/fd/{fd}")


@dataclass
class PrivateDir:
    """A directory this run created, held open; see the module docstring."""

    parent_fd: int
    name: str
    fd: int
    dev: int
    ino: int
    where: str  # the path it had when created

    @classmethod
    def create(cls, parent: Path, name: str) -> PrivateDir:
        """Create ``parent/name`` (``parent`` itself may be reached through symlinks)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain name: {name!r}")
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return cls._make(pfd, name, f"{real_path(pfd)}/{name}")
        except BaseException:
            os.close(pfd)
            raise

    @classmethod
    def _make(cls, pfd: int, name: str, where: str) -> PrivateDir:
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            raise UsageError(f"{where}: already exists; cowbench only writes into directories "
                             "it creates itself") from None
        with shielded():  # created: from here on it is ours to remove, even if interrupted
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
            except OSError:  # replaced by a symlink or a file between mkdir and open
                raise UsageError(f"{where}: replaced while it was being created; refused (the "
                                 "empty directory made may remain under another name)") \
                    from None
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or os.listdir(fd):
                os.close(fd)
                raise UsageError(f"{where}: replaced while it was being created (owner "
                                 f"{st.st_uid}); refused")
            os.fchmod(fd, 0o700)
            return cls(pfd, name, fd, st.st_dev, st.st_ino, where)

    @property
    def path(self) -> Path:
        return fd_path(self.fd)

    def record(self) -> dict[str, object]:
        """What a later ``cowbench gc`` needs to find and remove it."""
        return {"parent": real_path(self.parent_fd), "name": self.name, "dev": self.dev,
                "ino": self.ino}

    def remove(self) -> None:
        """Remove the directory and everything in it that is on its filesystem."""
        with shielded():
            if self.fd < 0:
                return
            empty_dir(self.fd, self.dev)
            os.close(self.fd)
            self.fd = -1
            _rmdir_entry(self.parent_fd, self.name, self.dev, self.ino)
            os.close(self.parent_fd)


#: a run's or a sweep's directory: readable by everyone, writable by its owner only
SHARED_DIR_MODE = 0o755


@dataclass
class HeldDir:
    """A directory cowbench writes its results into (a run's, a sweep's), held by a
    descriptor: the rule of :class:`PrivateDir` for a directory others may read.

    :meth:`hold` makes ``where`` with ``mkdir(name, 0o755, dir_fd=<its parent>)`` (or takes the
    empty directory, or the sweep directory, already there), opens it with ``O_NOFOLLOW |
    O_DIRECTORY`` and checks it with ``fstat``; a directory it made gets mode 0755 by
    ``fchmod``, whatever the process umask (0777 under ``umask 000`` let another user swap a
    folder of ``raw/`` for a symlink and root overwrote the files it pointed at). From then on
    everything cowbench creates, writes, renames and deletes in it goes through :attr:`io`,
    ``/proc/<pid>/fd/<fd>``: a parent renamed or replaced by a symlink mid-run redirects nothing
    (by its name, a swapped parent had root overwrite another directory's run.json and delete
    its lease.json). :attr:`where`, the user's path, is what messages and records name;
    :meth:`moved` says when that name no longer leads to the directory held."""

    fd: int
    dev: int
    ino: int
    where: Path  # as the user named it (absolute)

    @classmethod
    def hold(cls, where: Path, what: str, *, may_hold_files: bool = False) -> HeldDir:
        """Make ``where`` (and any missing parent, each through its parent's descriptor) or
        open the empty directory already there; ``may_hold_files``: a directory holding files
        is taken too (a sweep resumed). ``where`` must be absolute; its existing parents are
        reached as named (symlinks above it mean what they mean in the user's shell: the
        caller checked who could swap them). ``what`` (``run directory``) names it in the
        :class:`UsageError` that says what is refused."""
        pfd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in where.parent.parts[1:]:
                sub = _step(pfd, part, where, what)
                os.close(pfd)
                pfd = sub
            return cls._take(pfd, where, what, may_hold_files)
        finally:
            os.close(pfd)

    @classmethod
    def _take(cls, pfd: int, where: Path, what: str, may_hold_files: bool) -> HeldDir:
        name = where.name
        try:
            os.mkdir(name, SHARED_DIR_MODE, dir_fd=pfd)
            made = True
        except FileExistsError:
            made = False
        except OSError as err:
            raise UsageError(f"{where}: cannot create the {what} there: "
                             f"{err.strerror or err}") from None
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        except OSError as err:  # a symlink (ELOOP), a file (ENOTDIR): never followed
            raise UsageError(f"{where}: not a directory of its own ({err.strerror}); refused")\
                from None
        st = os.fstat(fd)
        try:
            if made and (st.st_uid != os.geteuid() or os.listdir(fd)):
                raise UsageError(f"{where}: replaced while it was being created (owner "
                                 f"{st.st_uid}); refused")
            if not made and not may_hold_files and os.listdir(fd):
                raise UsageError(f"{where}: already holds files (a run?); choose another "
                                 "--out, runs are never mixed")
            if made:
                os.fchmod(fd, SHARED_DIR_MODE)
            elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                raise UsageError(f"{where}: writable by others (mode {st.st_mode & 0o7777:o}), "
                                 "who could swap what is written there; refused")
            _probe(fd, where, what)
        except BaseException:
            os.close(fd)
            if made:  # refused: nothing left half-made (the directory, if it is still ours)
                _rmdir_entry(pfd, name, st.st_dev, st.st_ino)
            raise
        return cls(fd, st.st_dev, st.st_ino, where)

    @classmethod
    def open_existing(cls, where: Path, what: str, *, writing: bool,
                      hops: int = 0) -> HeldDir:
        """Hold the directory already at ``where`` (a finished run's or sweep's, for
        ``cowbench show``, ``report``, ``repredict``, ``fio-json``): its last component opened
        with ``O_NOFOLLOW | O_DIRECTORY``, checked with ``fstat``. A symlink there (a
        ``results/latest`` a user keeps) is followed only when no other user could have put
        it there or swapped it: the link is the invoking user's or root's and its directory
        passes ``--out``'s rule below (the kernel's ``protected_symlinks`` idea), and at most
        :data:`LINK_HOPS` of them in a row; any other is refused, naming why. ``writing``: the
        command writes into it, so it is refused when another user could add or swap names
        in it (owned by another user than root or the invoking user, writable by group or
        others: ``--out``'s rule, :func:`cowbench.imagefile.untrusted_dir`); only the
        directory itself is asked, as everything after goes through its descriptor. Its
        parents are reached as named."""
        from .imagefile import untrusted_dir

        where = Path(os.path.abspath(where))
        try:
            pfd = os.open(where.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise UsageError(f"{where}: cannot open the {what}: {err.strerror}") from None
        followed: Path | None = None  # where a link there that may be followed points
        try:
            fd = os.open(where.name or ".", DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            raise UsageError(f"{where}: no such directory") from None
        except OSError as err:
            target = _trusted_link(pfd, where, hops)
            if not isinstance(target, Path):
                kind = f"a symlink {target}" if target else \
                    f"not a directory ({err.strerror})"
                raise UsageError(f"{where}: is {kind}; give the {what} itself") from None
            followed = target
        finally:
            os.close(pfd)
        if followed is not None:
            return cls.open_existing(followed, what, writing=writing, hops=hops + 1)
        st = os.fstat(fd)
        why = untrusted_dir(st, where) if writing else None
        if why is not None:
            os.close(fd)
            raise UsageError(f"{where}: {why}, who could swap what cowbench writes there; "
                             f"refused (a {what} cowbench writes into is only yours or root's)")
        return cls(fd, st.st_dev, st.st_ino, where)

    def sub(self, name: str, *, create: bool) -> HeldDir:
        """The subdirectory ``name`` of this one, held the same way: made with
        ``mkdir(name, 0755, dir_fd=...)`` when ``create`` and missing, opened with
        ``O_NOFOLLOW`` (a symlink or a file there is refused, never followed) and, when
        ``create``, refused if another user could swap names in it. :class:`UsageError` names
        it as :attr:`where` / ``name``; FileNotFoundError when it is absent and not made."""
        from .imagefile import untrusted_dir

        shown = self.where / name
        if create:
            try:
                os.mkdir(name, SHARED_DIR_MODE, dir_fd=self.fd)
            except FileExistsError:
                pass
            except OSError as err:
                raise UsageError(f"{shown}: cannot create it: {err.strerror}") from None
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError as err:
            raise UsageError(f"{shown}: not a directory of its own ({err.strerror}); refused "
                             "(cowbench never writes a symlink there)") from None
        st = os.fstat(fd)
        why = untrusted_dir(st, shown) if create else None
        if why is not None:
            os.close(fd)
            raise UsageError(f"{shown}: {why}, who could swap what cowbench writes there; "
                             "refused")
        return HeldDir(fd, st.st_dev, st.st_ino, shown)

    @property
    def io(self) -> Path:
        """The directory as cowbench and its tools reach it (see the class docstring)."""
        return fd_path(self.fd)

    def moved(self) -> str | None:
        """None while :attr:`where` still leads to the directory held; else where the
        directory really is now (the kernel's path of the descriptor: a parent renamed, or a
        symlink put in its place), for a warning."""
        try:
            st = os.stat(self.where)
            if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                return None
        except OSError:
            pass
        return real_path(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> HeldDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _step(pfd: int, part: str, where: Path, what: str) -> int:
    """The descriptor of ``part`` in the directory ``pfd``, made (0755) if missing."""
    try:
        try:
            return os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        except FileNotFoundError:
            try:
                os.mkdir(part, SHARED_DIR_MODE, dir_fd=pfd)
            except FileExistsError:
                pass
            return os.open(part, DIR_FLAGS, dir_fd=pfd)
    except OSError as err:
        raise UsageError(f"{where}: cannot create the {what} there: "
                         f"{err.strerror or err}") from None


def _probe(fd: int, where: Path, what: str) -> None:
    """Refuse a directory this process cannot write into (a read-only filesystem mounted
    there), before anything is written."""
    name = f".cowbench-write-test-{os.getpid()}"
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=fd))
        os.unlink(name, dir_fd=fd)
    except OSError as err:
        raise UsageError(f"{where}: cannot create the {what} there: "
                         f"{err.strerror or err}") from None


def empty_dir(fd: int, dev: int) -> None:
    """Remove everything inside the open directory ``fd`` that lives on device ``dev``:
    symlinks are unlinked, never followed; a directory on another device (a mount point) and
    anything in it are left alone."""
    for name in os.listdir(fd):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
                continue
            if st.st_dev != dev:
                continue
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            try:
                same = os.fstat(sub)
                if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
                    continue  # swapped between the stat and the open: not ours
                empty_dir(sub, dev)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            continue


def _rmdir_entry(parent_fd: int, name: str, dev: int, ino: int) -> bool:
    """rmdir the (empty) entry of ``parent_fd`` that is device ``dev`` inode ``ino``: ``name``
    if it still is, else whichever entry it was renamed to. False if it is not there."""
    candidates = [name] + [n for n in os.listdir(parent_fd) if n != name]
    for n in candidates:
        try:
            st = os.stat(n, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino):
            try:
                os.rmdir(n, dir_fd=parent_fd)
            except OSError:
                return False
            return True
    return False


def remove_recorded(parent: str, name: str, dev: int, ino: int) -> bool:
    """Remove a tree :meth:`PrivateDir.record` described, if it is still that directory: at
    its name, the same device and inode, owned by this user. True if it was found and removed.

    Never by inode alone: a directory removed by someone else (a tmp cleaner) frees its inode,
    and the next one made in the parent may take it (another user's, measured: gc removed it
    and its files). A tree renamed since is left where it is, for its owner to judge."""
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (dev, ino) or st.st_uid != os.geteuid():
                return False
            empty_dir(fd, dev)
            return _rmdir_entry(pfd, name, dev, ino)
        finally:
            os.close(fd)
    finally:
        os.close(pfd)


def unlink_recorded(parent: str, name: str, dev: int, ino: int) -> bool:
    """Unlink the file ``parent/name`` if it is still the regular file a run recorded (the
    same device and inode, owned by this user): True if it was. A file renamed since (fio's
    JSON, renamed to ``output.json`` once complete) or replaced is left alone."""
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (dev, ino) \
                or st.st_uid != os.geteuid():
            return False
        os.unlink(name, dir_fd=pfd)
        return True
    except OSError:
        return False
    finally:
        os.close(pfd)


def detach_mount(parent: Path | str, name: str, dev: int | None = None,
                 ino: int | None = None) -> bool:
    """Lazily unmount (``umount2(MNT_DETACH)``, as ``umount -l``) the filesystem mounted at
    ``parent/name``, reached through a descriptor of the mount point opened with
    ``O_NOFOLLOW``, and only if its root is device ``dev`` inode ``ino`` (when given): a
    swapped path cannot make root unmount something else. The filesystem is released once its
    last user lets go (a loop device of ``mount -o loop`` then frees itself: autoclear)."""
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
    except OSError:
        os.close(pfd)
        return False
    try:
        st = os.fstat(fd)
        if dev is not None and (st.st_dev, st.st_ino) != (dev, ino):
            return False
        if st.st_dev == os.fstat(pfd).st_dev:
            return False  # not a mount point
        libc = ctypes.CDLL(None, use_errno=True)
        for _ in range(50):  # a qemu-nbd that just exited may still hold it for a moment
            if libc.umount2(f"/proc/self/fd/{fd}".encode(), _MNT_DETACH) == 0:
                return True
            time.sleep(0.1)
        return False
    finally:
        os.close(fd)
        os.close(pfd)


#: symlinks :meth:`HeldDir.open_existing` follows in a row before it refuses (a loop)
LINK_HOPS = 8


def _trusted_link(parent_fd: int, where: Path, hops: int) -> Path | str | None:
    """Where the symlink ``where`` (its name in the directory held by ``parent_fd``) points,
    when it may be followed: it is the invoking user's or root's, its directory is not one
    another user could add or swap names in (:func:`cowbench.imagefile.untrusted_dir`:
    sticky ``/tmp`` passes, as the kernel's ``protected_symlinks`` lets a link's owner follow
    it there), and fewer than :data:`LINK_HOPS` links were followed to reach it. Else why not
    (words to follow "a symlink"), or None when ``where`` is no symlink."""
    from .imagefile import invoking_user, untrusted_dir

    try:
        st = os.stat(where.name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISLNK(st.st_mode):
        return None
    if hops >= LINK_HOPS:
        return f"followed after {LINK_HOPS} others: refused (a loop?)"
    if st.st_uid not in (0, invoking_user()[0]):
        return f"of uid {st.st_uid}, which another user could have put there: refused"
    why = untrusted_dir(os.fstat(parent_fd), where.parent)
    if why is not None:
        return f"in a directory another user could swap it in ({why}): refused"
    try:
        target = os.readlink(where.name, dir_fd=parent_fd)
    except OSError as err:
        return f"that cannot be read ({err.strerror})"
    return Path(os.path.normpath(where.parent / target))
