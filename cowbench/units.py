"""Sizes and durations as people write them, resolved to bytes and seconds.

Scenario files say ``64KiB``, ``2GiB``, ``4k`` (fio and qemu-img style: a bare letter is a power
of 1024), ``30s``, ``10m``, ``1h``, ``2d``. Once loaded, every size is an ``int`` of bytes and
every duration a ``float`` of seconds. SI byte units (``kB``, ``MB``, ``GB``) are refused as
ambiguous: fio reads ``4KB`` as 4096 by default, other tools as 4000, so the file must say which.
"""

from __future__ import annotations

import math
import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_BINARY = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "p": 1 << 50,
    "pib": 1 << 50,
}
_AMBIGUOUS = {"kb", "mb", "gb", "tb", "pb"}
#: Sizes are int64 everywhere downstream (numpy, QEMU's int64_t offsets, fio's uint64).
MAX_SIZE = 2**63 - 1

_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_SECONDS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_size(value: object) -> int:
    """Return ``value`` as a whole number of bytes.

    Accepts a non-negative int, or a string like ``"64KiB"``, ``"4k"``, ``"1.5GiB"``. Raises
    ``ValueError`` with a message fit for a user on anything else.
    """
    size = _parse_size(value)
    if size > MAX_SIZE:
        raise ValueError(f"{value!r} is too large (at most 2**63 - 1 bytes)")
    return size


def _parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 64KiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            raise ValueError(f"a size must be a whole, non-negative number of bytes, got {value}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 64KiB, got {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"a size cannot be negative, got {value!r}")
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"cannot read {value!r} as a size; write e.g. 4096, 4k, 64KiB, 2GiB")
    number, unit = match.groups()
    key = unit.lower()
    if key in _AMBIGUOUS:
        raise ValueError(
            f"unit {unit!r} in {value!r} is ambiguous (1000 or 1024?); write {unit[0].upper()}iB"
        )
    if key not in _BINARY:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KiB, MiB, GiB or TiB")
    scaled = float(number) * _BINARY[key] if "." in number else int(number) * _BINARY[key]
    if scaled != int(scaled):
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(scaled)


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds: a non-negative number, or ``"30s"``, ``"10m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be finite and non-negative, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s, got {value!r}")
    match = _TIME_RE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a duration; write e.g. 30s, 10m, 2h, 1d")
    number, unit = match.groups()
    if unit.lower() not in _SECONDS:
        raise ValueError(f"unknown time unit {unit!r} in {value!r}; use ms, s, m, h or d")
    seconds = float(number) * _SECONDS[unit.lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is too large a duration")
    return seconds


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; for summaries, never for files."""
    if n != n:  # NaN
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_sizes(sizes: list[float]) -> str:
    """Disks of several hosts: ``'7.0 TiB'``, or ``'1.0 TiB to 7.0 TiB'`` when they differ."""
    low, high = format_bytes(min(sizes)), format_bytes(max(sizes))
    return low if low == high else f"{low} to {high}"


def format_duration(seconds: float) -> str:
    """A duration as people read it: ``'412 us'``, ``'12.3 ms'``, ``'42.5 s'``, ``'7 min 30 s'``,
    ``'5 h 3 min'``, ``'730 days'``, ``'12 days 7 h'``; ``'-'`` for NaN, ``'never'`` for
    infinity. From a minute up, the two largest units, rounded to the smaller one; for
    summaries, never for files."""
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if math.isinf(seconds):
        return "never"
    if seconds < 59.5:
        return _short_duration(seconds)
    for big, big_name, small, small_name in ((86400, "day", 3600, "h"),
                                             (3600, "h", 60, "min"), (60, "min", 1, "s")):
        count = round(seconds / small)  # in the smaller unit, so 3599.6 s is 1 h, not 60 min
        if count * small >= big:
            whole, rest = divmod(count, big // small)
            head = f"{whole} {big_name}" + ("s" if big_name == "day" and whole != 1 else "")
            return head + (f" {rest} {small_name}" if rest else "")
    raise AssertionError("unreachable")


def _short_duration(seconds: float) -> str:
    """Under a minute: three significant figures in s, ms or us."""
    if seconds == 0:
        return "0 s"
    for scale, unit in ((1e-6, "us"), (1e-3, "ms"), (1.0, "s")):
        text = f"{seconds / scale:.3g}"
        if float(text) < 1000 or unit == "s":  # so 0.9996 s is 1 s, not 1e+03 ms
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0
