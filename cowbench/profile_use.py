"""Which calibration profile a run's I/O figures rest on, said the same way everywhere.

run.json's ``profile`` block, the line above the terminal table and the first sentence of the
validation report all come from here. A host's I/O is predicted with its own profile
(``hosts[].profile``) if it names one, else the scenario's (``device.profile``, or
``cowbench run --profile``, or the cached one ``cowbench run`` chose), else the uncalibrated
device model. The block of one profile::

    {"calibrated": true, "path": ..., "source": "cache" | "file", "fingerprint": {...},
     "created": ..., "age_s": ..., "matrix": "quick", "aio": "threads", "probes": 27,
     "duration_s": 80.1,
     "fit_median_abs_error": {"iops": 0.06, "lat_mean_s": 0.07}}

or ``{"calibrated": false, "reason": ...}``; when the hosts rest on different profiles,
``{"calibrated": "per host", "hosts": {name: block}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UsageError
from .profile_cache import cache_dir
from .scenario import Scenario

NO_PROFILE = "no calibration profile"
#: the reasons of a run that predicts no I/O figures at all (nothing rests on a profile)
NOTHING_PREDICTED = ("the real backend alone: nothing predicted", "a fleet has no I/O figures")


def _age_s(created: str, now: datetime) -> float | None:
    try:
        return round((now - datetime.fromisoformat(created)).total_seconds(), 1)
    except ValueError:
        return None


def profile_block(path: str, now: datetime | None = None) -> dict[str, Any]:
    """The block of the profile file at ``path`` (see the module docstring)."""
    from .profile import load_profile  # pydantic models: only where a profile is read

    now = now or datetime.now(UTC)
    p = Path(path)
    source = "cache" if p.parent == cache_dir() else "file"
    try:
        prof = load_profile(p)
    except UsageError as err:  # read at resolve time; gone or changed since
        return {"calibrated": True, "path": path, "source": source, "error": str(err)}
    fit = {m: prof.fit_error(m) for m in ("iops", "lat_mean_s")}
    return {"calibrated": True, "path": path, "source": source,
            "fingerprint": prof.fingerprint, "created": prof.created,
            "age_s": _age_s(prof.created, now), "matrix": prof.matrix,
            "aio": prof.aio,
            "probes": len(prof.probes), "duration_s": prof.duration_s,
            "fit_median_abs_error": {m: None if v is None else round(v, 4)
                                     for m, v in fit.items()}}


def _host_source(scenario: Scenario, name: str) -> str | None:
    """The profile path a host's I/O rests on; "" for parameters given inline; None for
    the uncalibrated model."""
    host = next(h for h in scenario.hosts if h.name == name)
    if host.calibrated is not None:
        return host.profile or ""
    if scenario.device.calibrated is not None:
        return scenario.device.profile or ""
    return None


def run_profile(scenario: Scenario, backends: list[str]) -> dict[str, Any]:
    """run.json's ``profile`` block for a run of ``scenario`` with ``backends``."""
    if "sim" not in backends:
        return {"calibrated": False, "reason": NOTHING_PREDICTED[0]}
    if scenario.fleet is not None:
        return {"calibrated": False, "reason": NOTHING_PREDICTED[1]}
    now = datetime.now(UTC)
    blocks: dict[str, dict[str, Any]] = {}
    for host in scenario.hosts:
        src = _host_source(scenario, host.name)
        blocks[host.name] = (
            {"calibrated": False, "reason": NO_PROFILE} if src is None else
            {"calibrated": True, "path": None, "source": "scenario (inline parameters)"}
            if src == "" else profile_block(src, now))
    distinct = {str(b.get("path")) + str(b["calibrated"]) for b in blocks.values()}
    if len(distinct) == 1:
        return next(iter(blocks.values()))
    return {"calibrated": "per host", "hosts": blocks}


def _one(block: dict[str, Any]) -> str:
    if not block.get("calibrated") and block.get("reason") in NOTHING_PREDICTED:
        return f"are not predicted here ({block['reason']}): no profile applies"
    if not block.get("calibrated"):
        return (f"are uncalibrated ({block.get('reason', NO_PROFILE)}): the device model's "
                "first guesses, for comparison only")
    if block.get("path") is None:
        return f"rest on the parameters given in the scenario ({block.get('source')})"
    if "error" in block:
        return f"rest on the profile {block['path']} ({block['error']})"
    fit = (block.get("fit_median_abs_error") or {}).get("iops")
    fit_txt = "" if fit is None else f"; it replays its probes' IOPS within {fit:.1%} (median)"
    return (f"rest on the {block.get('matrix')} calibration profile {block['path']} "
            f"({'cached, ' if block.get('source') == 'cache' else ''}"
            f"made {_age(block.get('age_s'))} ago{fit_txt})")


def _age(age_s: object) -> str:
    if not isinstance(age_s, int | float):
        return "an unknown time"
    s = float(age_s)
    for unit, span in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= span:
            return f"{s / span:.1f} {unit}"
    return f"{s:.0f} s"


def describe(block: dict[str, Any] | None) -> str:
    """One sentence (no final stop): which profile the run's I/O figures rest on."""
    if block is None:
        return "I/O figures: this run did not record its calibration profile"
    if block.get("calibrated") == "per host":
        hosts = block.get("hosts") or {}
        return "I/O figures, per host: " + "; ".join(
            f"{name}'s {_one(b)}" for name, b in hosts.items())
    return "I/O figures " + _one(block)


def _identity(block: dict[str, Any] | None) -> str:
    """What tells one profile choice from another: the profile (path and when it was made) or
    the reason there is none; not the age, which each run measured at its own start."""
    if block is None:
        return "unrecorded"
    if block.get("calibrated") == "per host":
        hosts = block.get("hosts") or {}
        return "per host:" + ";".join(f"{h}={_identity(b)}" for h, b in sorted(hosts.items()))
    if block.get("calibrated"):
        return f"profile:{block.get('path')}@{block.get('created')}"
    return f"none:{block.get('reason')}"


def describe_runs(blocks: Mapping[str, dict[str, Any] | None]) -> str:
    """One sentence (no final stop) for several runs, a sweep's points by id: which profile
    their I/O figures rest on, as :func:`describe` says it of one run, with how many points
    share each choice when they differ (a sweep resumed with another profile, hosts that
    differ by point). A report and ``cowbench sweep`` print it above their I/O figures."""
    if not blocks:
        return "I/O figures: no finished run"
    groups: dict[str, list[str]] = {}
    for point, block in blocks.items():
        groups.setdefault(_identity(block), []).append(point)
    if len(groups) == 1:
        first = next(iter(blocks.values()))
        every = f" (every one of the {len(blocks)} points)" if len(blocks) > 1 else ""
        return describe(first) + every
    parts = []
    for points in sorted(groups.values(), key=len, reverse=True):
        block = blocks[points[0]]
        text = describe(block).removeprefix("I/O figures ")
        named = ", ".join(points[:3]) + (", ..." if len(points) > 3 else "")
        parts.append(f"{len(points)} point(s) ({named}): {text}")
    return "I/O figures differ by point: " + "; ".join(parts)
