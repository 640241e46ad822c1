"""A scenario's workload: one fio job in fio's own option names and meanings (fio HOWTO),
checked against what the model's offset generator and fio itself can do."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from . import randdist
from .jobfile import fio_seconds
from .jobopts import (
    CARRIED,
    LOGGED,
    PERCENT,
    log_problem,
    parse_rate_iops,
    percent_problem,
    rate_iops_value,
)
from .schema_base import Bytes, Frozen, Seconds
from .units import parse_duration, parse_size

RW = Literal["read", "write", "randread", "randwrite", "rw", "readwrite", "randrw", "trim",
             "randtrim", "trimwrite"]


#: Why a thinktime_spin above 0 is refused. fio 3.33 (backend.c handle_thinktime) sleeps
#: ``int left = thinktime - spun`` after spinning, and when the spin took longer than the
#: whole thinktime (preempted, or a spin as long as the thinktime) that is negative, which
#: usec_sleep reads as an unsigned ~2**64 us: the job sleeps until it is killed.
SPIN_HANGS = ("fio 3.33 sleeps for ever once a spin outlasts the thinktime (its remainder, "
              "negative, read as unsigned): measured, thinktime=1000 thinktime_spin=500 on "
              "the null engine and thinktime=2000 thinktime_spin=1000 on nbd, runs of 2 s, "
              "still asleep after 25 and 13 minutes; the model has no such hang. Drop "
              "thinktime_spin (the pause is thinktime long either way)")


class WorkloadProblem(ValueError):
    """A workload's problem with the fields it concerns (``verify``, ``fio_extra.size``,
    ``jobs[1].zero_buffers``): the key path names the first, and a job file's own option
    where the field came from one."""

    def __init__(self, fields: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.fields = fields


class Replaced(Frozen):
    """A job-file option the backend set itself (cowbench.jobopts.REPLACED says why)."""

    option: str
    value: str | None = None
    reason: str


class Workload(Frozen):
    """One fio job, in fio's own option names and meanings (fio HOWTO).

    Sizes in bytes and times in seconds once loaded. ``rw`` defaults to fio's ``read``;
    ``size`` to the rest of the disk after ``offset``; ``io_size`` to ``size``. Each of
    ``numjobs`` clones runs the whole job.
    """

    rw: RW = "read"
    bs: Bytes = 4096
    iodepth: int = Field(default=1, ge=1, le=1024)
    numjobs: int = Field(default=1, ge=1, le=64)
    size: Bytes | None = Field(default=None, gt=0)
    offset: Bytes = 0
    io_size: Bytes | None = Field(default=None, gt=0)
    runtime: Seconds | None = Field(default=None, gt=0)
    time_based: bool = False
    ramp_time: Seconds | None = Field(
        default=None, gt=0, description="fio's ramp_time: each clone runs this long before "
        "fio counts anything. Its I/Os reach the disk (they allocate, and the host's bytes "
        "count them) but fio leaves them out of its I/O figures (ios, IOPS, bandwidth, "
        "latency), and runtime counts from the ramp's end: a time_based job runs ramp_time "
        "+ runtime; size and io_size count the ramp's I/Os, number_ios does not (fio 3.33, "
        "measured: sim.world.vm).")
    startdelay: Seconds | str | None = Field(
        default=None, description="fio's startdelay: each clone starts this long after fio "
        "does (not after a stonewall's wait: fio counts from its own start), its runtime "
        "from then; 'LOW-HIGH' gives each clone its own delay in that range, drawn as fio "
        "3.33 draws it (the clone's seeds, fio's rand_between in microseconds).")
    rate_iops: int | str | None = Field(
        default=None, description="fio's rate_iops: a cap on each direction's I/Os a second, "
        "per clone. One number caps reads, writes and trims alike (a read/write mix then "
        "issues up to that many reads AND that many writes a second); 'R,W' or 'R,W,T' caps "
        "each direction on its own (trims take W when T is not given), an empty or 0 place "
        "none ('100,' caps reads only).")
    rwmixread: int = Field(default=50, ge=0, le=100)
    thinktime: float | None = Field(
        default=None, description="fio's thinktime: every thinktime_blocks I/Os, fio stops "
        "issuing, waits for the I/Os in flight, then pauses this long (a bursty application). "
        "Seconds (0.001), or fio's text ('1000' or '1000us': 1 ms; '2ms'); a whole number is "
        "refused (fio's microseconds or seconds?). 0 is fio's default, no pause.")
    thinktime_blocks: int | None = Field(
        default=None, ge=0, description="fio's thinktime_blocks: I/Os between two pauses "
        "(unset: fio's 1; 0 pauses after every I/O, as 1 does); the I/Os in flight never "
        "exceed it.")
    thinktime_blocks_type: Literal["complete", "issue"] = Field(
        default="complete", description="fio's thinktime_blocks_type: count issued I/Os "
        "(issue) or completed ones (complete, fio's default: the same at iodepth 1).")
    thinktime_spin: float | None = Field(
        default=None, description="fio's thinktime_spin: only 0 (fio's default, no spinning) "
        "is taken; see SPIN_HANGS.")
    thinktime_iotime: float | None = Field(
        default=None, description="fio's thinktime_iotime: a pause also once this long has "
        "passed since the last pause began (seconds, or fio's text: bare is seconds); "
        "without thinktime_blocks, only by time.")
    norandommap: bool = False
    random_generator: Literal["tausworthe", "lfsr", "tausworthe64"] = "tausworthe"
    randseed: int | None = Field(default=None, ge=0, lt=2**64)
    randrepeat: bool = True
    verify: Literal["crc32c", "crc32c-intel", "md5", "sha1", "sha256", "sha512",
                    "xxhash"] | None = Field(
        default=None,
        description="fio's verify: each written block carries a checksum, and (with do_verify) "
        "fio reads every block back after the write phase and checks it. Write jobs only.",
    )
    do_verify: bool = True
    random_distribution: str = Field(
        default="random", description="fio's random_distribution: random, zipf:THETA, "
        "pareto:H, normal:DEV, zoned:..., zoned_abs:... (fio HOWTO; cowbench.randdist)")
    bssplit: str | None = Field(
        default=None, description="fio's bssplit, e.g. '4k/50:64k/50' (sizes and percentages)")
    loops: int = Field(default=1, ge=1, le=1_000_000)
    zero_buffers: bool = Field(default=False, description="fio's zero_buffers: write all-zero "
                               "data (what detect_zeroes acts on)")
    offsets: Literal["auto", "model", "fio", "iolog"] = Field(
        default="auto", description="Where the model gets the offsets: 'auto' asks fio itself "
        "for the exact stream (ioengine=null, same options) when fio is installed, else the "
        "model generates them; 'fio' always asks fio; 'model' generates them (fio 3.33's "
        "generators and algorithms, sim/workload/fio.py); 'iolog' reads read_iolog (set by it).")
    read_iolog: str | None = Field(
        default=None, description="A fio iolog (v2 or v3) to replay instead of generating I/O; "
        "the real backend hands it to fio, the model applies it.")
    write_iolog: bool = Field(
        default=False, description="Real backend: record the I/Os fio issued (under raw/), so "
        "`cowbench repredict` can re-run the model on them.")
    fio_extra: dict[str, str | None] = Field(
        default_factory=dict, description="fio options that shape only the offsets "
        "(offset_increment, bsrange ...), handed to fio as-is in the null-engine stream and "
        "the real run; offsets: auto or fio (filled from a job_file).")
    fio_logs: dict[str, str | None] = Field(
        default_factory=dict, description="fio's time-series log options (write_bw_log, "
        "write_iops_log, write_lat_log, log_avg_msec, per_job_logs), handed to the real run's "
        "fio as given: it writes the logs into the VM's fio directory under raw/ (filled from "
        "a job_file).")
    replaced: list[Replaced] = Field(
        default_factory=list, description="Job-file options the backend replaced with its "
        "own (ioengine, filename, direct, output ...): which, what value, why.")
    section: str | None = Field(
        default=None, description="The job-file section a job of several came from: its fio "
        "job name is <vm>.<section> in both backends.")
    stonewall: bool = Field(
        default=False, description="A job of several: it starts once the jobs before it have "
        "finished (fio's stonewall or wait_for_previous).")
    jobs: list[Workload] = Field(
        default_factory=list, description="Several fio jobs the VM runs together on its "
        "disk, in one fio process and in this order (a job file's sections); the workload's "
        "own options are the first job's. Each takes fio's own stream (offsets auto or fio).")

    @field_validator("bs")
    @classmethod
    def _bs(cls, v: int) -> int:
        if v <= 0 or v % 512:
            raise ValueError(f"bs must be a positive multiple of 512 bytes, got {v}")
        return v

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: int) -> int:
        if v % 512:
            raise ValueError(
                f"offset must be a multiple of 512 bytes, got {v}: a VM's disk takes I/O in "
                "512-byte sectors (so must bs), and through qemu-nbd an unaligned offset has "
                "QEMU read and rewrite the sectors it cuts, which no guest causes")
        return v

    @model_validator(mode="before")
    @classmethod
    def _iolog_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("read_iolog") and "offsets" not in data:
            return {**data, "offsets": "iolog"}
        return data

    @field_validator("random_distribution")
    @classmethod
    def _distribution(cls, v: str) -> str:
        return randdist.check(v)

    @field_validator("startdelay", mode="before")
    @classmethod
    def _startdelay(cls, v: Any) -> float | str | None:
        return None if v is None else startdelay_value(v)

    @field_validator("rate_iops", mode="before")
    @classmethod
    def _rate_iops(cls, v: Any) -> int | str | None:
        return None if v is None else rate_iops_value(v)

    @field_validator("thinktime", "thinktime_spin", "thinktime_iotime", mode="before")
    @classmethod
    def _think_time(cls, v: Any, info: ValidationInfo) -> float | None:
        """Seconds, as every time of a scenario (a resolved scenario stores them so), or fio's
        own text (``"1000"`` and ``"1000us"`` are 1 ms for thinktime; ``thinktime_iotime``
        reads bare text as seconds, as fio does). A whole number for thinktime or
        thinktime_spin is refused: fio reads it as microseconds, a scenario as seconds."""
        usec = info.field_name != "thinktime_iotime"
        if v is None:
            return None
        if isinstance(v, str):
            seconds = fio_seconds(v, bare="us" if usec else "s")
        elif isinstance(v, int) and not isinstance(v, bool) and usec and v:
            raise ValueError(f"{v} is microseconds to fio and seconds to a scenario: write "
                             f"'{v}us' (fio's meaning) or {v}.0 (seconds)")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            seconds = parse_duration(v)
        else:
            raise ValueError(f"a time in seconds, or fio's text such as '2ms', got {v!r}")
        if seconds and info.field_name == "thinktime_spin":
            raise ValueError(SPIN_HANGS)
        return seconds or None

    @field_validator("bssplit")
    @classmethod
    def _bssplit(cls, v: str | None) -> str | None:
        if v is not None:
            check_bssplit(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        if self.time_based and self.runtime is None:
            raise ValueError("time_based needs a runtime")
        if self.offset % self.bs and self.offsets == "model":
            raise ValueError("offset must be a multiple of bs for the model's own offsets "
                             "(offsets: auto or fio carry fio's own rounding)")
        if self.verify is not None and self.rw not in ("write", "randwrite"):
            raise WorkloadProblem(("verify", "rw"), f"verify is for write jobs (rw: write or "
                                  f"randwrite), not rw={self.rw}")
        if self.thinktime is not None and (problem := think_problem(self)):
            raise WorkloadProblem(problem[0], problem[1])
        if self.verify is not None and self.time_based:
            raise WorkloadProblem(("verify", "time_based"), "verify with time_based: the "
                                  "write phase ends with the runtime, so fio would never "
                                  "read back; drop one")
        self._logs_ok()
        return self._offsets_source_ok()

    def _logs_ok(self) -> None:
        """``fio_logs``: only :data:`cowbench.jobopts.LOGGED`, each carried as fio takes it;
        not beside the real run's own record of several clones (``write_iolog`` with several
        clones or jobs asks fio for per-I/O latency logs, which a job's ``write_lat_log``,
        ``log_avg_msec`` or ``per_job_logs`` would replace or average)."""
        for key in sorted(self.fio_logs):
            problem = (log_problem(key, self.fio_logs[key]) if key in LOGGED else
                       f"not a log option (only {', '.join(LOGGED)})")
            if problem:
                raise WorkloadProblem((f"fio_logs.{key}",), problem)
        clash = sorted({k for part in (self, *self.jobs) for k in part.fio_logs}
                       & {"write_lat_log", "log_avg_msec", "per_job_logs"})
        if self.write_iolog and clash and (self.numjobs > 1 or self.jobs):
            raise WorkloadProblem((f"fio_logs.{clash[0]}", "write_iolog"), f"{clash[0]} with "
                                  "write_iolog: true: with several clones the real run records "
                                  "what fio issued in per-I/O latency logs, which the job's "
                                  "own would replace; drop one")

    def _offsets_source_ok(self) -> Workload:
        for split in (self.fio_extra.get("bssplit") or "").split(","):
            if split:  # a per-direction bssplit: each direction's split as the model's
                try:
                    check_bssplit(split)
                except ValueError as err:
                    raise WorkloadProblem(("fio_extra.bssplit",), str(err)) from None
        unknown = sorted(set(self.fio_extra) - set(CARRIED) - {"bs", "blocksize", *PERCENT})
        inc = self.fio_extra.get("offset_increment") or ""
        if inc.endswith("%") and (problem := percent_problem("offset_increment", inc)):
            raise WorkloadProblem(("fio_extra.offset_increment",), problem)
        for key in sorted(set(PERCENT) & set(self.fio_extra)):
            problem = percent_problem(key, self.fio_extra[key])
            if problem:
                raise WorkloadProblem((f"fio_extra.{key}",), problem)
            if "offset_increment" in self.fio_extra:
                raise WorkloadProblem(
                    (f"fio_extra.{key}", "fio_extra.offset_increment"),
                    f"{key} in percent with offset_increment ({key}={self.fio_extra[key]}): "
                    "each clone's region is not carried exactly; give bytes")
        for key in ("rw", "readwrite"):
            if key in self.fio_extra and ":" not in (self.fio_extra[key] or ""):
                unknown.append(f"{key} without ':N'")
        if unknown:
            raise ValueError(f"fio_extra carries only offset options ({', '.join(CARRIED)}, "
                             f"bs ranges), not {', '.join(unknown)}")
        if self.fio_extra and self.offsets not in ("fio", "auto"):
            raise ValueError(f"{', '.join(self.fio_extra)}: carried to fio only with "
                             "offsets: auto or fio (the model does not generate it)")
        if self.offsets == "iolog" and not self.read_iolog:
            raise ValueError("offsets: iolog needs read_iolog (a fio iolog file)")
        if self.read_iolog and self.offsets != "iolog":
            raise ValueError("read_iolog replays a trace: offsets must be 'iolog'")
        if self.read_iolog and self.numjobs != 1:
            raise ValueError("read_iolog replays the trace once; numjobs must be 1 (a clone "
                             "would replay it again)")
        if self.offsets == "model" and self.beyond_model:
            raise ValueError(f"{', '.join(self.beyond_model)} is not generated by the model's "
                             "offset generator; set offsets: auto or fio (exact, from fio)")
        return self._jobs_ok()

    def _jobs_ok(self) -> Workload:
        """Several jobs of one VM: each exact from fio's stream, bounded by its size."""
        for i, job in enumerate(self.jobs):
            name = f"jobs[{i}] ({job.section})"
            if job.jobs:
                raise ValueError(f"{name}: a job of several has no jobs of its own")
            if job.offsets not in ("auto", "fio"):
                raise ValueError(f"{name}: several jobs of one VM take fio's own streams "
                                 "(offsets: auto or fio): fio numbers them, and seeds each "
                                 "by its number")
            if job.zero_buffers != self.jobs[0].zero_buffers:
                raise WorkloadProblem((f"jobs[{i}].zero_buffers",), f"{name}: zero_buffers "
                                      "differs from the first job's (the drive sees one kind "
                                      "of data per VM here)")
        return self

    @property
    def parts(self) -> list[Workload]:
        """The fio jobs the VM runs: ``jobs``, or the workload itself."""
        return list(self.jobs) or [self]

    @property
    def beyond_model(self) -> list[str]:
        """What of this job the model's own offset generator does not do (fio must)."""
        return [k for k, on in (
            ("rw=" + self.rw, "trim" in self.rw),
            ("bssplit", self.bssplit is not None), ("loops", self.loops != 1),
            ("offset (not a multiple of bs)", self.offset % self.bs != 0),
            (randdist.model_problem(self.random_distribution) or "",
             randdist.model_problem(self.random_distribution) is not None),
            *((k, True) for k in self.fio_extra),
            ("several jobs (job-file sections)", bool(self.jobs))) if on]

    @property
    def verifies(self) -> bool:
        """True when fio reads back and checks every written block after the write phase."""
        return self.verify is not None and self.do_verify

    @property
    def is_random(self) -> bool:
        return self.rw.startswith("rand")

    @property
    def random_map(self) -> bool:
        """Whether fio keeps its random map (no block twice a pass): a random, uniform job
        without ``norandommap`` or lfsr (zipf, pareto and normal have none; zoned measured
        without one: sim/workload/fiooffs.py)."""
        return (self.is_random and not self.norandommap and self.random_generator != "lfsr"
                and self.random_distribution.partition(":")[0] == "random")

    @property
    def startdelay_range(self) -> tuple[float, float]:
        """fio's startdelay as (low, high) seconds; equal for one value, (0, 0) for none."""
        if self.startdelay is None:
            return 0.0, 0.0
        if isinstance(self.startdelay, str):
            low, high = self.startdelay.split("-")
            return float(low), float(high)
        return self.startdelay, self.startdelay

    @property
    def ramp_s(self) -> float:
        """fio's ramp_time in seconds (0: none)."""
        return self.ramp_time or 0.0

    @property
    def counts_after_ramp(self) -> bool:
        """A job file's ``number_ios`` with a ramp: fio counts it from the ramp's end, so
        the I/Os it issues depend on how many the ramp's time lets through."""
        return self.ramp_time is not None and "number_ios" in self.fio_extra

    @property
    def rates(self) -> tuple[int, int, int]:
        """fio's rate_iops per direction (read, write, trim): I/Os a second, 0 for none."""
        return (0, 0, 0) if self.rate_iops is None else parse_rate_iops(self.rate_iops)

    @property
    def rate_cap(self) -> int | None:
        """The most I/Os a second fio's ``rate_iops`` lets one clone issue: the sum of the caps
        of the directions it issues (``trimwrite``: a trim beside each write), ``None`` without
        a rate or where a direction it issues has no cap."""
        if self.rate_iops is None:
            return None
        read, write, trim = self.rates
        if self.rw == "trimwrite":
            caps = [write, write]
        elif "trim" in self.rw:
            caps = [trim]
        else:
            caps = ([read] if self.read_fraction > 0 else []) + \
                ([write] if self.read_fraction < 1 else [])
        return None if not all(caps) else sum(caps)

    @property
    def read_fraction(self) -> float:
        if self.rw in ("read", "randread"):
            return 1.0
        if self.rw in ("write", "randwrite"):
            return 0.0
        return self.rwmixread / 100.0


Workload.model_rebuild()  # jobs: a list of Workload


def think_problem(wl: Workload) -> tuple[tuple[str, ...], str] | None:
    """Why ``wl``'s thinktime is not run exactly alike by the model and fio 3.33's nbd engine
    (the fields it concerns and the reason), or None.

    Exact, without a ``ramp_time`` (after which fio 3.33 pauses otherwise): iodepth 1, or
    ``thinktime_blocks_type=issue`` with ``thinktime_blocks`` (fio's
    default 1; needed with ``thinktime_iotime``, which alone pauses by time) no more than
    ``iodepth``: fio then never fills its queue between two pauses, and drains
    every I/O before each pause. Where the queue fills between pauses, fio reaps completions
    as it goes, and the nbd engine then leaves an I/O in flight across the pause (measured on
    a qemu-nbd null-co export, fio 3.33, randwrite 4k, thinktime=1000, 2 s: iodepth=8
    thinktime_blocks=4: one write in each cycle took 1.5-4.8 ms, mean latency 2.46 ms, 2,112
    writes; the same with thinktime_blocks_type=issue: 0.16 ms, 6,032; iodepth=4
    thinktime_blocks=16 issue: 0.86 ms, 6,292, where iodepth 1 did 12,304), which the model,
    draining all before it pauses, does not do."""
    if wl.ramp_time is not None:
        return (("thinktime", "ramp_time"), "thinktime after a ramp_time: fio 3.33 does not "
                "pause as thinktime_blocks says once its ramp ends (it resets its counts then, "
                "and issues about as many I/Os again as the ramp did before it pauses again: "
                "null engine, randrw 8k runtime=2 time_based thinktime=5ms thinktime_blocks=16"
                ": 6,368 I/Os reported without a ramp, 9,552 after ramp_time=1, 12,752 after "
                "ramp_time=2), which the model does not reproduce (it predicted 45% fewer); "
                "drop one of them")
    if wl.rate_iops is not None and 0 < wl.read_fraction < 1:
        return (("thinktime", "rate_iops"), "thinktime on a read/write mix under rate_iops: "
                "fio picks each I/O's direction by which one is behind its rate when it "
                "issues, so the directions follow the pauses' timing, which no stream run "
                "ahead repeats (measured through qemu-nbd: randrw rwmixread=70 rate_iops=100 "
                "thinktime=20ms thinktime_blocks=4, 2 s: 198 reads and 150 writes; the model "
                "on fio's null-engine stream at that count, 166 data clusters for 146)")
    if wl.iodepth == 1:
        return None
    if wl.thinktime_blocks_type != "issue":
        return (("thinktime", "thinktime_blocks_type", "iodepth"), "thinktime at iodepth > 1 "
                "counts completed I/Os (thinktime_blocks_type=complete, fio's default): fio "
                "fills its queue between pauses and its nbd engine then keeps an I/O in flight "
                "across each pause, which the model does not reproduce; use iodepth=1, or "
                "thinktime_blocks_type=issue with thinktime_blocks <= iodepth")
    if wl.thinktime_blocks is None and wl.thinktime_iotime is not None:
        return (("thinktime_iotime", "iodepth"), "thinktime_iotime without thinktime_blocks "
                f"at iodepth {wl.iodepth}: fio pauses by time only, fills its queue between "
                "pauses, and its nbd engine then keeps an I/O in flight across each pause, "
                "which the model does not reproduce; add thinktime_blocks <= iodepth")
    if (wl.thinktime_blocks or 1) > wl.iodepth:
        return (("thinktime_blocks", "iodepth"), f"thinktime_blocks ({wl.thinktime_blocks}) "
                f"above iodepth ({wl.iodepth}): fio fills its queue between pauses and its nbd "
                "engine then keeps an I/O in flight across each pause, which the model does "
                "not reproduce; use thinktime_blocks <= iodepth (the I/Os in flight never "
                "exceed it)")
    return None


def check_bssplit(v: str) -> None:
    """One direction's ``bssplit`` (``4k/50:64k/50``): sizes multiples of 512 bytes, whole
    percentages adding up to at most 100; ValueError otherwise."""
    total = 0
    for part in v.split(":"):
        size, _, pct = part.partition("/")
        if parse_size(size) % 512:
            raise ValueError(f"bssplit sizes must be multiples of 512 bytes, got {size!r}")
        try:
            total += int(pct or 0)
        except ValueError:
            raise ValueError(f"bssplit percentage {pct!r} is not an integer") from None
    if total > 100:
        raise ValueError(f"bssplit percentages add up to {total}, more than 100")


def workload_misfit(wl: Workload, disk: int) -> str | None:
    """Why ``wl`` cannot run on a disk of ``disk`` bytes (None: it can): a block larger than
    the disk, an ``offset_increment`` in percent fio rounds unevenly there, or a region past
    its end."""
    if wl.bs > disk:
        return f"has bs {wl.bs}, larger than the {disk}-byte disk"
    for part in wl.parts:
        if problem := increment_problem(part, disk):
            return problem
    end = wl.offset + (wl.size or 0)
    if wl.offset >= disk or end > disk:
        return f"spans [{wl.offset}, {end or disk}) but the disk is {disk} bytes"
    return None


def _sizes(text: str) -> list[int]:
    """Every block size a ``bs``/``bsrange``/``bssplit`` value names (per direction, ranges,
    split entries)."""
    out = []
    for part in text.replace(",", ":").split(":"):
        for size in part.split("/")[0].split("-"):
            if size.strip():
                out.append(parse_size(size.strip()))
    return out


def min_bs(wl: Workload) -> int:
    """fio's ``td_min_bs``: the smallest block size the job issues in any direction."""
    sizes = [size for key in ("bs", "blocksize", "bsrange", "blocksize_range", "bssplit")
             if wl.fio_extra.get(key) for size in _sizes(str(wl.fio_extra[key]))]
    if wl.bssplit:
        sizes += _sizes(wl.bssplit)
    return min(sizes) if sizes else wl.bs


def percent(wl: Workload, key: str) -> int | None:
    value = wl.fio_extra.get(key)
    if value is None or not value.endswith("%"):
        return None
    return int(value[:-1])


def increment_offsets(raw: int, start: int, align: int,
                      clones: int) -> tuple[int, int, str | None]:
    """``offset_increment=N%`` (``raw`` bytes) as an offset and an increment in bytes, and
    why they are not fio's (None: they are): fio puts clone k at ``start + k * raw`` rounded
    up to the smallest block; the null run, given bytes, at ``offset + k * inc`` unrounded."""
    offsets = [-(-(start + k * raw) // align) * align for k in range(clones)]
    inc = offsets[1] - offsets[0] if clones > 1 else raw
    if any(o != offsets[0] + k * inc for k, o in enumerate(offsets)):
        return offsets[0], inc, (
            f"offset_increment in percent comes to {raw} bytes on this disk, which fio rounds "
            f"up to a multiple of {align} for each of the {clones} clones unevenly "
            f"({offsets}); give it in bytes")
    return offsets[0], inc, None


#: A disk size fio-check shows an uneven ``offset_increment=N%`` on (it has no disk).
EXAMPLE_DISK = 1 << 30


def increment_problem(wl: Workload, disk: int | None) -> str | None:
    """Why ``wl``'s ``offset_increment=N%`` cannot be carried exactly (cowbench.fiopercent
    refuses it in the run), or None: on a disk of ``disk`` bytes; with no disk
    (``fio-check``), where it is not exact on every disk of whole MiB (``N% * 1 MiB`` not a
    whole number of the job's smallest blocks), shown on a 1 GiB one. ``validate`` checks the
    VM's own disk, so the three agree on the disks they know."""
    inc_pct, align = percent(wl, "offset_increment"), min_bs(wl)
    if inc_pct is None or wl.numjobs < 2:
        return None
    if disk is None and ((1 << 20) * inc_pct) % (100 * align) == 0:
        return None
    offset_pct = percent(wl, "offset")
    on = EXAMPLE_DISK if disk is None else disk
    start = wl.offset if offset_pct is None else -(-(on * offset_pct // 100) // align) * align
    problem = increment_offsets(on * inc_pct // 100, start, align, wl.numjobs)[2]
    if problem is None or disk is not None:
        return problem
    return (f"{inc_pct}% of a disk is a whole number of {align}-byte blocks only on some "
            f"disk sizes; on a {on}-byte disk, {problem.replace(' on this disk', '')}")


def startdelay_value(v: object) -> float | str:
    """A ``startdelay`` as the workload keeps it: seconds (a number, ``30s``, ``500ms``), or
    a range ``LOW-HIGH`` of two such (fio's ``startdelay=1-3``) kept as ``'LOW-HIGH'`` in
    seconds; a range whose ends are equal is that one value. ValueError otherwise."""
    if isinstance(v, str) and "-" in v.strip().lstrip("-"):
        low_text, _, high_text = v.strip().partition("-")
        low, high = parse_duration(low_text.strip()), parse_duration(high_text.strip())
        if high < low:
            raise ValueError(f"startdelay {v!r}: the range's high end is below its low end")
        return low if low == high else f"{low:.15g}-{high:.15g}"
    return parse_duration(v)
