"""A workload as fio options, and the exact offset stream fio would issue for it.

Both backends speak fio (DESIGN.md): the real backend hands these options to fio's ``nbd``
engine; for ``offsets: fio`` the core runs the *same* options through fio's ``null`` engine
first, which issues the same offsets without touching a disk (FACTS.md section 5: a 16 MiB job
takes 0.3 s; the per-clone offset sets equal those of the real run, measured here with
``numjobs=2`` and ``random_distribution=zipf:1.2``). The model then applies that stream, so it
stays a pure function of the scenario and the traces it is given.
"""

from __future__ import annotations

from pathlib import Path

from .iolog import Trace, parse_iolog, read_iolog, read_latlogs, read_log
from .scenario import Workload
from .tools import RawLog, run, which


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
        opts.append(f"--runtime={runtime:g}s")
    if wl.time_based:
        opts.append("--time_based=1")
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
    if wl.verify is not None:
        # verify_fatal: stop at the first block that does not read back as written
        opts += [f"--verify={wl.verify}", f"--do_verify={int(wl.do_verify)}", "--verify_fatal=1"]
    # a job file's offset options (offsets: fio), last: fio takes the last value given
    opts += [f"--{k}" if v is None else f"--{k}={v}" for k, v in wl.fio_extra.items()]
    return opts


def record_options(wl: Workload, directory: Path) -> list[str]:
    """Options that make fio record what it issued: ``write_iolog`` for one clone; per-clone
    latency logs with offsets for several (clones sharing one iolog file may corrupt it)."""
    if wl.numjobs == 1:
        return [f"--write_iolog={directory / 'issued.iolog'}"]
    return [f"--write_lat_log={directory / 'issued'}", "--log_offset=1"]


def recorded_traces(directory: Path) -> list[Trace]:
    """The per-clone traces fio recorded under ``directory`` (see :func:`record_options`)."""
    iolog = directory / "issued.iolog"
    if iolog.exists() or iolog.is_symlink():
        return [t for t in parse_iolog(read_log(iolog), str(iolog)).values() if len(t)]
    return read_latlogs(directory / "issued")


def fio_null_traces(wl: Workload, name: str, disk_size: int, log: RawLog,
                    runtime_cap: float | None = None) -> list[Trace]:
    """The exact per-clone streams fio issues for ``wl`` on a disk of ``disk_size`` bytes.

    fio runs the job with ``ioengine=null`` under the same job name and records it. Where the
    job has no ``size``, the nbd engine's region is the rest of the export after ``offset``, so
    the null run gets ``size`` = disk - offset (measured: ``filesize`` instead would change the
    region of a job that sets ``size``). The
    null engine runs at iodepth 1: deeper, it requeues I/Os and logs them twice (fio 3.33),
    while the stream itself does not depend on the depth (measured: the same offsets in the
    same order as a qemu-nbd run at iodepth 4)."""
    d = log.new_dir(f"fio-null-{name}-issued")
    region = [] if wl.size is not None else [f"--size={disk_size - wl.offset}"]
    argv = [which("fio"), f"--name={name}", "--ioengine=null", *region,
            "--output-format=json", f"--output={d / 'output.json'}",
            *_depth_one(fio_options(wl, runtime_cap)), *record_options(wl, d)]
    run(argv, log=log, label=f"fio-null-{name}", timeout=3600)
    return recorded_traces(d)


def replay_traces(wl: Workload) -> list[Trace]:
    """The clones' traces of a ``read_iolog`` workload."""
    assert wl.read_iolog is not None
    return read_iolog(Path(wl.read_iolog))


def _depth_one(opts: list[str]) -> list[str]:
    return [o if not o.startswith("--iodepth=") else "--iodepth=1" for o in opts]
