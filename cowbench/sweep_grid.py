"""A sweep's cells: the grid's product, zipped axes, exclusions and explicit points.

::

    grid:                         # every combination, in the file's key order
      strategy.kind: [qcow2_overlay, snapshot_chain]
      strategy.cluster_size: [16KiB, 64KiB, 2MiB]
      strategy.extended_l2: [false, true]
    zip:                          # grid keys whose lists advance together (one axis)
      - [hosts[0].capacity_bytes, hosts[0].count]
    exclude:                      # a cell matching every key of an entry is dropped
      - {strategy.cluster_size: 2MiB, strategy.extended_l2: true}
    points:                       # explicit cells, after the grid's (any key path, or a
      - {strategy: {kind: full_copy}}   # whole section such as strategy)

Values match an exclusion as written or as the sizes they name (``16KiB`` = ``16384``).
Everything is checked before a point runs; a problem names its key path.
"""

from __future__ import annotations

import itertools
from typing import Any

from .units import parse_size


def _same(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    try:
        return bool(parse_size(a) == parse_size(b))
    except (TypeError, ValueError):
        return False


def _axes(grid: dict[str, list[Any]], zips: list[list[str]],
          problems: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    """Each axis as its list of partial cells: a plain key, or a zipped group of keys."""
    zipped: dict[str, int] = {}
    for i, keys in enumerate(zips):
        for key in keys:
            if key not in grid:
                problems.append((f"zip[{i}]", f"{key!r} is not a key of grid"))
            elif key in zipped:
                problems.append((f"zip[{i}]", f"{key!r} is already zipped in zip[{zipped[key]}]"))
            else:
                zipped[key] = i
        sizes = {len(grid[k]) for k in keys if k in grid}
        if len(sizes) > 1:
            problems.append((f"zip[{i}]", "zipped keys need lists of the same length, not "
                             + ", ".join(f"{k}: {len(grid[k])}" for k in keys if k in grid)))
    axes: list[list[dict[str, Any]]] = []
    done: set[int] = set()
    for key, values in grid.items():
        if key not in zipped:
            axes.append([{key: v} for v in values])
        elif zipped[key] not in done:
            done.add(zipped[key])
            keys = [k for k in zips[zipped[key]] if k in grid]
            axes.append([dict(zip(keys, vals, strict=False))
                         for vals in zip(*(grid[k] for k in keys), strict=False)])
    return axes


def cells(grid: dict[str, list[Any]], zips: list[list[str]], exclude: list[dict[str, Any]],
          points: list[dict[str, Any]], problems: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The overrides of every cell, in order: the grid's (less exclusions), then ``points``."""
    for i, entry in enumerate(exclude):
        for key in entry:
            if key not in grid:
                problems.append((f"exclude[{i}].{key}", "not a key of grid"))
    axes = _axes(grid, zips, problems)
    out: list[dict[str, Any]] = []
    if grid or not points:
        for combo in itertools.product(*axes):
            cell = {k: v for part in combo for k, v in part.items()}
            cell = {k: cell[k] for k in grid}  # the file's key order
            if not any(all(k in cell and _same(cell[k], v) for k, v in e.items())
                       for e in exclude):
                out.append(cell)
        for i, entry in enumerate(exclude):
            if grid and not any(all(k in c and _same(c[k], v) for k, v in entry.items())
                                for c in itertools.starmap(_merge, itertools.product(*axes))):
                problems.append((f"exclude[{i}]", "matches no cell of the grid"))
    if grid and not out:
        problems.append(("exclude", "every cell of the grid is excluded"))
    out.extend(dict(p) for p in points)
    return out


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for part in parts for k, v in part.items()}
