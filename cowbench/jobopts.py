"""Each fio option of a job file: used by both backends, carried to fio, replaced, or refused.

A job section becomes one workload of the scenario (:class:`cowbench.scenario.Workload`):

- **model**: an option the model knows (``rw``, ``bs``, ``size``, ``runtime`` ...), turned into
  the workload's field; both backends use it;
- **fio**: an option that only shapes the offsets (``offset_increment``, ``bsrange`` ...):
  carried to fio as-is, in the null-engine stream and in the real run, with ``offsets: auto``
  (the default) or ``fio`` (the model then applies fio's own stream); refused with
  ``offsets: model``;
- **log**: fio's time-series logs (``write_bw_log``, ``write_iops_log``, ``write_lat_log``,
  ``log_avg_msec``, ``per_job_logs``): carried to the real run's fio alone (the workload's
  ``fio_logs``), which writes them into the VM's fio directory under the run's ``raw/``;
  ``cowbench fio-json --logs`` names the model's the same (:data:`LOGGED`);
- **replaced**: an option that only chooses how fio reaches a disk or reports (``ioengine``,
  ``filename``, ``direct``, output options): the backend sets its own, and the
  workload's ``replaced`` list (and run.json's ``workload_notes``) says which, what, why;
- **refused**: anything else, with the reason.

A file with several job sections is several jobs of the VM (``Workload.jobs``: one fio process
in the real run), or one of them with ``section:``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import randdist
from .errors import ScenarioError
from .fioengines import engine_problem
from .jobfile import Section, fio_seconds, fio_size, read_sections

#: Options that only shape the offset stream, carried to fio with ``offsets: auto`` or ``fio``.
CARRIED = ("offset_increment", "bsrange", "blocksize_range", "blockalign", "ba",
           "bs_unaligned", "percentage_random", "zonemode", "zonesize", "zonerange",
           "zoneskip", "number_ios", "rw", "readwrite", "rw_sequencer", "bssplit")
#: Options fio also reads as a whole-number percentage (``size=50%``, ``offset=25%`` of the
#: disk; ``io_size=10%`` of the job's region): carried to fio in that form (the real run's fio
#: takes it against the export's size; the null run gets the bytes it comes to,
#: ``cowbench.fiopercent``).
PERCENT = ("size", "offset", "io_size")

_DISK = "the real backend runs fio's nbd engine on the VM's qemu-nbd export, the model its own"
_OUT = "cowbench runs fio with JSON output into the run's raw/ and reads it itself"
_NBD = "the nbd engine has no page cache: every I/O reaches qemu-nbd as issued"
_HIST = ("not carried: the model writes no histogram log to set beside it, and each line holds "
         "all 1,856 of fio's latency bins (FIO_IO_U_PLAT_NR), several KB a window, which the "
         "bound of the carried logs (cowbench.space.log_bytes) does not count")
_LOG_OFFSET = ("not carried: it adds each I/O's offset as a sixth column only to fio's log "
               "lines, which the model's logs (cowbench fio-json --logs) do not have, and the "
               "real run's own issued-I/O record (write_iolog: true) sets it itself")
_THREAD = ("fio runs each job as a thread of its process rather than a forked process; each "
           "job issues the same I/O either way, and the backend starts fio its own way")
_NO_FLUSH = ("the model does not simulate flushes yet (a flush writes back qcow2's metadata "
             "caches), nor does the real backend pass them to fio's nbd engine: refused "
             "rather than run without them")
#: Options that make fio flush the disk or write synchronously, and what they do; 0 (and
#: sync=none) is fio's default, no flush.
FLUSHES: dict[str, str] = {
    "fsync": "a flush of the disk after every N writes",
    "fdatasync": "a flush of the disk's data after every N writes",
    "end_fsync": "a flush of the disk when the job's writes end",
    "fsync_on_close": "a flush of the disk when fio closes it",
    "sync": "every write synchronous (O_SYNC or O_DSYNC): on a VM's disk, a flush or a "
            "forced unit access with each write",
}
#: fio's time-series log options the real run's fio is given as the job file gives them
#: (``Workload.fio_logs``): the ``write_*_log`` prefixes (a bare file name: fio writes in the
#: VM's fio directory under raw/, :func:`log_prefix_problem`), ``log_avg_msec`` (0: a line per
#: I/O, bounded before the run by ``cowbench.space.log_bytes``) and ``per_job_logs``.
LOGGED = ("write_bw_log", "write_iops_log", "write_lat_log", "log_avg_msec", "per_job_logs")
#: what fio-check says of each
_LOGGED_WHY = ("fio writes it into raw/NNNN-fio-<vm>/, its size bounded before the run; "
               "cowbench fio-json --logs names the model's the same")


def log_problem(key: str, value: str | None) -> str | None:
    """Why ``key=value``, one of :data:`LOGGED`, cannot be carried, or None. A ``write_*_log``
    prefix with a directory part (``/tmp/x``, ``../x``, ``logs/x``) is refused, not reduced to
    its file name: fio would write outside the run (or into a directory that is not there),
    and a silently moved file is worse than a clear refusal; without a value fio names the log
    after the job, as it does. ``log_avg_msec`` is a whole number of ms (0: a line per I/O)."""
    text = (value or "").strip()
    if key.startswith("write_"):
        if "/" in text:
            return (f"{key}={value}: a prefix with a directory part; the real run's fio writes "
                    "its logs into the VM's fio directory under the run's raw/, never outside "
                    "the run: give a bare prefix (write_bw_log=NAME) or none (the job's name)")
        return None
    if key == "log_avg_msec" and not re.fullmatch(r"\d+", text):
        return f"log_avg_msec={value}: a whole number of milliseconds (0: a line per I/O)"
    if key == "per_job_logs":
        try:
            fio_flag(key, value)
        except ValueError as err:
            return str(err)
    return None


#: Options the backend sets itself, and why.
REPLACED: dict[str, str] = {
    **dict.fromkeys(("ioengine", "filename", "filename_format", "directory", "nrfiles",
                     "unlink", "invalidate", "fadvise_hint", "create_on_open"), _DISK),
    **dict.fromkeys(("direct", "buffered"), _NBD),
    "thread": _THREAD,
    **dict.fromkeys(("write_hist_log", "log_hist_msec"), _HIST),
    "log_offset": _LOG_OFFSET,
    **dict.fromkeys(("output-format", "output", "lat_percentiles",
                     "clat_percentiles", "percentile_list", "description", "name",
                     "stonewall", "wait_for_previous", "eta", "status-interval"), _OUT),
    "group_reporting": "reporting only: the real run reports every clone (cowbench reads each "
                       "one's count), and `cowbench fio-json` folds the job's clones into one "
                       "entry as fio does",
    "new_group": "reporting only: `cowbench fio-json` starts a new groupid at the job as fio "
                 "does; the I/O is the same",
    "write_iolog": "cowbench records the issued I/O under raw/ when the workload sets "
                   "write_iolog: true",
    "kb_base": "read by cowbench's job-file parser (sizes are bytes once loaded)",
}


def parse_rate_iops(v: object) -> tuple[int, int, int]:
    """fio's ``rate_iops`` as (read, write, trim) I/Os a second, 0 for no cap (fio 3.33's
    split option, measured with its null engine: one value caps all three directions; two cap
    reads and writes, trims taking the second; an empty place is no cap, ``100,`` reads only,
    ``,50`` writes and trims). A value that caps nothing, or a negative one, is refused."""
    if isinstance(v, bool):
        raise ValueError(f"rate_iops must be a whole number or 'R,W[,T]', got {v!r}")
    if isinstance(v, int):
        parts = [str(v)]
    elif isinstance(v, str):
        parts = [p.strip() for p in v.split(",")]
    else:
        raise ValueError(f"rate_iops must be a whole number or 'R,W[,T]', got {v!r}")
    if len(parts) > 3:
        raise ValueError(f"rate_iops takes at most 3 values (read,write,trim), got {v!r}")
    nums: list[int] = []
    for p in parts:
        try:
            n = int(p, 0) if p else 0
        except ValueError:
            raise ValueError(f"rate_iops: {p!r} in {v!r} is not a whole number") from None
        if n < 0:
            raise ValueError(f"rate_iops: {n} in {v!r} is negative")
        nums.append(n)
    if len(nums) == 1:
        nums *= 3
    elif len(nums) == 2:
        nums.append(nums[1])
    if not any(nums):
        raise ValueError(f"rate_iops {v!r} caps no direction (give a rate above 0)")
    return nums[0], nums[1], nums[2]


def rate_iops_value(v: object) -> int | str:
    """``rate_iops`` as the scenario keeps it and fio takes it: one number when every
    direction has the same cap, else ``R,W,T`` (an empty place: no cap)."""
    rates = parse_rate_iops(v)
    if len(set(rates)) == 1:
        return rates[0]
    return ",".join(str(r) if r else "" for r in rates)


def _rate(v: str) -> int | str | None:
    """A job file's ``rate_iops``: 0 in every place is fio's default, no cap (measured:
    ``rate_iops=0,0`` on the null engine issued millions of reads and writes in 2 s)."""
    if v is not None and {p.strip() for p in v.split(",")} <= {"0", ""}:
        return None
    return rate_iops_value(v)


def _int(v: str) -> int:
    try:
        return int(v, 0)
    except ValueError:
        raise ValueError(f"{v!r} is not a whole number") from None


#: fio 3.33's FIO_OPT_BOOL options: a value is required, 0 or 1.
BOOLS = frozenset(("randrepeat", "do_verify", "direct", "buffered", "unlink", "invalidate",
                   "create_on_open", "per_job_logs", "log_offset", "lat_percentiles",
                   "clat_percentiles"))
#: fio 3.33's FIO_OPT_STR_SET options: bare means on; a number is on unless it is 0.
SETS = frozenset(("time_based", "norandommap", "zero_buffers", "stonewall",
                  "wait_for_previous", "thread", "group_reporting", "new_group"))


def fio_flag(key: str, value: str | None) -> bool:
    """``key=value`` of a flag option as fio 3.33 reads it (parse.c, ``check_int``: a number;
    no ``true`` or ``yes``); ValueError for what fio refuses, or reads only in part (``1k``)."""
    if value is None:
        if key in BOOLS:
            raise ValueError(f"fio requires a value for {key} (0 or 1)")
        return True
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        n = int(text)
    elif re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        n = int(text, 16)
    else:
        raise ValueError(f"fio 3.33 takes a number for {key} (0 off, 1 on), not {value!r}")
    if key in BOOLS and n > 1:
        raise ValueError(f"fio 3.33 takes 0 or 1 for {key}, not {value!r}")
    return n != 0


def _flag(v: str) -> bool:  # the key's own rule is applied first (_model)
    return v != "0"


def _text(v: str) -> str:
    return v


def _delay(v: str) -> float | str | None:
    """fio's ``startdelay``: a time, or a range ``LOW-HIGH`` of times (``1-3``, ``500ms-2s``)
    from which fio 3.33 draws each clone's own delay; 0 (or ``0-0``) is its default, none."""
    low, dash, high = v.strip().partition("-")
    ends = (fio_seconds(low), fio_seconds(high)) if dash else (fio_seconds(low),) * 2
    if ends[1] < ends[0]:
        raise ValueError(f"{v!r}: the range's high end is below its low end")
    if ends == (0.0, 0.0):
        return None
    return ends[0] if ends[0] == ends[1] else f"{ends[0]:.15g}-{ends[1]:.15g}"


def _usec(v: str) -> float:
    """A time fio reads in microseconds without a unit (``thinktime=1000``: 1 ms), in
    seconds."""
    return fio_seconds(v, bare="us")


#: fio 3.33's thinktime options (backend.c ``handle_thinktime``), what each does as both
#: backends run it: fio-check prints it beside the value.
THINK: dict[str, str] = {
    "thinktime": "seconds; every thinktime_blocks I/Os fio issues no more, waits for those in "
                 "flight, then pauses this long (the runtime includes the pauses)",
    "thinktime_blocks": "I/Os between pauses (fio's default 1); the I/Os in flight never "
                        "exceed it",
    "thinktime_blocks_type": "fio counts issued I/Os (issue) or completed ones (complete, "
                             "fio's default; the same at iodepth 1)",
    "thinktime_iotime": "seconds; a pause also once this long has passed since the last one "
                        "began (fio counts the pause in it)",
}


def _verify(v: str) -> str | None:
    """fio's ``verify=0`` (and ``null``) is no verification."""
    return None if v in ("0", "null") else v


#: fio option -> (workload field, converter of fio's text).
MODEL: dict[str, tuple[str, Callable[[str], Any]]] = {
    "rw": ("rw", _text), "readwrite": ("rw", _text), "bs": ("bs", fio_size),
    "blocksize": ("bs", fio_size), "iodepth": ("iodepth", _int), "numjobs": ("numjobs", _int),
    "size": ("size", fio_size), "filesize": ("size", fio_size), "offset": ("offset", fio_size),
    "io_size": ("io_size", fio_size), "io_limit": ("io_size", fio_size),
    "runtime": ("runtime", fio_seconds), "timeout": ("runtime", fio_seconds),
    "time_based": ("time_based", _flag), "rate_iops": ("rate_iops", _rate),
    "rwmixread": ("rwmixread", _int), "norandommap": ("norandommap", _flag),
    "random_generator": ("random_generator", _text), "randseed": ("randseed", _int),
    "randrepeat": ("randrepeat", _flag), "verify": ("verify", _verify),
    "do_verify": ("do_verify", _flag), "random_distribution": ("random_distribution", _text),
    "bssplit": ("bssplit", _text), "loops": ("loops", _int),
    "zero_buffers": ("zero_buffers", _flag), "read_iolog": ("read_iolog", _text),
    "ramp_time": ("ramp_time", fio_seconds), "startdelay": ("startdelay", _delay),
    "thinktime": ("thinktime", _usec), "thinktime_spin": ("thinktime_spin", _usec),
    "thinktime_blocks": ("thinktime_blocks", _int),
    "thinktime_blocks_type": ("thinktime_blocks_type", _text),
    "thinktime_iotime": ("thinktime_iotime", fio_seconds),
}


#: What the model makes of fio's timing options (sim/world/vm.py), as fio-check says it.
TIMING = {
    "ramp_time": " s: its I/Os reach the disk but no I/O figure; a time_based job runs "
                 "ramp_time + runtime",
    "startdelay": " s after fio's start, each clone (a range: each its own, as fio draws it)",
}

#: fio's limits of bytes per second (and their minimums): refused with a pointer to
#: ``rate_iops``, the pace the model does carry.
BANDWIDTH_LIMITS = ("rate", "rate_min", "ratemin")

#: Fields whose 0 in a job file is fio's default (``runtime=0``: no time limit; ``io_size=0``:
#: the job's size), measured on fio 3.33's null engine: left absent in the workload.
UNLIMITED = {"runtime": "no time limit", "io_size": "the job's size", "rate_iops": "no cap",
             "ramp_time": "no ramp", "startdelay": "no delay",
             "thinktime": "no pause", "thinktime_spin": "no spinning",
             "thinktime_iotime": "no pause by time"}


@dataclass
class Handling:
    """What cowbench does with one option of a section."""

    option: str
    value: str | None
    kind: str  # "model", "fio", "log", "replaced" or "refused"
    detail: str  # the workload field, or the reason


def _model(key: str, value: str | None, kb_base: int) -> tuple[str, Any]:
    field, conv = MODEL[key]
    if key in BOOLS or key in SETS:
        return field, fio_flag(key, value)
    if value is None:
        raise ValueError("needs a value")
    if conv is fio_size:
        if "%" in value:
            raise ValueError(f"{value!r}: a percentage is only read for size, offset and "
                             "io_size")
        out: Any = fio_size(value, kb_base)
    elif key == "random_distribution":
        out = randdist.in_bytes(value, kb_base)  # zoned_abs sizes under the file's kb_base
    else:
        out = conv(value)
    if field in UNLIMITED and not out:
        return field, None  # fio's 0 is its default, no limit: the field stays absent
    return field, out


def classify(section: Section, offsets_fio: bool) -> list[Handling]:
    """How each option of ``section`` is handled (``offsets_fio``: the workload's offsets come
    from fio, ``offsets: auto`` or ``fio``)."""
    kb_base = _kb(section)
    handled = [_one(key, value, kb_base, offsets_fio) for key, value in section.options.items()]
    return [_files(h, section, kb_base) for h in handled]


def _files(h: Handling, section: Section, kb_base: int) -> Handling:
    """``nrfiles`` and ``filesize`` as fio 3.33 reads them with ``size`` (measured on a 128
    MiB file, psync, and the null engine: ``size=64m`` with ``filesize=16m``, in either order,
    writes the stream of ``size=16m``; ``size=8m`` with it, 8 MiB over the 16 MiB file;
    ``nrfiles=4`` with ``filesize=16m``, four files of 16 MiB)."""
    if h.option == "nrfiles" and h.value is not None and h.value.strip().isdigit() \
            and int(h.value) > 1:
        return Handling(h.option, h.value, "refused", f"fio spreads the job over {h.value} "
                        "files, each with its own offsets and bytes; the backend exports one "
                        "disk per VM, so no run issues that I/O")
    opts = section.options
    if h.kind != "model" or h.option not in ("size", "filesize") or not (
            "size" in opts and "filesize" in opts):
        return h
    try:
        size, per_file = (fio_size(opts[k] or "", kb_base) for k in ("size", "filesize"))
    except ValueError:
        return h  # refused by its own handling, or a percentage carried to fio
    if size < per_file and h.option == "filesize":
        return Handling(h.option, h.value, "refused", f"a size ({opts['size']}) smaller than "
                        "filesize: fio moves size's bytes within the larger file; give size "
                        "and io_size instead")
    if h.option == "size" and size >= per_file:
        return Handling(h.option, h.value, "model", f"size={per_file} (fio's one file is "
                        f"filesize={opts['filesize']} long, and the job ends with it)")
    return h


def _one(key: str, value: str | None, kb_base: int, offsets_fio: bool) -> Handling:
    if key == "kb_base" and value not in ("1000", "1024"):
        return Handling(key, value, "refused", "kb_base must be 1000 or 1024")
    if key in BOOLS or key in SETS:
        try:
            fio_flag(key, value)
        except ValueError as err:
            return Handling(key, value, "refused", str(err))
    if key == "ioengine" and (problem := engine_problem(value)):
        return Handling(key, value, "refused", problem)
    if key in FLUSHES:
        if value is not None and value.strip() in ("0", "none"):
            return Handling(key, value, "replaced", "fio's default, no flush: the runs issue "
                            "none")
        return Handling(key, value, "refused", f"{key}: {FLUSHES[key]}; {_NO_FLUSH}")
    if key in REPLACED:
        return Handling(key, value, "replaced", REPLACED[key])
    if key in LOGGED:
        if problem := log_problem(key, value):
            return Handling(key, value, "refused", problem)
        return Handling(key, value, "log", _LOGGED_WHY)
    if key == "rwmixwrite" and value is not None and value.isdigit():
        return Handling(key, value, "model", f"rwmixread={100 - int(value)}")
    if key in ("rw", "readwrite") and ":" in (value or "") and not _rw_suffix(value or ""):
        return Handling(key, value, "refused", "after ':' fio takes a count of I/Os per "
                        "random offset (rw=randrw:8) or, sequential, a size to skip "
                        "(rw=read:-8k)")
    if key in MODEL and not _offset_form(key, value):
        try:
            field, conv = _model(key, value, kb_base)
        except ValueError as err:
            return Handling(key, value, "refused", str(err))
        if conv is None and field in UNLIMITED:
            return Handling(key, value, "model", f"{field} absent (0 is fio's default: "
                            f"{UNLIMITED[field]})")
        note = f" ({THINK[key]})" if key in THINK else TIMING.get(field, "")
        return Handling(key, value, "model", f"{field}={conv}{note}")
    if key in CARRIED or key in ("bs", "blocksize") or _offset_form(key, value):
        if (key in PERCENT or (value or "").endswith("%")) and \
                (problem := percent_problem(key, value)):
            return Handling(key, value, "refused", problem)
        if offsets_fio:
            return Handling(key, value, "fio", "carried to fio as-is (offsets: auto or fio)")
        return Handling(key, value, "refused", "the model does not generate it; fio carries "
                                               "it with offsets: auto (the default) or fio")
    if key in BANDWIDTH_LIMITS:
        return Handling(key, value, "refused", f"a bandwidth rate limit ({key}, bytes per "
                        "second) is not modelled; pace the job by I/Os with rate_iops=N (I/Os per "
                        "second), which both backends carry")
    return Handling(key, value, "refused", "not an option the model or the backends know")


def model_value(section: Section, h: Handling) -> tuple[str, Any]:
    """The workload field and value of ``h``, an option of ``section`` handled by the model
    (one of :data:`MODEL`)."""
    return _model(h.option, h.value, _kb(section))


def percent_problem(key: str, value: str | None) -> str | None:
    """Why fio's ``size=N%``, ``offset=N%`` or ``io_size=N%`` is not carried exactly, or
    None: fio reads a whole number (``12.5%`` becomes 12 bytes in fio 3.33), a size of 0% or
    over 100% as the whole disk, and refuses an io_size over 100% (0% is its default)."""
    text = (value or "").strip()
    low = 1 if key == "size" else 0
    of = "the job's size" if key == "io_size" else "the disk"
    if not re.fullmatch(r"\d+%", text) or not low <= int(text[:-1]) <= 100:
        return f"{key} in percent is a whole number from {low}% to 100% of {of}, got {text!r}"
    return None


def _rw_suffix(value: str) -> bool:
    """``rw=randrw:8`` (random: a count) or ``rw=read:-8k`` (sequential: a size)."""
    mode, _, n = value.partition(":")
    if mode.startswith("rand"):
        return n.isdigit()
    return re.fullmatch(r"-?\d+([kmgt](i?b)?)?", n.lower()) is not None


def _offset_form(key: str, value: str | None) -> bool:
    """A model option in a form only fio's stream carries: ``bs`` ranges or per-direction
    sizes, a per-direction ``bssplit`` (reads', then writes'), ``rw=randrw:N`` (N I/Os per
    offset, fio's rw_sequencer)."""
    if key in ("bs", "blocksize"):
        return bool(value) and any(c in (value or "") for c in ",-:")
    if key == "bssplit":
        return "," in (value or "")
    if key in PERCENT:
        return (value or "").strip().endswith("%")
    return key in ("rw", "readwrite") and ":" in (value or "")


def workload_of(section: Section, offsets_fio: bool) -> tuple[dict[str, Any], list[Handling]]:
    """The workload mapping for ``section`` and every option's handling."""
    handled = classify(section, offsets_fio)
    wl: dict[str, Any] = {}
    carried: dict[str, str | None] = {}
    replaced: list[dict[str, str | None]] = []
    logs: dict[str, str | None] = {}
    for h in handled:
        if h.kind == "model" and h.option == "rwmixwrite":
            wl["rwmixread"] = 100 - int(h.value or 0)
        elif h.kind == "model":
            field, value = _model(h.option, h.value, _kb(section))
            if h.option == "size" and h.detail.startswith("size=") and "filesize" in h.detail:
                value = int(h.detail[5:].split(" ")[0])  # filesize, the file's length (_files)
            wl[field] = value
            if value is None:  # runtime=0, io_size=0: fio's default (a later one may set it)
                del wl[field]
        elif h.kind == "fio":
            carried[h.option] = h.value
            if h.option in ("rw", "readwrite") and h.value:  # randrw:8: randrw for the model
                wl["rw"] = h.value.split(":", 1)[0]
        elif h.kind == "log":
            logs.pop(h.option, None)  # fio takes the last value given: kept last
            logs[h.option] = h.value
        elif h.kind == "replaced" and h.option != "kb_base":
            replaced.append({"option": h.option, "value": h.value, "reason": h.detail})
    if not any(k in section.options for k in ("rw", "readwrite")):
        wl["rw"] = "read"  # fio's default (HOWTO: rw, "Default: read"), not the schema's
    if carried:
        wl["fio_extra"] = carried
    if logs:
        wl["fio_logs"] = logs
    if replaced:
        wl["replaced"] = replaced
    return wl, handled


def _kb(section: Section) -> int:
    """The section's kb_base; 1024 when it is not 1000 (an invalid one is refused by name)."""
    return 1000 if section.options.get("kb_base") == "1000" else 1024


# -- job_file in a scenario --------------------------------------------------------------------

def _section(sections: list[Section], wanted: Any, file: str,
             where: str) -> list[Section]:
    """The sections ``section: wanted`` picks: every section of that name, as fio's
    ``--section`` runs them (two ``[job]``: both), or else the one whose key it is
    (``job#2``: the second ``[job]`` alone)."""
    found = [s for s in sections if s.name == wanted] or [s for s in sections if s.key == wanted]
    if not found:
        raise ScenarioError(file, [(f"{where}.section", f"no job section [{wanted}] in "
                                    f"{file} (it has: {_names(sections)})")])
    return found


def _names(sections: list[Section]) -> str:
    return ", ".join(s.key for s in sections) or "none"


def expand(spec: dict[str, Any], base: Path, where: str,
           origins: dict[str, str]) -> dict[str, Any]:
    """A ``{job_file: ..., section: ..., <workload keys>}`` mapping as a workload mapping; the
    scenario's own keys (``offsets``, ``write_iolog`` ...) win over the file's. Without
    ``section``, a file of several job sections is several jobs of the VM (``jobs``)."""
    own = {k: v for k, v in spec.items() if k not in ("job_file", "section")}
    file = spec["job_file"]
    if not isinstance(file, str) or not file:
        raise ScenarioError(str(base), [(f"{where}.job_file", "must be a file name")])
    path = base / file
    sections = read_sections(path)
    if spec.get("section") is not None:
        sections = _section(sections, spec.get("section"), str(path), where)
    if not sections:
        raise ScenarioError(str(path), [(f"{where}.job_file", f"{file} has no job section")])
    if len(sections) == 1:
        return {**_section_workload(sections[0], path, where, own, origins), **own}
    jobs = [{**_waits(_section_workload(sec, path, where, own, origins, f"{where}.jobs[{i}]"),
                      sec), **own, "section": sec.key} for i, sec in enumerate(sections)]
    return {**jobs[0], "jobs": jobs}


#: Options by which a job of several waits for the ones before it (fio runs them in turn).
WAITS = ("stonewall", "wait_for_previous")


def waits_on(value: str | None) -> bool | None:
    """Whether ``stonewall=value`` (or ``wait_for_previous``) turns fio's stonewall on; None
    when cowbench does not read the value."""
    try:
        return fio_flag("stonewall", value)
    except ValueError:
        return None


def _waits(wl: dict[str, Any], section: Section) -> dict[str, Any]:
    """A job of several with ``stonewall`` or ``wait_for_previous``: carried (``stonewall``),
    no longer a replaced option."""
    if not any(k in section.options and waits_on(section.options[k]) for k in WAITS):
        return wl
    kept = [r for r in wl.get("replaced", []) if r["option"] not in WAITS]
    return {**{k: v for k, v in wl.items() if k != "replaced"},
            **({"replaced": kept} if kept else {}), "stonewall": True}


def _section_workload(section: Section, path: Path, where: str, own: dict[str, Any],
         origins: dict[str, str], at: str | None = None) -> dict[str, Any]:
    """One section's workload mapping (refused options raise, by key path); ``origins`` gets
    the job-file option each workload key (under ``at``) came from."""
    wl, handled = workload_of(section, own.get("offsets", "auto") in ("auto", "fio"))
    refused = [h for h in handled if h.kind == "refused"]
    if refused:
        raise ScenarioError(str(path), [(f"{where}.job_file[{section.key}].{h.option}",
                                         h.detail) for h in refused])
    if wl.get("read_iolog") and not Path(wl["read_iolog"]).is_absolute():
        wl["read_iolog"] = str(path.parent / wl["read_iolog"])  # relative to the job file
    named = f"{where}.job_file[{section.key}]"
    origins[f"@{where}"] = str(path)  # the job file, for a problem's source (job_file_of)
    if at:
        origins[at] = named
    for h in handled:
        if h.kind == "model":
            field = MODEL[h.option][0] if h.option in MODEL else h.detail.split("=")[0]
            origins[f"{at or where}.{field}"] = f"{named}.{h.option}"
        elif h.kind in ("fio", "log"):
            group = "fio_extra" if h.kind == "fio" else "fio_logs"
            origins[f"{at or where}.{group}.{h.option}"] = f"{named}.{h.option}"
    return wl


def as_written(origins: dict[str, str], key: str) -> str:
    """The job-file key path a workload key path came from (``workloads.w.verify`` ->
    ``workloads.w.job_file[db].verify``; ``...jobs[1].x`` -> ``...job_file[b].x``), else
    ``key``."""
    if key in origins:
        return origins[key]
    head, dot, tail = key.rpartition(".")
    while dot:
        if head in origins:
            return f"{origins[head]}.{tail}"
        head, dot, rest = head.rpartition(".")
        tail = f"{rest}.{tail}"
    return key


def job_file_of(origins: dict[str, str], key: str) -> str | None:
    """The job file a key path as written (``workloads.w.job_file[a].verify``) names, or
    None."""
    head, found, _ = key.partition(".job_file[")
    return origins.get(f"@{head}") if found else None


def expand_scenario(data: Any, base: Path, origins: dict[str, str]) -> Any:
    """The scenario mapping with every ``job_file`` workload read (``workloads.NAME`` and
    ``vms[i].workload``; a VM's own job file becomes a workload named after the VM).
    ``origins`` gets, per workload key path, the job-file option it came from."""
    if not isinstance(data, dict):
        return data
    wls = data.get("workloads")
    if isinstance(wls, dict):
        wls = {k: expand(v, base, f"workloads.{k}", origins) if _is_job(v) else v
               for k, v in wls.items()}
        data = {**data, "workloads": wls}
    vms = data.get("vms")
    if isinstance(vms, list) and any(isinstance(v, dict) and _is_job(v.get("workload"))
                                     for v in vms):
        wls = dict(data.get("workloads") or {})
        new_vms = []
        for i, vm in enumerate(vms):
            if isinstance(vm, dict) and _is_job(vm.get("workload")):
                name = str(vm.get("name"))
                if name in wls:
                    raise ScenarioError(str(base), [(f"vms[{i}].workload", f"a workload "
                                                        f"named {name!r} exists already")])
                wls[name] = expand(vm["workload"], base, f"vms[{i}].workload", origins)
                for key in [k for k in origins if k.startswith(f"vms[{i}].workload.")]:
                    origins[f"workloads.{name}." + key.split(".workload.", 1)[1]] = origins[key]
                vm = {**vm, "workload": name}
            new_vms.append(vm)
        data = {**data, "workloads": wls, "vms": new_vms}
    return data


def _is_job(v: Any) -> bool:
    return isinstance(v, dict) and "job_file" in v
