"""Proof that a file was not changed since a moment, without reading it again.

A base or an image is hashed when it is complete and must be unchanged at the end of the run
(``real.measure.integrity``). Reading it a second time proves that; so does the kernel, more
cheaply, for every change made through the filesystem:

- *No writer then*: a read lease (``fcntl(F_SETLEASE, F_RDLCK)``, taken and given back at once)
  is refused while any process holds the file open for writing, a shared writable mapping
  included (``fcntl(2)``; the kernel's ``check_conflicting_open``). The probe is made when the
  watch starts and again at the end.
- *No write between*: an inotify watch on the inode (``inotify(7)``) reports ``IN_MODIFY`` for
  every ``write``, ``truncate``, ``fallocate``, copy or clone into the file, whatever the path
  or descriptor, and ``IN_CLOSE_WRITE`` when a descriptor opened for writing is released. A
  store through a writable ``mmap`` reports neither, but needs such a descriptor: released, it
  reports ``IN_CLOSE_WRITE``; still held at the end, the second probe is refused.
- *The same file*: the path still names the inode watched, with its size.

Any event of these kinds, a lost event (``IN_Q_OVERFLOW``), a refused probe or another inode
means *not proven*, never *changed*: the caller then reads the file again. A filesystem without
leases or inotify (the probe or the watch fails) proves nothing either. What this cannot see is
a write below the filesystem (to its block device); a second read of the page cache would not
see it either.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import struct
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
#: the lease-break signal: ignored by default, so a writer opening the file during the probe
#: (microseconds) cannot end this process with SIGIO's default action
_BREAK_SIGNAL = signal.SIGURG
_LIBC = ctypes.CDLL(None, use_errno=True)


class WriteGuard:
    """Watches one file from :meth:`start` on; :meth:`unchanged` says whether the kernel saw
    no write to it. Holds two descriptors until :meth:`close`."""

    def __init__(self, fd: int, inotify: int) -> None:
        self.fd = fd
        self._inotify = inotify
        st = os.fstat(fd)
        self._id = (st.st_dev, st.st_ino, st.st_size)

    @property
    def path(self) -> Path:
        """The watched file itself (this process's descriptor), for reading it."""
        return Path(f"/proc/self/fd/{self.fd}")

    @classmethod
    def start(cls, path: Path) -> WriteGuard | None:
        """Watch ``path`` from now; None where the kernel cannot prove it unchanged (no lease
        or inotify here), a process has it open for writing now, or it cannot be opened."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:  # the digest meets the same error and reports it
            return None
        ino = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if ino < 0:
            os.close(fd)
            return None
        guard = cls(fd, ino)
        watched = _LIBC.inotify_add_watch(ino, str(guard.path).encode(),
                                          IN_MODIFY | IN_CLOSE_WRITE)
        if watched < 0 or not guard._no_writer():
            guard.close()
            return None
        return guard

    def unchanged(self, path: Path) -> bool:
        """True if, since :meth:`start`, nothing wrote to the file or held it open for writing
        and ``path`` still names it, at its size."""
        try:
            no_writer = self._no_writer()
            events = self._events()
            st, now = os.stat(path), os.fstat(self.fd)
        except OSError:
            return False
        return (no_writer and not events and now.st_nlink > 0
                and (st.st_dev, st.st_ino, st.st_size) == self._id
                and (now.st_dev, now.st_ino, now.st_size) == self._id)

    def close(self) -> None:
        for fd in (self._inotify, self.fd):
            if fd >= 0:
                os.close(fd)
        self._inotify = self.fd = -1

    def _no_writer(self) -> bool:
        """The lease probe: refused (EAGAIN) while the file is open for writing anywhere."""
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETSIG, _BREAK_SIGNAL)
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError:  # EAGAIN: a writer; EINVAL, EACCES, EPERM...: no leases here
            return False
        fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True

    def _events(self) -> list[int]:
        """The masks of the events queued since the last call (the watch's own removal,
        ``IN_IGNORED``, counts: the inode is gone)."""
        masks: list[int] = []
        while True:
            try:
                buf = os.read(self._inotify, 64 * 1024)
            except BlockingIOError:
                return masks
            off = 0
            while off < len(buf):
                _, mask, _, n = _EVENT.unpack_from(buf, off)
                masks.append(mask)
                off += _EVENT.size + n
