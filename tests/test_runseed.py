"""Each run of a job fio seeds at random (``randrepeat: false``, no ``randseed``) takes its own
seed, from the scenario's seed, the VM and the VM's run number (``cowbench.runseed``): a VM
that runs its random writer again writes new blocks, as fio would; the model's own offsets,
fio's null stream and the real fio take the same seed."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import cowbench
from cowbench.api import SeedWarning
from cowbench.resolve import resolve
from cowbench.runseed import for_run, run_numbers, run_seed
from cowbench.scenario import Scenario, parse_scenario
from cowbench.streams import take_streams
from cowbench.sweep import load_sweep, seed_warnings
from cowbench.tools import RawLog


def _grow(offsets: str, randrepeat: bool = False, **extra: Any) -> Scenario:
    """Two VMs, each running 2 MiB of random 4k writes at t=0, 600 and 1200 s."""
    events: list[dict[str, Any]] = [{"t": 0, "op": "boot", "vm": v} for v in "ab"]
    events += [{"t": t, "op": "run", "vm": v} for t in (0, 600, 1200) for v in "ab"]
    return resolve(parse_scenario({
        "name": "grow", "seed": 1, "hosts": [{"name": "h1"}],
        "images": [{"name": "img", "virtual_size": "256MiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
        "flavors": [{"name": "f", "root": "256MiB"}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 8, "io_size": "2MiB",
                            "randrepeat": randrepeat, "offsets": offsets, **extra}},
        "vms": [{"name": v, "image": "img", "flavor": "f", "host": "h1", "workload": "w"}
                for v in "ab"],
        "timeline": {"sample_interval_s": 600, "end_s": 1800, "events": events}}), "<test>")


def _allocated(records: pd.DataFrame) -> dict[str, list[int]]:
    """Per VM, its allocated bytes at each sample (the last record of each instant)."""
    rows = records[(records.metric == "allocated_bytes") & records.entity.str.startswith("vm:")]
    return {e: [int(v) for v in g.groupby("t_s").value.last()]
            for e, g in rows.groupby("entity")}


@pytest.mark.parametrize("offsets", ["model", pytest.param("fio", marks=pytest.mark.skipif(
    shutil.which("fio") is None, reason="needs fio"))])
def test_repeated_runs_with_randrepeat_off_write_new_blocks(offsets: str) -> None:
    """Every run writes new clusters: each sample after a run holds more than the one before
    (before the fix every run of a VM wrote the same blocks: flat from t=0), and the two VMs
    write different blocks."""
    alloc = _allocated(cowbench.simulate(_grow(offsets), seed=1))
    for vm, series in alloc.items():
        assert series[1] > series[0] and series[2] > series[1], (vm, series)
    assert alloc["vm:a"] != alloc["vm:b"]


@pytest.mark.skipif(shutil.which("fio") is None, reason="needs fio")
def test_fio_stream_and_model_agree_per_run() -> None:
    """The model's own offsets and fio's null stream take each run's seed: same figures."""
    assert _allocated(cowbench.simulate(_grow("model"), seed=3)) == \
        _allocated(cowbench.simulate(_grow("fio"), seed=3))


@pytest.mark.skipif(shutil.which("fio") is None, reason="needs fio")
def test_each_run_takes_its_own_stream_and_run_json_says_its_seed() -> None:
    s = _grow("fio")
    with tempfile.TemporaryDirectory() as tmp:
        plan = take_streams(s, 5, RawLog(Path(tmp)), lambda *_: pd.DataFrame())
    assert sorted(plan.traces) == ["a", "a@1", "a@2", "b", "b@1", "b@2"]
    assert plan.offsets["b@2"]["randseed"] == run_seed(5, "b", 2)
    firsts = {k: tuple(t[0].offsets[:8].tolist()) for k, t in plan.traces.items()}
    assert len(set(firsts.values())) == 6


def test_randrepeat_on_repeats_the_same_blocks_as_fio_does() -> None:
    """fio's default: every invocation issues the same offsets, so later runs add nothing."""
    alloc = _allocated(cowbench.simulate(_grow("model", randrepeat=True), seed=1))
    assert alloc["vm:a"][0] == alloc["vm:a"][2]


def test_a_fixed_randseed_is_kept_in_every_run() -> None:
    s = _grow("model", randseed=9)
    assert for_run(s.workloads["w"], 1, "a", 2).randseed == 9


def test_run_seed_depends_on_seed_vm_and_run() -> None:
    seeds = {run_seed(s, vm, n) for s in (1, 2) for vm in "ab" for n in range(3)}
    assert len(seeds) == 12 and all(0 <= x < 2**63 for x in seeds)
    numbers = run_numbers(_grow("model"))
    assert sorted(numbers.values()) == [0, 0, 1, 1, 2, 2]


def _sweep(tmp_path: Path, workload: dict[str, Any]) -> Path:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "s", "seed": 1, "hosts": [{"name": "h1"}],
        "images": [{"name": "img", "virtual_size": "256MiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
        "strategy": {"kind": "qcow2_overlay"},
        "workloads": {"oltp": {"rw": "randwrite", "bs": "4k", "io_size": "1MiB", **workload},
                      "seqlog": {"rw": "write", "bs": "1MiB", "size": "4MiB"}},
        "vms": [{"name": "db", "image": "img", "root_size": "256MiB", "workload": "oltp"},
                {"name": "log", "image": "img", "root_size": "256MiB",
                 "workload": "seqlog"}]}))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 3}))
    return tmp_path / "sw.yaml"


@pytest.mark.parametrize(("workload", "why"), [
    ({"randseed": 5}, "oltp (randrepeat on, randseed 5)"),
    ({"randseed": 5, "randrepeat": False}, "oltp (randseed 5)"),
    ({}, "oltp (randrepeat on)")])
def test_a_sweep_over_seeds_names_the_workloads_they_cannot_vary(
        tmp_path: Path, workload: dict[str, Any], why: str) -> None:
    """A fixed randseed pins the offsets as randrepeat does (before: no warning with a
    randseed); the sequential writer has no offsets to vary and is not named."""
    warned = seed_warnings(load_sweep(_sweep(tmp_path, workload)))
    assert len(warned) == 1 and f"workload(s) {why} issue the same offsets" in warned[0]
    assert "seqlog" not in warned[0] and "randrepeat: false" in warned[0]


def test_varied_workloads_are_not_warned_about(tmp_path: Path) -> None:
    assert seed_warnings(load_sweep(_sweep(tmp_path, {"randrepeat": False}))) == []


def test_simulate_with_another_seed_warns(tmp_path: Path) -> None:
    _sweep(tmp_path, {"randseed": 5})
    with pytest.warns(SeedWarning, match=r"oltp \(randrepeat on, randseed 5\)"):
        cowbench.simulate(tmp_path / "s.yaml", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cowbench.simulate(tmp_path / "s.yaml")  # its own seed: nothing to say
