"""``cowbench run`` as a plain function: scenario in, run directory out (asv's thin-CLI rule).

The model and the real backend are imported here, lazily, because this is the one place that
drives both; neither imports the other.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd

from .compare import compare
from .errors import CowbenchError, Interrupted, RunFailed, UsageError
from .scenario import Scenario, dump_scenario
from .store import RunDir, host_facts, now_iso, tool_versions
from .tools import RawLog, require_tools

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
                 progress: Callable[[str], None] = lambda _: None,
                 meta: dict[str, Any] | None = None) -> RunOutcome:
    """Run ``scenario`` with the chosen backend(s) and write the run directory at ``out``.

    ``meta`` adds keys to run.json (a sweep records the point's ``overrides`` there)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    use_sim, use_real = backend in ("sim", "both"), backend in ("real", "both")
    if use_real and scenario.fleet is not None:
        raise UsageError("a fleet scenario runs in the model only: use --backend sim "
                         "(the real backend builds single VMs, scaled to this machine)")
    if use_real:
        require_tools()  # before anything is created
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    rd = RunDir.create(out)
    completed: list[str] = []
    rd.write_meta(scenario={"name": scenario.name, "hash": scenario.scenario_id}, seed=seed,
                  backends=[b for b, on in (("sim", use_sim), ("real", use_real)) if on],
                  status="running", start=now_iso(), end=None,
                  host=host_facts(out), tools=tool_versions(), completed=completed,
                  **(meta or {}))
    rd.write_text("scenario.yaml", dump_scenario(scenario))
    predicted = measured = comparison = None
    try:
        with sigterm_as_interrupt():
            if use_sim:
                progress("model: simulating")
                from sim import simulate

                predicted = simulate(scenario, seed)
                rd.write_records("predicted", predicted)
                completed.append("sim")
            if use_real:
                progress("real: building")
                from real import execute

                measured = execute(scenario, rd.work, RawLog(rd.raw), run_id=scenario.scenario_id,
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
