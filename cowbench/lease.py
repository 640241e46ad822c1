"""Leases: what a run holds, so that a run killed outright (SIGKILL, a crash, the OOM killer)
is found and cleaned up by the next ``cowbench`` command.

A calibration holds one too (``held``: ``cowbench calibrate``, the quick calibration of a first
run, the check of a profile before a run, ``calibrate --check``): its probe images are a tree in
the storage directory, and ``qemu-nbd``/``fio`` die with it but the tree does not. Its lease is
only in the registry (it has no run directory), and ``gc`` removes its trees the same way.

A run takes a lease when it starts: ``lease.json`` in its run directory and the same record in
the registry (``/run/cowbench`` for root, else ``$XDG_RUNTIME_DIR/cowbench``;
``$COWBENCH_RUNTIME_DIR`` overrides both). It holds the run's pid and the process's start time
(field 22 of ``/proc/PID/stat``, with the kernel's boot id, so a reused pid is not mistaken for
the run), and, as the run creates them, its private trees (``cowbench.fdtree`` records: parent,
name, device, inode), its socket directory, its mounts and the partial files it writes in its
run directory (fio's JSON until fio exits 0: parent, name, device, inode). A run that ends
(ok, failed or interrupted) has removed all of these and drops its lease.

A sweep's point holds a lease in its Dask worker (``cowbench.sweep_points``), with the point's
private directory in Dask's scratch among its trees and the sweep's client as its ``owner``:
the client collects the dead ones itself once it has stopped its workers (a worker killed by a
signal to the sweep's process group dies at once, in the middle of its point).

A lease whose process is gone is *dead*: every ``cowbench`` command reports it in one line, and
``cowbench gc`` (:func:`collect`) stops the processes whose command line names the run's
directories, detaches its mounts lazily (``cowbench.fdtree.detach_mount``: through a
descriptor of the mount point, only if it is still the filesystem mounted), unlinks its
partial files that are still the files it made, removes its trees
by device and inode, marks its run.json ``abandoned`` and drops the lease. The run directory is
reached by its name, and its run.json and lease.json touched only while that name still leads to
the directory the run held (``run_dir_id``: device and inode): a parent renamed or replaced by
a symlink since leads elsewhere, and gc leaves that alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .fdtree import PrivateDir, detach_mount, fd_path, remove_recorded, unlink_recorded
from .tools import process_cmdlines

LEASE = "lease.json"
TOOLS = ("qemu-nbd", "qemu-img", "qemu-io", "fio", "cp", "rsync", "xfs_io", "mkfs.xfs",
         "xfs_spaceman", "mkfs.ext4", "mkswap")


def registry() -> Path:
    """Where leases are registered (created on first use, mode 0700)."""
    env = os.environ.get("COWBENCH_RUNTIME_DIR")
    if env:
        where = Path(env)
    elif os.geteuid() == 0:
        where = Path("/run/cowbench")
    else:
        where = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cowbench-{os.geteuid()}")
        where = where / "cowbench" if os.environ.get("XDG_RUNTIME_DIR") else where
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(where, follow_symlinks=False)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PermissionError(f"{where}: not a private directory of this user; leases refused")
    return where


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def this_process() -> dict[str, Any]:
    """Who this process is, as :func:`alive` asks later (a sweep's sweep.json keeps it)."""
    pid = os.getpid()
    return {"pid": pid, "start_ticks": start_ticks(pid), "boot_id": _boot_id()}


def alive(record: dict[str, Any]) -> bool:
    """Is the process that took this lease still running?"""
    return (record.get("boot_id") == _boot_id()
            and start_ticks(int(record["pid"])) == record.get("start_ticks"))


@dataclass
class Lease:
    """The lease of the running process on ``run_dir`` (``io``: where to write a copy in it;
    None for a calibration's, which is only in the registry). ``kind``: ``run`` or
    ``calibration`` (then ``run_dir`` is the storage directory it measures)."""

    run_dir: Path
    io: Path | None
    token: str
    record: dict[str, Any] = field(default_factory=dict)
    #: the record is changed and written by one thread at a time: the null-engine stream
    #: runs (``cowbench.streams``, in threads) add and drop their partial files at once
    _lock: threading.RLock = field(default_factory=threading.RLock, compare=False,
                                   repr=False)

    @classmethod
    def take(cls, run_dir: Path, io: Path | None, token: str, kind: str = "run",
             owner: dict[str, Any] | None = None) -> Lease:
        """``owner``: the process this one works for (:func:`this_process` of a sweep's
        client, for a point its worker runs), which collects the lease once it has stopped
        its workers (:func:`collect_owned`)."""
        pid = os.getpid()
        # the run directory's identity: gc reaches it by name, and touches it only if the
        # name still leads to this directory (a parent swapped meanwhile leads elsewhere)
        ident = {} if io is None else dict(zip(("dev", "ino"), _ident(io), strict=True))
        lease = cls(run_dir, io, token, {
            "pid": pid, "start_ticks": start_ticks(pid), "boot_id": _boot_id(), "kind": kind,
            "run_dir": str(run_dir.absolute()), **({"run_dir_id": ident} if ident else {}),
            "token": token, "trees": [], "mounts": [], "files": [],
            **({"owner": owner} if owner is not None else {})})
        lease._write()
        return lease

    def _write(self) -> None:
        with self._lock:  # the last file written is the newest record
            text = json.dumps(self.record, indent=1) + "\n"
            atomic_write_text(registry() / f"{self.token}.json", text, fsync=False)
            if self.io is not None:
                atomic_write_text(self.io / LEASE, text, fsync=False)

    def add_tree(self, d: PrivateDir) -> None:
        self.record["trees"].append({**d.record(), "fd_path": f"{fd_path(d.fd)}/"})
        self._write()

    def add_mount(self, mnt: Path) -> None:
        st = os.stat(mnt)
        self.record["mounts"].append({"path": os.path.realpath(mnt), "dev": st.st_dev,
                                      "ino": st.st_ino})
        self._write()

    def drop_mount(self, mnt: Path) -> None:
        real = os.path.realpath(mnt)
        self.record["mounts"] = [m for m in self.record["mounts"] if m["path"] != real]
        self._write()

    def add_file(self, path: Path) -> None:
        """A file the run just made at ``path`` and will complete or remove itself (fio's
        partial JSON): a run killed before leaves it to gc, which unlinks it if it is still
        that file (its name, device and inode)."""
        self._add("files", path)

    def drop_file(self, path: Path) -> None:
        """The file at ``path`` was completed (renamed) or removed."""
        self._drop("files", path)

    def add_dir(self, path: Path) -> None:
        """A directory the run just made outside its trees (the null export's socket
        directory: a UNIX socket's path must be short, so it is under ``$TMPDIR``): a run
        killed before it removes it leaves it, and the tools that name it, to gc."""
        self._add("dirs", path)

    def drop_dir(self, path: Path) -> None:
        """The directory at ``path`` was removed, its tools stopped."""
        self._drop("dirs", path)

    def _add(self, key: str, path: Path) -> None:
        """``path`` in the record's ``key`` list, by its real parent, name, device and inode."""
        st = os.stat(path, follow_symlinks=False)
        with self._lock:
            self.record.setdefault(key, []).append({
                "parent": os.path.realpath(path.parent), "name": path.name, "dev": st.st_dev,
                "ino": st.st_ino})
            self._write()

    def _drop(self, key: str, path: Path) -> None:
        where = (os.path.realpath(path.parent), path.name)
        with self._lock:
            self.record[key] = [e for e in self.record.get(key, [])
                                if (e["parent"], e["name"]) != where]
            self._write()

    def release(self) -> None:
        """The run ended and removed what it held."""
        (registry() / f"{self.token}.json").unlink(missing_ok=True)
        if self.io is not None:
            (self.io / LEASE).unlink(missing_ok=True)


@contextmanager
def held(directory: Path, lease: Lease | None = None) -> Iterator[Lease]:
    """``lease`` if given (a run's: its calibration probes are the run's), else a
    calibration's own lease on ``directory``, dropped when the block ends (the block removes
    its trees; a SIGKILL leaves the lease for ``gc``)."""
    if lease is not None:
        yield lease
        return
    own = Lease.take(directory, None, f"calibration-{secrets.token_hex(4)}", "calibration")
    try:
        yield own
    finally:
        own.release()


def dead_leases() -> list[dict[str, Any]]:
    """Registered leases whose process is gone."""
    return [r for r in _leases() if not alive(r)]


def live_leases() -> list[dict[str, Any]]:
    """Registered leases of other processes that still run (runs, calibrations, reports)."""
    return [r for r in _leases() if alive(r) and int(r["pid"]) != os.getpid()]


def _leases() -> list[dict[str, Any]]:
    try:
        where = registry()
    except OSError:
        return []
    found = []
    for p in sorted(where.glob("*.json")):
        try:
            record = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "pid" in record:
            found.append(record)
    return found


def left_behind(record: dict[str, Any]) -> list[str]:
    """What a dead lease's run left that ``cowbench gc`` would remove (``3 directories``,
    ``1 mount(s)``, ``1 partial file(s)``, ``1 socket directory(ies)``); empty when it left
    nothing."""
    counts = ((len(record.get("trees", [])), "directories"),
              (len(record.get("mounts", [])), "mount(s)"),
              (len(record.get("files", [])), "partial file(s)"),
              (len(record.get("dirs", [])), "socket directory(ies)"))
    return [f"{n} {what}" for n, what in counts if n]


def describe(record: dict[str, Any]) -> str:
    """One line: which run (or calibration) died and what it left (:func:`left_behind`)."""
    what = {"calibration": "calibration of", "report": "report of"}.get(
        str(record.get("kind")), "run")
    left = left_behind(record) or ["nothing"]
    return (f"{what} {record['run_dir']} (pid {record['pid']}) died and left "
            f"{', '.join(left[:-1]) + ' and ' if len(left) > 1 else ''}{left[-1]}; "
            "`cowbench gc` removes them")


def collect(record: dict[str, Any]) -> list[str]:
    """Clean up after a dead run (module docstring); what was done, one line each."""
    done = [f"stopped pid {p}" for p in _stop_processes(record)]
    for m in record["mounts"]:
        if _detach(m):
            done.append(f"detached {m['path']}")
    for f in record.get("files", []):  # a partial file inside a run directory gc keeps
        if unlink_recorded(f["parent"], f["name"], f["dev"], f["ino"]):
            done.append(f"removed {f['parent']}/{f['name']}")
    for d in record.get("dirs", []):  # a socket's directory, its server stopped above
        if remove_recorded(d["parent"], d["name"], d["dev"], d["ino"]):
            done.append(f"removed {d['parent']}/{d['name']}")
    missed = 0
    for t in record["trees"]:
        where = f"{t['parent']}/{t['name']}"
        if remove_recorded(t["parent"], t["name"], t["dev"], t["ino"]):
            done.append(f"removed {where}")
        elif os.path.lexists(where):  # another directory (or file) at its name: not touched
            missed += 1
            done.append(f"left alone {where}: not the directory the run made (moved or "
                        f"replaced since; the run's own, if moved, is still on that "
                        f"filesystem, device {t['dev']} inode {t['ino']})")
    if record.get("kind", "run") == "run":  # a calibration's directory is not a run's
        with _run_dir_of(record) as run_dir:
            if run_dir is not None:
                _mark_abandoned(run_dir, record, missed)
                (run_dir / LEASE).unlink(missing_ok=True)
            else:
                done.append(f"left alone {record['run_dir']}: no longer the run's directory "
                            "(moved or replaced since); its run.json and lease.json are as "
                            "the run left them")
    (registry() / f"{record['token']}.json").unlink(missing_ok=True)
    return done


def _ident(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


@contextmanager
def _run_dir_of(record: dict[str, Any]) -> Iterator[Path | None]:
    """The dead run's directory, opened by its name and reached through that descriptor, if
    it is still the directory the run held (``run_dir_id``: device and inode; a lease without
    it, an older cowbench's, is taken by its name); else None."""
    try:
        fd = os.open(record["run_dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        ident = record.get("run_dir_id")
        st = os.fstat(fd)
        same = not isinstance(ident, dict) or \
            (st.st_dev, st.st_ino) == (ident.get("dev"), ident.get("ino"))
        yield fd_path(fd) if same else None
    finally:
        os.close(fd)


def collect_owned(owner: dict[str, Any]) -> list[str]:
    """:func:`collect` every dead lease taken for ``owner`` (a sweep's client, once it has
    stopped its workers: what a worker killed in a point left, the sweep removes itself rather
    than leave it to the next ``cowbench gc``); what was done, one line each."""
    done = []
    for record in dead_leases():
        if record.get("owner") == owner:
            done += collect(record)
    return done


def _needles(record: dict[str, Any]) -> list[bytes]:
    """Strings the command line of one of the run's tools contains: a tree as the run named it
    to tools (``/proc/<pid>/fd/<fd>/``), or its real path."""
    out = []
    for t in record["trees"]:
        out.append(t["fd_path"].encode())
        out.append(f"{t['parent']}/{t['name']}/".encode())
    return out + _real_dirs(record)


def _real_dirs(record: dict[str, Any]) -> list[bytes]:
    """The run's directories outside its trees, by their real paths, as tools name them."""
    return [f"{d['parent']}/{d['name']}/".encode() for d in record.get("dirs", [])]


def _stop_processes(record: dict[str, Any]) -> list[int]:
    """Stop the dead run's tools. A tree named as ``/proc/<pid>/fd/<fd>/`` names whatever
    process holds that pid now: when a new process took the dead run's pid (pids wrap), a
    tool started since it is that process's, not the dead run's (gc stopped a live run's
    qemu-nbd and fio so, measured), and is left alone; one that names a tree by its real
    path is the dead run's whoever holds the pid."""
    needles = _needles(record)
    real = [f"{t['parent']}/{t['name']}/".encode() for t in record["trees"]] + _real_dirs(record)
    heir = start_ticks(int(record["pid"]))  # the pid's present holder (the run is dead)
    pids = []
    for pid, argv in process_cmdlines():
        name = os.path.basename(argv[0].decode(errors="replace"))
        ticks = start_ticks(pid)
        if not (name in TOOLS and ticks is not None
                and ticks >= (record.get("start_ticks") or 0)
                and any(n in a for a in argv for n in needles)):
            continue
        by_path = any(n in a for a in argv for n in real)
        if heir is not None and ticks >= heir and not by_path:
            continue
        pids.append(pid)
    for pid in pids:
        _kill(pid)
    return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while start_ticks(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if start_ticks(pid) is not None:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _detach(mount: dict[str, Any]) -> bool:
    parent, name = os.path.split(mount["path"])
    return detach_mount(parent, name, mount["dev"], mount["ino"])


def _mark_abandoned(run_dir: Path, record: dict[str, Any], missed: int = 0) -> None:
    meta_path = run_dir / "run.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return
    if meta.get("status") == "running":
        what = ("removed what it left" if not missed else
                f"removed what it found; {missed} directory(ies) the run made had been moved or "
                "replaced and were left alone (gc's output names them)")
        meta.update(status="abandoned", reason=f"the run's process (pid {record['pid']}) died "
                    f"without cleaning up; `cowbench gc` {what}")
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")


def run_state(run_dir: Path, meta: dict[str, Any]) -> str:
    """What ``cowbench show`` says of a run whose run.json says ``running``."""
    from .errors import ScenarioError
    from .safeload import load_json_file

    try:  # as a run's own file: never through a symlink, nothing the invoking user can't read
        record = load_json_file(run_dir / LEASE, LEASE, for_user=False)
        if not isinstance(record, dict):
            raise ValueError(LEASE)
    except (ScenarioError, ValueError):
        return "running (no lease: a run of an older cowbench, or its lease was lost)"
    if alive(record):
        return f"running (pid {record['pid']} alive)"
    return (f"abandoned (pid {record['pid']} is gone; `cowbench gc` removes what it left)")
