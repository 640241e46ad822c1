"""The default backend is what the scenario supports: a fleet runs in the model without
``--backend``, anything else in both; an explicit backend a fleet cannot run is refused (exit 2,
nothing created), for runs and sweeps alike; the CLI says which backend ran."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from cowbench.runner import default_backend
from cowbench.scenario import load_scenario

from .clirun import cowbench
from .conftest import small_dict, small_scenario

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "scenarios" / "fleet-small.yaml"


def test_the_default_follows_the_scenario() -> None:
    assert default_backend(load_scenario(FLEET)) == "sim"
    assert default_backend(small_scenario()) == "both"


def test_a_fleet_runs_in_the_model_by_default(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ran = cowbench("run", str(FLEET), "--out", str(out))
    assert ran.code == 0, ran.stderr
    assert json.loads((out / "run.json").read_text())["backends"] == ["sim"]
    assert "backend:       sim (the model; the default for a fleet scenario)" in ran.stdout
    assert (out / "predicted.parquet").is_file() and not (out / "measured.parquet").exists()


@pytest.mark.parametrize("backend", ["real", "both"])
def test_a_fleet_refuses_the_real_backend(tmp_path: Path, backend: str) -> None:
    out = tmp_path / "run"
    ran = cowbench("run", str(FLEET), "--backend", backend, "--out", str(out))
    assert ran.code == 2, ran.stderr
    assert f"a fleet scenario runs in the model only, not with backend {backend}" in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    assert not out.exists()


def test_an_explicit_backend_is_named_as_such(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    assert "backend:       sim (the model)\n" in ran.stdout


def test_anything_else_runs_both_by_default(tmp_path: Path) -> None:
    """Without --backend a single-VM scenario needs the real tools: with none on PATH it is
    refused naming the first one (exit 2), before anything is created."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    out = tmp_path / "run"
    ran = cowbench("run", str(scenario), "--out", str(out), env={"PATH": str(bindir)})
    assert ran.code == 2 and "qemu-img not found" in ran.stderr, ran.stderr
    assert not out.exists()


def sweep_file(tmp_path: Path, **spec: object) -> Path:
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump({"scenario": str(FLEET), "seeds": [1], **spec}))
    return path


@pytest.mark.parametrize("backend", ["real", "both"])
def test_a_fleet_sweep_refuses_the_real_backend_before_running(tmp_path: Path,
                                                               backend: str) -> None:
    out = tmp_path / "out"
    ran = cowbench("sweep", str(sweep_file(tmp_path, backend=backend)), "--out", str(out),
                   "--scheduler", "inprocess")
    assert ran.code == 2, ran.stderr
    assert "backend: a fleet scenario runs in the model only" in ran.stderr
    assert not out.exists()
