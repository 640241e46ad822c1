"""``cowbench run`` as a plain function: scenario in, run directory out (asv's thin-CLI rule).

This is the one place that drives both backends; it finds them by name
(``cowbench.backends``) and imports neither, as neither imports the other.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import no_writes_by_others
from .backends import Checks, get_backend
from .diskfs import disk_facts, place, placed
from .errors import CowbenchError, Interrupted, RunFailed, UsageError
from .lease import Lease
from .lifecycle import ops_csv, refused_arrivals, timeline_plan
from .profile_use import run_profile
from .scenario import Scenario, dump_scenario, load_scenario
from .signals import interrupts_raise, signal_name
from .space import check_free_space, fits, log_cap_problem
from .spacebound import bound_needs
from .store import (
    RunDir,
    atomic_write_parquet,
    atomic_write_text,
    host_facts,
    now_iso,
    read_records,
    read_run,
    tool_versions,
)
from .streams import fio_installed, refuse_without_fio
from .tools import CpuSpan, RawLog, absolute, require_tools
from .traces import needs_traces, offsets_used, recorded_run_traces, scenario_traces

if TYPE_CHECKING:
    import pandas as pd

BACKENDS = ("sim", "real", "both")
#: most real runs ``--repeat`` asks for (each builds and measures the whole scenario)
MAX_REPEAT = 20
#: the image file of a reflink run's XFS, in ``work/``, kept by ``real.keep_images``
KEPT_XFS = "reflink-xfs.img"


def default_backend(scenario: Scenario) -> str:
    """What the scenario supports: a fleet runs in the model only (``sim``); anything else
    runs in both backends and is compared (``both``)."""
    return "sim" if scenario.fleet is not None else "both"


@dataclass
class RunOutcome:
    run_dir: Path
    predicted: pd.DataFrame | None
    measured: pd.DataFrame | None
    comparison: pd.DataFrame | None
    spread: pd.DataFrame | None = None  # spread.csv: with two or more real runs
    real_runs: int = 0
    #: the run's directory was moved away from the name given while the run wrote there
    #: (``run_dir`` is then where it really is): a warning for the user
    moved: str | None = None


class _Checks:
    """The integrity checks of each real run; run.json's ``integrity`` is the last run's,
    with every run's problems (``run k: ...``) when there were several."""

    def __init__(self) -> None:
        self.runs: list[Checks] = []

    def add(self, checks: Checks) -> None:
        self.runs.append(checks)

    @property
    def current(self) -> Checks:
        return self.runs[-1]

    def report(self) -> dict[str, Any]:
        last = self.current.report()
        if len(self.runs) == 1:
            return last
        reports = [c.report() for c in self.runs]
        problems = [f"run {k}: {p}" for k, r in enumerate(reports, 1)
                    for p in r.get("problems", [])]
        oks = [r.get("ok") for r in reports]
        ok = False if False in oks else None if None in oks else True
        return {**last, "ok": ok, "problems": problems,
                "runs": [{"ok": r.get("ok"), "problems": r.get("problems", [])}
                         for r in reports]}


def run_scenario(scenario: Scenario, out: Path, backend: str | None = None,
                 seed: int | None = None,
                 progress: Callable[[str], None] = lambda _: None,
                 meta: dict[str, Any] | None = None, csv: bool = False,
                 repeat: int = 1, lease: Lease | None = None) -> RunOutcome:
    """Run ``scenario`` with the chosen backend(s) and write the run directory at ``out``.

    ``backend`` is ``sim``, ``real`` or ``both``; ``None`` is :func:`default_backend`.
    ``meta`` adds keys to run.json (a sweep records the point's ``overrides`` there; its
    ``profile``, when given, is run.json's ``profile`` block as it was decided where the
    profile was chosen, instead of the block read here from the scenario's profile paths).
    ``csv`` writes the records' CSV copies whatever their size (``cowbench.store``).
    ``repeat`` runs the real backend that many times, each on fresh disks
    (``cowbench.spread``: every run's records, the comparison against their mean, their
    spread in ``spread.csv``).

    ``lease``: the caller's (``cowbench.lease``), held before the run and released by the
    caller after it (a sweep point's, which also holds the directory the point runs in); the
    run records what it creates there instead of taking a lease of its own.

    The model allocates each host's disk files as the filesystem they are on, or as its
    ``filesystem`` says (``cowbench.diskfs``: written into the run's scenario as
    ``hosts[].model_disks_fs``). Before a real run writes anything, the model predicts the
    space it needs and each filesystem's free space is checked (``cowbench.space``). SIGINT and
    SIGTERM end the run cleanly (``cowbench.signals``): run.json says ``interrupted`` and what
    ``completed``.
    """
    no_writes_by_others()  # what the run and its tools create: never writable by others
    backend = preflight(scenario, out, backend, repeat)
    out = absolute(out)  # every path a tool is handed derives from it
    placement = place(scenario, backend, out)  # what each host's disks are modelled on
    scenario = placed(scenario, placement)
    use_sim, use_real = backend in ("sim", "both"), backend in ("real", "both")
    seed = scenario.seed if seed is None else valid_seed(seed)
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    predicted = _check_space(scenario, seed, out, use_sim, progress) if use_real else None
    rd = RunDir.create(out)  # held by its descriptor: rd.path is /proc/<pid>/fd/<fd>
    try:
        run = _Run(rd, scenario, seed, use_sim, use_real, progress, meta or {}, csv, repeat,
                   lease, placement.notes)
        return run.go(predicted)
    finally:
        rd.close()


def valid_seed(seed: object, what: str = "--seed") -> int:
    """``seed`` if it is a seed the scenario takes (a whole number from 0 to 2**63 - 1; not a
    float a caller truncates, nor a bool or a string), else a :class:`UsageError` naming
    ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"{what} must be a whole number from 0 to 2**63 - 1, not {seed!r}")
    return seed


def preflight(scenario: Scenario, out: Path, backend: str | None = None,
              repeat: int = 1) -> str:
    """Refuse at once (``UsageError``) what :func:`run_scenario` would refuse before it made
    anything: the backend or ``repeat`` that does not fit the scenario, a run directory that
    exists, a ``hosts[].filesystem`` the real backend's disks would not be on
    (``cowbench.diskfs``), missing tools, the real backend's checks (loop devices,
    storage_dirs, the VMs it runs at once). `cowbench run` calls it before a calibration, not
    after. Returns the backend chosen."""
    backend = backend or default_backend(scenario)
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    use_sim, use_real = backend in ("sim", "both"), backend in ("real", "both")
    if use_real and scenario.fleet is not None:
        raise UsageError(f"a fleet scenario runs in the model only, not with backend "
                         f"{backend}: use --backend sim or leave --backend out (the real "
                         "backend builds single VMs, scaled to this machine)")
    if not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"--repeat must be from 1 to {MAX_REPEAT}, not {repeat}")
    if repeat > 1 and not use_real:
        raise UsageError(f"--repeat {repeat} repeats the real backend's runs; with --backend "
                         f"{backend} there are none (use --backend both or real)")
    RunDir.refuse_existing(absolute(out))  # at once, not after the model has run
    place(scenario, backend, absolute(out))  # a filesystem its disks will not be on: refused
    if use_real:
        get_backend("real").check(scenario)  # tools, loop devices, storage_dirs: before anything
    elif use_sim and any(wl.offsets == "fio" for wl in scenario.workloads.values()):
        require_tools(("fio",))
    if use_sim:
        refuse_without_fio(scenario, fio_installed())
    return backend


def _check_space(scenario: Scenario, seed: int, out: Path, use_sim: bool,
                 progress: Callable[[str], None]) -> pd.DataFrame | None:
    """Refuse a real run that cannot fit (``cowbench.space``); return the model's records when
    they serve the run too (``--backend both``). Alone, a real run that fits the quick upper
    bound (``cowbench.spacebound``) needs no model at all."""
    if not use_sim:
        bound = bound_needs(scenario, out)
        # the logs' cap, by the same bound (a time-based job's logs without the model's count
        # are bounded at IOPS_CEILING: the model's finer count decides)
        if bound is not None and fits(bound) and log_cap_problem(scenario, None) is None:
            return None
    progress("model: predicting the space the real run needs")
    model = get_backend("sim")
    # the model's run serves both; alone, or before fio's exact streams are taken, the real
    # run needs only its allocation
    streams = use_sim and needs_traces(scenario)
    alone = not use_sim or streams
    space = model.predict_space(scenario, seed) if alone else model.simulate(scenario, seed)
    check_free_space(scenario, space, out, streams=streams)
    return space if use_sim else None


@dataclass
class _Run:
    rd: RunDir
    scenario: Scenario
    seed: int
    use_sim: bool
    use_real: bool
    progress: Callable[[str], None]
    meta: dict[str, Any]
    csv: bool = False
    repeat: int = 1
    given_lease: Lease | None = None  # the caller's: not this run's to release
    #: hosts whose disks are predicted as ext4 on another filesystem (``cowbench.diskfs``)
    fs_notes: list[str] | None = None

    def __post_init__(self) -> None:
        self.completed: list[str] = []
        self.real_completed: list[str] = []
        self.integrity = _Checks()
        self.raw_log = RawLog(self.rd.raw)  # one numbering for every external command
        # the storage_dir trees of two runs of one scenario must never meet
        self.token = f"{self.scenario.scenario_id}-{secrets.token_hex(4)}"
        self.lease: Lease | None = None
        self.offsets: dict[str, dict[str, Any]] = {}  # run.json's: where offsets came from
        # the real runs done so far: their records, and the machine's cores over each
        self.real_frames: list[pd.DataFrame] = []
        self.machine: list[dict[str, Any]] = []

    def step(self, name: str) -> None:
        """A backend (``sim``, ``real``) or ``compare`` finished: say so in run.json now."""
        self.completed.append(name)
        self.rd.write_meta(completed=self.completed)

    def real_step(self, name: str) -> None:
        """A step of the real backend finished (``real:images`` ...): run.json's
        ``real_completed`` tells how far an interrupted or failed real run got."""
        self.real_completed.append(name.removeprefix("real:"))
        self.rd.write_meta(real_completed=self.real_completed)

    def go(self, predicted: pd.DataFrame | None) -> RunOutcome:
        """Run the backends; whatever ends the run, run.json says how (never ``running``).
        Its messages name the run directory as the user did, unless that name no longer
        leads to it (:meth:`_where`)."""
        named = self._named
        with interrupts_raise() as received:
            try:
                outcome = self._interruptible(predicted, received)
            except (KeyboardInterrupt, Interrupted) as err:
                reason = named(str(err) or "interrupted by signal SIGINT")
                kept = self._keep_measured()
                self._finish("interrupted", reason, signal=signal_name(received, reason))
                out, moved = self._where()
                raise Interrupted(f"{reason}; run directory: {out}{kept}{moved}") from None
            except CowbenchError as err:
                kept = self._keep_measured()
                self._finish("failed", named(str(err)))
                out, moved = self._where()
                raise RunFailed(f"run failed: {named(str(err))}; details in {out}/run.json and "
                                f"{out}/raw/{kept}{moved}") from err
            except OSError as err:  # ENOSPC, EIO, ...: a reason, not a traceback
                kept = self._keep_measured()
                self._finish("failed", named(f"{err.strerror or err}: {err.filename or ''}")
                             .strip())
                out, moved = self._where()
                raise RunFailed(f"run failed: {named(str(err))}; details in {out}/run.json"
                                f"{kept}{moved}") from err
            except BaseException as err:  # MemoryError, a bug: still recorded, one line
                reason = named(f"{type(err).__name__}: {err}".strip().rstrip(":"))
                self._finish("failed", reason)
                out, moved = self._where()
                raise RunFailed(f"run failed: {reason}; details in {out}/run.json{moved}") \
                    from err
            self._finish("ok", None)
        real = self.rd.moved()
        if real is not None:
            outcome.run_dir, outcome.moved = Path(real), self._moved(real)
        return outcome

    def _named(self, text: str) -> str:
        """``text`` (an error's) with the run directory as the user named it in place of the
        descriptor's path it was written through (``/proc/<pid>/fd/<fd>``, meaningless once
        the run has ended)."""
        return text.replace(str(self.rd.path), str(self.rd.shown))

    def _named_in(self, record: Any) -> Any:
        """``record`` (run.json's block: dicts, lists, strings) with :meth:`_named` applied to
        every string in it."""
        if isinstance(record, str):
            return self._named(record)
        if isinstance(record, dict):
            return {k: self._named_in(v) for k, v in record.items()}
        if isinstance(record, list):
            return [self._named_in(v) for v in record]
        return record

    def _where(self) -> tuple[Path, str]:
        """Where the run's files are, for a message, and the warning to add when that is no
        longer the path the user gave (a directory above it renamed, or replaced by a symlink,
        while the run wrote there: the run went on in its own directory, held by its
        descriptor, and wrote nothing through the name)."""
        real = self.rd.moved()
        if real is None:
            return self.rd.shown, ""
        return Path(real), f"; warning: {self._moved(real)}"

    def _moved(self, real: str) -> str:
        return (f"{self.rd.shown} no longer leads to this run's directory (a directory above "
                f"it was renamed or replaced while the run wrote there; nothing was written "
                f"through that name): its files are in {real}")

    def _start(self) -> None:
        backends = [b for b, on in (("sim", self.use_sim), ("real", self.use_real)) if on]
        self.rd.write_meta(
            scenario={"name": self.scenario.name, "hash": self.scenario.scenario_id},
            seed=self.seed, backends=backends, status="running", start=now_iso(), end=None,
            host=self._host_facts(backends), tools=tool_versions(), completed=self.completed,
            # a sweep point's, chosen where the profile is valid (cowbench.sweep_points)
            profile=self.meta.get("profile") or run_profile(self.scenario, backends),
            model_only=[f"vm:{vm.name}" for vm in self.scenario.vms
                        if self.scenario.model_only(vm)],
            workload_notes={name: [r.model_dump() for r in wl.replaced]
                            for name, wl in self.scenario.workloads.items() if wl.replaced},
            **self._refused(), **{k: v for k, v in self.meta.items() if k != "profile"})
        self.rd.write_text("scenario.yaml", dump_scenario(self.scenario))
        if self.scenario.timeline is not None:  # its op: records joined to the scenario
            self.rd.write_text("ops.csv", ops_csv(timeline_plan(self.scenario)[0]))
        # what this run holds, for `cowbench gc` should it be killed outright (cowbench.lease)
        self.lease = self.given_lease or Lease.take(self.rd.shown, self.rd.path, self.token)
        self.raw_log.lease = self.lease  # fio's partial JSON under raw/ is recorded there

    def _host_facts(self, backends: list[str]) -> dict[str, Any]:
        """The machine's facts, and the filesystems the disks were on (``cowbench.diskfs``)."""
        facts = host_facts(self.rd.path)
        return {**facts, **disk_facts(self.scenario, "real" in backends,
                                      facts.get("work_dir_fs"), self.fs_notes)}

    def _refused(self) -> dict[str, Any]:
        """run.json's ``refused_arrivals``: the VMs the scheduler found no host with room for
        (NoValidHost: arrivals, and VMs of ``vms`` naming no host), each with when it asked;
        none of their operations happen. Always there for a timeline with arrivals (empty:
        none refused), else only when one was refused."""
        tl = self.scenario.timeline
        refused = refused_arrivals(self.scenario)
        if (tl is None or not tl.arrivals) and not refused:
            return {}
        return {"refused_arrivals": [{"vm": vm, "t_s": t} for vm, t in refused]}

    def _interruptible(self, predicted: pd.DataFrame | None, received: list[str]) -> RunOutcome:
        """Start the run and its backends. Once a signal was received, whatever error ends
        them is the interrupt's: its exception, raised at whatever line was running, can leave
        what it cut through half done (a SimPy resource's release, which then fails as
        "already triggered" in another process), and the run would otherwise end as failed
        on that breakage."""
        try:
            self._start()
            return self._backends(predicted)
        except (KeyboardInterrupt, Interrupted):
            raise
        except BaseException as err:
            if received:
                raise Interrupted(f"interrupted by signal {received[0]}") from err
            raise

    def _backends(self, predicted: pd.DataFrame | None) -> RunOutcome:
        rd = self.rd
        measured = comparison = None
        if self.use_sim:
            predicted = self._predict(predicted)
            rd.write_records("predicted", predicted, self.csv)
            self.step("sim")
        else:
            predicted = None
        if self.use_real:
            measured = self._real_runs()
            rd.write_records("measured", measured, self.csv)
            self.step("real")
        spread = None
        if predicted is not None and measured is not None:
            from .compare import compare

            comparison = compare(predicted, measured)
            rd.write_text("comparison.csv", comparison.to_csv(index=False))
            self._count_note(predicted, measured)
            if self.repeat > 1:
                from .spread import SPREAD_FILE, spread_table

                spread = spread_table(comparison, measured)
                rd.write_text(SPREAD_FILE, spread.to_csv(index=False))
            self.step("compare")
        if self.use_sim and self.use_real:  # how far the machine moved since its profile
            self.progress("drift: measuring the profile's probes again")
            from .drift import run_drift

            drift = run_drift(self.scenario, rd.path, self.progress, self.lease)
            rd.write_meta(drift=self._named_in(drift))  # its "dir": the user's path
            self.step("drift")
        return RunOutcome(rd.shown, predicted, measured, comparison, spread,
                          self.repeat if measured is not None else 0)

    def _real_runs(self) -> pd.DataFrame:
        """The real backend ``repeat`` times, each on fresh disks (its own tree, built,
        measured and removed); the records of run k carry ``replication`` k - 1. With
        ``real.keep_images`` only the last run's tree is kept."""
        real = get_backend("real")
        self.rd.write_meta(**real.limits(self.scenario))  # before the runs that rely on them
        frames, machine = self.real_frames, self.machine
        for k in range(self.repeat):
            last = k == self.repeat - 1
            scenario = self.scenario
            if not last and scenario.real.keep_images:
                scenario = scenario.model_copy(update={
                    "real": scenario.real.model_copy(update={"keep_images": False})})
            # the run's steps start empty in run.json too: whatever ends it (failed,
            # interrupted), run.json says how far it got, [] before its first step
            self.real_completed = []
            self.rd.write_meta(real_runs={"asked": self.repeat, "done": k, "machine": machine},
                               real_completed=self.real_completed)
            say = self.progress if self.repeat == 1 else \
                (lambda msg, k=k: self.progress(f"real run {k + 1}/{self.repeat}: {msg}"))
            say("building")
            self.integrity.add(real.integrity(self.raw_log))
            span = CpuSpan()
            frame = real.execute(scenario, self.rd.work, self.raw_log, run_id=self.token,
                                 progress=say, seed=self.seed, step_done=self.real_step,
                                 integrity=self.integrity.current, lease=self.lease)
            # ``run`` counts from 1 (as the progress says), ``replication`` is the records'
            machine.append({"run": k + 1, "replication": k, **span.figures()})
            frames.append(frame.assign(replication=k))
        self.rd.write_meta(real_runs={"asked": self.repeat, "done": self.repeat,
                                      "machine": machine})
        if self.scenario.real.keep_images and (self.rd.work / KEPT_XFS).exists():
            self.rd.write_meta(kept_xfs_image={  # the reflink XFS, every host's tree in it
                "path": f"work/{KEPT_XFS}",
                "inspect": f"mount -o loop,ro {self.rd.shown / 'work' / KEPT_XFS} DIR (as root); "
                           "the hosts' trees are in DIR/hosts/ (the unmount freed the 1 MiB "
                           "pieces XFS held past each qcow2 file's end, which the run measured)"})
        import pandas as pd  # by now imported (``records.import_in_background``)

        return pd.concat(frames, ignore_index=True)

    def _keep_measured(self) -> str:
        """When ``--repeat`` stops before its last real run (interrupted, or a run failed),
        the records of the runs done are still written (``measured.parquet``, their
        ``replication`` 0 .. done - 1; run.json's ``real_runs.kept``): nothing measured is
        lost. Best effort, as :meth:`_finish`. What to tell the user (empty: nothing kept)."""
        if "real" in self.completed or not self.real_frames:
            return ""
        import pandas as pd

        done = len(self.real_frames)
        try:
            self.rd.write_records("measured", pd.concat(self.real_frames, ignore_index=True),
                                  self.csv)
            self.rd.write_meta(real_runs={"asked": self.repeat, "done": done,
                                          "machine": self.machine, "kept": "measured.parquet"})
        except OSError:
            return ""
        return f"; the {done} real run(s) done of {self.repeat} are kept in measured.parquet"

    def _predict(self, space: pd.DataFrame | None) -> pd.DataFrame:
        """The model's records, on fio's exact streams where the workloads take them (run.json
        says, per VM, where its offsets came from)."""
        model = get_backend("sim")
        if not needs_traces(self.scenario):
            self.rd.write_meta(offsets=offsets_used(self.scenario))
            self.progress("model: simulating")
            return space if space is not None else model.simulate(self.scenario, self.seed)
        self.progress("model: asking fio for the exact offset streams")
        timed = space is not None and space.metric.isin(["read_ios", "write_ios"]).any()
        plan = scenario_traces(self.scenario, self.raw_log,
                               lambda s, t: model.simulate(s, self.seed, traces=t),
                               first=space if timed else None)
        self.rd.write_meta(offsets=plan.offsets)
        self.offsets = plan.offsets
        self.progress("model: simulating")
        if plan.predicted is not None:
            return plan.predicted
        return model.simulate(self.scenario, self.seed, traces=plan.traces)

    def _count_note(self, predicted: pd.DataFrame, measured: pd.DataFrame) -> None:
        """run.json's account, per time-bounded VM, of how much of its error is its count of
        I/Os (``cowbench.iocount``); the prediction itself is unchanged."""
        from .iocount import at_measured_ios, fio_clone_ios, timed_vms

        vms = timed_vms(self.scenario, self.offsets)
        if not vms:
            return
        self.progress("model: the time-bounded jobs at the count of I/Os fio issued")
        model = get_backend("sim")
        clones = {vm.name: fio_clone_ios(self.rd.raw, vm.name) for vm in vms}
        counts = at_measured_ios(self.scenario, self.seed, self.offsets, predicted, measured,
                                 self.raw_log,
                                 lambda s, t: model.simulate(s, self.seed, traces=t), clones)
        for vm, count in counts.items():
            self.offsets[vm]["at_measured_ios"] = count
        self.rd.write_meta(offsets=self.offsets)

    def _finish(self, status: str, reason: str | None, signal: str | None = None) -> None:
        """Record how the run ended; best effort when the disk is full (the error still
        reaches the user). ``signal``: the interrupted run's signal, run.json's ``signal``
        (README: run.json says "which signal"; before, only within ``reason``'s words)."""
        try:
            _remove_empty(self.rd.work)
        except OSError:
            pass  # an empty directory left behind is harmless; the status is not
        extra: dict[str, Any] = {"reason": reason} if reason else {}
        if signal is not None:
            extra["signal"] = signal
        if self.integrity.runs:
            extra["integrity"] = self.integrity.report()
        try:
            self.rd.write_meta(status=status, end=now_iso(), completed=self.completed, **extra)
        except OSError:
            if status == "ok":
                raise
        finally:
            # everything it held is stopped and removed by now
            if self.lease is not None and self.lease is not self.given_lease:
                self.lease.release()


def _remove_empty(path: Path) -> None:
    if path.is_dir():
        for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
        if not any(path.iterdir()):
            path.rmdir()


def repredict(run_dir: Path) -> tuple[Path, Path | None]:
    """Re-run the model on the offsets a finished real run recorded; write
    ``repredicted.parquet`` and, with measurements, ``comparison-repredicted.csv``."""
    run_dir = absolute(run_dir)
    scenario = load_scenario(run_dir / "scenario.yaml", resolved=True)
    meta = read_run(run_dir)
    traces = recorded_run_traces(run_dir, scenario)
    seed = int(meta.get("seed", scenario.seed))
    predicted = get_backend("sim").simulate(scenario, seed, traces=traces)
    out = run_dir / "repredicted.parquet"
    atomic_write_parquet(out, predicted)
    measured_path = run_dir / "measured.parquet"
    if not measured_path.exists():
        return out, None
    from .compare import compare

    comp = compare(predicted, read_records(measured_path))
    comp_path = run_dir / "comparison-repredicted.csv"
    atomic_write_text(comp_path, comp.to_csv(index=False))
    return out, comp_path
