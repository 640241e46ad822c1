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
refused here). :func:`parse` is the one reading of a spec: what fio 3.33 makes of it, defaults
and zones filled in (``zone_split_ddir``: a zone's size left empty, 0 or without ``/`` is
``(100 - the given sizes) / the number of such zones``, so ``zoned:50/5:30/15:20/`` is
``20/80``; a single zone of no size gets 0; ``zoned_abs`` sizes left out are 0 bytes). The
option check, ``fio-check``, the space check and the model's own offset generator
(sim/workload/fiodist.py) all read it, so they agree on every spec. :func:`model_problem` says
which accepted forms the model does not reproduce (blanks inside a zone, read by fio's
``atoi``): those are carried by fio's own stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from .jobfile import fio_size

KINDS = ("random", "zipf", "pareto", "normal", "zoned", "zoned_abs")


#: fio's defaults for a bare ``zipf``, ``pareto``, ``normal`` (fio.h ``FIO_DEF_ZIPF`` ...).
DEFAULTS = {"zipf": 1.1, "pareto": 0.2, "normal": 0.0}
#: fio reads at most this many zones (``ZONESPLIT_MAX``), the rest ignored.
MAX_ZONES = 256


@dataclass(frozen=True)
class Dist:
    """A ``random_distribution`` as fio 3.33 runs it.

    ``value``: zipf's theta, pareto's h, normal's deviation (fio's default when not given);
    ``center``: from 0 to 1, or None; ``zones``: ``(access %, size)`` per zone in order, the
    size in percent (``zoned``, filled in as fio fills it) or bytes (``zoned_abs``)."""

    kind: str
    value: float = 0.0
    center: float | None = None
    zones: tuple[tuple[int, int], ...] = ()

    @property
    def absolute(self) -> bool:
        return self.kind == "zoned_abs"


def _number(arg: str, what: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {arg!r}") from None


def _zone_parts(arg: str) -> list[tuple[str, str | None]]:
    """``(access, size or None)`` per zone, up to the first empty one (fio stops there)."""
    out: list[tuple[str, str | None]] = []
    for part in arg.split(":"):
        if not part or len(out) == MAX_ZONES:
            break
        a, slash, s = part.partition("/")
        out.append((a, s if slash else None))
    return out


def _zones(kind: str, arg: str, kb_base: int) -> tuple[tuple[int, int], ...]:
    """``zone_split_ddir``: the zones with fio's sizes, or ValueError as fio refuses them."""
    parts = _zone_parts(arg.strip())
    if not parts:  # fio 3.33 checks nothing then (zone_split_ddir: no zones, no sums)
        return ()
    access: list[int] = []
    sizes: list[int | None] = []  # None: a zoned size fio fills in
    for a, s in parts:
        if not a.strip().isdigit():
            raise ValueError(f"{kind} zones are ACCESS/SIZE with ACCESS a whole percentage, "
                             f"got {a!r}")
        access.append(int(a))
        if kind == "zoned_abs":
            sizes.append(fio_size(s, kb_base) if s and s.strip() else 0)
        elif s and s.strip():
            if not s.strip().isdigit():
                raise ValueError(f"zoned sizes are whole percentages, got {s!r}")
            sizes.append(min(int(s), 100) or None)  # fio reads over 100 as 100, 0 as unset
        else:
            sizes.append(None)
    if sum(access) != 100:
        raise ValueError(f"{kind} access percentages must add up to 100, got {sum(access)}")
    given = sum(x for x in sizes if x is not None) if kind == "zoned" else 0
    if given > 100:
        raise ValueError(f"zoned size percentages add up to {given}, more than 100")
    missing = sizes.count(None)
    if missing == 1 and len(sizes) == 1:
        given = 100  # fio's own special case: ``zoned:100`` is one zone of no blocks
    rest = (100 - given) // missing if missing else 0
    return tuple((a, rest if x is None else x) for a, x in zip(access, sizes, strict=True))


def _parameters(kind: str, arg: str) -> tuple[float, float | None]:
    """zipf, pareto, normal: ``VALUE[:CENTER]``."""
    value, colon, center = arg.partition(":")
    c = _number(center, f"{kind}'s center") if colon else None
    if c is not None and not 0.0 <= c <= 1.0:
        raise ValueError(f"{kind}'s center must be from 0 to 1, got {center}")
    v = _number(value, f"{kind}'s parameter")
    if kind == "zipf" and v == 1.0:
        raise ValueError("zipf's theta must differ from 1.0 (fio refuses it)")
    if kind == "pareto" and not 0.0 < v < 1.0:
        raise ValueError(f"pareto's h must be between 0 and 1, got {value}")
    if kind == "normal" and not 0.0 <= v < 100.0:
        raise ValueError(f"normal's deviation is a percentage from 0 to below 100, got {value}")
    return v, c


def parse(spec: str, kb_base: int = 1024) -> Dist:
    """What fio runs for ``spec``, or ValueError saying what fio would refuse. ``kb_base``:
    the job's, for ``zoned_abs`` sizes (``1k`` is 1000 bytes under ``kb_base=1000``)."""
    kind, colon, arg = spec.partition(":")
    if kind not in KINDS or "," in spec:
        raise ValueError(f"random_distribution must start with one of {', '.join(KINDS)} "
                         f"(no ','), got {spec!r}")
    if kind in ("zoned", "zoned_abs"):
        return Dist(kind, zones=_zones(kind, arg, kb_base))
    if kind != "random" and colon:
        value, center = _parameters(kind, arg)
        return Dist(kind, value, center)
    return Dist(kind, DEFAULTS.get(kind, 0.0))


def check(spec: str) -> str:
    """``spec`` unchanged, or ValueError saying what fio would refuse."""
    parse(spec)
    return spec


def in_bytes(spec: str, kb_base: int) -> str:
    """``spec`` with a ``zoned_abs`` spec's sizes in bytes, as fio reads them under
    ``kb_base`` (a job file's; the backends hand fio the spec without its kb_base). One with
    blanks inside a zone is left as written (:func:`model_problem`)."""
    dist = parse(spec, kb_base)
    if not dist.absolute or not dist.zones or model_problem(spec):
        return spec
    return "zoned_abs:" + ":".join(f"{a}/{s}" for a, s in dist.zones)


def model_problem(spec: str) -> str | None:
    """What of an accepted ``spec`` the model's own offset generator does not reproduce, or
    None."""
    kind, _, arg = spec.partition(":")
    if kind in ("zoned", "zoned_abs") and any(
            a != a.strip() or (s is not None and s != s.strip()) for a, s in _zone_parts(arg)):
        return f"random_distribution={spec} (blanks inside a zone)"
    return None
