"""The ``cowbench`` command: a thin typer layer over plain functions.

Exit codes: 0 success; 1 a run that started and failed (run.json says why); 2 bad input or a
missing tool (nothing was created); 130 interrupted. A :class:`CowbenchError` is printed as one
line per problem, a bad option or any other exception as one line, never as a traceback.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from . import cli_results
from .atomic import no_writes_by_others
from .cli_app import CSV_HELP, app, bold, err, out, progress_bar
from .errors import (
    CowbenchError,
    DirectoryMoved,
    FilesystemWarning,
    InexactStream,
    RunFailed,
    UsageError,
)
from .probe_limits import AIO, EXPORTS, ROUNDS, RUNTIME_S
from .units import format_duration, format_sizes

if TYPE_CHECKING:  # the commands import what they need: `cowbench --help` stays light
    import pandas as pd

    from .scenario import Scenario, Strategy
    from .sweep_spec import Sweep


def _read_input(path: Path) -> tuple[bool, object]:
    """(whether ``path`` is a sweep file, its document): a sweep file names its
    ``scenario:``, a scenario file never has that key. Read once: a timeline of 10,000
    events takes half a second to parse."""
    from .safeload import load_yaml_file

    data = load_yaml_file(path, "scenario")
    # a sweep file names its scenario; one that forgot it still has a sweep's own keys
    sweep = isinstance(data, dict) and bool(SWEEP_KEYS & set(data))
    return sweep, data


#: keys only a sweep file has (cowbench.sweep_spec.SweepSpec); a scenario has none of them
SWEEP_KEYS = frozenset({"scenario", "grid", "seeds", "zip", "exclude", "points"})


def _warn_seeds(sw: object, calibrated: bool | None = None) -> None:
    """What a sweep's seeds cannot vary (``cowbench.sweep_spec.seed_warnings``);
    ``calibrated``: ``False`` with ``--uncalibrated``, ``True`` with ``--profile``."""
    from .sweep import Sweep, seed_warnings

    assert isinstance(sw, Sweep)
    for line in seed_warnings(sw, calibrated):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _reserve_text(reserves: list[int]) -> str:
    """What the hosts hold back for themselves (``reserved_host_disk_bytes``), if anything."""
    if not any(reserves):
        return ""
    return f" ({format_sizes([float(r) for r in reserves])} reserved on each)"


def _warn_fixed(s: object) -> None:
    """``--seed`` given to a scenario whose random workloads fio pins whatever the seed
    (``cowbench.runseed.fixed_offsets``): said, with what the seed varies all the same
    (``seed_draws``, of ``s`` with its profiles chosen), so a replication is not taken for
    one that could differ, nor the other way round."""
    from .runseed import calibrated, fixed_offsets, seed_draws, seed_warning
    from .scenario import Scenario

    assert isinstance(s, Scenario)
    line = seed_warning(fixed_offsets(s), seed_draws(s, calibrated(s)))
    if line is not None:
        err.print(f"[yellow]warning:[/] --seed: {escape(line)}", highlight=False,
                  soft_wrap=True)


@app.callback()
def _leftovers(ctx: typer.Context) -> None:
    """Every command first reports runs that died without cleaning up (cowbench.lease); one
    that left nothing to remove is not worth a line on every command (``show`` still says
    it was abandoned, ``gc`` still marks it so)."""
    if ctx.invoked_subcommand == "gc":
        return
    from .lease import dead_leases, describe, left_behind

    for record in dead_leases():
        if left_behind(record):
            err.print(f"[yellow]warning:[/] {describe(record)}", highlight=False, soft_wrap=True)


def _warn_beside() -> None:
    """A real run measured beside another run or calibration of this machine measures it too
    (two runs at once here: one said its machine had drifted 44% in IOPS): said, not refused
    (the user may mean it)."""
    from .lease import live_leases

    for r in live_leases():
        if r.get("kind") in ("run", "calibration"):
            what = "calibration of" if r.get("kind") == "calibration" else "run"
            err.print(f"[yellow]warning:[/] {escape(what)} {escape(str(r['run_dir']))} (pid "
                      f"{r['pid']}) is running on this machine: this run's I/O is measured "
                      "beside it, and its beside this one's", highlight=False, soft_wrap=True)


def _warn_filesystems(s: Scenario, backend: str, out_dir: Path) -> None:
    """Hosts whose disks the model predicts as ext4 on a filesystem it has no allocator for
    (``cowbench.diskfs``): said before the run, as run.json's ``host.model_disks_fs_notes``
    says after it."""
    from .diskfs import place
    from .tools import absolute

    for note in place(s, backend, absolute(out_dir)).notes:
        err.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


def _load(path: Path, *document: object) -> Scenario:
    """The scenario in ``path``, resolved (``document``: the file's, already read)."""
    from .resolve import resolve
    from .scenario import load_scenario, scenario_of

    s = scenario_of(document[0], path) if document else load_scenario(path)
    return resolve(s, str(path))




@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario file, or sweep file "
                                                      "(YAML with a `scenario:` key).")]) -> None:
    """Check a scenario or sweep file; print a short summary, or every problem with its key
    path. A sweep is checked point by point, as `cowbench sweep` would before running."""
    sweep, document = _read_input(scenario)
    if sweep:
        from .sweep import load_sweep

        sw = load_sweep(scenario)
        cells = len({p.cell for p in sw.points})
        out.print(f"[bold]{sw.name}[/]: sweep of {sw.spec.scenario}, {cells} cell(s) x "
                  f"{len(sw.spec.seed_list)} seed(s) = {len(sw.points)} point(s), backend "
                  f"{sw.spec.backend}; every point's scenario is valid", soft_wrap=True)
        _warn_seeds(sw)
        return
    s = _load(scenario, document)
    if s.fleet is not None:
        f = s.fleet
        out.print(f"{bold(s.name)} (id {s.scenario_id}): fleet ({f.model} model) of "
                  f"{f.vms} VM arrivals over {format_duration(s.duration or 0)} on "
                  f"{len(s.hosts)} host(s) of "
                  f"{format_sizes([h.capacity_bytes or 0 for h in s.hosts])}"
                  f"{_reserve_text([h.reserved_host_disk_bytes for h in s.hosts])}; "
                  f"{len(f.flavor_mix)} flavor(s), "
                  f"{len(f.image_mix)} image(s), classes: {', '.join(f.classes)}")
        _print_estimate(s)
        return
    from .space import log_cap_problem_of_the_file

    logs = log_cap_problem_of_the_file(s)  # what `run` refuses, where the file decides it
    if logs is not None:
        raise UsageError(f"{scenario}: {logs}")
    out.print(f"{bold(s.name)} (id {s.scenario_id}): {len(s.hosts)} host(s), "
              f"{len(s.images)} image(s), {len(s.vms)} VM(s), "
              f"{_strategies_text(s)}; workloads: {', '.join(_workloads_run(s)) or '-'}",
              soft_wrap=True)
    from .diskfs import describe

    out.print(f"disks' filesystem: {describe(s)}", soft_wrap=True, highlight=False)
    files = _open_files_need(s)
    if files is not None:
        out.print(files, soft_wrap=True, highlight=False)
    from .lifecycle import scheduler_may_refuse, timeline_plan

    if s.timeline is not None and s.timeline.arrivals or scheduler_may_refuse(s):
        ops, refused = timeline_plan(s)
        booted = sum(op.op == "boot" for op in ops)
        out.print(f"timeline: {booted} VM(s) boot by its end, {len(refused)} arrival(s) "
                  f"refused (NoValidHost, no host had room)", highlight=False)
    _print_estimate(s)


def _strategies_text(s: Scenario) -> str:
    """The strategies the VMs use (each VM's own, else the scenario's), most used first."""
    from collections import Counter

    from .knobs import strategy_label  # pandas: not on the light path of --help

    labels: dict[int, str] = {}  # by strategy object: 100,000 VMs share a few (8 s each)

    def text(st: Strategy) -> str:  # every knob it has, as summary.csv and reports name them
        if id(st) not in labels:
            labels[id(st)] = strategy_label(st.model_dump(mode="json"))
        return labels[id(st)]

    used = Counter(text(s.strategy_of(vm)) for vm in s.vms) or Counter([text(s.strategy)])
    parts = [t for t, _ in used.most_common()]
    return ("strategy " if len(parts) == 1 else "strategies ") + "; ".join(parts)


def _workloads_run(s: Scenario) -> list[str]:
    """The workloads the scenario runs: its VMs' own and those its ``run`` events name."""
    named = {vm.workload for vm in s.vms if vm.workload}
    if s.timeline is not None:
        named |= {e.workload for e in s.timeline.events if e.op == "run" and e.workload}
    return sorted(named)


def _print_estimate(s: Scenario, console: Console | None = None) -> None:
    from .bounds import estimate

    line = estimate(s)
    if line:
        (console or out).print(line, soft_wrap=True, highlight=False)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML).")],
    backend: Annotated[str | None, typer.Option(help="sim (the model), real (qemu + fio on "
                       "this machine) or both (and compare). Default: what the scenario "
                       "supports: sim for a fleet scenario, both otherwise.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run directory to create "
                       "(default: results/<scenario>-<UTC time>). Must not hold a run.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the model's random streams, 0 to "
                                                  "2**63 - 1 (default: the scenario's).",
                                             min=0, max=2**63 - 1)] = None,
    profile: Annotated[Path | None, typer.Option(help="A calibration profile (from `cowbench "
                       "calibrate`) for the model's I/O figures, for every host; overrides "
                       "the scenario's device.profile and hosts[].profile.")] = None,
    uncalibrated: Annotated[bool, typer.Option(help="Predict I/O with the uncalibrated device "
                            "model: no profile, and no calibration of this machine (by "
                            "default --backend both uses this machine's cached profile, "
                            "checked against the machine first, or makes one first with the "
                            "quick calibration).")] = False,
    csv: Annotated[bool, typer.Option("--csv", help=CSV_HELP)] = False,
    repeat: Annotated[int, typer.Option(help="Run the real backend N times, each on fresh "
                      "disks: measured.parquet keeps every run (replication 0..N-1), the "
                      "comparison is against their mean, spread.csv holds their spread.",
                      min=1, max=20)] = 1,
) -> None:
    """Run a scenario and write its run directory (run.json, records, comparison.csv, raw/)."""
    from .runner import BACKENDS, default_backend, preflight, run_scenario

    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    s = _load(scenario)
    chosen = backend or default_backend(s)
    _print_estimate(s, err)  # a large model says what it will take before it starts
    if out_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = Path("results") / f"{s.name}-{stamp}"
    preflight(s, out_dir, chosen, repeat)  # what the run refuses, before a calibration
    if chosen in ("real", "both"):
        _warn_beside()
    _warn_filesystems(s, chosen, out_dir)
    s, checked = _choose_profiles(s, str(scenario), chosen, out_dir, profile, uncalibrated)
    if seed is not None:
        _warn_fixed(s)
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"{s.name}: starting", total=None)
        outcome = run_scenario(s, out_dir, chosen, seed,
                               progress=lambda msg: bar.update(task, description=msg), csv=csv,
                               repeat=repeat, meta={"profile_check": checked})
    # the tables need pandas: imported once the run is done (a real run starts without it)
    from .show import print_comparison, print_fleet, refused_line
    from .store import read_run

    if outcome.predicted is not None and s.fleet is None:
        _print_profile_line(outcome.run_dir)
    if outcome.comparison is not None:
        print_comparison(outcome.comparison, out if out.is_terminal else Console(width=160),
                         outcome.spread, outcome.real_runs)  # whole rows in a pipe, as show
        _print_counts(outcome.run_dir, outcome.comparison)
    meta = read_run(outcome.run_dir)
    for line in (refused_line(meta.get("refused_arrivals")), _open_files_line(meta)):
        if line is not None:
            out.print(line, soft_wrap=True, highlight=False, markup=False)
    model_only = [vm.name for vm in s.vms if s.model_only(vm)]
    if model_only:
        out.print(f"model only (no real counterpart here, marked model_only): "
                  f"{', '.join(model_only)}", soft_wrap=True)
    if s.fleet is not None and outcome.predicted is not None:
        # each host's disk for instances (capacity less reserved), as show reads run.json
        usable = {h.name: h.weighed_disk if h.capacity_bytes else 0.0 for h in s.hosts}
        print_fleet(outcome.predicted, usable, len(s.hosts), s.duration or float("nan"), out,
                    reserves=[h.reserved_host_disk_bytes for h in s.hosts])
    out.print(f"backend:       {_backend_line(chosen, backend is None, s.fleet is not None)}",
              soft_wrap=True, highlight=False)
    out.print(f"run directory: {bold(outcome.run_dir)}", soft_wrap=True)
    if outcome.moved is not None:
        err.print(f"[yellow]warning:[/] {escape(outcome.moved)}", highlight=False,
                  soft_wrap=True)
    if outcome.comparison is not None:
        out.print(f"comparison:    {bold(outcome.run_dir / 'comparison.csv')}", soft_wrap=True)


def _open_files_need(s: Scenario) -> str | None:
    """validate's line: the most descriptors a process of the real run would hold, and
    whether this process's limits of open files allow it (``cowbench.openfiles``; no limit is
    changed); None when the real backend would build no VM's disk."""
    from .openfiles import largest_need, limits, most_possible, verdict

    soft, hard = limits()
    if not any(not s.model_only(vm) for vm in s.vms):
        return None
    bound = most_possible(s)
    if bound <= soft:  # the walk could only say "within the soft limit" (10 s at 1e5 VMs)
        return (f"open files: at most {bound} descriptors in one process of the real run; "
                f"this process's limits: soft {soft}, hard {hard} (ulimit -n, -Hn): within "
                "the soft limit")
    need = largest_need(s)
    if need is None:
        return None
    return (f"open files: {need.key}: {need.describe()}; this process's limits: soft "
            f"{soft}, hard {hard} (ulimit -n, -Hn): {verdict(need, soft, hard)}")


def _open_files_line(meta: dict[str, Any]) -> str | None:
    """The soft limit of open files the real run raised, and for what (run.json's
    ``open_files``, ``cowbench.openfiles``); None when it needed no raising."""
    files = meta.get("open_files")
    if not isinstance(files, dict) or files.get("raised_to") is None:
        return None
    return (f"open files: the soft limit raised from {files['soft_limit']} to "
            f"{files['raised_to']} (the hard limit) for the real run: {files['by']}")


def _print_counts(run_dir: Path, comp: pd.DataFrame) -> None:
    """The time-bounded VMs' count of I/Os against fio's (``cowbench.iocount``)."""
    from .iocount import describe
    from .store import read_run

    def measured(metric: str) -> dict[str, float]:
        rows = comp[comp.metric == metric]
        return {str(e).removeprefix("vm:"): float(v)
                for e, v in zip(rows.entity, rows.measured, strict=True)}

    for line in describe(read_run(run_dir).get("offsets", {}), measured("data_clusters"),
                         measured("allocated_bytes")):
        out.print(line, soft_wrap=True, highlight=False)


def _backend_line(backend: str, by_default: bool, fleet: bool) -> str:
    """``sim (the model; the default for a fleet scenario)``: what ran, and why."""
    from .show import BACKEND_WHAT

    why = ("; the default for a fleet scenario" if fleet else "; the default") \
        if by_default else ""
    return f"{backend} ({BACKEND_WHAT[backend]}{why})"


def _choose_profiles(s: Scenario, source: str, backend: str, out_dir: Path,
                     profile: Path | None, uncalibrated: bool) -> tuple[Scenario, dict[str, Any]]:
    """The profile of each host and its check (``cowbench.autoprofile``), calibrating with a
    progress bar when ``--backend both`` finds none of this machine's storage, or finds that
    the machine moved away from its cached one. A SIGINT or SIGTERM meanwhile stops its probes
    as it stops a run (``cowbench.signals``: their qemu-nbd, fio and images go; exit 130),
    before the run directory is made."""
    from .autoprofile import profiles_for_run
    from .errors import Interrupted
    from .signals import interrupts_raise

    try:
        with interrupts_raise(), progress_bar(bar=True, transient=True) as bar:
            task = bar.add_task("calibration profile: looking for this machine's", total=None)

            def step(i: int, n: int, msg: str) -> None:
                bar.update(task, description=msg, completed=i, total=n)

            return profiles_for_run(s, source, backend, out_dir, profile=profile,
                                    uncalibrated=uncalibrated, progress=step,
                                    say=lambda msg: err.print(escape(msg), soft_wrap=True))
    except (KeyboardInterrupt, Interrupted) as e:
        raise Interrupted(f"{str(e) or INTERRUPTED} while the run's calibration profile was "
                          f"chosen and checked, before the run: {out_dir} was not made") from None


def _print_profile_line(run_dir: Path) -> None:
    from .drift import describe as drift_line
    from .drift import describe_machine
    from .profile_check import describe as check_line
    from .profile_use import describe
    from .store import read_run

    meta = read_run(run_dir)
    out.print(describe(meta.get("profile")), soft_wrap=True, highlight=False)
    checked = check_line(meta.get("profile_check"))
    if checked is not None:
        out.print(escape(checked), soft_wrap=True, highlight=False)
    if "drift" in meta:
        out.print(escape(drift_line(meta["drift"])), soft_wrap=True, highlight=False)
    machine = describe_machine(meta.get("real_runs"))
    if machine is not None:
        out.print(escape(machine), soft_wrap=True, highlight=False)


@app.command()
def calibrate(
    dir: Annotated[Path | None, typer.Option("--dir", help="Directory on the storage to "
                   "calibrate (probe images are made in a private subdirectory, removed at "
                   "the end). With --check: default, where the profile was measured.")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Profile to write (JSON).")
                        ] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Check this profile instead: "
                     "measure five of its probes again (one round, its settings) and print "
                     "how far each moved since it was made; writes nothing.")] = None,
    matrix: Annotated[str, typer.Option(help="quick (one to two minutes: what `cowbench run` "
                      "makes when it finds no profile), short (under 3 minutes) or long "
                      "(finer: more sizes, depths, iodepths and exports; about 11 "
                      "minutes).")] = "short",
    exports: Annotated[int, typer.Option(help="Most concurrent exports probed.",
                       min=EXPORTS[0], max=EXPORTS[1])] = 4,
    runtime: Annotated[float | None, typer.Option(help="Seconds each probe runs per round "
                       "(default 0.8 short, 2 long); longer probes are steadier.",
                       min=RUNTIME_S[0], max=RUNTIME_S[1])] = None,
    rounds: Annotated[int | None, typer.Option(help="Times the whole matrix runs (default "
                      "3); each probe's figures are its medians over the rounds.",
                      min=ROUNDS[0], max=ROUNDS[1])] = None,
    aio: Annotated[str, typer.Option(help="qemu-nbd's --aio for the probes' exports: "
                   "threads (its pool of threads: qemu's default, and the real backend's), "
                   "native or io_uring; a profile predicts scenarios whose real.aio is the "
                   "same.")] = "threads",
    refit: Annotated[Path | None, typer.Option("--refit", help="Fit this profile's probes "
                     "again with this cowbench's model and write the result to --out (no "
                     "I/O): a profile made by an older cowbench, predicting as a new "
                     "calibration would from the same measurement.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing profile.")] = False,
) -> None:
    """Measure the storage under DIR with a fio probe matrix through qemu-nbd, fit the I/O
    model to it, and write a calibration profile for `device.profile` / `run --profile`.
    With --check PROFILE: how far the machine moved since PROFILE was made (a table).
    With --refit PROFILE: PROFILE's probes fitted again by this cowbench (no I/O)."""
    from .calibrate_view import print_profile
    from .calibration import calibrate as do_calibrate

    if check is not None and refit is not None:
        raise UsageError("--check and --refit contradict each other; give one")
    if check is not None:
        _check_profile(check, dir)
        return
    if refit is not None:
        _refit_profile(refit, dir, out_path, force)
        return
    if dir is None or out_path is None:
        raise UsageError("calibrate needs --dir and --out (or --check PROFILE, or --refit "
                         "PROFILE --out FILE)")
    if matrix not in ("quick", "short", "long"):
        raise UsageError(f"--matrix must be quick, short or long, not {matrix!r}")
    if aio not in AIO:
        raise UsageError(f"--aio must be threads, native or io_uring, not {aio!r}")
    _check_out(out_path, force)
    with progress_bar(bar=True) as bar:
        task = bar.add_task("calibrate: starting", total=None)
        def step(i: int, n: int, msg: str) -> None:
            bar.update(task, description=msg, completed=i, total=n)

        prof = do_calibrate(dir, out_path, matrix, exports,  # type: ignore[arg-type]
                            runtime=runtime, rounds=rounds, progress=step, aio=aio)
    print_profile(prof, out)
    out.print(f"profile: {bold(out_path)} ({len(prof.probes)} probes in "
              f"{format_duration(prof.duration_s)}, through qemu-nbd --aio={aio})",
              soft_wrap=True)


def _check_out(out_path: Path, force: bool) -> None:
    """The profile ``calibrate`` is to write: new unless ``force``, in a directory that is."""
    if out_path.exists() and not force:
        raise UsageError(f"--out {out_path}: exists (use --force to replace it)")
    if not out_path.parent.is_dir():
        raise UsageError(f"--out {out_path}: no such directory {out_path.parent}")


def _refit_profile(src: Path, where: Path | None, out_path: Path | None, force: bool) -> None:
    """``calibrate --refit``: ``src``'s probes fitted again by this cowbench's model, written
    to ``out_path`` (its measurement, settings and fingerprint kept; its replay made again)."""
    import time

    from .atomic import atomic_write_text
    from .calibrate_view import print_profile
    from .calibration import refit as do_refit
    from .profile import load_profile, profile_json

    if where is not None:
        raise UsageError("--refit measures nothing: --dir does not apply (the probes are "
                         "the profile's own)")
    if out_path is None:
        raise UsageError("--refit needs --out FILE: the refitted profile (PROFILE itself "
                         "is never rewritten)")
    _check_out(out_path, force)
    prof = load_profile(src)
    if out_path.exists() and os.path.samefile(out_path, src):
        raise UsageError(f"--out {out_path}: is the profile --refit reads; write the refitted "
                         "one to another file")
    cores = prof.host.get("cpu_count")
    t0 = time.monotonic()
    with progress_bar(bar=False, transient=True) as bar:
        bar.add_task(f"fitting {len(prof.probes)} probes of {src} again", total=None)
        new = do_refit(prof, str(src), cores if isinstance(cores, int) and cores > 0 else None)
    atomic_write_text(out_path, profile_json(new))
    print_profile(new, out)
    out.print(f"profile: {bold(out_path)} ({src}'s {len(prof.probes)} probes fitted again "
              f"in {format_duration(time.monotonic() - t0)}, no I/O; fit version "
              f"{prof.fit_version} -> {new.fit_version})", soft_wrap=True)


def _check_profile(profile: Path, where: Path | None) -> None:
    from .calibrate_view import print_drift
    from .drift import check_profile
    from .signals import interrupts_raise

    # a SIGINT or SIGTERM stops the probes cleanly (their qemu-nbd, fio and images go)
    with interrupts_raise(), progress_bar(bar=True, transient=True) as bar:
        task = bar.add_task("check: starting", total=None)

        def step(i: int, n: int, msg: str) -> None:
            bar.update(task, description=msg, completed=i, total=n)

        block = check_profile(profile, where, progress=step)
    print_drift(block, out if out.is_terminal else Console(width=160))  # whole rows in a pipe


@app.command("sweep")
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML): scenario, grid, seeds.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Sweep directory (default: "
                       "results/<sweep name>). If it holds this sweep, finished points are "
                       "kept and the rest resumed.")] = None,
    scheduler: Annotated[str, typer.Option(help="local (a Dask LocalCluster of worker "
                         "processes), inprocess (threads here), or a scheduler address "
                         "such as tcp://127.0.0.1:8786.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Workers of the local cluster (default "
                       "2), threads for inprocess.", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the points (each cell's "
                       "knobs and seeds) and run nothing.")] = False,
    csv: Annotated[bool, typer.Option("--csv", help=CSV_HELP)] = False,
    profile: Annotated[Path | None, typer.Option(help="A calibration profile for every "
                       "point's I/O figures, as `cowbench run --profile`. Default: the one "
                       "`cowbench run` would take for each point, chosen here for a model-only "
                       "sweep (this machine's cached profile of the storage under --out), on "
                       "the worker for real points.")] = None,
    uncalibrated: Annotated[bool, typer.Option(help="Every point's I/O with the uncalibrated "
                            "device model, as `cowbench run --uncalibrated`.")] = False,
) -> None:
    """Run a grid of scenario overrides times seeds on Dask; one run directory per point."""
    from .signals import interrupts_raise, shielded

    # a signal while the sweep is read ends it as one later would, once it is read: raised
    # at once, it could land in a library's `except Exception` (an import's) and be lost
    with interrupts_raise():
        with shielded():
            from .sweep import load_sweep

            sw = load_sweep(sweep_file)
        _sweep(sw, out_dir, scheduler, workers, dry_run, csv, profile, uncalibrated)


def _sweep(sw: Sweep, out_dir: Path | None, scheduler: str, workers: int | None,
           dry_run: bool, csv: bool, profile: Path | None, uncalibrated: bool) -> None:
    from .profile_use import describe_runs
    from .sweep import describe, recorded_profiles, run_sweep

    if profile is not None and uncalibrated:
        raise UsageError("--profile and --uncalibrated contradict each other; give one")

    _warn_seeds(sw, False if uncalibrated else True if profile is not None else None)
    if dry_run:
        for cell, label, seeds in describe(sw):
            out.print(f"cell {cell:>3}: {escape(label)}; seeds {', '.join(map(str, seeds))}",
                      highlight=False, soft_wrap=True)
        out.print(f"{len(sw.points)} point(s) in {len(describe(sw))} cell(s); nothing run",
                  highlight=False)
        return
    out_dir = out_dir or Path("results") / sw.name
    with progress_bar(bar=True, transient=True) as bar:
        task = bar.add_task(f"{sw.name}: starting", total=len(sw.points))
        summary = run_sweep(sw, out_dir, scheduler, workers,
                            progress=lambda m, d, t: bar.update(task, description=m,
                                                                completed=d, total=t), csv=csv,
                            profile=profile, uncalibrated=uncalibrated)
    # its name swapped meanwhile (warned): the sweep's files are where its directory went
    out_dir = Path(_MOVED.get(str(out_dir.absolute()), out_dir))
    ok = int((summary.status == "ok").sum())
    out.print(f"{ok} of {len(summary)} points ok; sweep directory: {bold(out_dir)}",
              soft_wrap=True)
    out.print(escape(describe_runs(recorded_profiles(out_dir, sw))), soft_wrap=True,
              highlight=False)
    out.print(f"backend:         {sw.spec.backend}", highlight=False)
    out.print(f"summary:         {bold(out_dir / 'summary.csv')}", soft_wrap=True)
    if ok < len(summary):
        raise RunFailed(f"{len(summary) - ok} point(s) failed; see {out_dir}/sweep.json")


# the commands over what runs wrote (cowbench/cli_results.py), after those that run: the order
# --help lists them in
for _name, _command in cli_results.COMMANDS.items():
    app.command(_name)(_command)


#: What a Ctrl-C says where no command caught it: as a command's own interrupt says it.
INTERRUPTED = "interrupted by signal SIGINT"


def _error(message: str, code: int) -> NoReturn:
    for line in message.splitlines() or [""]:
        err.print("[red]error:[/] " + escape(line), highlight=False, soft_wrap=True)
    sys.exit(code)


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + " ..."


def _run_app() -> int:
    """The typer app without its own error printing: a bad option is one ``error:`` line."""
    try:
        rv = app(standalone_mode=False)
    except typer.Abort:
        raise KeyboardInterrupt from None
    except typer.TyperException as e:  # click's exceptions, as typer vendors them
        code = int(getattr(e, "exit_code", 2))
        if type(e).__name__ == "NoArgsIsHelpError":  # bare ``cowbench``: the help
            from typer import rich_utils

            rich_utils.rich_format_error(e)  # type: ignore[arg-type]
            return code
        fmt = getattr(e, "format_message", None)
        ctx = getattr(e, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _error(_one_line(fmt() if callable(fmt) else str(e)) + hint, code)
    if rv == 130:  # typer turned a KeyboardInterrupt outside a run into exit 130
        _error(INTERRUPTED, 130)
    return rv if isinstance(rv, int) else 0


_SHOWN: set[str] = set()
#: a sweep directory's name given -> where the directory really is (DirectoryMoved)
_MOVED: dict[str, str] = {}


def _show_warning(message: Warning | str, category: type[Warning], *rest: object,
                  **kw: object) -> None:
    """A renamed scenario key (FutureWarning), an inexact offset stream
    (:class:`~cowbench.errors.InexactStream`) or a sweep directory moved away from its name
    (:class:`~cowbench.errors.DirectoryMoved`) or a sweep's points' disks predicted as ext4 on a
    filesystem the model has no allocator for (:class:`~cowbench.errors.FilesystemWarning`)
    as one ``warning:`` line, once per message."""
    if not issubclass(category, (FutureWarning, InexactStream, DirectoryMoved,
                                 FilesystemWarning)):
        _SHOW_WARNING(message, category, *rest, **kw)  # type: ignore[arg-type]
    elif str(message) not in _SHOWN:
        if isinstance(message, DirectoryMoved):  # what follows reads the sweep back from there
            _MOVED[message.where] = message.real
        _SHOWN.add(str(message))
        err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


_SHOW_WARNING = warnings.showwarning


def main() -> None:
    """The console script: every failure ends as ``error:`` lines and an exit code (2 bad
    input, 1 a failure, 130 interrupted), never a traceback; ``COWBENCH_DEBUG=1`` shows the
    traceback of an unexpected error (a bug) as well."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the interpreter's last garbage collections at exit walk every object still alive
    # (pandas, pyarrow, the schema's models): 0.18 s of a real run's end at load 7. Objects
    # moved to the permanent generation are not walked; atexit handlers, the flushing of
    # open files and the modules' teardown run as before (once, however often main runs)
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    _SHOWN.clear()
    _MOVED.clear()
    warnings.showwarning = _show_warning
    no_writes_by_others()  # before any file or child: nothing cowbench makes is others'
    try:
        sys.exit(_run_app())
    except CowbenchError as e:
        _error(str(e), e.exit_code)
    except KeyboardInterrupt:  # a Ctrl-C before a command answers signals itself
        _error(INTERRUPTED, 130)
    except MemoryError:
        _error("out of memory: the input asks for more than this machine has (the bounds "
               "cowbench checks did not catch it; please report the input)", 1)
    except RecursionError:
        _error("the input is nested too deep to process", 2)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _error(f"{e.strerror or _one_line(str(e))}{where}", 1)
    except Exception as e:
        if os.environ.get("COWBENCH_DEBUG"):
            raise
        _error(f"internal error ({type(e).__name__}): {_one_line(str(e))} (a bug: run again "
               "with COWBENCH_DEBUG=1 for the traceback, and report it)", 1)


if __name__ == "__main__":  # pragma: no cover
    main()
