"""A calibration measures again the probes whose rounds disagree (``Settings.unsteady_rounds``):
a probe whose fastest round ran more than ``UNSTEADY_FACTOR`` times its slowest runs as many
rounds more as were planned (the quick matrix: one), and its figures are the medians over all
its rounds. A drift check measures only the rounds it planned (its rule reads them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cowbench.profile import Probe, load_profile
from real.measure import calibrate as cal

DATA = Path(__file__).parent / "data" / "profile-short-2026-12-06.json"


def _probe(iops: float) -> Probe:
    base = load_profile(DATA).probes[0]
    return base.model_copy(update={"iops": iops, "rounds": 1, "iops_min": iops,
                                   "iops_max": iops})


def test_only_probes_whose_rounds_lie_far_apart_are_measured_again() -> None:
    runs = [[_probe(x) for x in rounds] for rounds in
            ([1000, 1100, 1200],  # x1.2: steady
             [1000, 1490, 1200],  # x1.49: steady
             [1000, 1510, 1200],  # x1.51: again
             [400, 1300, 1350],   # x3.4: again
             [1000],              # one round: nothing to compare
             [0.0, 5.0, 6.0])]    # a round with no I/O: as far apart as can be
    assert cal.unsteady(runs, 3) == [2, 3, 5]
    assert cal.unsteady(runs, 0) == []  # a drift check's


def test_the_runs_more_are_bounded_the_probes_furthest_apart_first() -> None:
    ratios = [1.6, 5.0, 2.0, 1.7, 3.0, 4.0, 1.8]
    runs = [[_probe(100.0), _probe(100.0 * r)] for r in ratios]
    picked = cal.unsteady(runs, 3)  # 12 runs: four probes of three rounds more
    assert len(picked) * 3 <= cal.UNSTEADY_RUNS
    assert picked == [1, 2, 4, 5]  # 5.0, 2.0, 3.0 and 4.0 apart, in the matrix's order
    assert len(cal.unsteady(runs, 2)) == 6  # two rounds more: six of the seven
    assert cal.unsteady(runs, cal.UNSTEADY_RUNS + 1) == []
    assert cal.unsteady(runs, 1, 6) == [1, 2, 3, 4, 5, 6]  # the quick matrix's: all but 1.6


class _NoImages:
    def __init__(self, work: Path, s: cal.Settings) -> None:
        pass

    def setup(self, specs: Sequence[cal.ProbeSpec]) -> None:
        pass


@contextmanager
def _here(path: Path, on_create: Any = None) -> Iterator[Path]:
    yield path


def _scripted(monkeypatch: pytest.MonkeyPatch, script: dict[str, list[float]]
              ) -> list[str]:
    """``measure`` with each probe's runs' IOPS from ``script`` (by name, in the order run,
    throwaways too), no tool or image: the names of the runs made."""
    made: list[str] = []
    left = {k: list(v) for k, v in script.items()}

    def run_probe(spec: cal.ProbeSpec, images: Any, work: Path, s: cal.Settings) -> Probe:
        made.append(spec.name)
        return _probe(left[spec.name].pop(0))

    monkeypatch.setattr(cal, "_run_probe", run_probe)
    monkeypatch.setattr(cal, "_Images", _NoImages)
    monkeypatch.setattr(cal, "_workdir", _here)
    monkeypatch.setattr(cal, "require_tools", lambda tools: None)
    monkeypatch.setattr(cal, "check_dir", lambda path, s: None)
    return made


def test_a_calibration_measures_an_unsteady_probe_again_and_takes_the_median_of_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a calibration of this machine measured a probe of 1 MiB reads at iodepth 8
    (2026-12-07, ``dens70``): two slow rounds of three (474, 495 and 1,036 IOPS) made its
    median 495, where the other calibrations of the day had 1,165-1,489; three rounds more
    at its usual rate make it 1,208, the median of six."""
    steady = cal.ProbeSpec("raw", "randread", 4096, 1)
    shaky = cal.ProbeSpec("raw", "randread", 1 << 20, 8)
    s = replace(cal.settings("short", 2), rounds=3, unsteady_rounds=3)
    # the throwaway run before each pass is the matrix's first probe, then the first probe
    # measured again: their IOPS are not counted
    made = _scripted(monkeypatch, {steady.name: [0.0, 7000, 0.0, 7100, 0.0, 6900],
                                   shaky.name: [474, 495, 1036, 0.0, 1400, 1380, 1420]})
    steps: list[tuple[int, int, str]] = []
    got = cal.measure(tmp_path, s, [steady, shaky],
                      progress=lambda i, n, msg: steps.append((i, n, msg)))
    assert made == [steady.name, steady.name, shaky.name] * 3 + [shaky.name] * 4
    a, b = got
    assert (a.rounds, a.iops, a.iops_min, a.iops_max) == (3, 7000, 6900, 7100)
    assert (b.rounds, b.iops, b.iops_min, b.iops_max) == (6, (1036 + 1380) / 2, 474, 1420)
    # the progress counts the runs more once they are known, and says why
    assert steps[-1][:2] == (9, 9)
    assert "again 1/3: probe raw-randread-1m-qd8-x1 (its rounds 474-1,036 IOPS)" in [
        m for _, _, m in steps]


def test_a_drift_check_measures_only_the_rounds_it_planned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shaky = cal.ProbeSpec("raw", "randread", 1 << 20, 8)
    s = replace(cal.settings("short", 2), rounds=2, unsteady_rounds=0)
    made = _scripted(monkeypatch, {shaky.name: [0.0, 400, 0.0, 1400]})
    (p,) = cal.measure(tmp_path, s, [shaky])
    assert made == [shaky.name] * 4 and (p.rounds, p.iops_min, p.iops_max) == (2, 400, 1400)


def test_every_matrix_of_a_calibration_measures_unsteady_probes_again() -> None:
    """The short and long matrices as many rounds more as they planned, twelve runs at
    most; the quick one (held within 90 s) a round more for at most six probes."""
    for matrix, more, runs in (("quick", 1, 6), ("short", 3, 12), ("long", 3, 12)):
        s = cal.settings(matrix, 4)  # type: ignore[arg-type]
        assert (s.unsteady_rounds, s.unsteady_runs) == (more, runs)
        assert s.as_dict()["unsteady"] == {"factor": cal.UNSTEADY_FACTOR, "rounds": more,
                                           "max_runs": runs}


def test_cowbench_calibrate_names_the_probes_it_measured_again() -> None:
    import io

    from rich.console import Console

    from cowbench.calibrate_view import print_profile

    prof = load_profile(DATA)
    planned = prof.settings["rounds"]
    shaky = prof.probes[3].model_copy(update={"rounds": planned * 2, "iops": 1208.0,
                                              "iops_min": 474.0, "iops_max": 1420.0})
    probes = [*prof.probes[:3], shaky, *prof.probes[4:]]
    buf = io.StringIO()
    print_profile(prof.model_copy(update={"probes": probes}), Console(file=buf, width=200))
    lines = [x for x in buf.getvalue().splitlines() if x.startswith("measured again")]
    assert lines == [f"measured again, its first {planned} rounds far apart: {shaky.name} "
                     f"(the median of {planned * 2} rounds 1,208 IOPS, its rounds 474-1,420 "
                     "IOPS)"]
    buf = io.StringIO()
    print_profile(prof, Console(file=buf, width=200))
    assert "measured again" not in buf.getvalue()
