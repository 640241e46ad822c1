"""``cowbench run`` as a plain function: scenario in, run directory out (asv's thin-CLI rule).

The model and the real backend are imported here, lazily, because this is the one place that
drives both; neither imports the other.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pandas as pd

from .compare import compare
from .errors import CowbenchError, Interrupted, RunFailed
from .scenario import Scenario, dump_scenario, load_scenario
from .store import (
    RunDir,
    atomic_write_parquet,
    atomic_write_text,
    host_facts,
    now_iso,
    tool_versions,
)
from .tools import RawLog, require_tools
from .traces import needs_traces, recorded_run_traces, scenario_traces

BACKENDS = ("sim", "real", "both")


@dataclass
class RunOutcome:
    run_dir: Path
    predicted: pd.DataFrame | None
    measured: pd.DataFrame | None
    comparison: pd.DataFrame | None


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Interrupted` so every ``finally`` and ``with`` cleans up."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_scenario(scenario: Scenario, out: Path, backend: str = "both", seed: int | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> RunOutcome:
    """Run ``scenario`` with the chosen backend(s) and write the run directory at ``out``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    use_sim, use_real = backend in ("sim", "both"), backend in ("real", "both")
    if use_real:
        require_tools()  # before anything is created
        if any(scenario.strategy_of(vm).kind == "reflink_copy" for vm in scenario.vms):
            from real.reflink import require_loop_mount

            require_loop_mount()
    elif use_sim and needs_traces(scenario):
        require_tools(("fio",))
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    rd = RunDir.create(out)
    raw_log = RawLog(rd.raw)  # one numbering for every external command of the run
    completed: list[str] = []
    rd.write_meta(scenario={"name": scenario.name, "hash": scenario.scenario_id}, seed=seed,
                  backends=[b for b, on in (("sim", use_sim), ("real", use_real)) if on],
                  status="running", start=now_iso(), end=None,
                  host=host_facts(out), tools=tool_versions(), completed=completed,
                  model_only=[f"vm:{vm.name}" for vm in scenario.vms if scenario.model_only(vm)])
    rd.write_text("scenario.yaml", dump_scenario(scenario))
    predicted = measured = comparison = None
    try:
        with sigterm_as_interrupt():
            if use_sim:
                traces = None
                if needs_traces(scenario):
                    progress("model: asking fio for the exact offset streams")
                    traces = scenario_traces(scenario, raw_log)
                progress("model: simulating")
                from sim import simulate

                predicted = simulate(scenario, seed, traces=traces)
                rd.write_records("predicted", predicted)
                completed.append("sim")
            if use_real:
                progress("real: building")
                from real import execute

                measured = execute(scenario, rd.work, raw_log, run_id=scenario.scenario_id,
                                   progress=progress, seed=seed)
                rd.write_records("measured", measured)
                completed.append("real")
            if predicted is not None and measured is not None:
                comparison = compare(predicted, measured)
                rd.write_text("comparison.csv", comparison.to_csv(index=False))
                completed.append("compare")
    except (KeyboardInterrupt, Interrupted) as err:
        reason = str(err) or "interrupted by SIGINT"
        rd.write_meta(status="interrupted", reason=reason, end=now_iso(), completed=completed)
        raise Interrupted(f"{reason}; run directory: {out}") from None
    except CowbenchError as err:
        rd.write_meta(status="failed", reason=str(err), end=now_iso(), completed=completed)
        raise RunFailed(f"run failed: {err}; details in {out}/run.json and {out}/raw/") from err
    finally:
        _remove_empty(rd.work)
    rd.write_meta(status="ok", end=now_iso(), completed=completed)
    return RunOutcome(out, predicted, measured, comparison)


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
    from sim import simulate

    scenario = load_scenario(run_dir / "scenario.yaml")
    meta = json.loads((run_dir / "run.json").read_text())
    traces = recorded_run_traces(run_dir, scenario)
    predicted = simulate(scenario, int(meta.get("seed", scenario.seed)), traces=traces)
    out = run_dir / "repredicted.parquet"
    atomic_write_parquet(out, predicted)
    measured_path = run_dir / "measured.parquet"
    if not measured_path.exists():
        return out, None
    comp = compare(predicted, pd.read_parquet(measured_path))
    comp_path = run_dir / "comparison-repredicted.csv"
    atomic_write_text(comp_path, comp.to_csv(index=False))
    return out, comp_path
