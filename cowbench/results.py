"""Reading finished runs and sweeps back as tidy frames (what reports and notebooks read).

A **run directory** is the contract of README.md ("Reading a run directory"). A **sweep directory**
is, for reading, minimal on purpose so any tool that makes one can be read:

::

    SWEEP/
      sweep.json          optional: {"name": ..., ...}; only "name" is read (the report title)
      <point>/run.json    one normal run directory per point, at depth 1 or 2
      <point>/predicted.parquet, measured.parquet, scenario.yaml, ...

A folder of run directories without ``sweep.json`` is a sweep too. Each point's knobs become
columns of every frame: the scalar fields of its resolved ``scenario.yaml``'s ``strategy``
section (``strategy.kind``, ``strategy.cluster_size``, ...), and the keys of an ``overrides``
mapping in its ``run.json`` (nested mappings flattened to dotted key paths, a section set
whole adding its ``kind``), valued as resolved in ``scenario.yaml`` where that path exists, and
typed as summary.csv's are (:mod:`cowbench.knobs`: integers ``Int64`` and switches ``boolean``
even where some points lack the knob). Points whose status is not ``ok`` are skipped and
listed with the reason, never mixed in; a sweep with no ``ok`` point yet is refused, saying how
many points have which status.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .capacity import (
    ceph_parent_bytes,
    host_capacities,
    host_claimables,
    host_reserves,
    scenario_capacity,
)
from .ceiling import demand_ceiling
from .compare import COMPARISON_COLUMNS
from .errors import ScenarioError, UsageError
from .knobs import (
    knob_dtypes,
    override_knobs,
    point_labels,
    scenario_knobs,
    sweep_label_knobs,
    vm_strategies,
)
from .records import COLUMNS
from .safeload import load_json_file, load_yaml_file
from .spread import SPREAD_COLUMNS, SPREAD_FILE, judged, real_runs
from .store import read_comparison, read_records, read_run, read_spread

SWEEP_FILE = "sweep.json"
#: Columns every sweep frame carries ahead of the point's knobs.
POINT_COLUMNS = ["point", "scenario", "scenario_hash", "run_seed"]
#: Columns of the points table only: each point's host capacity (the smallest host's), each
#: host's (by name; ``*``: a host not listed) and the horizon (its duration).
POINT_FACTS = ["capacity_bytes", "host_capacities", "host_claimables", "host_reserves",
               "host_ceilings", "ceph_parent_bytes", "vm_strategies",
               "horizon_s"]


@dataclass
class RunResults:
    """One run directory read back: its metadata, resolved scenario and record frames."""

    path: Path
    meta: dict[str, Any]
    scenario: dict[str, Any]
    predicted: pd.DataFrame
    measured: pd.DataFrame
    comparison: pd.DataFrame
    #: ``spread.csv`` (``cowbench.spread``): empty unless the real backend ran two or more times
    spread: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def real_runs(self) -> int:
        """How many real runs the measured records hold (0: the real backend did not run)."""
        return real_runs(self.measured)

    @property
    def name(self) -> str:
        sc = self.meta.get("scenario") or {}
        return str(sc.get("name") or self.scenario.get("name") or self.path.name)

    @property
    def records(self) -> pd.DataFrame:
        """Predicted and measured records in one frame (``backend`` tells them apart). A
        backend without records adds none: concatenated, its empty object columns made the
        others' strings objects (a sweep of 5.3 million model records took 2.7 GB, not 1.1)."""
        frames = [f for f in (self.predicted, self.measured) if len(f)]
        if len(frames) == 1:
            return frames[0].reset_index(drop=True)
        return pd.concat([self.predicted, self.measured], ignore_index=True)


@dataclass
class SweepResults:
    """Every ``ok`` point of a sweep, tidy: records and comparisons with the knobs as columns."""

    path: Path
    name: str
    points: pd.DataFrame
    records: pd.DataFrame
    comparison: pd.DataFrame
    knobs: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: each point's run.json ``profile`` (what its I/O figures rest on), by point;
    #: ``cowbench.profile_use.describe_runs`` says it in one sentence
    profiles: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def calibration(self) -> str:
        """Which calibration profile the points' I/O figures rest on, or that they are
        uncalibrated, in one sentence (no final stop), as the reports say it."""
        from .profile_use import describe_runs

        return describe_runs(self.profiles)


def empty_records() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("t_s", "value") else "object")
                         for c in COLUMNS})


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists() and not path.is_symlink():
        return empty_records()
    return read_records(path)  # a regular, readable parquet of records, or a one-line error


def _read_comparison(path: Path) -> pd.DataFrame:
    if not path.exists() and not path.is_symlink():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COMPARISON_COLUMNS})
    return read_comparison(path)


def _read_scenario(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        data = load_yaml_file(path, "scenario", resolved=True)
    except ScenarioError as err:
        raise UsageError(f"cannot read the resolved scenario: {err}") from None
    return data if isinstance(data, dict) else {}


def is_run_dir(path: Path) -> bool:
    return (path / "run.json").is_file()


#: what a run directory holds once each stage of run.json's ``completed`` is done
STAGE_FILES = {"sim": ("predicted.parquet", "scenario.yaml"),
               "real": ("measured.parquet", "scenario.yaml"), "compare": ("comparison.csv",)}


def load_run(path: str | Path) -> RunResults:
    """Read a run directory; a missing record file is an empty frame (that backend did not
    run), unless run.json says the stage that writes it was done: a damaged directory is an
    error, not a run without figures."""
    p = Path(path)
    meta = read_run(p)
    done = meta.get("completed")
    for stage in done if isinstance(done, list) else []:
        for name in STAGE_FILES.get(str(stage), ()):
            if not (p / name).exists() and not (p / name).is_symlink():
                raise UsageError(f"{p}: damaged run directory: run.json says {stage!r} was "
                                 f"done, but {name} is missing")
    return RunResults(p, meta, _read_scenario(p / "scenario.yaml"),
                      _read_parquet(p / "predicted.parquet"),
                      _read_parquet(p / "measured.parquet"),
                      _read_comparison(p / "comparison.csv"), _read_spread(p / SPREAD_FILE))


def _read_spread(path: Path) -> pd.DataFrame:
    if not path.exists() and not path.is_symlink():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in SPREAD_COLUMNS})
    return judged(read_spread(path))  # the verdict by this version's rule (spread.judged)


def find_points(path: Path) -> list[Path]:
    """Run directories under a sweep directory, at depth 1 or 2, sorted by path."""
    found = {run.parent for pattern in ("*/run.json", "*/*/run.json") for run in path.glob(pattern)
             if run.is_file() and not run.parent.name.startswith(".")}
    # a run directory never holds points: drop depth-2 finds inside a depth-1 run
    return sorted(p for p in found if not is_run_dir(p.parent) or p.parent == path)


def is_sweep_dir(path: Path) -> bool:
    return path.is_dir() and not is_run_dir(path) and bool(
        (path / SWEEP_FILE).is_file() or find_points(path))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as JSON text (one cell each)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def point_knobs(run: RunResults) -> dict[str, Any]:
    """The knobs of one point: its strategy's scalar fields and its run.json ``overrides``
    (:func:`cowbench.knobs.override_knobs`: every key path, as resolved)."""
    overrides = run.meta.get("overrides")
    return scenario_knobs(run.scenario, overrides if isinstance(overrides, dict) else None)


def _point_row(sweep: Path, run: RunResults) -> dict[str, Any]:
    sc = run.meta.get("scenario") or {}
    duration = run.scenario.get("duration")
    return {"point": str(run.path.relative_to(sweep)) if run.path != sweep else ".",
            "scenario": run.name, "scenario_hash": sc.get("hash"),
            "run_seed": run.meta.get("seed"), "capacity_bytes": scenario_capacity(run.scenario),
            "host_capacities": host_capacities(run.scenario),
            "host_claimables": host_claimables(run.scenario),
            "host_reserves": host_reserves(run.scenario),
            "host_ceilings": demand_ceiling(run.scenario),
            "ceph_parent_bytes": ceph_parent_bytes(run.scenario),
            "vm_strategies": vm_strategies(run.scenario),
            "horizon_s": float(duration) if isinstance(duration, int | float) else None,
            **point_knobs(run)}


def _with_point(df: pd.DataFrame, row: dict[str, Any]) -> pd.DataFrame:
    return df.assign(**{k: v for k, v in row.items() if k not in POINT_FACTS})


def _sweep_name(path: Path) -> str:
    if not (path / SWEEP_FILE).exists():
        return path.resolve().name
    try:
        meta = load_json_file(path / SWEEP_FILE, SWEEP_FILE, for_user=False)
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(name) if name else path.resolve().name


def load_sweep(path: str | Path) -> SweepResults:
    """Read every point of a sweep directory (or of a plain folder of run directories)."""
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{p}: no such directory")
    points = find_points(p)
    if not points and not (p / SWEEP_FILE).is_file():
        raise UsageError(f"{p}: not a sweep directory (no run directory with run.json below it)")
    rows, records, comparisons, skipped = [], [], [], []
    statuses: list[str] = []
    profiles: dict[str, dict[str, Any] | None] = {}
    set_keys: dict[str, None] = {}  # the knobs the sweep file sets: named in every label
    for point in points:
        run = load_run(point)
        statuses.append(str(run.meta.get("status")))
        if run.meta.get("status") != "ok":
            reason = run.meta.get("reason") or f"status {run.meta.get('status')!r}"
            skipped.append((str(point.relative_to(p)), str(reason)))
            continue
        row = _point_row(p, run)
        rows.append(row)
        set_keys.update(dict.fromkeys(sweep_set_knobs(run)))
        records.append(_with_point(run.records, row))
        comparisons.append(_with_point(run.comparison, row))
        profiles[row["point"]] = _profile_of(run)
    if not rows:
        raise UsageError(f"{p}: no finished point yet, nothing to read "
                         f"({_tally(_sweep_statuses(p) or statuses)}); run the sweep (again) "
                         "to finish its points")
    skipped += _never_finished(p, {str(point.relative_to(p)) for point in points})
    res = _assemble(p, rows, records, comparisons, skipped, list(set_keys))
    res.profiles = profiles
    return res


def _profile_of(run: RunResults) -> dict[str, Any] | None:
    block = run.meta.get("profile")
    return block if isinstance(block, dict) else None


def _never_finished(path: Path, found: set[str]) -> list[tuple[str, str]]:
    """The points sweep.json lists that have no run directory (an interrupted or killed
    sweep's pending ones), as ``(dir, reason)``: a report of the others says they are
    missing (before, it showed the finished part as the whole sweep)."""
    if not (path / SWEEP_FILE).is_file():
        return []
    meta = load_json_file(path / SWEEP_FILE, SWEEP_FILE, for_user=False)
    entries = meta.get("points") if isinstance(meta, dict) else None
    out = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or str(e.get("dir")) in found:
            continue
        status = str(e.get("status", "unknown"))
        out.append((str(e.get("dir") or e.get("id")),
                    f"status {status!r}: not run to its end (no run directory); run the "
                    "sweep again to finish it"))
    return out


def _sweep_statuses(path: Path) -> list[str]:
    """The status of every point sweep.json lists (none where it lists none)."""
    if not (path / SWEEP_FILE).is_file():
        return []
    try:
        meta = load_json_file(path / SWEEP_FILE, SWEEP_FILE, for_user=False)
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    points = meta.get("points") if isinstance(meta, dict) else None
    if not isinstance(points, list):
        return []
    return [str(e.get("status")) if isinstance(e, dict) else "unknown" for e in points]


def _tally(statuses: list[str]) -> str:
    """``6 interrupted, 2 failed``: how many points have each status."""
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "no points"


def sweep_set_knobs(run: RunResults) -> list[str]:
    """The knobs a sweep file set for this point (its run.json ``overrides``, by key path)."""
    overrides = run.meta.get("overrides")
    return list(override_knobs(overrides, run.scenario)) if isinstance(overrides, dict) else []


def _assemble(path: Path, rows: list[dict[str, Any]], records: list[pd.DataFrame],
              comparisons: list[pd.DataFrame], skipped: list[tuple[str, str]],
              set_keys: list[str] | None = None) -> SweepResults:
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=POINT_COLUMNS)
    knob_cols = [c for c in table.columns if c not in [*POINT_COLUMNS, *POINT_FACTS]]
    # each knob keeps its type where some points lack it (16384, not 16384.0), in every frame
    dtypes = knob_dtypes(rows, knob_cols)
    table = table.astype(dtypes)
    # the knobs the points' labels name, by the one rule of summary.csv and show
    knobs = sweep_label_knobs(table, knob_cols, set_keys or [])
    recs = pd.concat(records, ignore_index=True) if records else empty_records()
    comp = pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame()
    recs = recs.astype({c: t for c, t in dtypes.items() if c in recs.columns})
    comp = comp.astype({c: t for c, t in dtypes.items() if c in comp.columns})
    return SweepResults(path, _sweep_name(path), table, recs, comp, knobs, skipped)


#: What tells one series from another; a sweep's knob columns follow from ``point``.
SERIES_KEYS = ("backend", "point", "entity", "metric", "seed", "replication")
#: the kinds of entity a timeline deletes before its end (a VM; hosts, caches and the
#: snapshots uploaded to Glance stay): :func:`end_of_run`'s ``present_only`` leaves the last
#: samples of those gone out
TRANSIENT = ("vm",)


def end_of_run(records: pd.DataFrame, present_only: bool = False) -> pd.DataFrame:
    """The end-of-run figures: ``t_s`` NaN (README.md, "Reading a run directory"), or else
    each series' last sample.

    ``present_only``: leave out the last sample of what was gone by the end. A lifecycle's
    end is sampled (``Sample(None)``): every host, image cache, VM and snapshot still there
    gets an end-of-run figure of each space metric it is sampled for. So a VM (the
    :data:`TRANSIENT` kind, which a timeline deletes) with no end-of-run figure of a metric
    the run measured at its end (for any entity: the hosts' ``allocated_bytes``, the caches'
    ``file_bytes``) was deleted on the way and holds nothing at the end, whatever the other
    VMs do, even if none is left. Its I/O figures, which no entity has at the end, stay; so
    do the last samples of a host or of ``fleet:all`` (never deleted).

    Vectorised on integer codes of the series' keys (one factorize per key, one stable sort
    of the times, set membership on one int64 per row): the records' other columns are only
    gathered once, at the end. A sweep of 5.3 million records (18 fleet
    points) took 15 s and 3 GiB beyond the records sorting and merging whole frames of
    strings; call it once and keep the result."""
    if records.empty:
        return records
    t = records["t_s"].to_numpy(dtype=float)
    is_final = np.isnan(t)
    final: pd.DataFrame = records[is_final]
    if is_final.all():
        return final.reset_index(drop=True)
    keys = [c for c in SERIES_KEYS if c in records.columns]
    series = _series_codes([records[k] for k in keys], len(records))
    timed_at = np.flatnonzero(~is_final)
    order = timed_at[np.argsort(t[timed_at], kind="stable")]
    # each series' last sample: the last of its rows in time order
    keep = ~pd.Series(series[order]).duplicated(keep="last").to_numpy()
    last_at = order[keep]
    if len(final):
        last_at = last_at[~np.isin(series[last_at], series[is_final])]
        if present_only and len(last_at):
            entity, names = pd.factorize(records["entity"], use_na_sentinel=False)
            kind = _kind_of(pd.Series(names)).to_numpy()[entity]  # per name, not per row
            # a metric of one run (backend, point, seed, replication), whatever the entity
            measured = _series_codes([records[k] for k in keys if k != "entity"],
                                     len(records))
            gone = np.isin(kind[last_at], TRANSIENT) & np.isin(measured[last_at],
                                                               measured[is_final])
            last_at = last_at[~gone]
    last: pd.DataFrame = records.iloc[last_at]
    return pd.concat([final, last], ignore_index=True)


def _series_codes(columns: list[pd.Series | np.ndarray], rows: int) -> np.ndarray:
    """One int64 per row, equal for rows equal in every one of ``columns`` (nulls equal to
    each other, as ``drop_duplicates`` has them)."""
    code = np.zeros(rows, dtype=np.int64)
    for column in columns:
        c, uniques = pd.factorize(column, use_na_sentinel=False)
        # combine pairwise and renumber, so the codes stay below the rows' count
        code, _ = pd.factorize(code * (len(uniques) + 1) + c, use_na_sentinel=False)
        code = code.astype(np.int64)
    return code


def _kind_of(entity: pd.Series) -> pd.Series:
    """``vm``, ``host``, ... of each entity name (``kind:name``)."""
    return entity.astype(str).str.split(":", n=1).str[0]


def labelled(res: SweepResults, column: str = "group") -> pd.DataFrame:
    """The sweep's records with each point's knob label in ``column`` (one ``map`` by
    point); without varying knobs, ``predicted``/``measured`` by backend."""
    records = res.records
    if res.knobs:
        labels = point_labels(res.points, res.knobs)
        return records.assign(**{column: records["point"].map(labels)})
    words = records["backend"].map({"sim": "predicted", "real": "measured"})
    return records.assign(**{column: words})


def wide(records: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Metrics as columns, one row per ``index`` combination (mean over repeated figures)."""
    if records.empty:
        return pd.DataFrame(columns=index)
    out = records.pivot_table(index=index, columns="metric", values="value", aggfunc="mean",
                              dropna=False, observed=True)
    out.columns = [str(c) for c in out.columns]
    return out.reset_index()


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """``num / den``, NaN where either is absent or ``den`` is 0 (undefined, never inf)."""
    n = pd.to_numeric(num, errors="coerce").astype(float)
    d = pd.to_numeric(den, errors="coerce").astype(float)
    return (n / d.where(d > 0)).astype(float)


def guest_bytes(frame: pd.DataFrame, kind: str) -> pd.Series:
    """Bytes the guest read or wrote: ``bw / iops * ios`` (= mean block size x I/O count).

    Both backends record ``<kind>_ios``, ``<kind>_iops`` and ``<kind>_bw_bytes_per_s`` over the
    same elapsed time (fio's JSON; the model's job time), so the elapsed time cancels out.
    """
    cols = [f"{kind}_bw_bytes_per_s", f"{kind}_iops", f"{kind}_ios"]
    if any(c not in frame.columns for c in cols):
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return _ratio(frame[cols[0]], frame[cols[1]]) * frame[cols[2]].astype(float)


AMPLIFICATION_COLUMNS = ["guest_read_bytes", "guest_write_bytes", "space_amplification",
                         "write_amplification", "read_amplification"]


def amplification(records: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Per VM (and ``by`` columns): what the copy-on-write strategy costs per guest byte.

    - ``space_amplification`` = ``own_bytes / guest_write_bytes``: host bytes the VM's disk
      holds per byte the guest wrote (a 4 KiB write into an empty 64 KiB cluster costs a
      whole cluster plus metadata: up to 16x; a full copy also holds the base's data).
      ``own_bytes`` is ``allocated_bytes``, but for a reflink copy its ``exclusive_bytes``:
      the blocks it shares with the base cost nothing more (``shared_bytes``);
    - ``write_amplification`` = ``host_write_bytes / guest_write_bytes`` (copy-on-write of the
      rest of the cluster, metadata updates);
    - ``read_amplification`` = ``host_read_bytes / guest_read_bytes``.

    A ratio whose denominator is absent or zero is NaN (a read-only VM has no space ratio).
    """
    keys = ["backend", "entity", *(by or [])]
    vms = end_of_run(records)
    vms = vms[vms["entity"].astype(str).str.startswith("vm:")]
    w = wide(vms, keys)
    if w.empty:
        return pd.DataFrame(columns=[*keys, *AMPLIFICATION_COLUMNS])
    w["guest_read_bytes"] = guest_bytes(w, "read")
    w["guest_write_bytes"] = guest_bytes(w, "write")
    if "exclusive_bytes" in w.columns and "allocated_bytes" in w.columns:
        # a reflink copy shares the base's blocks: what the VM costs is what it holds alone
        w["own_bytes"] = w["exclusive_bytes"].fillna(w["allocated_bytes"])
    elif "allocated_bytes" in w.columns:
        w["own_bytes"] = w["allocated_bytes"]
    for name, num, den in (("space_amplification", "own_bytes", "guest_write_bytes"),
                           ("write_amplification", "host_write_bytes", "guest_write_bytes"),
                           ("read_amplification", "host_read_bytes", "guest_read_bytes")):
        w[name] = _ratio(w[num], w[den]) if num in w.columns else math.nan
    return w


def load_finished_run(path: Path, only: str = "only finished runs are reported") -> RunResults:
    """:func:`load_run` of a run that ended ``ok``; any other is a UsageError saying how it
    ended and ``only``."""
    run = load_run(path)
    if run.meta.get("status") != "ok":
        raise UsageError(f"{path}: run status is {run.meta.get('status')!r}"
                         + (f" ({run.meta['reason']})" if run.meta.get("reason") else "")
                         + f"; {only}")
    return run


def load_results(path: str | Path) -> SweepResults:
    """A sweep directory, or a single run directory read as a sweep of one point."""
    p = Path(path)
    if not is_run_dir(p):
        return load_sweep(p)
    run = load_finished_run(p)
    row = _point_row(p, run)
    res = _assemble(p, [row], [_with_point(run.records, row)],
                    [_with_point(run.comparison, row)], [])
    res.name = run.name
    res.profiles = {row["point"]: _profile_of(run)}
    return res


def _knob_value(key: str, value: Any) -> str:
    """Sizes as the scenario file would say them (``64KiB``), anything else as it is."""
    sized = key.endswith(("cluster_size", "_bytes", "_size"))
    if sized and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= size and value % size == 0:
                return f"{int(value // size)}{unit}"
    return str(value)
