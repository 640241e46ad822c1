"""The version of the model's fit (``sim.perf.perf.FIT_VERSION``) names what it answers: a
profile records the version that fitted it, and a cached profile fitted by an older one is
fitted again from its probes before a run uses it (``cowbench.autoprofile``). That holds only
if the version is raised whenever the fit's answer changes; this pins the answer for the
probes of a real calibration (this project's machine, 2026-12-06 14:42 UTC, the short matrix:
``tests/data/profile-short-2026-12-06.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cowbench.profile import load_profile
from sim.perf.perf import FIT_VERSION, fit_with_alloc

DATA = Path(__file__).resolve().parent / "data" / "profile-short-2026-12-06.json"


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every number, string and null of a JSON value by its key path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items()
                for k, v in leaves(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value)
                for k, v in leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float | int):
        return a == pytest.approx(b, rel=1e-6, abs=1e-12)
    return bool(a == b)


@pytest.mark.slow
def test_the_fit_answers_for_a_real_calibration_what_its_version_recorded() -> None:
    prof = load_profile(DATA)
    assert prof.fit_version == FIT_VERSION, (
        f"FIT_VERSION is {FIT_VERSION}: fit {DATA.name} again with `cowbench calibrate --refit "
        f"{DATA} --out NEW` and keep NEW in its place")
    got = leaves(fit_with_alloc(prof.probes, int(prof.host["cpu_count"])).model_dump(mode="json"))
    want = leaves(prof.params.model_dump(mode="json"))
    assert got.keys() == want.keys()
    differ = {k: (got[k], want[k]) for k in got if not same(got[k], want[k])}
    assert not differ, (
        "the fit answers otherwise for the same probes: raise sim.perf.perf.FIT_VERSION (a "
        f"cached profile is then fitted again before a run uses it) and re-make {DATA.name} "
        f"with `cowbench calibrate --refit`; what moved: {differ}")
