"""How long, how often and how wide the calibration's probes may run: the bounds of
``cowbench calibrate --runtime/--rounds/--exports``, and the same bounds on the ``settings`` a
profile file carries, which ``calibrate --check`` and every run's check and drift probes run
with (``cowbench.drift.measure_drift``).

A profile is JSON a user can edit: ``settings.runtime_s: 1e300`` ended ``calibrate --check``
in an internal error (a timeout too large for the clock), ``-1`` or ``NaN`` in fio waiting for
its watchdog (two minutes) or in an internal error, and a run's check in the same. So a
profile's settings are held to the options' bounds when it is read (``cowbench.profile``),
and refused there with their key path. This module is kept free of heavy imports: the CLI's
options read their bounds from it.
"""

from __future__ import annotations

import math
from typing import Any

#: seconds each probe runs per round (``calibrate --runtime``); a ramp is at most as long
RUNTIME_S = (0.1, 600.0)
#: times the whole matrix runs (``calibrate --rounds``)
ROUNDS = (1, 50)
#: most concurrent exports probed (``calibrate --exports``)
EXPORTS = (2, 16)
#: what the probes cannot be measured again without (``cowbench.drift.measure_drift``)
NEEDED = ("runtime_s", "ramp_s", "span_bytes")
#: qemu-nbd's --aio values a profile's probes may have gone through (calibrate --aio)
AIO = ("threads", "native", "io_uring")


def _shown(value: Any) -> str:
    return "null" if value is None else repr(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(s: dict[str, Any], key: str, lo: float, hi: float, bound: str) -> str | None:
    if key not in s:
        return None
    value = s[key]
    if not _number(value) or not math.isfinite(value):
        return f"{key}: {_shown(value)} is not a number of seconds"
    if not lo <= value <= hi:
        return f"{key}: {value:g} s is not from {lo:g} to {hi:g} s ({bound})"
    return None


def _whole(s: dict[str, Any], key: str, lo: int, hi: int | None, bound: str) -> str | None:
    if key not in s:
        return None
    value = s[key]
    if not _number(value) or not math.isfinite(value) or value != int(value):
        return f"{key}: {_shown(value)} is not a whole number"
    if value < lo or (hi is not None and value > hi):
        return f"{key}: {value:g} is not {f'from {lo} to {hi}' if hi else f'at least {lo}'}{bound}"
    return None


def settings_problem(settings: dict[str, Any]) -> str | None:
    """The first of a profile's probe settings that is out of bounds, as ``key: reason``;
    None if there is none. Keys a profile leaves out are not checked here (a hand-made
    profile may hold none: its probes are then not measured again)."""
    s = settings
    found = (_seconds(s, "runtime_s", *RUNTIME_S, "the bounds of calibrate --runtime"),
             _seconds(s, "ramp_s", 0.0, RUNTIME_S[1], "at most a probe's longest runtime"),
             _whole(s, "rounds", *ROUNDS, " (the bounds of calibrate --rounds)"),
             _whole(s, "max_exports", *EXPORTS, " (the bounds of calibrate --exports)"),
             _whole(s, "span_bytes", 1, None, " (the probe images' size in bytes)"),
             None if s.get("aio", "threads") in AIO else
             f"aio: {_shown(s['aio'])} is not one of {', '.join(AIO)} (calibrate --aio)")
    return next((bad for bad in found if bad is not None), None)


def missing(settings: dict[str, Any]) -> str | None:
    """The first of :data:`NEEDED` that ``settings`` lacks, as ``key: reason``; None if none."""
    key = next((k for k in NEEDED if k not in settings), None)
    return None if key is None else (f"{key}: missing; the probes cannot be measured again "
                                     "without the settings they ran with")
