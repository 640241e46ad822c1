"""``cowbench calibrate``: measure (``real.measure.calibrate``), fit (``sim.perf``), write the
profile.

The profile is written atomically once everything succeeded; an interrupt or a failed probe
leaves no profile and no probe image (the real side removes its work directory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from .atomic import atomic_write_text
from .backends import get_backend
from .errors import UsageError
from .lease import held
from .profile import Profile, profile_json
from .profile_cache import fingerprint
from .signals import interrupts_raise
from .store import host_facts, now_iso, tool_versions

Matrix = Literal["quick", "short", "long"]
Progress = Callable[[int, int, str], None]


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _replay_ios(matrix: str) -> int:
    """Simulated I/Os a probe's replay runs: fewer for the quick matrix (the replay is for
    the fit's quality, and the quick calibration is kept short)."""
    return 1500 if matrix == "quick" else 3000


def measure_profile(directory: Path, matrix: Matrix, exports: int = 4,
                    runtime: float | None = None, rounds: int | None = None,
                    progress: Progress | None = None, aio: str = "threads") -> Profile:
    """Probe the storage under ``directory`` through qemu-nbd exports with ``--aio=aio``,
    fit the model, and return the profile (keyed by the storage's fingerprint and, other
    than ``threads``, ``aio``); nothing is left in ``directory``."""
    real, model = get_backend("real"), get_backend("sim")
    measure, settings = real.measure_probes, real.probe_settings
    fit, fit_rows = model.fit, model.fit_rows

    directory = Path(os.path.abspath(directory))
    s = settings(matrix, exports, aio)
    if runtime is not None:
        s = replace(s, runtime_s=runtime, ramp_s=min(s.ramp_s, runtime / 4))
    if rounds is not None:
        s = replace(s, rounds=rounds)
    created = now_iso()
    load_before = _load()
    t0 = time.monotonic()
    with interrupts_raise():
        with held(directory) as lease:  # `cowbench gc` removes its probe images if killed
            probes = measure(directory, s, progress=progress, lease=lease)
        load_after = _load()
        if progress is not None:
            progress(1, 1, "fitting the I/O model and replaying the probes")
        params = fit(probes)
        rows = fit_rows(params, probes, ios=_replay_ios(matrix))
    duration = time.monotonic() - t0  # probes, fit and replay: the whole calibration
    return Profile(created=created, duration_s=round(duration, 1), matrix=matrix,
                   dir=str(directory), host=host_facts(directory), tools=tool_versions(),
                   settings=s.as_dict(), load_before=load_before, load_after=load_after,
                   probes=probes, params=params, fit=rows, fit_version=model.fit_version,
                   fingerprint=fingerprint(directory, aio))


def refit(prof: Profile, source: str, cores: int | None = None) -> Profile:
    """``prof`` (read from ``source``) with its parameters fitted again from its own probes
    by this cowbench's model (no I/O), and its probes replayed again; everything it recorded
    of its measurement kept. ``cores``: those of the machine the probes ran on (None: this
    one's, for a profile of this machine). A :class:`UsageError` naming ``source`` if the
    probes do not hold what this fit needs."""
    model = get_backend("sim")
    try:
        params = model.fit(prof.probes, cores)
    except ValueError as err:  # sim.perf.fit.FitError: what the probes lack
        raise UsageError(f"{source}: its probes cannot be fitted by this cowbench's model "
                         f"({err}); calibrate again") from None
    rows = model.fit_rows(params, prof.probes, ios=_replay_ios(prof.matrix))
    return prof.model_copy(update={"params": params, "fit": rows,
                                   "fit_version": model.fit_version})


def calibrate(directory: Path, out: Path, matrix: Matrix, exports: int,
              runtime: float | None = None, rounds: int | None = None,
              progress: Progress | None = None, aio: str = "threads") -> Profile:
    prof = measure_profile(directory, matrix, exports, runtime, rounds, progress, aio)
    atomic_write_text(out, profile_json(prof))
    return prof
