"""The shape of fio 3.33's JSON for one job, filled with what the model knows.

fio writes, per job, a ``read``, ``write`` and ``trim`` block (I/O counts, bandwidth, IOPS,
``slat_ns``/``clat_ns``/``lat_ns`` and the sampled ``bw_*``/``iops_*`` statistics), a ``sync``
block, the job's cpu use, the queue-depth and latency histograms and its latency-target
settings. The model knows the I/O counts, rates, mean and 99th-percentile latency; everything
else is written as ``None`` (JSON ``null``) and listed by :func:`unknown_paths`, except the four
figures fio-plot reads as numbers unconditionally (:data:`FIO_PLOT_ZEROS`), which are written as
0 and listed there too.
"""

from __future__ import annotations

from typing import Any

# fio's default clat percentiles (``percentile_list``), keyed as fio prints them
PERCENTILES = ("1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
               "50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000",
               "99.000000", "99.500000", "99.900000", "99.950000", "99.990000")
IODEPTH_LEVELS = ("1", "2", "4", "8", "16", "32", ">=64")
IODEPTH_SUBMIT = ("0", "4", "8", "16", "32", "64", ">=64")
LAT_BINS = ("2", "4", "10", "20", "50", "100", "250", "500", "750", "1000")
LAT_MS_BINS = (*LAT_BINS, "2000", ">=2000")
# fio-plot (1.1.21, fiolib/jsonparsing_support.py get_json_mapping and merge_job_data) reads these
# per direction and job as numbers (statistics.mean, round): null there makes it crash
FIO_PLOT_ZEROS = ("iops_stddev", "lat_ns.stddev", "usr_cpu", "sys_cpu")
STAT_KEYS = ("min", "max", "mean", "stddev", "N")


def empty_stat() -> dict[str, Any]:
    """fio's latency statistics of a direction with no I/O (N 0: fio's own form)."""
    return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}


def idle_direction() -> dict[str, Any]:
    """A direction the job issues no I/O in: exactly what fio writes for it (all zero, N 0)."""
    return {"io_bytes": 0, "io_kbytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0,
            "total_ios": 0, "short_ios": 0, "drop_ios": 0, "slat_ns": empty_stat(),
            "clat_ns": empty_stat(), "lat_ns": empty_stat(), "bw_min": 0, "bw_max": 0,
            "bw_agg": 0.0, "bw_mean": 0.0, "bw_dev": 0.0, "bw_samples": 0, "iops_min": 0,
            "iops_max": 0, "iops_mean": 0.0, "iops_stddev": 0.0, "iops_samples": 0}


def unknown_direction() -> dict[str, Any]:
    """A direction's keys with no model figure in any of them (null), to be filled."""
    out: dict[str, Any] = {k: None for k in idle_direction()}
    # the model completes every I/O whole and takes no per-window bw/iops samples (fio's own
    # "no samples" form, which makes iops_stddev's 0 what fio means by it)
    out.update(short_ios=0, drop_ios=0, bw_samples=0, iops_samples=0)
    for lat in ("slat_ns", "clat_ns", "lat_ns"):
        out[lat] = dict.fromkeys(STAT_KEYS)
    out["clat_ns"]["percentile"] = dict.fromkeys(PERCENTILES)
    out["iops_stddev"] = 0.0  # FIO_PLOT_ZEROS
    out["lat_ns"]["stddev"] = 0.0
    return out


def job_tail(iodepth: int, job_runtime_ms: int | None) -> dict[str, Any]:
    """The job's keys after its direction blocks: cpu, histograms, latency-target settings."""
    return {"job_runtime": job_runtime_ms, "usr_cpu": 0.0, "sys_cpu": 0.0, "ctx": None,
            "majf": None, "minf": None, "iodepth_level": dict.fromkeys(IODEPTH_LEVELS),
            "iodepth_submit": dict.fromkeys(IODEPTH_SUBMIT),
            "iodepth_complete": dict.fromkeys(IODEPTH_SUBMIT),
            "latency_ns": dict.fromkeys(LAT_BINS), "latency_us": dict.fromkeys(LAT_BINS),
            "latency_ms": dict.fromkeys(LAT_MS_BINS),
            # no latency_target option in cowbench: fio's defaults for such a job
            "latency_depth": iodepth, "latency_target": 0, "latency_percentile": 100.0,
            "latency_window": 0}


def unknown_paths(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """JSON Pointers (RFC 6901, ``/jobs/0/read/iops_min``) of every null leaf in ``doc``.

    fio's keys hold dots (``"99.000000"``) and spaces, never ``/`` nor ``~``.
    """
    out: list[str] = []
    items = enumerate(doc) if isinstance(doc, list) else doc.items()
    for key, value in items:
        path = f"{prefix}/{key}"
        if value is None:
            out.append(path)
        elif isinstance(value, dict | list):
            out += unknown_paths(value, path)  # type: ignore[arg-type]
    return out


def zero_paths(job: dict[str, Any], prefix: str) -> list[str]:
    """The :data:`FIO_PLOT_ZEROS` written as 0 in a job's directions with model figures."""
    out = [f"{prefix}/{k}" for k in ("usr_cpu", "sys_cpu")]
    for kind in ("read", "write", "trim"):
        if job[kind]["total_ios"] != 0:
            out += [f"{prefix}/{kind}/iops_stddev", f"{prefix}/{kind}/lat_ns/stddev"]
    return out
