"""Small run and sweep directories for the report tests: real model runs of tiny scenarios,
and synthetic run directories holding time series (the skeleton records none yet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cowbench.records import records_frame
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario

from .conftest import small_dict

GiB = 2**30


def sim_run(out: Path, overrides: dict[str, Any] | None = None, **top: Any) -> Path:
    """A model-only run of the small scenario (a tenth of a second), on the model's own offsets:
    these runs are material for reports and results, and with ``offsets: auto`` each VM's
    stream would come from a run of fio's null engine, most of the run's time (where offsets
    come from is tests/test_offsets_auto.py's)."""
    d = small_dict(**top)
    d["workloads"] = {name: {**wl, "offsets": "model"} for name, wl in d["workloads"].items()}
    for key, value in (overrides or {}).items():
        section, name = key.split(".")
        d[section] = {**d.get(section, {}), name: value}
    run_scenario(parse_scenario(d), out, "sim")
    if overrides:
        meta = json.loads((out / "run.json").read_text())
        meta["overrides"] = overrides
        (out / "run.json").write_text(json.dumps(meta))
    return out


def sim_sweep(root: Path, cluster_sizes: tuple[str, ...] = ("4KiB", "64KiB", "1MiB"),
              sweep_json: bool = True) -> Path:
    """A sweep directory: one model run per cluster size, ``overrides`` in each run.json."""
    root.mkdir(parents=True)
    for cs in cluster_sizes:
        sim_run(root / f"cs-{cs}", {"strategy.cluster_size": cs})
    if sweep_json:
        (root / "sweep.json").write_text(json.dumps({"name": "cluster-sizes"}))
    return root


def host_series(hosts: int = 3, seeds: int = 2, days: int = 10,
                growth_gib_per_day: float = 1.0) -> pd.DataFrame:
    """Host disk use growing linearly from 10 GiB, per host and seed, sampled daily."""
    rows: list[tuple[object, ...]] = []
    rng = np.random.default_rng(0)
    for seed in range(seeds):
        for h in range(hosts):
            rate = growth_gib_per_day * (1 + 0.2 * h)
            for day in range(days + 1):
                value = (10 + rate * day) * GiB + rng.integers(0, 2**20)
                rows.append(("sim", day * 86400.0, f"host:h{h}", "allocated_bytes", value, "B",
                             seed, 0))
    return records_frame(rows)


def synthetic_run(out: Path, predicted: pd.DataFrame, measured: pd.DataFrame | None = None,
                  scenario: str = "name: fleet\nhosts: [{name: h0}]\n",
                  overrides: dict[str, Any] | None = None) -> Path:
    """A run directory as the contract lays it out, holding the records given."""
    out.mkdir(parents=True)
    meta: dict[str, Any] = {
        "schema_version": 1, "scenario": {"name": "fleet", "hash": "0" * 16}, "seed": 1,
        "backends": ["sim"] + (["real"] if measured is not None else []), "status": "ok"}
    if overrides:
        meta["overrides"] = overrides
    (out / "run.json").write_text(json.dumps(meta))
    (out / "scenario.yaml").write_text(scenario)
    predicted.to_parquet(out / "predicted.parquet", index=False)
    if measured is not None:
        measured.to_parquet(out / "measured.parquet", index=False)
        from cowbench.compare import compare

        compare(predicted, measured).to_csv(out / "comparison.csv", index=False)
    return out
