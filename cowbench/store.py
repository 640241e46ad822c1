"""The run directory, a contract other tools read (README.md, "Reading a run directory").

::

    run.json           schema_version, scenario name and hash, seed, backends, status, times,
                       host facts, tool versions
    scenario.yaml      the scenario as resolved
    predicted.parquet  the model's records          (+ predicted.csv, see below)
    measured.parquet   the real backend's records   (+ measured.csv)
    comparison.csv     entity,metric,t_s,predicted,measured,rel_error,unit
    raw/               every external command: argv, stdout, stderr, exit code, JSON output

Every file is written under a temporary name and renamed into place (``cowbench.atomic``), so a
crash never leaves a half-written file that looks complete. A directory that already holds a run
is never reused.

The parquet files are the records; a CSV copy for spreadsheets (``predicted.csv``,
``measured.csv``) is written beside a table of at most :data:`CSV_MAX_ROWS` rows (a plain or
timeline run, a small fleet: a few MB), and beside a larger one only when asked (``--csv``): the
fleet-year's 296,134 records are 1.1 MB of parquet and would be 19.1 MB more of CSV.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from . import __version__
from .atomic import atomic_write_bytes, atomic_write_text, atomic_write_with
from .errors import ScenarioError, UsageError
from .fdtree import HeldDir
from .fsinfo import filesystem_of
from .imagefile import untrusted_writer
from .safeload import load_json_file, refuse_unless_invoker_may_read
from .tools import tool_version

if TYPE_CHECKING:
    import pandas as pd

RUN_SCHEMA_VERSION = 1
__all__ = ["CSV_MAX_ROWS", "atomic_write_bytes", "atomic_write_text", "atomic_write_parquet",
           "RunDir", "read_run", "host_facts", "tool_versions", "now_iso"]
#: Records a table may have for its CSV copy to be written without ``--csv`` (about 7 MB).
CSV_MAX_ROWS = 100_000
RUN_FILES = ("run.json", "scenario.yaml", "predicted.parquet", "measured.parquet",
             "comparison.csv")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write_with(path, lambda tmp: df.to_parquet(tmp, index=False))


def sched_groups(proc: Path = Path("/proc"), cgroup_fs: Path = Path("/sys/fs/cgroup")
                 ) -> Literal["none", "session"]:
    """How this machine's kernel groups the processes cowbench starts on its cores: each
    qemu-nbd and each fio job begins a session of its own, and with the kernel's autogroup on
    (``kernel.sched_autogroup_enabled``) each session is one task group, all its threads
    sharing one share of a crowded core (``session``). Autogroup only applies to processes
    in the root CPU cgroup: under a CPU cgroup of their own (a systemd service's, a
    container's), or with autogroup off or unreadable, each process has its own share
    (``none``). Recorded with the machine's facts; the model can schedule the host's cores
    so (``SchedParams.groups: session``), though its fit leaves the groups off
    (docs/io-model.md, "Each qemu-nbd one task group")."""
    try:
        if (proc / "sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return "none"
        lines = (proc / "self/cgroup").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return "none"
    unified = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            unified = parts[2]
        elif "cpu" in parts[1].split(","):  # cgroup v1's CPU controller
            return "session" if parts[2] == "/" else "none"
    if unified is None or unified == "/":
        return "session"
    # cgroup v2: a cgroup below the root where the CPU controller is on is a task group
    rel = unified.strip("/").split("/")
    for depth in range(len(rel), 0, -1):
        try:
            controllers = (cgroup_fs.joinpath(*rel[:depth]) / "cgroup.controllers").read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if "cpu" in controllers.split():
            return "none"
    return "session"


def host_facts(work: Path | None = None) -> dict[str, Any]:
    """What a later comparison needs to know about the machine (pyperf's metadata)."""
    facts: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "sched_groups": sched_groups(),
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        facts["memory_bytes"] = int(pages)
    except (ValueError, OSError):
        pass
    if work is not None:
        facts["work_dir_fs"] = filesystem_of(work)[0]  # in a chroot too (cowbench.fsinfo)
    return facts


def tool_versions() -> dict[str, str | bool | None]:
    tools = ("qemu-img", "qemu-nbd", "fio")
    with ThreadPoolExecutor(len(tools)) as pool:  # three --version calls at once
        versions: dict[str, str | bool | None] = dict(zip(tools, pool.map(tool_version, tools),
                                                   strict=True))
    return {**versions, "python": sys.version.split()[0], "cowbench": __version__,
            **library_versions(), **source_tree()}


#: the libraries whose versions decide the model's and the reports' figures
LIBRARIES = ("numpy", "simpy", "pandas", "pyarrow", "pydantic")


def library_versions() -> dict[str, str | None]:
    """Each of :data:`LIBRARIES`'s installed version (from its metadata: nothing imported),
    ``None`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def source_tree(root: Path | None = None) -> dict[str, str | bool | None]:
    """When cowbench runs from a git checkout (``root``: the directory above the package):
    ``git_commit`` read from ``.git`` directly (a worktree's ``.git`` file, a branch's ref
    or packed-refs; no git needed), and ``git_dirty``: whether tracked files differ from it,
    asked of git when it is installed (``None`` without git, or when it fails). Empty outside
    a checkout (an installed package)."""
    root = root or Path(__file__).resolve().parent.parent
    dot = root / ".git"
    try:
        gitdir = dot if dot.is_dir() else \
            (root / dot.read_text().split("gitdir:", 1)[1].strip()).resolve()
        head = (gitdir / "HEAD").read_text().strip()
        common = gitdir / (gitdir / "commondir").read_text().strip() \
            if (gitdir / "commondir").is_file() else gitdir
        commit = head if not head.startswith("ref:") else _ref(common, head[4:].strip())
    except (OSError, IndexError):
        return {}
    return {"git_commit": commit, "git_dirty": _dirty(root)}


def _ref(common: Path, ref: str) -> str | None:
    loose = common / ref
    if loose.is_file():
        return loose.read_text().strip()
    packed = common / "packed-refs"
    for line in packed.read_text().splitlines() if packed.is_file() else []:
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref:
            return parts[0]
    return None


def _dirty(root: Path) -> bool | None:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        return None
    try:
        proc = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                               "--untracked-files=no"], capture_output=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(proc.stdout.strip()) if proc.returncode == 0 else None


def refuse_control_characters(path: Path) -> None:
    """Raise :class:`UsageError` if ``path`` (a run's or a sweep's directory, absolute) holds a
    control character (a newline, a tab, ...): fio is handed paths under a run directory and
    writes them into its JSON unescaped (a newline in --out: fio's JSON did not parse and the
    real run failed after building everything), and every message naming the directory would
    break across lines."""
    text = str(path)
    bad = sorted({c for c in text if ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        shown = "".join(repr(c)[1:-1] if c in bad else c for c in text)
        raise UsageError(f"{shown}: holds a control character ({', '.join(repr(c) for c in bad)})"
                         "; fio writes a run's paths into its JSON unescaped, and every message "
                         "naming the directory would break across lines: choose a path without "
                         "newlines, tabs or other control characters")


def refuse_out(path: Path, what: str = "run directory", *, may_hold_files: bool = False
               ) -> None:
    """Raise :class:`UsageError` if ``path`` (absolute) cannot be a ``--out``, a run's or a
    sweep's (``what``), by one rule: a control character in it, a symlink (whoever planted it
    in a shared directory such as /tmp chose where root writes: a user's link there sent a run
    into another directory), a file, a directory holding files (unless ``may_hold_files``: a
    sweep resumes in its own), or a directory above it another user could rename or replace
    (``cowbench.imagefile.untrusted_writer``: a swapped parent chooses where the results go
    when cowbench is next run there)."""
    refuse_control_characters(path)
    if path.is_symlink():
        raise UsageError(f"{path}: is a symlink (to {os.readlink(path)}); give the "
                         "directory itself (a new or empty one)")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: exists and is not a directory")
    if not may_hold_files and path.is_dir() and any(path.iterdir()):
        raise UsageError(f"{path}: already holds files (a run?); "
                         "choose another --out, runs are never mixed")
    existing = next(p for p in (path, *path.parents) if p.exists())
    why = untrusted_writer(existing)
    if why is not None:
        raise UsageError(f"{path}: {why}, who could swap it while the {what} is written; "
                         f"choose a {what} only you (or root) can write")


@dataclass
class RunDir:
    """One run's directory; ``create`` refuses a directory that already holds a run.

    :attr:`path` is where cowbench reads and writes it: once :meth:`create` d, the held
    directory's ``/proc/<pid>/fd/<fd>`` (``cowbench.fdtree.HeldDir``), valid while the run
    lasts (:meth:`close`); :attr:`shown` is the path the user gave, for messages and records.
    """

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    held: HeldDir | None = None

    @classmethod
    def create(cls, path: Path) -> RunDir:
        """Make the run directory at ``path`` (absolute) and hold it (``cowbench.fdtree``)."""
        refuse_out(path)
        held = HeldDir.hold(path, "run directory")
        return cls(held.io, held=held)

    @staticmethod
    def refuse_existing(path: Path) -> None:
        """Raise :class:`UsageError` if ``path`` cannot become a new run's directory
        (:func:`refuse_out`)."""
        refuse_out(path)

    @property
    def shown(self) -> Path:
        return self.held.where if self.held is not None else self.path

    def moved(self) -> str | None:
        """Where the run's files really are when :attr:`shown` no longer leads there."""
        return self.held.moved() if self.held is not None else None

    def close(self) -> None:
        if self.held is not None:
            self.held.close()

    @property
    def raw(self) -> Path:
        return self.path / "raw"

    @property
    def work(self) -> Path:
        return self.path / "work"

    def write_meta(self, **update: Any) -> None:
        self.meta.update(update)
        self.meta.setdefault("schema_version", RUN_SCHEMA_VERSION)
        atomic_write_text(self.path / "run.json", json.dumps(self.meta, indent=2) + "\n")

    def write_records(self, name: str, df: pd.DataFrame, csv: bool = False) -> None:
        """``NAME.parquet``, and ``NAME.csv`` if asked or the table is small (see above)."""
        atomic_write_parquet(self.path / f"{name}.parquet", df)
        if csv or len(df) <= CSV_MAX_ROWS:
            atomic_write_text(self.path / f"{name}.csv", df.to_csv(index=False))

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path / name, text)


def read_run(path: Path) -> dict[str, Any]:
    """run.json of a run directory, with a clear error if it is not one (missing, not a
    regular file, too large, not JSON, not a JSON object)."""
    if not os.path.lexists(path / "run.json"):  # a symlink there: refused by load_json_file
        raise UsageError(f"{path}: not a run directory (no run.json)")
    try:
        meta = load_json_file(path / "run.json", "run.json", for_user=False)
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    if not isinstance(meta, dict):
        raise UsageError(f"{path}/run.json: not a run's metadata (a JSON object)")
    return meta


def read_records(path: Path) -> pd.DataFrame:
    """A run's records (``predicted.parquet``, ``measured.parquet``), or a one-line
    :class:`UsageError` if the file is missing, not a regular file, damaged or not records."""
    import pandas as pd  # reading: imported when asked (a run's start needs no pandas)

    return _read_table(path, ("entity", "metric", "t_s", "value", "unit"), pd.read_parquet,
                       "records (parquet)")


def read_comparison(path: Path) -> pd.DataFrame:
    """A run's ``comparison.csv``, checked like :func:`read_records`."""
    import pandas as pd

    return _read_table(path, ("entity", "metric", "predicted", "measured", "rel_error"),
                       lambda p: pd.read_csv(p, dtype={"entity": str, "metric": str,
                                                       "unit": str}), "comparison (CSV)")


def read_spread(path: Path) -> pd.DataFrame:
    """A run's ``spread.csv`` (``cowbench.spread``), checked like :func:`read_records`."""
    import pandas as pd

    return _read_table(path, ("entity", "metric", "runs", "spread", "within_spread"),
                       lambda p: pd.read_csv(p, dtype={"entity": str, "metric": str,
                                                       "unit": str}), "spread (CSV)")


def _read_table(path: Path, columns: tuple[str, ...], reader: Any, what: str) -> pd.DataFrame:

    with open_own_file(path) as f:
        return _parse_table(f, path, columns, reader, what)


def open_own_file(path: Path) -> BinaryIO:
    """A file cowbench wrote in a run or sweep directory (the records, a CSV), opened for a
    reader as ``cowbench.safeload.read_input`` opens one with ``for_user=False``: never
    through a symlink (cowbench writes none there), a FIFO or a device never read, and under
    sudo only what the invoking user may read (a planted hardlink refused). A one-line
    :class:`UsageError` naming ``path`` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        why = "is a symlink, which cowbench never writes in a run directory; refused" \
            if os.path.islink(path) else f"cannot read: {err.strerror}"
        raise UsageError(f"{path}: {why}") from None
    f = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: not a regular file; refused")
        try:
            refuse_unless_invoker_may_read(st, str(path))
        except ScenarioError as err:
            raise UsageError(str(err)) from None
    except BaseException:
        f.close()
        raise
    return f


def _parse_table(f: Any, path: Path, columns: tuple[str, ...], reader: Any, what: str
                 ) -> pd.DataFrame:
    import pandas as pd

    try:
        df = reader(f)
    except MemoryError:
        raise UsageError(f"{path}: too large to read into memory") from None
    except Exception as err:  # pyarrow and pandas raise many kinds for a damaged file
        raise UsageError(f"{path}: not a readable {what}: {type(err).__name__}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(f"{path}: not {what}: no column {', '.join(missing)}")
    for c in columns if len(df) else ():
        if c in ("entity", "metric", "unit"):
            continue
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise UsageError(f"{path}: column {c} is not numeric; the file is damaged")
    return pd.DataFrame(df)
