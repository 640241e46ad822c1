"""A sweep file, read and checked: its spec (``scenario``, ``grid``, ``zip``, ``exclude``,
``points``, ``seeds``, ``backend``) and every point's scenario, built and validated before
anything runs, so a bad value fails at once with its key path (``cowbench.sweep`` runs them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .bounds import MAX_SWEEP_POINTS, MAX_SWEEP_VMS, product, raw_vm_count
from .errors import ScenarioError
from .jobopts import expand_scenario
from .knobs import (
    knob_dtypes,
    knob_text,
    override_knobs,
    point_labels,
    scenario_knobs,
    sweep_label_knobs,
)
from .resolve import resolve
from .results import flatten
from .runner import BACKENDS
from .safeload import load_yaml_file
from .scenario import Scenario, parse_scenario
from .sweep_grid import cells as grid_cells


class SweepSpec(BaseModel):
    """A sweep file, validated (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(description="scenario file, relative to the sweep file")
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    seeds: list[int] | int = Field(default=1, description="a list, or N for seeds 1..N")
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: list[list[str]] = Field(default_factory=list, description="grid keys whose lists "
                                 "advance together")
    exclude: list[dict[str, Any]] = Field(default_factory=list, description="cells to leave "
                                          "out: every key of an entry matches")
    points: list[dict[str, Any]] = Field(default_factory=list, description="explicit cells, "
                                         "after the grid's")
    backend: str = Field(default="sim", description="sim (default: real points running side "
                         "by side on one machine would measure each other), real or both")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | int) -> list[int] | int:
        n = v if isinstance(v, int) else len(v)
        if n > MAX_SWEEP_POINTS:  # counted before a list is made
            raise ValueError(f"{n} seeds; a sweep has at most {MAX_SWEEP_POINTS} points")
        seeds = list(range(1, v + 1)) if isinstance(v, int) else v
        if not seeds or any(not 0 <= s < 2**63 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be N >= 1 or a list of distinct integers from 0 to "
                             "2**63 - 1")
        return v

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(f"must be one of {', '.join(BACKENDS)}")
        return v

    @property
    def seed_list(self) -> list[int]:
        return list(range(1, self.seeds + 1)) if isinstance(self.seeds, int) else self.seeds


@dataclass(frozen=True)
class Point:
    id: str
    cell: int
    overrides: dict[str, Any]
    seed: int
    scenario: Scenario

    def entry(self, status: str = "pending") -> dict[str, Any]:
        return {"id": self.id, "cell": self.cell, "overrides": self.overrides,
                "seed": self.seed, "dir": f"points/{self.id}", "status": status}


@dataclass
class Sweep:
    name: str
    spec: SweepSpec
    source: str
    base: dict[str, Any]
    points: list[Point]


def _parse_path(path: str) -> list[str | int]:
    """``hosts[0].capacity_bytes`` -> ["hosts", 0, "capacity_bytes"]."""
    parts: list[str | int] = []
    for piece in path.split("."):
        name, _, rest = piece.partition("[")
        if not name:
            raise ValueError(f"empty key in {path!r}")
        parts.append(name)
        for idx in filter(None, rest.replace("]", "").split("[")) if rest else []:
            if not idx.isdigit():
                raise ValueError(f"bad index [{idx}] in {path!r}")
            parts.append(int(idx))
    return parts


def apply_override(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in a scenario mapping (creating sections that are missing)."""
    parts = _parse_path(path)
    node: Any = data
    for here, nxt in zip(parts, parts[1:], strict=False):
        if isinstance(here, int):
            if not isinstance(node, list) or here >= len(node):
                raise ValueError(f"{path}: no element [{here}]")
            node = node[here]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{path}: {here!r} is not inside a mapping")
        if here not in node or node[here] is None:
            node[here] = [] if isinstance(nxt, int) else {}
        node = node[here]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ValueError(f"{path}: no element [{last}]")
    elif not isinstance(node, dict):
        raise ValueError(f"{path}: {last!r} is not inside a mapping")
    node[last] = value


def _read_yaml(path: Path, what: str) -> Any:
    return load_yaml_file(path, what)


def load_sweep(path: Path) -> Sweep:
    """Read a sweep file and build (and validate) every point's scenario."""
    raw = _read_yaml(path, "sweep")
    if not isinstance(raw, dict):
        raise ScenarioError(str(path), [("", "the file must hold a mapping at the top")])
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise ScenarioError(str(path), [(".".join(map(str, e["loc"])), _why(e["type"], e["msg"]))
                                        for e in err.errors(include_url=False)]) from None
    scen_path = (path.parent / spec.scenario).resolve()
    base = expand_scenario(_read_yaml(scen_path, "scenario"), scen_path.parent, {})  # job files
    if not isinstance(base, dict):
        raise ScenarioError(str(scen_path), [("", "the file must hold a mapping at the top")])
    name = spec.name or path.stem
    _check_knobs(spec, str(path))
    _check_size(spec, base, str(path))
    points = _points(spec, base, str(path), scen_path)
    if spec.backend != "sim" and any(p.scenario.fleet is not None for p in points):
        raise ScenarioError(str(path), [("backend", f"a fleet scenario runs in the model only, "
                                         f"not with {spec.backend}: use sim (the default)")])
    return Sweep(name, spec, str(path), base, points)


def _why(kind: str, message: str) -> str:
    """A sweep file's problem as the scenario's are said (``cowbench.scenario``)."""
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")


#: Why a point's seed is no knob: ``seeds:`` sets every point's, and would override it.
SEED_KNOB = ("the seed is no knob: `seeds:` gives every point its seed (a list such as "
             "[1, 7, 9], or N for 1..N)")


def _check_knobs(spec: SweepSpec, source: str) -> None:
    """Keys a grid or a point may not set: ``seed`` (``seeds:`` overrode it, so a grid over
    it ran the same points again under two seed columns)."""
    problems = [(f"grid.{key}", SEED_KNOB) for key in spec.grid if key == "seed"]
    problems += [(f"points[{i}].seed", SEED_KNOB) for i, p in enumerate(spec.points)
                 if "seed" in p]
    if problems:
        raise ScenarioError(source, problems)


def _check_size(spec: SweepSpec, base: dict[str, Any], source: str) -> None:
    """Points and up-front validation work, counted before the grid is expanded."""
    # the grid's product (zipped keys one axis; before exclusions) and the explicit points
    zipped = {k: i for i, keys in enumerate(spec.zip) for k in keys}
    axes = {zipped.get(k, k): len(v) for k, v in spec.grid.items()}
    cells = (product(axes.values()) if spec.grid or not spec.points else 0) + len(spec.points)
    seeds = spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
    if cells * seeds > MAX_SWEEP_POINTS:
        raise ScenarioError(source, [("grid", f"{cells} cells x {seeds} seeds = "
                                              f"{cells * seeds} points; at most "
                                              f"{MAX_SWEEP_POINTS}")])
    vms = max(raw_vm_count(base), 1)
    if cells * vms > MAX_SWEEP_VMS:
        raise ScenarioError(source, [("grid", f"{cells} cells of a {vms}-VM scenario are "
                                              f"{cells * vms} VMs to validate up front; at "
                                              f"most {MAX_SWEEP_VMS}")])


def _points(spec: SweepSpec, base: dict[str, Any], source: str, scenario_file: Path
            ) -> list[Point]:
    problems: list[tuple[str, str]] = []
    overrides_list = grid_cells(spec.grid, spec.zip, spec.exclude, spec.points, problems)
    if problems:
        raise ScenarioError(source, problems)
    points: list[Point] = []
    width = max(4, len(str(len(overrides_list) * len(spec.seed_list))))
    for cell, overrides in enumerate(overrides_list):
        where = f"points[{cell - (len(overrides_list) - len(spec.points))}]" \
            if cell >= len(overrides_list) - len(spec.points) else "grid"
        scenario = _cell_scenario(base, overrides, problems, where, scenario_file)
        if scenario is None:
            continue
        for seed in spec.seed_list:
            pid = f"p{len(points):0{width}d}"
            points.append(Point(pid, cell, overrides, seed,
                                scenario.model_copy(update={"seed": seed})))
    if problems:
        raise ScenarioError(source, list(dict.fromkeys(problems)))
    return points


def _cell_scenario(base: dict[str, Any], overrides: dict[str, Any],
                   problems: list[tuple[str, str]], where: str = "grid",
                   scenario_file: Path | None = None) -> Scenario | None:
    """A cell's scenario, resolved as ``cowbench run`` resolves the scenario file (its
    relative paths, an image's or an iolog's, against the file's directory), or None with
    its problems added."""
    data = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    label = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "(no overrides)"
    for key, value in overrides.items():
        try:
            apply_override(data, key, value)
        except ValueError as err:
            problems.append((f"{where}.{key}", str(err).removeprefix(f"{key}: ")))
            return None
    try:
        return resolve(parse_scenario(data, label),
                       label if scenario_file is None else str(scenario_file))
    except ScenarioError as err:
        hint = " (leave the cell out with `exclude:`)" if where == "grid" else ""
        for p, r in err.problems:
            knob = next((k for k in overrides if p == k or p.startswith((k + ".", k + "["))),
                        None)
            if r == "unknown key" and knob is not None:  # the knob's own name: once, no cell
                problems.append((f"{where}.{knob}", "unknown key: the scenario has no such "
                                 "field"))
            else:
                problems.append((f"{where} ({label}): {p}" if p else f"{where} ({label})",
                                 r + hint))
        return None


def seed_warnings(sweep: Sweep, calibrated: bool | None = None) -> list[str]:
    """Why several seeds may give the same figures, or the same offsets: the random workloads
    whose offsets fio pins whatever the seed (``randrepeat`` on, fio's default, or a fixed
    ``randseed``: ``cowbench.runseed.fixed_offsets``), over every point, named, with what
    varies all the same (``cowbench.runseed.seed_draws``: arrivals, workloads seeded per run,
    a calibrated model's service times). "cannot change the figures" only when nothing does.
    ``calibrated``: whether the points' model rests on a profile (``False`` with
    ``--uncalibrated``), ``None`` when not known yet."""
    from .runseed import fixed_offsets, seed_draws, seed_warning

    if len(sweep.spec.seed_list) < 2:
        return []
    fixed: dict[str, None] = {}
    draws: dict[str, None] = {}
    for p in sweep.points:
        fixed.update(dict.fromkeys(fixed_offsets(p.scenario)))
        draws.update(dict.fromkeys(seed_draws(p.scenario, calibrated)))
    line = seed_warning(list(fixed), list(draws))
    if line is None:
        return []
    seeds = sweep.spec.seed_list
    named = f"seeds {', '.join(map(str, seeds[:4]))}{', ...' if len(seeds) > 4 else ''}"
    if draws:
        return [f"{named} cannot change some offsets: {line}"]
    return [f"{named} cannot change the figures: {line} (or use seeds: 1)"]


def describe(sweep: Sweep) -> list[tuple[int, str, list[int]]]:
    """Every cell with its label and seeds, in order (what ``--dry-run`` lists)."""
    by_cell: dict[int, tuple[str, list[int]]] = {}
    labels = point_labels_of(sweep)
    for p in sweep.points:
        label, seeds = by_cell.setdefault(p.cell, (labels[p.id], []))
        seeds.append(p.seed)
    return [(c, label, seeds) for c, (label, seeds) in sorted(by_cell.items())]


def point_labels_of(sweep: Sweep) -> dict[str, str]:
    """Each point's label by the one rule the reports and ``show`` use
    (:func:`cowbench.knobs.sweep_label_knobs`), over every point's resolved knobs."""
    rows, set_keys = [], {}
    for p in sweep.points:
        resolved = p.scenario.model_dump(mode="json")
        rows.append({"point": p.id, **scenario_knobs(resolved, p.overrides)})
        set_keys.update(dict.fromkeys(override_knobs(p.overrides, resolved)))
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "point"))
    frame = pd.DataFrame(rows).astype(knob_dtypes(rows, cols))
    labels = point_labels(frame, sweep_label_knobs(frame, cols, set_keys))
    return {str(k): str(v) for k, v in labels.items()}



def cell_label(overrides: dict[str, Any]) -> str:
    """``capacity 8 GiB, ratio 1.5``: a cell's overrides as the report labels them."""
    flat = flatten(overrides)
    return ", ".join(knob_text(k, v) for k, v in flat.items()) or "all"
