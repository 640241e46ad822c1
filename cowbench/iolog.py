"""Block traces: the I/Os a fio job issued, read from fio's own logs.

Two formats, both written by fio itself:

- **iolog** (``write_iolog`` / ``read_iolog``, fio HOWTO "I/O replay"): a header line
  ``fio version 2 iolog`` or ``fio version 3 iolog``, then one line per event. Version 2 lines
  read ``FILE ACTION [OFFSET LENGTH]``; version 3 lines put a timestamp in ms first:
  ``TIME FILE ACTION [OFFSET LENGTH]``. Actions ``read``/``write``/``trim`` carry an offset and a
  length; ``add``/``open``/``close``/``sync``/``datasync``/``wait`` do not move data. A job with
  ``numjobs`` clones writes one file per clone (``NAME.CLONE.0``).
- **latency log with offsets** (``write_lat_log=PREFIX`` + ``log_offset=1``): one file per clone,
  ``PREFIX_lat.N.log``, lines ``TIME_MS, LAT_NS, DDIR, BS, OFFSET[, PRIO]`` with DDIR 0 read,
  1 write, 2 trim. fio warns that clones sharing one ``write_iolog`` file can interleave and
  corrupt it (HOWTO, write_iolog), so cowbench records clones through these per-clone files.

Measured here (fio 3.33): the per-clone offset sets of a job run with ``ioengine=null`` equal
those of the same job through qemu-nbd (FACTS.md section 5), clone by clone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ScenarioError, UsageError
from .safeload import read_input
from .units import MAX_SIZE

#: Largest iolog read (a few million I/Os).
MAX_IOLOG_BYTES = 256 << 20

if TYPE_CHECKING:
    import numpy as np

READ, WRITE, TRIM = 0, 1, 2
_ACTIONS = {"read": READ, "write": WRITE, "trim": TRIM}
_NO_DATA = {"add", "open", "close", "sync", "datasync", "wait"}


class TraceError(UsageError):
    """A trace file that cannot be read: names the file, the line and the reason."""


@dataclass(frozen=True)
class Trace:
    """One job clone's I/Os in order: byte offsets, lengths and direction (READ/WRITE/TRIM)."""

    offsets: np.ndarray
    lengths: np.ndarray
    ddir: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    @property
    def end(self) -> int:
        """One past the last byte any I/O touches (0 for an empty trace)."""
        return int((self.offsets + self.lengths).max()) if len(self) else 0

    @classmethod
    def build(cls, offsets: list[int], lengths: list[int], ddir: list[int]) -> Trace:
        import numpy as np  # here, not at the top: validating a scenario stays light

        return cls(np.asarray(offsets, dtype=np.int64), np.asarray(lengths, dtype=np.int64),
                   np.asarray(ddir, dtype=np.int8))


def parse_iolog(text: str, source: str = "<iolog>") -> dict[str, Trace]:
    """fio iolog v2 or v3 → one :class:`Trace` per file name, in the order files appear."""
    lines = text.splitlines()
    head = lines[0].strip() if lines else ""
    m = re.fullmatch(r"fio version ([23]) iolog", head)
    if m is None:
        raise TraceError(f"{source}: line 1: not a fio iolog (want 'fio version 2 iolog' or "
                         f"'fio version 3 iolog', got {head[:40]!r})")
    skip = 1 if m.group(1) == "3" else 0
    per_file: dict[str, tuple[list[int], list[int], list[int]]] = {}
    for n, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if skip and not (fields[0].isdigit() and len(fields) > 1):  # v3: its time first
            raise TraceError(f"{source}: line {n}: a version 3 iolog line starts with its "
                             f"time since the run's start (a whole number), got "
                             f"{fields[0]!r}")
        fields = fields[skip:]
        if len(fields) < 2:
            raise TraceError(f"{source}: line {n}: too few fields: {line.strip()!r}")
        name, action = fields[0], fields[1]
        if action in _NO_DATA:
            per_file.setdefault(name, ([], [], []))
            continue
        if action not in _ACTIONS or len(fields) != 4:
            raise TraceError(f"{source}: line {n}: expected FILE read|write|trim OFFSET LENGTH, "
                             f"got {line.strip()!r}")
        try:
            off, length = int(fields[2]), int(fields[3])
        except ValueError:
            raise TraceError(f"{source}: line {n}: offset and length must be integers") from None
        if off < 0 or length <= 0:
            raise TraceError(f"{source}: line {n}: negative offset or non-positive length")
        if off + length > MAX_SIZE:
            raise TraceError(f"{source}: line {n}: reaches byte {off + length}, past any disk "
                             f"(at most 2**63 - 1 bytes)")
        o, ln, d = per_file.setdefault(name, ([], [], []))
        o.append(off)
        ln.append(length)
        d.append(_ACTIONS[action])
    return {name: Trace.build(*cols) for name, cols in per_file.items()}


def parse_latlog(text: str, source: str = "<lat log>") -> Trace:
    """A fio latency log written with ``log_offset=1`` → the I/Os it lists, in order."""
    offs, lens, dirs = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5:
            raise TraceError(f"{source}: line {n}: no offset column (was log_offset=1 set?)")
        try:
            ddir, bs, off = int(fields[2]), int(fields[3]), int(fields[4])
        except ValueError:
            raise TraceError(f"{source}: line {n}: non-numeric field") from None
        offs.append(off)
        lens.append(bs)
        dirs.append(ddir)
    return Trace.build(offs, lens, dirs)


def read_iolog(path: Path) -> list[Trace]:
    """The clones' traces in a ``read_iolog`` file (one per file name it uses)."""
    text = read_log(path)
    traces = list(parse_iolog(text, str(path)).values())
    if not any(len(t) for t in traces):
        raise TraceError(f"{path}: the iolog holds no read, write or trim")
    return [t for t in traces if len(t)]


def latlog_files(prefix: Path) -> list[Path]:
    """``PREFIX_lat.N.log`` files, ordered by clone number N."""
    found = []
    for p in prefix.parent.glob(f"{prefix.name}_lat.*.log"):
        m = re.fullmatch(re.escape(prefix.name) + r"_lat\.(\d+)\.log", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def read_latlogs(prefix: Path) -> list[Trace]:
    """One trace per clone from the latency logs fio wrote under ``prefix``."""
    files = latlog_files(prefix)
    if not files:
        raise TraceError(f"{prefix}: fio wrote no latency logs ({prefix.name}_lat.N.log)")
    return [parse_latlog(read_log(p, for_user=False), str(p)) for p in files]


def read_log(path: Path, for_user: bool = True) -> str:
    """A log fio wrote (an iolog, a latency log): a regular file, size-capped; ``for_user``:
    a user's trace, held to :func:`cowbench.safeload.read_input`'s rule (``False``: the logs
    fio wrote in a run's own tree)."""
    try:
        return read_input(path, "fio log", MAX_IOLOG_BYTES, for_user=for_user)
    except ScenarioError as err:
        raise TraceError(str(err)) from None
