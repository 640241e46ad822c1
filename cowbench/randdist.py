"""fio's ``random_distribution`` values, checked as fio 3.33 checks them (``options.c``:
``str_random_distribution_cb``, ``split_parse_ddir``, ``zone_split_ddir``), so a spec cowbench
accepts is one fio runs and one fio refuses is refused here (tests/test_jobfile_fio.py runs
``fio --parse-only`` over a list of them):

- ``random`` (anything after a ``:`` is ignored by fio);
- ``zipf[:THETA[:CENTER]]`` (theta not 1, default 1.1 in fio), ``pareto[:H[:CENTER]]``
  (0 < H < 1), ``normal[:DEV[:CENTER]]`` (0 <= DEV < 100), CENTER from 0 to 1; there is no
  ``gauss`` in fio 3.33's list of names;
- ``zoned:A/S:...`` (percentages: accesses adding up to exactly 100, sizes to at most 100; a
  size left empty or 0 is "the rest", shared among such zones; a zone without ``/S`` too) and
  ``zoned_abs:A/SIZE:...`` (sizes in bytes); an empty zone ends the list. No ``,`` (fio 3.33
  refuses per-direction zones in this option).

Numbers are read strictly (fio's ``sscanf`` would also read ``1.2abc`` as 1.2; such a value is
refused here). :func:`model_problem` says which accepted forms the model's own offset generator
does not reproduce (a center, zones fio fills in): those are carried by fio's own stream.
"""

from __future__ import annotations

from .units import parse_size

KINDS = ("random", "zipf", "pareto", "normal", "zoned", "zoned_abs")


def _number(arg: str, what: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {arg!r}") from None


def _zone_parts(arg: str) -> list[tuple[str, str | None]]:
    """``(access, size or None)`` per zone, up to the first empty one (fio stops there)."""
    out: list[tuple[str, str | None]] = []
    for part in arg.split(":"):
        if not part:
            break
        a, slash, s = part.partition("/")
        out.append((a, s if slash else None))
    return out


def _zones(kind: str, arg: str) -> None:
    access = size = 0
    zones = _zone_parts(arg.strip())
    if not zones:  # fio 3.33 checks nothing then (zone_split_ddir: no zones, no sums)
        return
    for a, s in zones:
        if not a.strip().isdigit():
            raise ValueError(f"{kind} zones are ACCESS/SIZE with ACCESS a whole percentage, "
                             f"got {a!r}")
        access += int(a)
        if kind == "zoned" and s:
            if not s.strip().isdigit():
                raise ValueError(f"zoned sizes are whole percentages, got {s!r}")
            size += min(int(s), 100)  # fio reads a size over 100 as 100
        elif s:
            parse_size(s)
    if access != 100:
        raise ValueError(f"{kind} access percentages must add up to 100, got {access}")
    if size > 100:
        raise ValueError(f"zoned size percentages add up to {size}, more than 100")


def _parameters(kind: str, arg: str) -> None:
    """zipf, pareto, normal: ``VALUE[:CENTER]``."""
    value, colon, center = arg.partition(":")
    if colon and not 0.0 <= _number(center, f"{kind}'s center") <= 1.0:
        raise ValueError(f"{kind}'s center must be from 0 to 1, got {center}")
    v = _number(value, f"{kind}'s parameter")
    if kind == "zipf" and v == 1.0:
        raise ValueError("zipf's theta must differ from 1.0 (fio refuses it)")
    if kind == "pareto" and not 0.0 < v < 1.0:
        raise ValueError(f"pareto's h must be between 0 and 1, got {value}")
    if kind == "normal" and not 0.0 <= v < 100.0:
        raise ValueError(f"normal's deviation is a percentage from 0 to below 100, got {value}")


def check(spec: str) -> str:
    """``spec`` unchanged, or ValueError saying what fio would refuse."""
    kind, colon, arg = spec.partition(":")
    if kind not in KINDS or "," in spec:
        raise ValueError(f"random_distribution must start with one of {', '.join(KINDS)} "
                         f"(no ','), got {spec!r}")
    if kind in ("zoned", "zoned_abs"):
        _zones(kind, arg)
    elif kind != "random" and colon:
        _parameters(kind, arg)
    return spec


def model_problem(spec: str) -> str | None:
    """What of an accepted ``spec`` the model's own offset generator does not reproduce, or
    None."""
    kind, _, arg = spec.partition(":")
    if kind in ("zipf", "pareto", "normal") and ":" in arg:
        return f"random_distribution={spec} (a center)"
    if kind in ("zoned", "zoned_abs"):
        zones = _zone_parts(arg.strip())
        if not zones or any(not s or s != s.strip() or a != a.strip() or (
                kind == "zoned" and not 0 < int(s) <= 100) or parse_size(s) == 0
                for a, s in zones):
            return f"random_distribution={spec} (zones whose size fio fills in)"
        if len(zones) != len(arg.split(":")):
            return f"random_distribution={spec} (an empty zone)"
    return None
