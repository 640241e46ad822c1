"""The Python API for notebooks, through the public names only (``from cowbench import ...``),
and the README's example and commands run exactly as written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cowbench import (
    RunResults,
    SeedWarning,
    SweepResults,
    UsageError,
    load_results,
    load_run,
    load_scenario,
    load_sweep,
    make_report,
    run,
    run_sweep,
    simulate,
)

from .clirun import cowbench_line
from .conftest import needs_tools, small_dict

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def figures(records: pd.DataFrame, metric: str) -> dict[str, float]:
    rows = records[(records.metric == metric) & records.t_s.isna()]
    return dict(zip(rows.entity.astype(str), rows.value.astype(float), strict=True))


@pytest.mark.slow
def test_simulate_then_run_then_load_back(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_dict()))
    scenario = load_scenario(path)
    records = simulate(scenario)
    assert set(records.backend) == {"sim"} and set(records.seed) == {3}  # the scenario's seed
    pd.testing.assert_frame_equal(records, simulate(scenario, seed=3))  # bit for bit
    assert set(simulate(scenario, seed=4).seed) == {4}
    clusters = figures(records, "data_clusters")
    # vm c writes 6 MiB sequentially from 1 MiB: 96 clusters of 64 KiB; vm b only reads
    assert clusters["vm:c"] == 96 and clusters["vm:b"] == 0
    outcome = run(scenario, tmp_path / "run", backend="sim")
    assert outcome.measured is None and outcome.comparison is None
    results = load_results(outcome.run_dir)
    assert results.meta["status"] == "ok" and results.meta["backends"] == ["sim"]
    assert figures(results.records, "data_clusters") == clusters
    assert figures(results.records, "allocated_bytes") == figures(records, "allocated_bytes")


def test_simulate_takes_a_path_or_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_dict()))
    pd.testing.assert_frame_equal(simulate(path, seed=5), simulate(small_dict(), seed=5))


def test_bad_input_names_the_key_path(tmp_path: Path) -> None:
    bad = small_dict()
    bad["vms"][0]["image"] = "ghost"
    with pytest.raises(UsageError, match=r"vms\[0\]\.image"):
        simulate(bad)
    with pytest.raises(UsageError, match="backend"):
        run(small_dict(), tmp_path / "run", backend="vmware")
    assert not (tmp_path / "run").exists()


def test_a_fleet_runs_in_the_model_and_two_runs_read_as_a_sweep(tmp_path: Path) -> None:
    fleet = ROOT / "scenarios" / "fleet-small.yaml"
    for seed in (1, 2):
        outcome = run(fleet, tmp_path / "runs" / f"seed-{seed}", seed=seed)  # no backend: sim
        assert outcome.predicted is not None and outcome.measured is None
    sweep = load_results(tmp_path / "runs")
    assert sorted(sweep.points.run_seed) == [1, 2]
    assert sorted(sweep.points.point) == ["seed-1", "seed-2"]
    hosts = sweep.records[sweep.records.entity.str.startswith("host:")]
    assert set(hosts.point) == {"seed-1", "seed-2"}


def readme_block(heading: str, fence: str) -> str:
    """The first ``fence`` code block under the README's ``heading``."""
    section = README[README.index(heading):]
    match = re.search(rf"```{fence}\n(.*?)```", section, re.S)
    assert match, f"no ```{fence} block under {heading}"
    return match.group(1)


@pytest.fixture
def in_a_fresh_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the repository's scenarios/, as a user's checkout does."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(in_a_fresh_directory: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_block("## Using cowbench from Python / notebooks", "python")
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "ok ['sim']" in printed
    pred = pd.read_parquet(in_a_fresh_directory / "results" / "qs-model" / "predicted.parquet")
    for entity, value in figures(pred, "allocated_bytes").items():
        assert re.search(rf"{re.escape(entity)}\s+{value:.0f}", printed), entity


def test_the_readme_fleet_commands_run_as_written(in_a_fresh_directory: Path) -> None:
    block = readme_block("In the terminal, `run` and `show` sum a fleet up", "")
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    shown = [line for line in block.splitlines() if not line.startswith(("$ ", "..."))]
    assert len(commands) == 2 and shown
    for line in commands:
        ran = cowbench_line(line)
        assert ran.code == 0, ran.stderr
    for line in shown:  # what the README says show prints, it prints
        assert line in ran.stdout.splitlines(), line


@needs_tools
@pytest.mark.real
def test_simulate_asks_fio_for_exact_offsets_and_leaves_nothing(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """A workload with ``offsets: fio`` is simulated on the stream fio's null engine issues;
    fio's output goes to a temporary directory that is removed."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    data = small_dict()
    data["workloads"]["w"]["offsets"] = "fio"
    records = simulate(data)
    assert list(tmp.iterdir()) == []
    # the same records as `cowbench run --backend sim`, which keeps fio's streams under raw/
    outcome = run(data, tmp_path / "run", backend="sim")
    assert outcome.predicted is not None
    pd.testing.assert_frame_equal(records, outcome.predicted)
    assert any((tmp_path / "run" / "raw").iterdir())
    auto = small_dict()  # the default, offsets: auto: fio's stream too, fio being here
    pd.testing.assert_frame_equal(records, simulate(auto))
    auto["workloads"]["w"]["offsets"] = "model"
    own = simulate(auto)  # the model's own generator issues fio's stream too (offset_grid)
    assert figures(records, "data_clusters")["vm:a"] == figures(own, "data_clusters")["vm:a"]


@pytest.mark.slow
def test_a_sweep_and_its_report_from_python(tmp_path: Path) -> None:
    sweep_file = tmp_path / "grid.yaml"
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small_dict()))
    sweep_file.write_text(yaml.safe_dump({
        "scenario": "small.yaml", "grid": {"strategy.cluster_size": ["64KiB", "256KiB"]},
        "seeds": 1}))
    seen: list[tuple[int, int]] = []
    done = run_sweep(sweep_file, tmp_path / "sw", scheduler="inprocess", workers=1,
                     uncalibrated=True, progress=lambda _m, d, t: seen.append((d, t)))
    assert sorted(done.points["strategy.cluster_size"]) == [65536, 262144]
    assert done.skipped == [] and seen and seen[-1][0] == seen[-1][1] == 2
    # the same figures as each point's own run directory
    for point in done.points.point:
        alone = load_results(tmp_path / "sw" / point)
        mine = done.records[(done.records.point == point)]
        assert figures(mine, "data_clusters") == figures(alone.records, "data_clusters")
    outcome = make_report(tmp_path / "sw")
    assert outcome.html == tmp_path / "sw" / "report" / "report.html"
    assert outcome.html.is_file() and outcome.figures
    with pytest.raises(UsageError, match="capacity_bytes"):
        make_report(tmp_path / "sw", capacity_bytes=0)
    with pytest.raises(UsageError, match="profile and uncalibrated"):
        run_sweep(sweep_file, tmp_path / "other", profile="p.json", uncalibrated=True)
    assert not (tmp_path / "other").exists()


def test_no_public_name_is_hidden_by_a_submodule_of_the_same_name() -> None:
    """``from cowbench import x`` must give the documented function whatever was imported
    before: a submodule ``cowbench.x``, once imported, would replace a lazy attribute ``x``."""
    import cowbench

    modules = {p.stem for p in (ROOT / "cowbench").glob("*.py")} | \
        {p.name for p in (ROOT / "cowbench").iterdir() if (p / "__init__.py").is_file()}
    assert not set(cowbench.__all__) & modules


def test_what_the_api_refuses_it_names_as_the_api_names_it(tmp_path: Path) -> None:
    """Each option by its Python name (not the CLI's flag), a UsageError before anything is
    made: the sweep's workers as the CLI's --workers (-1 hung, 0 ran 2 workers)."""
    sweep_file = tmp_path / "grid.yaml"
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small_dict()))
    sweep_file.write_text(yaml.safe_dump({"scenario": "small.yaml",
                                          "grid": {"strategy.cluster_size": ["64KiB"]}}))
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UsageError, match=r"^workers must be a whole number of at least 1"):
            run_sweep(sweep_file, tmp_path / "sw", workers=bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^seed must be a whole number"):
        run(small_dict(), tmp_path / "run", backend="sim", seed=-1)
    with pytest.raises(UsageError, match=r"^repeat must be a whole number from 1 to 20"):
        run(small_dict(), tmp_path / "run", backend="sim", repeat=0)
    with pytest.raises(UsageError, match=r"^profile and uncalibrated contradict"):
        simulate(small_dict(), profile="p.json", uncalibrated=True)
    with pytest.raises(UsageError, match=r"^profile: .*nope\.json: cannot read the profile"):
        simulate(small_dict(), profile=tmp_path / "nope.json")  # not device.profile's
    with pytest.raises(UsageError, match=r"^scenario: a Scenario, a file path or a mapping"):
        simulate([1, 2])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^notebook must be one of"):
        make_report(tmp_path, notebook="nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml", "small.yaml"]


@pytest.mark.slow
def test_run_with_another_seed_warns_as_simulate_does(tmp_path: Path) -> None:
    """A seed that cannot vary a random workload's offsets (randrepeat on, fio's default):
    run() said nothing where simulate() and the CLI warn, and its replications were the same
    run twice."""
    d = small_dict()
    with pytest.warns(SeedWarning, match="randrepeat"):
        run(d, tmp_path / "a", backend="sim", seed=9)
    with pytest.warns(SeedWarning, match="randrepeat"):
        simulate(d, seed=9)


def test_load_results_reads_finished_runs_and_load_run_any(tmp_path: Path) -> None:
    outcome = run(small_dict(), tmp_path / "run", backend="sim")
    assert isinstance(load_results(outcome.run_dir), RunResults)
    assert load_run(outcome.run_dir).meta["status"] == "ok"
    assert isinstance(load_sweep(tmp_path), SweepResults)  # a folder of run directories
    meta = json.loads((outcome.run_dir / "run.json").read_text())
    meta.update(status="interrupted", reason="interrupted by signal SIGINT")
    (outcome.run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match=r"run status is 'interrupted' \(interrupted by signal "
                                         r"SIGINT\); load_results reads finished runs only"):
        load_results(outcome.run_dir)
    assert load_run(outcome.run_dir).meta["status"] == "interrupted"
