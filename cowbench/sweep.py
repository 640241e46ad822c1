"""Sweeps: a grid of scenario overrides times seeds, each point a normal run directory, on Dask.

A sweep file names a scenario, a ``grid`` of overrides (any scenario field by its key path,
``strategy.cluster_size`` or ``fleet.flavors[0].root``, each with a list of values) and
``seeds``. The points are the grid's product (in the file's key order) times the seeds; every
point's scenario is built and validated *before* anything runs, so a bad value fails at once
with its key path. Each point runs through :func:`cowbench.runner.run_scenario` on a Dask
worker, in the worker's own scratch space; its run directory travels back to this process,
which writes it as ``<sweep>/points/<id>/`` (``cowbench.sweep_files``: the workers need no
filesystem shared with the client; run.json carries the point's ``overrides``). The sweep
writes:

::

    sweep.json        schema_version, the spec, the points (id, cell, overrides, seed, dir,
                      status), status
    points/<id>/      one run directory per point
    summary.csv       one row per point: overrides, seed, status and the point's figures
    summary.parquet
    bands.csv         per grid cell, P50/P95/P99 across seeds of every host's and the fleet's
                      demand over time (fleet scenarios)
    time_to_full.csv  per grid cell, the time the first host fills: median with its interval

A sweep that stopped resumes: points whose run.json says ``ok`` are kept, the others redone.
Execution is Dask distributed (desmod's factorial sweep, run as futures): ``local`` starts a
LocalCluster of worker processes, ``inprocess`` runs threads in this process, and any other
value is the address of a running scheduler (``tcp://host:8786``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .bounds import MAX_SWEEP_POINTS, MAX_SWEEP_VMS, product, raw_vm_count
from .errors import CowbenchError, Interrupted, RunFailed, ScenarioError, UsageError
from .fdtree import DIR_FLAGS
from .jobopts import expand_scenario
from .knobs import knob_text
from .montecarlo import bands, time_to_full_summary
from .resolve import resolve
from .results import flatten
from .runner import BACKENDS
from .safeload import load_json_file, load_yaml_file
from .scenario import Scenario, parse_scenario
from .signals import interrupts_raise, shielded
from .store import atomic_write_parquet, atomic_write_text, now_iso, read_records
from .sweep_cluster import run_points
from .sweep_files import remove_staging
from .sweep_grid import cells as grid_cells
from .sweep_points import point_figures
from .tools import absolute

SWEEP_SCHEMA_VERSION = 1


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
    """``fleet.flavors[0].root`` -> ["fleet", "flavors", 0, "root"]."""
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
        raise ScenarioError(str(path), [(".".join(map(str, e["loc"])),
                                         "unknown key" if e["type"] == "extra_forbidden"
                                         else e["msg"].removeprefix("Value error, "))
                                        for e in err.errors(include_url=False)]) from None
    scen_path = (path.parent / spec.scenario).resolve()
    base = expand_scenario(_read_yaml(scen_path, "scenario"), scen_path.parent, {})  # job files
    if not isinstance(base, dict):
        raise ScenarioError(str(scen_path), [("", "the file must hold a mapping at the top")])
    name = spec.name or path.stem
    _check_size(spec, base, str(path))
    points = _points(spec, base, str(path))
    if spec.backend != "sim" and any(p.scenario.fleet is not None for p in points):
        raise ScenarioError(str(path), [("backend", f"a fleet scenario runs in the model only, "
                                         f"not with {spec.backend}: use sim (the default)")])
    return Sweep(name, spec, str(path), base, points)


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


def _points(spec: SweepSpec, base: dict[str, Any], source: str) -> list[Point]:
    problems: list[tuple[str, str]] = []
    overrides_list = grid_cells(spec.grid, spec.zip, spec.exclude, spec.points, problems)
    if problems:
        raise ScenarioError(source, problems)
    points: list[Point] = []
    width = max(4, len(str(len(overrides_list) * len(spec.seed_list))))
    for cell, overrides in enumerate(overrides_list):
        where = f"points[{cell - (len(overrides_list) - len(spec.points))}]" \
            if cell >= len(overrides_list) - len(spec.points) else "grid"
        scenario = _cell_scenario(base, overrides, problems, where)
        if scenario is None:
            continue
        for seed in spec.seed_list:
            pid = f"p{len(points):0{width}d}"
            points.append(Point(pid, cell, overrides, seed,
                                scenario.model_copy(update={"seed": seed})))
    if problems:
        raise ScenarioError(source, problems)
    return points


def _cell_scenario(base: dict[str, Any], overrides: dict[str, Any],
                   problems: list[tuple[str, str]], where: str = "grid") -> Scenario | None:
    data = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    label = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "(no overrides)"
    for key, value in overrides.items():
        try:
            apply_override(data, key, value)
        except ValueError as err:
            problems.append((f"{where}.{key}", str(err)))
            return None
    try:
        return resolve(parse_scenario(data, label), label)
    except ScenarioError as err:
        hint = " (leave the cell out with `exclude:`)" if where == "grid" else ""
        problems.extend((f"{where} ({label}): {p}" if p else f"{where} ({label})", r + hint)
                        for p, r in err.problems)
        return None


def seed_warnings(sweep: Sweep) -> list[str]:
    """Why several seeds may give the same figures: the model draws a workload's offsets
    from the seed only when fio would (``randrepeat: false``, or a ``randseed`` per point);
    with fio's default ``randrepeat=1`` and no ``randseed`` every seed replays one stream."""
    if len(sweep.spec.seed_list) < 2:
        return []
    fixed = [p for p in sweep.points if p.scenario.fleet is None and p.scenario.workloads
             and all(w.randrepeat and w.randseed is None
                     for w in p.scenario.workloads.values())]
    if len(fixed) < len(sweep.points):
        return []
    return [f"seeds {', '.join(map(str, sweep.spec.seed_list[:4]))}"
            f"{', ...' if len(sweep.spec.seed_list) > 4 else ''} cannot change the figures: "
            "every workload keeps fio's randrepeat on with no randseed, so every seed issues "
            "the same offsets (set randrepeat: false in the workloads to vary them, or use "
            "seeds: 1)"]


def describe(sweep: Sweep) -> list[tuple[int, str, list[int]]]:
    """Every cell with its label and seeds, in order (what ``--dry-run`` lists)."""
    by_cell: dict[int, tuple[str, list[int]]] = {}
    for p in sweep.points:
        label, seeds = by_cell.setdefault(p.cell, (cell_label(p.overrides), []))
        seeds.append(p.seed)
    return [(c, label, seeds) for c, (label, seeds) in sorted(by_cell.items())]


ProgressFn = Callable[[str, int, int], None]


def run_sweep(sweep: Sweep, out: Path, scheduler: str = "local", workers: int | None = None,
              progress: ProgressFn = lambda _m, _d, _t: None, csv: bool = False) -> pd.DataFrame:
    """Run every point not yet ``ok`` in ``out`` on Dask; write sweep.json and the summary.
    ``csv``: every point writes its records' CSV copies whatever their size.

    The first SIGINT or SIGTERM stops the sweep: pending points are cancelled, the cluster
    this sweep started is closed, every point that had not finished is marked
    ``interrupted`` (it has no directory: a point's is written, whole, when its worker sends
    it back), sweep.json says ``interrupted``, and :class:`Interrupted` is raised (the CLI
    exits 130). Whatever else ends a sweep, sweep.json says ``failed`` with the reason; it
    never stays ``running``."""
    out = absolute(out)  # the points' run directories, whatever the workers' cwd
    entries = _prepare(sweep, out)
    todo = [p for p in sweep.points if entries[p.id]["status"] != "ok"]
    done = len(sweep.points) - len(todo)
    progress(f"{done} of {len(sweep.points)} points already done", done, len(sweep.points))
    start = now_iso()
    with interrupts_raise():  # so a signal still stops the cluster it started
        try:
            _write_json(out, {**_sweep_meta(sweep, entries, "running"), "start": start})
            if todo:
                _execute(sweep, out, todo, entries, scheduler, workers, progress, done, start,
                         csv)
            summary = write_summary(sweep, out, entries)
        except BaseException as err:
            _stopped(sweep, out, entries, start, err)
        failed = [e for e in entries.values() if e["status"] != "ok"]
        _write_json(out, {**_sweep_meta(sweep, entries, "failed" if failed else "ok"),
                          "start": start, "end": now_iso()})
    return summary


def _stopped(sweep: Sweep, out: Path, entries: dict[str, dict[str, Any]], start: str,
             err: BaseException) -> NoReturn:
    """Record why the sweep stopped (sweep.json and unfinished points), then raise."""
    interrupted = isinstance(err, KeyboardInterrupt | Interrupted)
    status = "interrupted" if interrupted else "failed"
    reason = (str(err) or "interrupted by signal SIGINT") if interrupted else \
        (str(err) if isinstance(err, CowbenchError) else f"{type(err).__name__}: {err}")
    for p in sweep.points:
        if entries[p.id]["status"] != "pending":
            continue
        if _point_status(out / "points" / p.id) == "ok":  # it ended while the sweep stopped
            entries[p.id]["status"] = "ok"
            continue
        entries[p.id]["status"] = status if interrupted else "pending"
    with contextlib.suppress(OSError):
        _write_json(out, {**_sweep_meta(sweep, entries, status), "start": start,
                          "reason": reason, "end": now_iso()})
    if interrupted:
        raise Interrupted(f"{reason}; sweep directory: {out} (run it again to resume)") \
            from None
    if isinstance(err, CowbenchError):
        raise err
    raise RunFailed(f"sweep failed: {reason}; see {out}/sweep.json") from err


def _sweep_meta(sweep: Sweep, entries: dict[str, dict[str, Any]], status: str) -> dict[str, Any]:
    return {"schema_version": SWEEP_SCHEMA_VERSION, "name": sweep.name, "source": sweep.source,
            "spec": sweep.spec.model_dump(mode="json"), "scenario": sweep.base,
            "status": status, "points": [entries[p.id] for p in sweep.points]}


def _write_json(out: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(out / "sweep.json", json.dumps(meta, indent=2, default=str) + "\n")


def _prepare(sweep: Sweep, out: Path) -> dict[str, dict[str, Any]]:
    """Entries per point: fresh, or from a previous run of the same sweep (resume)."""
    entries = {p.id: p.entry() for p in sweep.points}
    meta_path = out / "sweep.json"
    if out.exists() and not meta_path.exists() and any(out.iterdir()):
        raise UsageError(f"{out}: holds files but no sweep.json; choose another --out")
    if meta_path.exists():
        old = _old_meta(meta_path)
        same = _old_points(old) == [(p.overrides, p.seed) for p in sweep.points]
        if not same or old.get("scenario") != sweep.base:
            raise UsageError(f"{out}: holds a different sweep (other points or scenario); "
                             "choose another --out")
        for p in sweep.points:
            entries[p.id]["status"] = _point_status(out / "points" / p.id)
    (out / "points").mkdir(parents=True, exist_ok=True)
    for p in sweep.points:
        d = out / "points" / p.id
        if entries[p.id]["status"] != "ok" and d.exists():
            shutil.rmtree(d)  # a point that did not finish is redone from scratch
    points_fd = os.open(out / "points", DIR_FLAGS)
    try:
        remove_staging(points_fd)  # a point being written when a client was killed
    finally:
        os.close(points_fd)
    return entries


def _old_meta(path: Path) -> dict[str, Any]:
    """A previous sweep.json, or a one-line error if it is damaged (it is never overwritten
    then: the user decides)."""
    try:
        old = load_json_file(path, "sweep.json")
    except ScenarioError as err:
        raise UsageError(f"{err}; repair or remove it, or choose another --out") from None
    if not isinstance(old, dict):
        raise UsageError(f"{path}: not a sweep's metadata (a JSON object); repair or remove "
                         "it, or choose another --out")
    return old


def _old_points(old: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    points = old.get("points")
    if not isinstance(points, list) or not all(isinstance(e, dict) for e in points):
        return None
    return [(e.get("overrides"), e.get("seed")) for e in points]


def _point_status(d: Path) -> str:
    try:
        meta = load_json_file(d / "run.json", "run.json")
    except ScenarioError:
        return "missing"
    return str(meta.get("status", "missing")) if isinstance(meta, dict) else "missing"


def _execute(sweep: Sweep, out: Path, todo: list[Point], entries: dict[str, dict[str, Any]],
             scheduler: str, workers: int | None, progress: ProgressFn, done: int,
             start: str, csv: bool) -> None:
    tasks = {p.id: (p.scenario.model_dump(mode="json"), p.seed, sweep.spec.backend,
                    {"overrides": p.overrides, "sweep": sweep.name, "point": p.id}, csv)
             for p in todo}
    count = [done]

    def finished(pid: str, status: str, reason: str | None) -> None:
        with shielded():
            entries[pid].update(status=status, **({"reason": reason} if reason else {}))
            count[0] += 1
            progress(f"{pid} {status}", count[0], len(sweep.points))
            _write_json(out, {**_sweep_meta(sweep, entries, "running"), "start": start})

    run_points(tasks, out, f"cowbench-{sweep.name}", scheduler, workers, finished)


def write_summary(sweep: Sweep, out: Path, entries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """summary.csv/.parquet (one row per point), and the Monte Carlo files per grid cell; each
    carries the cell's knobs (``label``, ``override.<path>``) and times in days beside seconds."""
    rows, series, ttf = [], [], []
    for p in sweep.points:
        row: dict[str, Any] = {"point": p.id, "cell": p.cell, "seed": p.seed,
                               "status": entries[p.id]["status"], "run_dir": f"points/{p.id}",
                               "label": cell_label(p.overrides)}
        row.update({f"override.{k}": _scalar(v) for k, v in p.overrides.items()})
        pred = out / "points" / p.id / "predicted.parquet"
        if row["status"] == "ok" and pred.exists():
            rec = read_records(pred)  # a damaged file: one line naming it
            row.update(point_figures(rec))
            s = rec[rec.metric.isin(["allocated_bytes", "provisioned_bytes"])
                    & rec.entity.str.match(r"^(host|fleet):") & rec.t_s.notna()]
            series.append(s.assign(cell=p.cell))
            if p.scenario.fleet is not None and p.scenario.duration is not None:
                ttf.append({"cell": p.cell, "seed": p.seed, "duration": p.scenario.duration,
                            "ttf": row.get("time_to_full_s", float("nan"))})
        rows.append(row)
    summary = with_days(pd.DataFrame(rows))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_parquet(out / "summary.parquet", summary)
    _write_mc(sweep, out, series, ttf)
    return summary


def cell_label(overrides: dict[str, Any]) -> str:
    """``capacity 8 GiB, ratio 1.5``: a cell's overrides as the report labels them."""
    flat = flatten(overrides)
    return ", ".join(knob_text(k, v) for k, v in flat.items()) or "all"


def with_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Beside each time column in seconds (``*_s``, ``*_s_p50``), the same in days (``_d``)."""
    out = frame.copy()
    for col in list(frame.columns):
        day_col = re.sub(r"_s(?=$|_p\d+$)", "_d", col)
        if day_col != col and day_col not in out.columns and pd.api.types.is_numeric_dtype(
                frame[col]) and col not in ("replications",):
            out.insert(list(out.columns).index(col) + 1, day_col, frame[col] / 86400.0)
    return out


def _cells(sweep: Sweep) -> pd.DataFrame:
    first = {p.cell: p for p in reversed(sweep.points)}
    return pd.DataFrame([{"cell": c, "label": cell_label(p.overrides),
                          **{f"override.{k}": _scalar(v) for k, v in p.overrides.items()}}
                         for c, p in sorted(first.items())])


def _scalar(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v)


def _write_mc(sweep: Sweep, out: Path, series: list[pd.DataFrame],
              ttf: list[dict[str, Any]]) -> None:
    allb = pd.concat(series) if series else pd.DataFrame()
    knobs = _cells(sweep)
    if len(allb):  # time series exist only for fleets and timelines
        b = pd.concat([bands(g).assign(cell=c) for c, g in allb.groupby("cell")])
        b = knobs.merge(b, on="cell", how="right")
        atomic_write_text(out / "bands.csv", with_days(b).to_csv(index=False))
    if ttf:
        t = pd.DataFrame(ttf)
        rows = [{"cell": c, **time_to_full_summary(g.ttf.tolist(), float(g.duration.iloc[0]))}
                for c, g in t.groupby("cell")]
        table = knobs.merge(pd.DataFrame(rows), on="cell", how="right")
        atomic_write_text(out / "time_to_full.csv", with_days(table).to_csv(index=False))


__all__ = ["CowbenchError", "Sweep", "SweepSpec", "load_sweep", "run_sweep", "apply_override"]
