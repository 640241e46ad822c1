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


def _arrivals_sweep(tmp_path: Path) -> Path:
    """The SRE's capacity sweep in small: Poisson arrivals of VMs running a writer fio seeds
    the same way at every run (``randrepeat`` on, its default), over two seeds."""
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({
        "name": "a", "seed": 5, "hosts": [{"name": "h", "count": 2, "capacity_bytes": "4GiB"}],
        "images": [{"name": "img", "virtual_size": "256MiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "8MiB"}]}}],
        "flavors": [{"name": "f", "root": "256MiB"}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"app": {"rw": "randwrite", "bs": "64k", "io_size": "4MiB"}},
        "timeline": {"end_s": 3600, "sample_interval_s": 600, "arrivals": [
            {"prefix": "web", "count": 6, "rate_per_s": 0.002, "image": "img", "flavor": "f",
             "workload": "app", "lifetime": {"distribution": "exponential",
                                             "mean_s": 1200}}]}}))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "a.yaml", "seeds": 2}))
    return tmp_path / "sw.yaml"


def test_seeds_that_vary_the_arrivals_are_not_said_to_leave_the_figures_alone(
        tmp_path: Path) -> None:
    """Arrivals and lifetimes draw from the seed: the warning names the pinned offsets and
    what varies, never "cannot change the figures" (before: it said so of fleet-arrivals.yaml,
    whose seeds 1 and 2 gave 2.2 and 2.8 GiB on the hosts, 16 and 14 VMs refused)."""
    sw = load_sweep(_arrivals_sweep(tmp_path))
    for calibrated in (None, False, True):
        [line] = seed_warnings(sw, calibrated)
        assert "cannot change the figures" not in line and "use seeds: 1" not in line
        assert "workload(s) app (randrepeat on) issue the same offsets" in line
        assert "timeline.arrivals[0] (web)'s arrival times and lifetimes" in line
        assert ("service times" in line) == (calibrated is not False)
    # and the figures do vary: the VMs that came and went, the bytes the hosts hold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedWarning)
        one, two = (cowbench.simulate(tmp_path / "a.yaml", seed=k, uncalibrated=True)
                    for k in (1, 2))
    assert set(one["entity"]) != set(two["entity"])


def test_seeds_are_said_to_leave_the_figures_alone_only_when_nothing_draws(
        tmp_path: Path) -> None:
    """A static scenario of pinned writers, uncalibrated: nothing draws from the seed, and
    two seeds give the same records, bit for bit; calibrated, the model's service times draw,
    and IOPS and latency move."""
    _sweep(tmp_path, {})
    sw = load_sweep(tmp_path / "sw.yaml")
    [line] = seed_warnings(sw, calibrated=False)
    assert line.startswith("seeds 1, 2, 3 cannot change the figures: workload(s) oltp")
    assert "nothing else in the scenario draws from the seed" in line
    [line] = seed_warnings(sw, calibrated=None)
    assert "cannot change the figures" not in line and "service times" in line
    with pytest.warns(SeedWarning, match="nothing else in the scenario draws from the seed"):
        one = cowbench.simulate(tmp_path / "s.yaml", seed=2, uncalibrated=True)
    pd.testing.assert_frame_equal(
        one.drop(columns="seed"),
        cowbench.simulate(tmp_path / "s.yaml", uncalibrated=True).drop(columns="seed"))


def test_per_run_seeds_vary_with_the_seed_beside_a_pinned_workload(tmp_path: Path) -> None:
    """A workload fio seeds at random beside one it pins: the pinned one is named fixed, the
    other as varying, even uncalibrated."""
    _sweep(tmp_path, {})
    spec = yaml.safe_load((tmp_path / "s.yaml").read_text())
    spec["workloads"]["seqlog"].update(rw="randwrite", bs="4k", randrepeat=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    [line] = seed_warnings(load_sweep(tmp_path / "sw.yaml"), calibrated=False)
    assert "cannot change some offsets: workload(s) oltp (randrepeat on)" in line
    assert "the workload(s) seqlog fio seeds at random (a seed per run)" in line
