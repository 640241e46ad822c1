"""fio job files, read as fio reads them, and each option's fate in cowbench.

The ini format of fio's HOWTO ("Job file format"): ``[section]`` headers, ``key=value`` or a bare
``key`` (a flag such as ``time_based``; a blank after ``=`` is refused for an option of
:data:`CHOICES`, where fio fails on it), ``#`` and ``;`` ending a line (fio 3.33 reads
``bs=8k ; note`` and ``bs=8k#note`` as ``bs=8k``), ``include FILE`` (relative to the including
file), ``${VAR}`` from the environment (unset: refused, as fio refuses it) and fio's keywords
``$ncpus``, ``$pagesize``, ``$mb_memory``. A ``[global]`` section sets defaults for the job
sections after it; a later ``[global]`` adds to them for the jobs after it (fio keeps one
running set of defaults). Files are read through :mod:`cowbench.safeload` (regular files, size
capped), includes nest at most :data:`MAX_INCLUDE_DEPTH` deep and one file reads at most
:data:`MAX_INCLUDES` files in all.

Sizes follow fio's rules, measured on fio 3.33: with ``kb_base=1024`` (the default) ``k``,
``kb`` mean 1024 and ``kib`` means 1000 (fio's compatibility mode); ``kb_base=1000`` swaps them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ScenarioError
from .safeload import read_input

#: Largest job file (or included file) read; fio's own examples are a few hundred bytes.
MAX_JOB_FILE_BYTES = 1 << 20
#: Deepest chain of ``include`` (fio itself stops runaway recursion; so do we).
MAX_INCLUDE_DEPTH = 8
#: Most files one job file may read, itself and every include (a diamond of includes would
#: otherwise read the same files exponentially often).
MAX_INCLUDES = 64
#: Most job sections in one file.
MAX_SECTIONS = 1000


@dataclass
class Section:
    """One job of the file: its name and its options, [global] defaults folded in, in order.

    fio 3.33 runs two sections of one name as two jobs, both of that name (measured: ``fio
    --ioengine=null`` on ``[job]`` twice runs both, and ``--section=job`` runs both). cowbench
    tells them apart by ``key``: the name for the first section of a name, ``name#2``,
    ``name#3`` ... for the later ones (a ``#`` ends a job file's line, so no section is named
    so): in key paths (``job_file[job#2].rw``), a job's ``section`` and so its fio job name
    (``<vm>.job#2``), the streams' keys and the ``at_measured_ios`` account's ``jobs``."""

    name: str
    options: dict[str, str | None] = field(default_factory=dict)
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.name


def _fail(source: str, where: str, reason: str) -> ScenarioError:
    return ScenarioError(source, [(where, reason)])


def _keyword(name: str) -> str:
    if name == "ncpus":
        return str(os.sysconf("SC_NPROCESSORS_ONLN"))
    if name == "pagesize":
        return str(os.sysconf("SC_PAGESIZE"))
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGESIZE")
    return str(pages * size // (1024 * 1024))


_VAR = re.compile(r"\$\{([^}]*)\}|\$(ncpus|pagesize|mb_memory)\b|\$")


#: fio 3.33's options that take one of a list of words (options.c: ``FIO_OPT_STR`` with
#: ``posval``, and their aliases). parse.c matches the value against the list from the first
#: character after ``=``, so ``rw = randwrite`` fails in fio ("failed parsing rw = randwrite",
#: the job dropped) where ``bs = 8k`` (a number) and ``rw =randwrite`` work: measured with
#: ``fio --parse-only`` on every one of them.
CHOICES = frozenset((
    "rw", "readwrite", "rw_sequencer", "random_generator", "random_distribution", "verify",
    "sync", "kb_base", "unit_base", "mem", "iomem", "lockfile", "io_submit_mode",
    "file_service_type", "fallocate", "fadvise_hint", "sync_file_range", "clocksource",
    "zonemode", "thinktime_blocks_type", "rate_process", "write_hint", "cpus_allowed_policy",
    "exit_what", "dedupe_mode", "unified_rw_reporting", "continue_on_error", "steadystate",
    "ss"))

#: Options whose ``$`` names fio fills in per job and file (``$jobname``, ``$jobnum``,
#: ``$filenum``, ``$clientuid``): kept as written (the backend replaces the option anyway).
OWN_DOLLARS = ("filename_format",)


def substitute(text: str, source: str, where: str, keep: bool = False) -> str:
    """``${VAR}`` from the environment and fio's ``$`` keywords; anything else is refused, or
    kept as written with ``keep`` (an option of :data:`OWN_DOLLARS`)."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            var = m.group(1)
            if var not in os.environ:
                raise _fail(source, where, f"${{{var}}} is not set in the environment")
            return os.environ[var]
        if m.group(2):
            return _keyword(m.group(2))
        if keep:
            return m.group(0)
        raise _fail(source, where, "a '$' other than ${VAR}, $ncpus, $pagesize, $mb_memory "
                                   "is not understood here; refused")
    return _VAR.sub(one, text)


def _lines(path: Path, depth: int, chain: tuple[Path, ...],
           read: list[Path]) -> list[tuple[str, str]]:
    """``(where, line)`` for every meaningful line, includes spliced in (``read``: the files
    read so far)."""
    source = str(path)
    if len(read) >= MAX_INCLUDES:
        raise _fail(source, "", f"more than {MAX_INCLUDES} files read through include; refused")
    read.append(path)
    text = read_input(path, "fio job", MAX_JOB_FILE_BYTES)
    out: list[tuple[str, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()  # fio ends a line at # or ;
        if not line:
            continue
        where = f"line {n}"
        if line.startswith("include") and (len(line) == 7 or line[7] in " \t"):
            name = substitute(line[7:].strip(), source, where)
            if not name:
                raise _fail(source, where, "include needs a file name")
            if depth >= MAX_INCLUDE_DEPTH:
                raise _fail(source, where, f"includes nest more than {MAX_INCLUDE_DEPTH} "
                                           "deep; refused")
            inc = path.parent / name
            if inc.resolve() in chain:
                raise _fail(source, where, f"include {name}: includes itself; refused")
            out += _lines(inc, depth + 1, (*chain, inc.resolve()), read)
            continue
        out.append((f"{source}:{n}", line))
    return out


def read_sections(path: str | Path) -> list[Section]:
    """The job sections of a fio job file, each with its [global] defaults folded in."""
    p = Path(path)
    defaults: dict[str, str | None] = {}
    jobs: list[Section] = []
    current: dict[str, str | None] | None = None
    for where, line in _lines(p, 0, (p.resolve(),), []):
        source, _, lineno = where.rpartition(":")
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise _fail(source, f"line {lineno}", f"a section header is [name], got {line!r}")
            name = line[1:-1].strip()
            if name == "global":
                current = defaults
                continue
            if len(jobs) >= MAX_SECTIONS:
                raise _fail(source, f"line {lineno}", f"more than {MAX_SECTIONS} sections")
            same = sum(j.name == name for j in jobs)  # fio runs each: see Section.key
            jobs.append(Section(name, dict(defaults), f"{name}#{same + 1}" if same else name))
            current = jobs[-1].options
            continue
        if current is None:
            raise _fail(source, f"line {lineno}", "an option before any [section]")
        key, eq, value = line.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            shown = key if len(key) <= 40 else f"{key[:20]}...({len(key)} characters)"
            raise _fail(source, f"line {lineno}", f"{shown!r} is not an option name")
        if eq and key in CHOICES and value[:1].isspace():
            raise _fail(source, f"line {lineno}", f"{line!r}: fio 3.33 fails parsing it (it "
                        f"reads {key}'s value from right after '=', blank included); write "
                        f"{key}={value.strip()}")
        current[key] = substitute(value.strip(), source, f"line {lineno}",
                                  key in OWN_DOLLARS) if eq else None
    return jobs


# -- sizes and times as fio reads them --------------------------------------------------------

_SIZE = re.compile(r"(\d+)\s*([kmgtp]?)(i?)(b?)", re.IGNORECASE)
_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def fio_size(value: str, kb_base: int = 1024) -> int:
    """A size in fio's notation (``4k``, ``1m``, ``8KiB``) in bytes, under ``kb_base``."""
    m = _SIZE.fullmatch(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a size fio and cowbench read alike (a whole number "
                         "with an optional k, m, g, t, p suffix)")
    number, prefix, iec, _ = m.groups()
    if iec and not prefix:
        raise ValueError(f"{value!r} is not a size")
    base = kb_base if not iec else (1000 if kb_base == 1024 else 1024)
    return int(number) * int(base ** _POW[prefix.lower()])


_TIME = re.compile(r"(\d+)([A-Za-z]*)")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def fio_seconds(value: str, bare: str = "s") -> float:
    """A time as fio 3.33 reads it (parse.c, ``get_mult_time``): whole digits, then seconds
    with no unit (``bare="us"``: microseconds, for fio's options that are not ``is_seconds``,
    such as ``thinktime``); a unit starting ``us`` (``usec``) or ``ms`` (``msec``), or
    exactly ``s``, ``m``, ``h``, ``d`` (any case). fio reads any other letters as
    microseconds (``1min``, ``10sec``, ``0x10``) and stops a number at a ``.`` (``1.5`` is
    1 s): such values are refused, saying what fio makes of them, since they are surely not
    what was meant."""
    text = value.strip()
    m = _TIME.fullmatch(text)
    if not m:
        lead = re.match(r"\d+", text)
        if lead and text[lead.end()] in ".,":
            raise ValueError(f"{value!r}: fio 3.33 reads whole numbers only and takes "
                             f"{lead.group()} s; write it in ms or us (such as 1500ms)")
        raise ValueError(f"{value!r} is not a time (a whole number with us, usec, ms, msec, "
                         "s, m, h or d; seconds without one)")
    number, unit = int(m.group(1)), m.group(2).lower()
    if unit.startswith("us"):
        return number / 1e6
    if unit.startswith("ms"):
        return number / 1e3
    if not unit and bare == "us":
        return number / 1e6
    if unit in _UNIT_S or not unit:
        return number * _UNIT_S[unit or "s"]
    raise ValueError(f"{value!r}: fio 3.33 knows no unit {m.group(2)!r} and reads it as "
                     f"{number} us (its units are us, usec, ms, msec, s, m, h, d; "
                     "1m is a minute)")
