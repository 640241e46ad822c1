"""fio's ``random_distribution`` values, checked as fio 3.33 checks them (options.c), so a spec
the model generates is one fio runs: ``random``, ``zipf:THETA`` (not 1), ``pareto:H`` (0 < H
< 1), ``normal:DEV`` (0 to 100, ``gauss`` as a synonym), ``zoned:A/S:...`` (access and size
percentages, accesses adding up to 100, sizes to at most 100) and ``zoned_abs:A/SIZE:...``."""

from __future__ import annotations

from .units import parse_size

KINDS = ("random", "zipf", "pareto", "normal", "gauss", "zoned", "zoned_abs")


def _number(arg: str, what: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {arg!r}") from None


def _zones(kind: str, arg: str) -> None:
    access = size = 0
    for part in arg.split(":"):
        a, slash, s = part.partition("/")
        if not slash or not a.isdigit() or not s:
            raise ValueError(f"{kind} zones are ACCESS/SIZE pairs joined by ':', got {part!r}")
        access += int(a)
        if kind == "zoned":
            if not s.isdigit():
                raise ValueError(f"zoned sizes are percentages, got {s!r}")
            size += int(s)
        else:
            parse_size(s)
    if access != 100:
        raise ValueError(f"{kind} access percentages must add up to 100, got {access}")
    if size > 100:
        raise ValueError(f"zoned size percentages add up to {size}, more than 100")


def check(spec: str) -> str:
    """``spec`` unchanged, or ValueError saying what fio would refuse."""
    kind, _, arg = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(f"random_distribution must start with one of {', '.join(KINDS)}, "
                         f"got {spec!r}")
    if kind in ("zoned", "zoned_abs"):
        _zones(kind, arg)
    elif kind == "zipf" and arg and _number(arg, "zipf's theta") == 1.0:
        raise ValueError("zipf's theta must differ from 1.0 (fio refuses it)")
    elif kind == "pareto" and arg and not 0.0 < _number(arg, "pareto's h") < 1.0:
        raise ValueError(f"pareto's h must be between 0 and 1, got {arg}")
    elif kind in ("normal", "gauss") and arg and not 0.0 <= _number(arg, "normal's dev") <= 100:
        raise ValueError(f"normal's deviation is a percentage (0 to 100), got {arg}")
    elif kind == "random" and arg:
        raise ValueError(f"random takes no parameter, got {spec!r}")
    return spec
