"""One rule for the calibration profile of every entry point: `cowbench run`,
``cowbench.simulate()`` and a sweep's points take the same profile for the same scenario and
seed, record it the same way, and the reports say what the I/O figures rest on
(cowbench.autoprofile, cowbench.profile_use.describe_runs, cowbench.sweep.point_profiles).

The bug: ``simulate()`` and a model-only sweep's points ignored this machine's cached
profile that `cowbench run --backend sim` used (db-1 write_iops 8,953 uncalibrated against
5,888), and neither said so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench import api
from cowbench.profile_cache import fingerprint, store
from cowbench.profile_use import describe_runs
from cowbench.results import load_results
from cowbench.sweep import load_sweep, point_profiles, run_sweep

from .conftest import small_dict
from .test_cli import cowbench
from .test_profile_cache import OTHER, fake_profile


def _scenario(tmp_path: Path) -> Path:
    d = small_dict()
    d["workloads"] = {n: {**wl, "offsets": "model"} for n, wl in d["workloads"].items()}
    path = tmp_path / "scen.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def _iops(records: pd.DataFrame) -> dict[str, float]:
    rows = records[records.metric.str.endswith("_iops")]
    return {f"{e}/{m}": float(v) for e, m, v in zip(rows.entity, rows.metric, rows.value,
                                                    strict=True)}


@pytest.fixture
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's cached profile of the storage under tmp_path (the working directory),
    with parameters far from the uncalibrated model's."""
    monkeypatch.chdir(tmp_path)
    return store(fake_profile(fingerprint(tmp_path), OTHER))


def test_simulate_takes_the_profile_run_takes_and_says_which(tmp_path: Path,
                                                             cached: Path) -> None:
    scen = _scenario(tmp_path)
    got = api.simulate(scen)
    ran = api.run(scen, tmp_path / "run", backend="sim")
    assert ran.predicted is not None
    assert _iops(got) == _iops(ran.predicted) and _iops(got)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert got.attrs["profile"]["path"] == meta["profile"]["path"] == str(cached)
    assert got.attrs["calibration"].startswith(
        f"I/O figures rest on the quick calibration profile {cached} (cached, made ")
    # kept by a selection of the records
    assert "profile" in got[got.metric == "write_iops"].attrs
    bare = api.simulate(scen, uncalibrated=True)
    assert _iops(bare) != _iops(got)
    assert bare.attrs["profile"] == {"calibrated": False, "reason": "no calibration profile"}
    assert bare.attrs["calibration"].startswith(
        "I/O figures are uncalibrated (no calibration profile)")


def _sweep_file(tmp_path: Path, backend: str = "sim") -> Path:
    _scenario(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"scenario": "scen.yaml", "seeds": [1],
                                    "grid": {"strategy.cluster_size": ["64KiB", "1MiB"]},
                                    "backend": backend}))
    return path


@pytest.mark.slow
def test_a_model_only_sweep_point_takes_the_profile_run_takes(tmp_path: Path,
                                                              cached: Path) -> None:
    sweep = load_sweep(_sweep_file(tmp_path))
    proc = cowbench("sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"),
                    "--scheduler", "inprocess")
    assert proc.code == 0, proc.stderr
    assert (f"I/O figures rest on the quick calibration profile {cached} (cached, made "
            in " ".join(proc.stdout.split()))
    assert "(every one of the 2 points)" in " ".join(proc.stdout.split())
    for p in sweep.points:
        d = tmp_path / "out" / "points" / p.id
        block = json.loads((d / "run.json").read_text())["profile"]
        assert block["path"] == str(cached) and block["source"] == "cache"
        assert block["chosen_on"]["side"] == "sweep client"
        # the point's figures are those of `cowbench run` of the same scenario and seed
        ran = api.run(p.scenario, tmp_path / f"run-{p.id}", backend="sim", seed=p.seed)
        assert ran.predicted is not None
        assert _iops(pd.read_parquet(d / "predicted.parquet")) == _iops(ran.predicted)
    # the reports read it back, in the same words
    res = load_results(tmp_path / "out")
    assert res.calibration == describe_runs(res.profiles)
    assert res.calibration.startswith(f"I/O figures rest on the quick calibration profile "
                                      f"{cached}")


def test_a_sweep_can_say_uncalibrated_or_name_its_profile(tmp_path: Path,
                                                          cached: Path) -> None:
    sweep = load_sweep(_sweep_file(tmp_path))
    out = tmp_path / "out"
    run_sweep(sweep, out, "inprocess", uncalibrated=True)
    blocks = {p.id: json.loads((out / "points" / p.id / "run.json").read_text())["profile"]
              for p in sweep.points}
    assert all(b["calibrated"] is False for b in blocks.values())
    assert describe_runs(blocks).startswith(
        "I/O figures are uncalibrated (no calibration profile)")
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(fake_profile(None).model_dump(mode="json")))
    chosen = point_profiles(sweep, out, sweep.points, mine, False)
    assert {m["profile"]["path"] for _, m in chosen.values()} == {str(mine)}


def test_a_real_sweep_leaves_the_choice_to_the_worker_that_measures(tmp_path: Path,
                                                                    cached: Path) -> None:
    """A point with the real backend measures its worker's storage: the client does not
    choose its profile from the client's cache (the worker does, as `cowbench run` there)."""
    sweep = load_sweep(_sweep_file(tmp_path, backend="both"))
    chosen = point_profiles(sweep, tmp_path / "out", sweep.points, None, False)
    assert all(meta == {} and s == p.scenario
               for p, (s, meta) in zip(sweep.points, chosen.values(), strict=True))
    told = point_profiles(sweep, tmp_path / "out", sweep.points, None, True)
    assert all(m["profile"]["chosen_on"]["side"] == "sweep client" for _, m in told.values())


def test_describe_runs_counts_the_points_per_profile() -> None:
    prof: dict[str, Any] = {"calibrated": True, "path": "/p.json", "source": "file",
                            "created": "2026-12-01T00:00:00+00:00", "age_s": 120.0,
                            "matrix": "quick"}
    none = {"calibrated": False, "reason": "no calibration profile"}
    assert describe_runs({"p0": prof, "p1": {**prof, "age_s": 300.0}}) == (
        "I/O figures rest on the quick calibration profile /p.json (made 2.0 min ago) "
        "(every one of the 2 points)")
    text = describe_runs({"p0": prof, "p1": none, "p2": none})
    assert text.startswith("I/O figures differ by point: 2 point(s) (p1, p2): are "
                           "uncalibrated (no calibration profile)")
    assert "1 point(s) (p0): rest on the quick calibration profile /p.json" in text
    fleet = {"calibrated": False, "reason": "a fleet has no I/O figures"}
    assert describe_runs({"p0": fleet}) == ("I/O figures are not predicted here (a fleet has "
                                            "no I/O figures): no profile applies")
