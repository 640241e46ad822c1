"""A workload as fio options, and the exact offset stream fio would issue for it.

Both backends speak fio (README.md, "Writing a scenario"): the real backend hands these options
to fio's ``nbd`` engine; for ``offsets: fio`` (and ``auto``) the core runs the *same* options
through fio first, without touching a disk, and the model applies that stream, so it stays a
pure function of the scenario and the traces it is given. fio's ``null`` engine issues it
fastest (FACTS.md section 5: a 16 MiB job takes 0.3 s; the per-clone offset sets equal those of
the real run, measured with ``numjobs=2`` and ``random_distribution=zipf:1.2``), but it is not
the nbd engine in two ways that change some streams (:func:`engine_gap`); those jobs are run
through the nbd engine itself on a disk that stores nothing (``cowbench.nullexport``).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from .atomic import ToolOutput
from .errors import InexactStream, ToolError
from .fiopercent import on_disk
from .iolog import (
    Trace,
    latlog_files,
    parse_iolog,
    parse_latlog,
    read_iolog,
    read_latlogs,
    read_log,
)
from .nullexport import NULL_SOCKET_PREFIX, null_export, qemu_nbd_installed
from .scenario import Workload
from .tools import PID_NAMESPACE, RawLog, own_pid_namespace, run, which
from .units import parse_size


def fio_options(wl: Workload, runtime_cap: float | None = None) -> list[str]:
    """``--option=value`` arguments equivalent to the workload (fio HOWTO names)."""
    opts = [f"--rw={wl.rw}", f"--bs={wl.bs}", f"--iodepth={wl.iodepth}",
            f"--numjobs={wl.numjobs}", f"--offset={wl.offset}",
            f"--random_generator={wl.random_generator}", f"--randrepeat={int(wl.randrepeat)}"]
    for key, value in (("size", wl.size), ("io_size", wl.io_size),
                       ("rate_iops", wl.rate_iops), ("randseed", wl.randseed),
                       ("bssplit", wl.bssplit), ("read_iolog", wl.read_iolog)):
        if value is not None:
            opts.append(f"--{key}={value}")
    runtime = wl.runtime
    if runtime_cap is not None:
        runtime = min(runtime, runtime_cap) if runtime is not None else runtime_cap
    if runtime is not None:
        opts.append(f"--runtime={fio_time(runtime)}")
    if wl.time_based:
        opts.append("--time_based=1")
    if wl.ramp_time is not None:
        opts.append(f"--ramp_time={fio_time(wl.ramp_time)}")
    if wl.startdelay is not None:
        low, high = wl.startdelay_range
        opts.append(f"--startdelay={fio_time(low)}" if low == high else
                    f"--startdelay={fio_time(low)}-{fio_time(high)}")
    if wl.rw in ("rw", "readwrite", "randrw"):
        opts.append(f"--rwmixread={wl.rwmixread}")
    if wl.norandommap:
        opts.append("--norandommap=1")
    if wl.random_distribution != "random":
        opts.append(f"--random_distribution={wl.random_distribution}")
    if wl.loops != 1:
        opts.append(f"--loops={wl.loops}")
    if wl.zero_buffers:
        opts.append("--zero_buffers=1")
    opts += think_options(wl)
    if wl.stonewall:  # a job of several: after the ones before it
        opts.append("--stonewall")
    if wl.verify is not None:
        # verify_fatal: stop at the first block that does not read back as written
        opts += [f"--verify={wl.verify}", f"--do_verify={int(wl.do_verify)}", "--verify_fatal=1"]
    # a job file's offset options (offsets: fio), last: fio takes the last value given
    opts += [f"--{k}" if v is None else f"--{k}={v}" for k, v in wl.fio_extra.items()]
    return opts


def think_options(wl: Workload) -> list[str]:
    """fio's thinktime options of ``wl``, as given (none where it sets none)."""
    opts = [f"--{key}={fio_time(value)}" for key, value in (
        ("thinktime", wl.thinktime), ("thinktime_iotime", wl.thinktime_iotime))
        if value is not None]  # thinktime_spin: only fio's default is taken
    if wl.thinktime_blocks is not None:
        opts.append(f"--thinktime_blocks={wl.thinktime_blocks}")
    if wl.thinktime_blocks_type != "complete":
        opts.append(f"--thinktime_blocks_type={wl.thinktime_blocks_type}")
    return opts


def log_options(wl: Workload, job: str) -> list[str]:
    """A job file's log options (``wl.fio_logs``) for the real run's fio, job ``job``: each as
    given, a ``write_*_log`` without a value named after the job as fio names it (the null-engine
    stream runs without them: it writes no log)."""
    return [f"--{k}={job if v is None and k.startswith('write_') else v}"
            for k, v in wl.fio_logs.items()]


def fio_time(seconds: float) -> str:
    """A time as fio parses it: whole seconds, else whole microseconds (fio reads no
    fraction: ``--runtime=0.2s`` is 0, and a ``time_based`` job then refuses to start)."""
    # never an exponent: fio reads --runtime=8.64e+06s as 8 s
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{round(seconds * 1e6)}us"


def real_run_folder(folder: Path) -> bool:
    """Is ``folder`` (under ``raw/``) a real run's fio, rather than a null-engine stream run
    (:func:`fio_null_traces`)? Their names may coincide (VM ``x``'s stream run is
    ``NNNN-fio-null-x``, VM ``null-x``'s real run too); their argv does not: a stream run's
    engine is ``null``, or ``nbd`` on a null-co export's socket (``cowbench.nullexport``,
    in a ``cowbench-null-`` directory). A folder without its argv (a stream run killed before
    its record) is none of a real run's: the real backend writes its argv before fio starts."""
    try:
        argv = json.loads((folder / "argv.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(argv, list):
        return False
    return "--ioengine=null" not in argv and not any(
        isinstance(a, str) and a.startswith("--uri=") and f"/{NULL_SOCKET_PREFIX}" in a
        for a in argv)


def record_options(wl: Workload, directory: Path) -> list[str]:
    """Options that make fio record what it issued: ``write_iolog`` for one clone; per-clone
    latency logs with offsets for several (clones sharing one iolog file may corrupt it),
    numbered by fio's job numbers (several jobs: given after each job's ``--name``)."""
    if wl.numjobs == 1 and not wl.jobs:
        return [f"--write_iolog={directory / 'issued.iolog'}"]
    return [f"--write_lat_log={directory / 'issued'}", "--log_offset=1"]


def job_args(wl: Workload, name: str, options: Callable[[Workload], list[str]],
             record: Path | None = None) -> list[str]:
    """The VM's fio jobs on fio's command line (after the global options): ``--name`` and
    ``options(job)`` per job; several jobs are named ``<name>.<section>``, in order (fio
    numbers them so, and seeds each job's offsets by its number: the null run and the real run
    must list the same jobs in the same order). ``record``: where fio records what it issued."""
    out = []
    for part in wl.parts:
        label = f"{name}.{part.section}" if wl.jobs else name
        out += [f"--name={label}", *options(part)]
        if record is not None:
            out += record_options(part if not wl.jobs else wl, record)
    return out


def recorded_traces(directory: Path, limit: int | None = None) -> list[Trace]:
    """The per-clone traces fio recorded under ``directory`` (see :func:`record_options`);
    ``limit``: each clone's first ``limit`` I/Os only (the rest is never parsed)."""
    iolog = directory / "issued.iolog"
    if iolog.exists() or iolog.is_symlink():
        text = _head(iolog, None if limit is None else limit + 3)  # + the v3 header
        return [t for t in parse_iolog(text, str(iolog)).values() if len(t)]
    if limit is None:
        return read_latlogs(directory / "issued")
    return [parse_latlog(_head(p, limit), str(p)) for p in latlog_files(directory / "issued")]


def _head(path: Path, lines: int | None) -> str:
    """The log's first ``lines`` lines; the file is cut to them (a time-based null run
    issues more than it is asked for, and raw/ keeps what the model used)."""
    text = read_log(path, for_user=False)
    if lines is None:
        return text
    head = "".join(text.splitlines(keepends=True)[:lines]) if text.count("\n") > lines \
        else text
    if len(head) < len(text):
        os.truncate(path, len(head.encode()))
    return head


#: fio's null engine issued 2.9 million I/Os a second here with write_iolog (fio 3.33), and
#: far fewer on the loaded machine; a time-based null run is first given time for 200,000
#: a second (the rest of what it issues is never parsed).
NULL_IOPS_GUESS = 200_000
#: ... and the nbd engine on a null-co export 8-16k (``cowbench.nullexport``).
NBD_IOPS_GUESS = 8_000


def engine_gap(wl: Workload, disk_size: int) -> list[str]:
    """Why fio's ``null`` engine may issue another stream for ``wl`` (a job) than the real
    run's ``nbd`` engine on a disk of ``disk_size`` bytes; empty: the same stream. From fio
    3.33's source (``filesetup.c``, ``io_u.c``, ``backend.c``), each measured against the nbd
    engine on a 1 GiB qemu-nbd export:

    - *the file's end.* The null engine has no file, so fio ends it where the job's region
      ends (``real_file_size`` = ``offset`` + ``size``); the nbd engine's ends at the export's
      end. Sequential offsets look at it: with holes (``rw=write:4k``) fio wraps to the
      region's start only at the file's end, so the null engine writes the holes next
      (size=64m: 16,384 writes, nbd 8,192); a sequential stretch inside a random job
      (``randrw:8``, ``percentage_random``) that reaches the region's end goes on at random
      offsets on the null engine but ends the job on nbd (randwrite percentage_random=50
      offset=64m size=64m: 16,384 writes, nbd 5,860; randrw:8 size=64m: 8,160/8,224 reads and
      writes, nbd 5,909/5,974). ``filesize`` would move the end but widen a random job's
      region with it. Clones at other offsets (``offset_increment``) end elsewhere too.
    - *sync against async.* At iodepth 1 the null engine is synchronous, and fio counts a
      round's ``bytes_issued`` only for queued I/O: a round (a loop) of a synchronous engine
      ends when the job's total reaches ``size`` x ``loops`` or the round runs out of
      offsets, of an asynchronous one (nbd, libaio) at ``size`` bytes. A job whose bytes go
      past one round (``loops`` > 1, ``io_size`` > its region, not ``time_based``) may then
      split its directions otherwise: rw=rw rwmixread=70 bs=64k size=128m loops=2: 2,830
      reads and 1,266 writes on the null engine (and psync), 2,852 and 1,244 on nbd (and
      libaio, io_uring, posixaio). Taken whole, though some such jobs agree (one direction,
      or a random map that runs out at ``size`` bytes: randrw with loops)."""
    part = on_disk(wl, disk_size)
    why: list[str] = []
    region = disk_size - part.offset if part.size is None else part.size
    inc = part.fio_extra.get("offset_increment")
    step = parse_size(inc) if inc else 0
    ends = {part.offset + k * step + region for k in range(part.numjobs)}
    rw = part.fio_extra.get("rw") or part.fio_extra.get("readwrite") or ""
    sequential = ":" in rw or any(k in part.fio_extra for k in ("rw_sequencer",
                                                                "percentage_random"))
    if step and part.numjobs > 1 and part.size is None:
        why.append("offset_increment without size: the null engine gives each clone the "
                   "region of the first")
    elif sequential and min(ends) < disk_size:
        why.append(f"{'rw=' + rw if ':' in rw else 'a sequential stretch'} in a region that "
                   "ends before the disk's end: fio's null engine ends its file there")
    if not part.time_based and (part.loops > 1 or (part.io_size or 0) > region):
        why.append("bytes past one round (loops, or io_size over the region): fio's null "
                   "engine at iodepth 1 is synchronous and ends a round elsewhere")
    return why


def fio_null_traces(wl: Workload, name: str, disk_size: int, log: RawLog,
                    ios: int | None = None, randseed: int | None = None,
                    cancel: threading.Event | None = None) -> list[Trace]:
    """The exact per-clone streams fio issues for ``wl`` on a disk of ``disk_size`` bytes
    (``ios``: only the first ``ios`` I/Os of each clone, for a job bounded by time).

    fio runs the job with ``ioengine=null`` under the same job name and records it; a job
    where that engine would issue another stream than the real run's (:func:`engine_gap`) runs
    through the real run's ``nbd`` engine on a ``null-co`` export of the disk's size
    (``cowbench.nullexport``), or, where no qemu-nbd is installed, through the null engine
    with an :class:`InexactStream` warning. Where the job has no ``size``, the nbd engine's
    region is the rest of the export after ``offset``, so the null run gets ``size`` = disk -
    offset (measured: ``filesize`` instead would change the region of a job that sets
    ``size``). The run is at iodepth 1, its stream the same as at the job's depth (measured:
    the same offsets in the same order as a qemu-nbd run at iodepth 4 and 8; the null engine
    deeper requeues I/Os and logs them twice, fio 3.33). Depth 1 makes the null engine
    synchronous, where the nbd engine stays asynchronous: :func:`engine_gap` says where that
    matters. ``randseed`` seeds a job whose fio seeding is random (``randrepeat=0`` without
    ``randseed``), so the model stays a function of its seed.
    The null run keeps time with ``clock_gettime``: fio's default clock first calibrates the
    CPU's cycle counter, 60-75 ms of CPU at every start (fio 3.33 here: a null run of 1,024
    I/Os took 170-229 ms of CPU, 95-103 ms with this; perf stat, 3 runs each), and what fio
    issues does not depend on its clock (the same stream, measured on randrw, randwrite and
    a zipf randread); the real runs keep fio's default.

    A job bounded by I/O count is asked for ``number_ios``. fio ignores ``number_ios`` (and
    ``io_size``) in a ``time_based`` job, whose stream is not that of any bounded job either
    (at the end of the region it resets its random map and goes on with its generator:
    measured, 4 of 7 rw modes differ from ``io_size`` = 3 x ``size``): the null run is then
    time-based too, given enough time, and each clone's stream is cut at ``ios``.
    ``cancel``: for a call from another thread than the main one (``cowbench.tools.run``)."""
    gaps = [g for p in wl.parts for g in engine_gap(p, disk_size)]
    if gaps and qemu_nbd_installed():
        with null_export(disk_size, log, name) as uri:
            return _traces(wl, name, disk_size, log, ios, randseed, uri, cancel)
    if gaps:
        warnings.warn(f"vm {name}: {gaps[0]}, and without qemu-nbd its stream comes from "
                      "that engine: the model's counts may differ from the real run's "
                      "(install qemu-utils)", InexactStream, stacklevel=2)
    return _traces(wl, name, disk_size, log, ios, randseed, None, cancel)


def stream_engine(wl: Workload, disk_size: int) -> dict[str, object]:
    """run.json's account of which fio engine gives ``wl``'s stream on a disk of
    ``disk_size`` bytes (:func:`fio_null_traces`), and why; ``exact`` false where it may differ
    from the real run's."""
    gaps = [g for p in wl.parts for g in engine_gap(p, disk_size)]
    if not gaps:
        return {"engine": "null", "exact": True}
    if qemu_nbd_installed():
        return {"engine": "nbd (a null-co export)", "exact": True, "why": gaps}
    return {"engine": "null", "exact": False, "why": gaps}


def _traces(wl: Workload, name: str, disk_size: int, log: RawLog, ios: int | None,
            randseed: int | None, uri: str | None,
            cancel: threading.Event | None) -> list[Trace]:
    """:func:`fio_null_traces` on the null engine (``uri`` None) or the nbd engine at
    ``uri``."""
    # several jobs of one VM: ``ios`` bounds those bounded by time; the others run whole
    limited = {id(p): ios if not wl.jobs or p.time_based or p.runtime is not None
               or p.counts_after_ramp else None for p in wl.parts}
    guess = NULL_IOPS_GUESS if uri is None else NBD_IOPS_GUESS
    engine = ["--ioengine=null"] if uri is None else ["--ioengine=nbd", f"--uri={uri}"]
    scale, got = 1.0, 0
    for _ in range(5):
        # one folder: the command's record, fio's JSON and what it recorded issuing
        d = log.new_dir(f"fio-null-{name}")
        output = ToolOutput(d / "output.json", log.lease)

        def opts(part: Workload, scale: float = scale) -> list[str]:
            n = limited[id(part)]
            ms = int(_null_ms(part, n, guess) * scale) \
                if n is not None and part.time_based else None
            if uri is not None:  # the export is the disk: fio takes its geometry as the real run
                return null_options(part, n, randseed, ms)
            part = on_disk(part, disk_size)  # size=N%, offset=N%: fio's bytes there
            return [*null_region(part, disk_size), *null_options(part, n, randseed, ms)]

        # in a PID namespace of its own where it can: fio's job processes die with it
        argv = [*(PID_NAMESPACE if own_pid_namespace() else ()),
                which("fio"), *engine, "--clocksource=clock_gettime",
                "--output-format=json", f"--output={output.partial}",
                *job_args(wl, name, opts, d)]
        try:
            output.hold()
            run(argv, log=log, label=f"fio-null-{name}", timeout=3600, cancel=cancel,
                raw_dir=d)
        except BaseException:
            output.discard()
            raise
        output.commit()
        traces = recorded_traces(d, None if wl.jobs else ios)
        if ios is None:
            return traces
        clones = [p for p in wl.parts for _ in range(p.numjobs)]
        short = [len(t) for t, p in zip(traces, clones, strict=True)
                 if limited[id(p)] is not None and p.time_based and len(t) < ios]
        if not short:
            return [cut(t, ios) if limited[id(p)] is not None else t
                    for t, p in zip(traces, clones, strict=True)]
        got = min(short)
        scale = scale * ios / max(got, 1) * 1.5 + 0.1  # the machine was slower than guessed
    raise ToolError(argv, 0, "", f"fio's null engine issued {got} of {ios} I/Os per clone")


def null_region(wl: Workload, disk_size: int) -> list[str]:
    """The null engine's stand-in for the VM's disk. A job without ``size`` addresses the rest
    of the export after ``offset``. With ``zonemode=strided``, fio jumps its zones over the
    whole device, past ``size`` (measured: 64 KiB writes, size=48m, zonesize=1m, zoneskip=3m
    on a 128 MiB export touched 32 MiB; the null engine with size=48m alone, 12 MiB), so the
    null "file" is given the disk's size there (``filesize``; elsewhere it would widen the
    region of a random job that sets ``size``)."""
    if wl.size is None:
        return [f"--size={disk_size - wl.offset}"]
    if "zonemode" in wl.fio_extra:
        return [f"--filesize={disk_size}"]
    return []


def null_options(wl: Workload, ios: int | None, randseed: int | None,
                 ms: int | None = None) -> list[str]:
    """The job's options as the null run takes them: iodepth 1, no verify read-back (the model
    adds it), the rate only where it chooses directions (a paced rw mix), no thinktime, and
    the bound: ``number_ios`` or, time-based, ``ms`` milliseconds. thinktime changes only
    when fio issues, never what (a paced mix with it is refused: there it would change the
    directions), and its pauses would slow the null run (measured, fio 3.33, 1 s runs on a
    qemu-nbd export: the nbd engine's first 2,000 I/Os with thinktime were the null engine's
    without it, in order, for randwrite and a zipf:1.2 randrw at iodepth 1 with
    thinktime=2000 thinktime_blocks=8, and write with thinktime_iotime=1ms; at iodepth 4
    with thinktime_blocks=4 thinktime_blocks_type=issue, all 1,853 it issued)."""
    keep_rate = wl.rate_iops is not None and 0 < wl.read_fraction < 1
    # no ramp and no delay: they change no offset (measured: randwrite size=8m with
    # rate_iops=2000 ramp_time=1 issues the stream of the job without them), only when the
    # I/Os go and which fio counts; the bound asked for counts the ramp's I/Os
    timing = ("--runtime=", "--do_verify=", "--ramp_time=", "--startdelay=", "--thinktime")
    opts = [o for o in fio_options(wl) if not o.startswith(timing) and
            (keep_rate or not o.startswith("--rate_iops="))]
    opts = _depth_one(opts)
    if wl.verify is not None:  # no state file either: fio would write it in its cwd
        opts += ["--do_verify=0", "--verify_state_save=0"]
    if randseed is not None and wl.randseed is None and not wl.randrepeat:
        opts.append(f"--randseed={randseed}")
    if ms is not None:
        opts.append(f"--runtime={ms}ms")
    elif ios is not None:
        opts.append(f"--number_ios={ios}")
    elif wl.runtime is not None:
        opts.append(f"--runtime={fio_time(wl.runtime)}")
    return opts


def _null_ms(wl: Workload, ios: int, guess: int = NULL_IOPS_GUESS) -> int:
    """Milliseconds a time-based null run first gets for ``ios`` per clone: paced by the
    job's rate where it keeps it (each direction at its own cap: ``rate_iops=300`` on a mix
    issues 600 a second), else at ``guess`` I/Os a second."""
    cap = wl.rate_cap
    if cap is not None and 0 < wl.read_fraction < 1:
        return int(ios / cap * 1050) + 200
    return max(100, int(ios * 1000 / guess))


def cut(trace: Trace, n: int) -> Trace:
    """The first ``n`` I/Os of a clone's stream."""
    return Trace(trace.offsets[:n], trace.lengths[:n], trace.ddir[:n])


def replay_traces(wl: Workload) -> list[Trace]:
    """The clones' traces of a ``read_iolog`` workload."""
    assert wl.read_iolog is not None
    return read_iolog(Path(wl.read_iolog))


def _depth_one(opts: list[str]) -> list[str]:
    return [o if not o.startswith("--iodepth=") else "--iodepth=1" for o in opts]
