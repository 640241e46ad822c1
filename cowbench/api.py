"""cowbench from Python (notebooks, scripts): the CLI's plain functions, with plain arguments.

::

    from cowbench import load_scenario, simulate, run, load_results, run_sweep, make_report

    scenario = load_scenario("scenarios/quickstart.yaml")  # validated, units resolved
    records = simulate(scenario, seed=2)                    # the model's records: a DataFrame
    outcome = run(scenario, "results/qs", backend="sim")    # a run directory, as `cowbench run`
    results = load_results("results/qs")                    # its frames, read back
    points = run_sweep("sweeps/strategies.yaml", "results/st")  # a sweep, read back
    html = make_report("results/st").html                   # its report, as `cowbench report`

Records are the tidy long format of the run directory contract (README.md, "Reading a run
directory"): ``backend, t_s, entity, metric, value, unit, seed, replication``. Bad input raises
:class:`cowbench.errors.UsageError` (a :class:`~cowbench.errors.CowbenchError`) with the key
path and the reason, as the CLI prints it.

The model is reached through :func:`_model` only, lazily: importing this module imports neither
``sim`` nor ``real``.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FilesystemWarning

if TYPE_CHECKING:
    import pandas as pd

    from .report import ReportOutcome
    from .results import RunResults, SweepResults
    from .runner import RunOutcome
    from .scenario import Scenario

__all__ = ["load_scenario", "simulate", "run", "load_results", "load_run", "load_sweep",
           "run_sweep", "make_report", "SeedWarning", "FilesystemWarning"]


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file, as ``cowbench validate`` does: sizes in
    bytes and times in seconds, image files inspected, a ``device.profile`` loaded."""
    from .resolve import resolve
    from .scenario import load_scenario as parse_file

    return resolve(parse_file(Path(path)), str(path))


def _scenario(scenario: Scenario | str | Path | Mapping[str, Any]) -> Scenario:
    """A Scenario as given, a file read with :func:`load_scenario`, or a mapping (the YAML's
    content as Python data) validated and resolved."""
    from .resolve import resolve
    from .scenario import Scenario, parse_scenario

    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        return resolve(parse_scenario(dict(scenario), "<mapping>"), "<mapping>")
    if not isinstance(scenario, str | Path):
        from .errors import UsageError

        raise UsageError(f"scenario: a Scenario, a file path or a mapping, not "
                         f"{type(scenario).__name__}")
    return load_scenario(scenario)


def _options(profile: object, uncalibrated: bool, seed: object = None) -> int | None:
    """The options every function takes, checked as the API names them: ``seed`` a whole
    number (or None), ``profile`` and ``uncalibrated`` not both."""
    from .errors import UsageError
    from .runner import valid_seed

    if profile is not None and uncalibrated:
        raise UsageError("profile and uncalibrated contradict each other; give one")
    if profile is not None:  # read here, so that its error names the argument
        from .profile import load_profile

        if not isinstance(profile, str | Path):
            raise UsageError(f"profile: a path, not {type(profile).__name__}")
        try:
            load_profile(Path(profile))
        except UsageError as err:
            raise UsageError(f"profile: {err}") from None
    return None if seed is None else valid_seed(seed, "seed")


def _model() -> Callable[..., pd.DataFrame]:
    """The model backend's ``simulate(scenario, seed, traces=None)``, found by name
    (``cowbench.backends``)."""
    from .backends import get_backend

    return get_backend("sim").simulate


class SeedWarning(UserWarning):
    """Another seed cannot change some workload's offsets (``cowbench.runseed``): raised as a
    warning by :func:`simulate`, :func:`run` and :func:`run_sweep`, as the CLI prints its
    ``warning:`` line."""


def _warn_fixed(s: Scenario) -> None:
    """The CLI's ``--seed`` warning (``cowbench.cli._warn_fixed``), of ``s`` with its
    profiles chosen, as a :class:`SeedWarning`."""
    from .runseed import calibrated, fixed_offsets, seed_draws, seed_warning

    line = seed_warning(fixed_offsets(s), seed_draws(s, calibrated(s)))
    if line is not None:
        warnings.warn(line, SeedWarning, stacklevel=3)


def simulate(scenario: Scenario | str | Path | Mapping[str, Any],
             seed: int | None = None, profile: str | Path | None = None,
             uncalibrated: bool = False) -> pd.DataFrame:
    """Run the model once and return its records (``backend`` ``sim``); nothing is written.

    ``seed`` replaces the scenario's (same scenario and seed: the same records, bit for bit);
    another seed than the scenario's warns (``SeedWarning``) when some random workload's
    offsets cannot change with it (``randrepeat`` on, fio's default, or a fixed ``randseed``:
    fio pins them, so replications over seeds would not vary them).
    Workloads first ask fio's null engine for their offset streams (``offsets: auto``, the
    default, when fio is installed; ``offsets: fio``, which needs it); its output goes to a
    temporary directory, removed at the end.

    The I/O figures rest on the profile ``cowbench run --backend sim`` would take from here
    (``cowbench.autoprofile``): ``profile`` (``--profile``), else the scenario's own, else this
    machine's cached profile of the storage a run would land on (``./results/``, the
    default run directory's, for a host without ``storage_dir``); ``uncalibrated``
    (``--uncalibrated``) takes none. Nothing is calibrated. The frame's ``attrs["profile"]``
    is run.json's ``profile`` block (``cowbench.profile_use``) and ``attrs["calibration"]``
    says it in words: which profile and how old, or that the figures are uncalibrated.
    """
    from .autoprofile import choose_profiles
    from .diskfs import place, placed
    from .profile_use import describe, run_profile
    from .streams import fio_installed, refuse_without_fio
    from .tools import RawLog, absolute, require_tools
    from .traces import needs_traces, scenario_traces

    seed = _options(profile, uncalibrated, seed)
    s = _scenario(scenario)
    warn = seed is not None and seed != s.seed
    seed = s.seed if seed is None else seed
    if seed != s.seed:
        s = s.model_copy(update={"seed": seed})
    source = str(scenario) if isinstance(scenario, str | Path) else "<scenario>"
    # where `cowbench run` puts a run directory by default: results/<name>-<time>
    default_out = absolute(Path("results") / s.name)
    s = choose_profiles(s, source, "sim", default_out,
                        profile=None if profile is None else Path(profile),
                        uncalibrated=uncalibrated)
    placement = place(s, "sim", default_out)  # each host's disks' filesystem, as run's
    for note in placement.notes:
        warnings.warn(note, FilesystemWarning, stacklevel=2)
    s = placed(s, placement)
    if warn:
        _warn_fixed(s)
    if any(wl.offsets == "fio" for wl in s.workloads.values()):
        require_tools(("fio",))
    refuse_without_fio(s, fio_installed())
    if not needs_traces(s):
        records = _model()(s, seed)
    else:
        model = _model()
        with tempfile.TemporaryDirectory(prefix="cowbench-traces-") as tmp:
            plan = scenario_traces(s, RawLog(Path(tmp)),
                                   lambda sc, t: model(sc, seed, traces=t))
            records = plan.predicted if plan.predicted is not None else \
                model(s, seed, traces=plan.traces)
    block = run_profile(s, ["sim"])
    records.attrs["profile"] = block
    records.attrs["calibration"] = describe(block)
    return records


def run(scenario: Scenario | str | Path | Mapping[str, Any], out: str | Path,
        backend: str | None = None, seed: int | None = None,
        progress: Callable[[str], None] | None = None, profile: str | Path | None = None,
        uncalibrated: bool = False, repeat: int = 1) -> RunOutcome:
    """Run a scenario into a new run directory ``out``, as ``cowbench run`` does, and return
    its outcome: ``run_dir`` and the ``predicted``, ``measured`` and ``comparison`` frames
    (None for what did not run), and with ``repeat`` real runs (``--repeat``) their
    ``spread`` (``cowbench.spread``).

    ``backend`` is ``sim`` (the model), ``real`` (qemu + fio on this machine) or ``both``;
    ``None`` is what the scenario supports (``sim`` for a fleet, ``both`` otherwise).
    ``progress`` is called with a short message at each step. The I/O figures rest on the
    profile ``cowbench run`` would choose (``cowbench.autoprofile``: with both backends and
    none of this machine cached, a quick calibration first; with both backends, the profile
    checked against this machine first, ``cowbench.profile_check``); ``profile`` and
    ``uncalibrated`` are ``--profile`` and ``--uncalibrated``.
    """
    from .autoprofile import profiles_for_run
    from .errors import UsageError
    from .runner import MAX_REPEAT, default_backend, run_scenario

    seed = _options(profile, uncalibrated, seed)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise UsageError(f"repeat must be a whole number from 1 to {MAX_REPEAT}, not {repeat!r}")
    say = progress or (lambda _msg: None)
    s = _scenario(scenario)
    warn = seed is not None and seed != s.seed
    chosen = backend or default_backend(s)
    s, checked = profiles_for_run(s, "<scenario>", chosen, Path(out),
                                  profile=None if profile is None else Path(profile),
                                  uncalibrated=uncalibrated, say=say,
                                  progress=lambda i, n, msg: say(f"{msg} ({i}/{n})"))
    if warn:  # what the seed draws depends on the profile just chosen
        _warn_fixed(s)
    return run_scenario(s, Path(out), backend, seed, progress=say, repeat=repeat,
                        meta={"profile_check": checked})


def load_results(path: str | Path) -> RunResults | SweepResults:
    """Read a finished run or sweep directory back.

    A finished run directory (status ``ok``; any other is refused: :func:`load_run` reads
    those) gives :class:`~cowbench.results.RunResults` (``meta`` from run.json,
    ``scenario`` as resolved, ``predicted``, ``measured``, ``records`` and ``comparison``
    frames); a sweep directory gives :class:`~cowbench.results.SweepResults` (``points``, one
    row per ``ok`` point with its knobs, and ``records`` and ``comparison`` with the knobs as
    columns; ``skipped`` lists the others with their reason).
    """
    from .results import is_run_dir, load_finished_run

    p = Path(path)
    if not is_run_dir(p):
        return load_sweep(p)
    return load_finished_run(p, "load_results reads finished runs only (load_run reads any, "
                                "its meta says how it ended)")


def load_run(path: str | Path) -> RunResults:
    """Read a run directory back, finished or not (``meta["status"]``: ``ok``, ``failed``,
    ``interrupted``, ``abandoned``); for a type checker, what :func:`load_results` gives for
    a run."""
    from .results import load_run as read

    return read(Path(path))


def load_sweep(path: str | Path) -> SweepResults:
    """Read a sweep directory (or a folder of run directories) back: its ``ok`` points, the
    others in ``skipped`` with their reason; for a type checker, what :func:`load_results`
    gives for a sweep."""
    from .results import load_sweep as read

    return read(Path(path))


def run_sweep(sweep_file: str | Path, out: str | Path | None = None, scheduler: str = "local",
              workers: int | None = None, profile: str | Path | None = None,
              uncalibrated: bool = False,
              progress: Callable[[str, int, int], None] | None = None) -> SweepResults:
    """Run a sweep file's grid of overrides times seeds, as ``cowbench sweep`` does, and read
    its directory back (:func:`load_results`: ``points``, ``records``, ``comparison``; a point
    that did not end ``ok`` is in ``skipped`` with its reason, where the CLI exits 1).

    ``out`` is the sweep directory (default ``results/<sweep name>``; one that holds this
    sweep is resumed: its finished points are kept). ``scheduler``, ``workers``, ``profile``
    and ``uncalibrated`` are the CLI's options of the same names; ``progress`` is called with
    a message, the points done and their total. A seed the sweep cannot vary a random
    workload's offsets with warns (``SeedWarning``), as the CLI's ``warning:`` line says it;
    so does a host whose disks the points predicted as ext4 on a filesystem the model has no
    allocator for (``FilesystemWarning``, once the sweep is done, with how many points).

    The default scheduler starts Dask worker processes, which import the ``__main__`` module:
    from a script, call this under ``if __name__ == "__main__":`` (Python's rule for every
    process pool), or pass ``scheduler="inprocess"``; a notebook needs neither.
    """
    from .errors import UsageError
    from .results import load_sweep as read_back
    from .sweep import load_sweep, seed_warnings
    from .sweep import run_sweep as execute

    _options(profile, uncalibrated)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise UsageError(f"workers must be a whole number of at least 1, not {workers!r}")
    sw = load_sweep(Path(sweep_file))
    calibrated = False if uncalibrated else True if profile is not None else None
    for line in seed_warnings(sw, calibrated):
        warnings.warn(line, SeedWarning, stacklevel=2)
    where = Path("results") / sw.name if out is None else Path(out)
    execute(sw, where, scheduler, workers,
            progress=progress or (lambda _m, _d, _t: None),
            profile=None if profile is None else Path(profile), uncalibrated=uncalibrated)
    return read_back(where)


def make_report(path: str | Path, notebook: str | None = None,
                capacity_bytes: int | None = None) -> ReportOutcome:
    """Make a run or sweep directory's report, as ``cowbench report`` does: the notebooks
    executed, ``path/report/`` (report.html, report.ipynb, figures/) and a copy of report.html
    at ``path/report.html``. Returns the notebook(s) run, the report's ``html``, its
    ``figures`` and ``top_html`` (the copy; None where a report.html cowbench did not write
    was left as it was). ``notebook`` and ``capacity_bytes`` are ``--notebook`` and
    ``--capacity`` (bytes here: ``cowbench.units.parse_size`` reads ``"2TiB"``)."""
    from .errors import UsageError
    from .report import NOTEBOOKS
    from .report import make_report as execute

    if notebook is not None and notebook not in NOTEBOOKS:
        raise UsageError(f"notebook must be one of {', '.join(NOTEBOOKS)}, not {notebook!r}")
    if capacity_bytes is not None and (isinstance(capacity_bytes, bool) or
                                       not isinstance(capacity_bytes, int) or
                                       capacity_bytes <= 0):
        raise UsageError(f"capacity_bytes: a whole number of bytes above 0, got "
                         f"{capacity_bytes!r}")
    return execute(Path(path), notebook, capacity_bytes)
