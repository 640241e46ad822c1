"""Sweeps: a grid of scenario overrides times seeds, each point a normal run directory, on Dask.

A sweep file names a scenario, a ``grid`` of overrides (any scenario field by its key path,
``strategy.cluster_size`` or ``flavors[0].root``, each with a list of values) and
``seeds``. The points are the grid's product (in the file's key order) times the seeds; every
point's scenario is built and validated *before* anything runs, so a bad value fails at once
with its key path (``cowbench.sweep_spec``). Each point runs through
:func:`cowbench.runner.run_scenario` on a Dask worker, in the worker's own scratch space; its
run directory travels back to this process, which writes it as ``<sweep>/points/<id>/``
(``cowbench.sweep_files``: the workers need no filesystem shared with the client; run.json
carries the point's ``overrides``). The sweep writes:

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
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from .atomic import no_writes_by_others
from .capacity import host_capacities
from .errors import (
    CowbenchError,
    DirectoryMoved,
    FilesystemWarning,
    Interrupted,
    RunFailed,
    ScenarioError,
    UsageError,
)
from .fdtree import DIR_FLAGS, HeldDir
from .knobs import knob_dtypes, override_knobs
from .lease import this_process
from .montecarlo import bands, time_to_full_summary
from .safeload import load_json_file
from .scenario import Scenario
from .signals import interrupts_raise, shielded, signal_name
from .store import (
    atomic_write_parquet,
    atomic_write_text,
    now_iso,
    read_records,
    refuse_out,
)
from .sweep_cluster import check_scheduler, connect, run_points, shut_down
from .sweep_files import in_sweep, remove_staging
from .sweep_points import fullest_host, point_figures
from .sweep_spec import (
    Point,
    Sweep,
    SweepSpec,
    apply_override,
    cell_label,
    describe,
    load_sweep,
    point_labels_of,
    seed_warnings,
)
from .timeline_fleet import applies
from .tools import absolute

SWEEP_SCHEMA_VERSION = 1
ProgressFn = Callable[[str, int, int], None]


def run_sweep(sweep: Sweep, out: Path, scheduler: str = "local", workers: int | None = None,
              progress: ProgressFn = lambda _m, _d, _t: None, csv: bool = False,
              profile: Path | None = None, uncalibrated: bool = False) -> pd.DataFrame:
    """Run every point not yet ``ok`` in ``out`` on Dask; write sweep.json and the summary.
    ``csv``: every point writes its records' CSV copies whatever their size.

    Each point's I/O figures rest on the profile ``cowbench run`` would take for it
    (``cowbench.autoprofile``; ``profile`` and ``uncalibrated`` are ``--profile`` and
    ``--uncalibrated``), decided where that profile is valid (:func:`point_profiles`): with
    ``backend: sim``, or ``profile``, or ``uncalibrated``, here, once per cell, as ``cowbench
    run --out <out>/points/<id>`` would (the model's points do not depend on the cache of
    whichever worker they land on); with the real backend and neither, on the worker, against
    the storage the point measures there. Each point's run.json ``profile`` says which, and
    where it was chosen (``chosen_on``).

    The first SIGINT or SIGTERM stops the sweep: pending points are cancelled, the cluster
    this sweep started is closed, every point that had not finished is marked
    ``interrupted`` (it has no directory: a point's is written, whole, when its worker sends
    it back), sweep.json says ``interrupted``, and :class:`Interrupted` is raised (the CLI
    exits 130). Whatever else ends a sweep, sweep.json says ``failed`` with the reason; it
    never stays ``running``."""
    no_writes_by_others()  # what the sweep and its workers create: never writable by others
    out = absolute(out)  # the points' run directories, whatever the workers' cwd
    check_scheduler(scheduler)  # refused before anything is written
    # the checks of `run --out` (a symlink, a file, a parent another user could swap), a
    # sweep's own directory holding its files (a resumed sweep) allowed
    refuse_out(out, "sweep directory", may_hold_files=True)
    start = now_iso()
    entries: dict[str, dict[str, Any]] | None = None
    remote: list[Any] = []  # a running scheduler's client, until run_points takes it
    held: HeldDir | None = None
    with interrupts_raise():  # so a signal still stops the cluster it started
        try:
            if scheduler not in ("local", "inprocess"):
                with shielded():  # reached before anything is written, or refused
                    remote.append(connect(scheduler))
            with shielded():  # the directory is made and says "running", or it is untouched
                # made with mkdir(dir_fd=parent) and held: written only through held.io
                held = HeldDir.hold(out, "sweep directory", may_hold_files=True)
                entries = _prepare(sweep, held.io, out)
                _write_json(held.io, {**_sweep_meta(sweep, entries, "running"),
                                      "start": start})
            todo = [p for p in sweep.points if entries[p.id]["status"] != "ok"]
            done = len(sweep.points) - len(todo)
            progress(f"{done} of {len(sweep.points)} points already done", done,
                     len(sweep.points))
            if todo:
                chosen = point_profiles(sweep, out, todo, profile, uncalibrated)
                _execute(sweep, held.io, out, todo, entries, scheduler, workers, progress,
                         done, start, csv, remote, chosen)
            summary = write_summary(sweep, held.io, entries)
            notes = filesystem_notes(sweep, held.io, entries)
        except BaseException as err:
            if entries is None or held is None:  # refused before anything was written
                if held is not None:
                    held.close()
                raise
            _stopped(sweep, held, entries, start, err)
        finally:
            with shielded():
                for client in remote:
                    shut_down(client, None, [])
        try:
            failed = [e for e in entries.values() if e["status"] != "ok"]
            _write_json(held.io, {**_sweep_meta(sweep, entries, "failed" if failed else "ok"),
                                  "start": start, "end": now_iso()})
            _warn_moved(held)
        finally:
            held.close()
    for line in notes:  # said once the sweep is done, as each point's run.json has it
        warnings.warn(line, FilesystemWarning, stacklevel=2)
    return summary


def _warn_moved(held: HeldDir) -> str:
    """Warn (:class:`~cowbench.errors.DirectoryMoved`) when the sweep directory's name no
    longer leads to it: a directory above it renamed, or replaced by a symlink, while the
    sweep wrote there (it went on writing into its own directory, held by its descriptor).
    What to add to a message naming the directory (empty: nothing moved)."""
    real = held.moved()
    if real is None:
        return ""
    said = (f"{held.where} no longer leads to this sweep's directory (a directory above it "
            "was renamed or replaced while the sweep wrote there; nothing was written through "
            f"that name): its files are in {real}")
    warnings.warn(DirectoryMoved(said, str(held.where), real), stacklevel=2)
    return f"; warning: {said}"


def _stopped(sweep: Sweep, held: HeldDir, entries: dict[str, dict[str, Any]], start: str,
             err: BaseException) -> NoReturn:
    """Record why the sweep stopped (sweep.json and unfinished points), then raise."""
    try:
        _stop(sweep, held.io, held.where, entries, start, err, _warn_moved(held))
    finally:
        held.close()


def _stop(sweep: Sweep, io: Path, out: Path, entries: dict[str, dict[str, Any]], start: str,
          err: BaseException, moved: str) -> NoReturn:
    interrupted = isinstance(err, KeyboardInterrupt | Interrupted)
    status = "interrupted" if interrupted else "failed"
    reason = (str(err) or "interrupted by signal SIGINT") if interrupted else \
        (str(err) if isinstance(err, CowbenchError) else f"{type(err).__name__}: {err}")
    for p in sweep.points:
        if entries[p.id]["status"] != "pending":
            continue
        if _point_status(io / "points" / p.id) == "ok":  # it ended while the sweep stopped
            entries[p.id]["status"] = "ok"
            continue
        entries[p.id]["status"] = status if interrupted else "pending"
    said = {"signal": signal_name([], reason)} if interrupted else {}  # as run.json's
    with contextlib.suppress(OSError):
        _write_json(io, {**_sweep_meta(sweep, entries, status), "start": start,
                         "reason": reason, **said, "end": now_iso()})
    if interrupted:
        raise Interrupted(f"{reason}; sweep directory: {out} (run it again to resume)"
                          f"{moved}") from None
    if isinstance(err, CowbenchError):
        raise err
    raise RunFailed(f"sweep failed: {reason}; see {out}/sweep.json{moved}") from err


def _sweep_meta(sweep: Sweep, entries: dict[str, dict[str, Any]], status: str) -> dict[str, Any]:
    # while it runs, who runs it: `cowbench show` tells a sweep killed outright by its pid
    who = {"process": this_process()} if status == "running" else {}
    return {"schema_version": SWEEP_SCHEMA_VERSION, "name": sweep.name, "source": sweep.source,
            "spec": sweep.spec.model_dump(mode="json"), "scenario": sweep.base,
            "status": status, **who, "points": [entries[p.id] for p in sweep.points]}


def _write_json(out: Path, meta: dict[str, Any]) -> None:
    """sweep.json in the held sweep directory ``out``. Each point's ``dir`` is its run
    directory (``points/<id>``) where it has one, else ``null``: a point not run yet, or one
    an interrupted or killed sweep never ran to its end (its directory was in its worker's
    scratch, gone); read from the directory itself, so it never names one that is not there."""
    points = [{**e, "dir": e["dir"] if (out / e["dir"]).is_dir() else None}
              for e in meta["points"]]
    meta = {**meta, "points": points}
    atomic_write_text(out / "sweep.json", json.dumps(meta, indent=2, default=str) + "\n")


def _prepare(sweep: Sweep, io: Path, out: Path) -> dict[str, dict[str, Any]]:
    """Entries per point: fresh, or from a previous run of the same sweep (resume). ``io``:
    the held sweep directory (``/proc/<pid>/fd/<fd>``); ``out``: its name, for messages."""
    entries = {p.id: p.entry() for p in sweep.points}
    meta_path = io / "sweep.json"
    if not meta_path.exists() and any(io.iterdir()):
        raise UsageError(f"{out}: holds files but no sweep.json; choose another --out")
    if meta_path.exists():
        try:
            old = _old_meta(meta_path)
        except UsageError as err:  # its message names the file as the user does
            raise UsageError(str(err).replace(str(io), str(out))) from None
        same = _old_points(old) == [(p.overrides, p.seed) for p in sweep.points]
        if not same or old.get("scenario") != sweep.base:
            raise UsageError(f"{out}: holds a different sweep (other points or scenario); "
                             "choose another --out")
        for p in sweep.points:
            entries[p.id]["status"] = _point_status(io / "points" / p.id)
    try:
        (io / "points").mkdir(exist_ok=True)
    except OSError as err:  # not writable
        raise UsageError(f"{out}: cannot be made ({err.strerror}); choose another --out") \
            from None
    for p in sweep.points:
        d = io / "points" / p.id
        if entries[p.id]["status"] != "ok" and d.exists():
            shutil.rmtree(d)  # a point that did not finish is redone from scratch
    points_fd = os.open(io / "points", DIR_FLAGS)
    try:
        remove_staging(points_fd)  # a point being written when a client was killed
    finally:
        os.close(points_fd)
    return entries


def _old_meta(path: Path) -> dict[str, Any]:
    """A previous sweep.json, or a one-line error if it is damaged (it is never overwritten
    then: the user decides)."""
    try:
        old = load_json_file(path, "sweep.json", for_user=False)
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


def filesystem_notes(sweep: Sweep, out: Path, entries: dict[str, dict[str, Any]]) -> list[str]:
    """The notes of the hosts the points' model predicted as ext4 on a filesystem it has no
    allocator for (run.json's ``host.model_disks_fs_notes``, ``cowbench.diskfs``), each once,
    with how many of the finished points hold it: a point's run directory is its worker's
    scratch while it runs, so where a sweep's disks land (and what the model allocates them
    as) is each point's to say."""
    found: dict[str, int] = {}
    ok = [p for p in sweep.points if entries[p.id]["status"] == "ok"]
    for p in ok:
        try:
            meta = load_json_file(out / "points" / p.id / "run.json", "run.json",
                                  for_user=False)
        except ScenarioError:
            continue
        host = meta.get("host") if isinstance(meta, dict) else None
        notes = host.get("model_disks_fs_notes") if isinstance(host, dict) else None
        for note in notes if isinstance(notes, list) else []:
            found[str(note)] = found.get(str(note), 0) + 1
    return [f"{n} of {len(ok)} points: {note}" for note, n in found.items()]


def _point_status(d: Path) -> str:
    try:
        meta = load_json_file(d / "run.json", "run.json", for_user=False)
    except ScenarioError:
        return "missing"
    return str(meta.get("status", "missing")) if isinstance(meta, dict) else "missing"


def _execute(sweep: Sweep, io: Path, out: Path, todo: list[Point],
             entries: dict[str, dict[str, Any]], scheduler: str, workers: int | None,
             progress: ProgressFn, done: int, start: str, csv: bool, remote: list[Any],
             chosen: dict[str, tuple[Scenario, dict[str, Any]]]) -> None:
    """Run ``todo`` on Dask; each finished point is written under ``io`` (the held sweep
    directory) and recorded in its sweep.json; a point's reason names it under ``out``."""
    owner = this_process()  # in each point's lease: what this sweep collects once stopped
    tasks = {p.id: (chosen[p.id][0].model_dump(mode="json"), p.seed, sweep.spec.backend,
                    {"overrides": p.overrides, "sweep": sweep.name, "point": p.id,
                     **chosen[p.id][1]}, csv, owner)
             for p in todo}
    count = [done]

    def finished(pid: str, status: str, reason: str | None) -> None:
        with shielded():
            if reason:  # where the worker ran it, now where the sweep keeps it
                reason = in_sweep(reason, out / "points" / pid)
            entries[pid].update(status=status, **({"reason": reason} if reason else {}))
            count[0] += 1
            progress(f"{pid} {status}", count[0], len(sweep.points))
            _write_json(io, {**_sweep_meta(sweep, entries, "running"), "start": start})

    client = remote.pop() if remote else None  # run_points closes it
    run_points(tasks, io, f"cowbench-{sweep.name}", scheduler, workers, finished, client)


BACKENDS_RUN = {"sim": ["sim"], "real": ["real"], "both": ["sim", "real"]}


def point_profiles(sweep: Sweep, out: Path, points: list[Point], profile: Path | None,
                   uncalibrated: bool) -> dict[str, tuple[Scenario, dict[str, Any]]]:
    """Each point's scenario with its hosts' profiles, and the run.json ``profile`` block to
    record (``{}``: the worker chooses), by the rule of ``cowbench run``
    (``cowbench.autoprofile``).

    With ``backend: sim`` the model stands for a run of the point here: the profile is the one
    ``cowbench run --backend sim --out <out>/points/<id>`` would take (``--profile``, else the
    scenario's, else this machine's cached profile of the storage under the sweep directory,
    or of a host's ``storage_dir`` that exists here; never a calibration), chosen here once per
    cell, so a point's figures do not depend on which worker, on which machine, runs it. With
    ``--profile`` or ``--uncalibrated`` the choice is here too, whatever the backend. With the
    real backend and neither, the point measures its worker's storage: the worker chooses
    (``cowbench.sweep_points``), as ``cowbench run`` would there, its cached profile checked or
    a quick calibration made first."""
    from .autoprofile import choose_profiles
    from .profile_use import run_profile

    backend = sweep.spec.backend
    if backend != "sim" and profile is None and not uncalibrated:
        return {p.id: (p.scenario, {}) for p in points}
    memo: dict[str, Path | None] = {}
    by_cell: dict[int, tuple[Scenario, dict[str, Any]]] = {}
    chosen: dict[str, tuple[Scenario, dict[str, Any]]] = {}
    here = {"side": "sweep client", "hostname": socket.gethostname()}
    for p in points:
        if p.cell not in by_cell:
            scenario = choose_profiles(p.scenario, sweep.source, backend,
                                       out / "points" / p.id, profile=profile,
                                       uncalibrated=uncalibrated, memo=memo)
            block = {**run_profile(scenario, BACKENDS_RUN[backend]), "chosen_on": here}
            by_cell[p.cell] = scenario, {"profile": block}
        scenario, meta = by_cell[p.cell]
        chosen[p.id] = scenario.model_copy(update={"seed": p.seed}), meta
    return chosen


def recorded_profiles(out: Path, sweep: Sweep) -> dict[str, dict[str, Any] | None]:
    """The run.json ``profile`` block of every ``ok`` point of the sweep in ``out``."""
    blocks: dict[str, dict[str, Any] | None] = {}
    for p in sweep.points:
        try:
            meta = load_json_file(out / "points" / p.id / "run.json", "run.json",
                                  for_user=False)
        except ScenarioError:
            continue
        if isinstance(meta, dict) and meta.get("status") == "ok":
            block = meta.get("profile")
            blocks[p.id] = block if isinstance(block, dict) else None
    return blocks


def write_summary(sweep: Sweep, out: Path, entries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """summary.csv/.parquet (one row per point), and the Monte Carlo files per grid cell; each
    carries the cell's knobs (``label``, ``override.<path>``) and times in days beside seconds."""
    rows, series, ttf = [], [], []
    labels = point_labels_of(sweep)
    for p in sweep.points:
        row: dict[str, Any] = {"point": p.id, "cell": p.cell, "seed": p.seed,
                               "status": entries[p.id]["status"], "run_dir": f"points/{p.id}",
                               "label": labels[p.id]}
        row.update(_override_columns(p))
        pred = out / "points" / p.id / "predicted.parquet"
        if row["status"] == "ok" and pred.exists():
            rec = read_records(pred)  # a damaged file: one line naming it
            row.update(point_figures(rec))
            # each host's disk for instances (capacity less reserve), as show and the reports
            row.update(fullest_host(rec, host_capacities(p.scenario.model_dump(mode="json"))))
            s = rec[rec.metric.isin(["allocated_bytes", "provisioned_bytes"])
                    & rec.entity.str.match(r"^(host|fleet):") & rec.t_s.notna()]
            series.append(s.assign(cell=p.cell))
            horizon = _horizon(p.scenario)
            if horizon is not None:
                ttf.append({"cell": p.cell, "seed": p.seed, "duration": horizon,
                            "ttf": row.get("time_to_full_s", float("nan"))})
        rows.append(row)
    summary = with_days(_typed(rows))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_parquet(out / "summary.parquet", summary)
    _write_mc(sweep, out, series, ttf)
    return summary




def _horizon(s: Scenario) -> float | None:
    """How long a point's hosts are watched filling, for time_to_full.csv: a fleet's
    ``duration``, or the ``end_s`` of a timeline that records a fleet's figures
    (``cowbench.timeline_fleet``); None for any other point."""
    if s.fleet is not None:
        return s.duration
    if applies(s) and s.timeline is not None and s.timeline.end_s is not None:
        return float(s.timeline.end_s)
    return None


def with_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Beside each time column in seconds (``*_s``, ``*_s_p50``), the same in days (``_d``)."""
    out = frame.copy()
    for col in list(frame.columns):
        day_col = re.sub(r"_s(?=$|_p\d+$)", "_d", col)
        if day_col != col and day_col not in out.columns and pd.api.types.is_numeric_dtype(
                frame[col]) and col not in ("replications",):
            out.insert(list(out.columns).index(col) + 1, day_col, frame[col] / 86400.0)
    return out


def _override_columns(p: Point) -> dict[str, Any]:
    """A point's ``override.<path>`` columns: each key path it sets, valued as its resolved
    scenario has it (:func:`cowbench.knobs.override_knobs`, as ``load_results`` reads the
    knobs), so a whole section (``strategy: {kind: full_copy}``) fills ``override.strategy.kind``
    beside the grid's points; the section as written stays in ``override.strategy`` (JSON)."""
    cols = {f"override.{k}": _scalar(v) for k, v in p.overrides.items() if isinstance(v, dict)}
    resolved = p.scenario.model_dump(mode="json")
    cols.update({f"override.{k}": v for k, v in override_knobs(p.overrides, resolved).items()})
    return cols


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a frame whose override columns follow ``label`` (every point's, whichever
    point first has one) and keep their type (``Int64``, ``boolean``)."""
    frame = pd.DataFrame(rows)
    knobs = [c for c in frame.columns if c.startswith("override.")]
    head = list(frame.columns[:list(frame.columns).index("label") + 1])
    order = head + knobs + [c for c in frame.columns if c not in head and c not in knobs]
    return frame[order].astype(knob_dtypes(rows, knobs))


def _cells(sweep: Sweep) -> pd.DataFrame:
    first = {p.cell: p for p in reversed(sweep.points)}
    labels = point_labels_of(sweep)
    return _typed([{"cell": c, "label": labels[p.id], **_override_columns(p)}
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


__all__ = ["CowbenchError", "Point", "Sweep", "SweepSpec", "apply_override", "cell_label",
           "describe", "load_sweep", "run_sweep", "seed_warnings", "with_days"]
