"""The job-file table (issue 19, "Done when"): a few of its fastest jobs, in both backends
through job_file: with offsets: auto, predict the overlay's data clusters exactly."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import load_benchmark, needs_tools

ROOT = Path(__file__).resolve().parent.parent


def _table() -> ModuleType:
    return load_benchmark("jobfile_table")


def test_every_job_of_the_table_loads(tmp_path: Path) -> None:
    from cowbench.scenario import load_scenario

    table = _table()
    assert len(table.JOBS) >= 20
    for name, job, section, _ in table.JOBS:
        path = tmp_path / f"{name}.yaml"
        path.write_text(table.scenario_text(name, job, section))
        assert load_scenario(path).workloads[name].offsets == "auto"


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("name", ["jesd219", "log-append", "app-unaligned", "kv-store",
                                  "log-rotate"])
def test_size_bounded_jobs_predict_data_clusters_exactly(tmp_path: Path, name: str) -> None:
    """Uncalibrated: a size-bounded job's clusters do not rest on the I/O rates (a quick
    calibration first took most of each test's two minutes)."""
    row = _table().run_job(name, tmp_path, uncalibrated=True)
    assert not row.timed
    assert row.measured > 0
    assert row.predicted == row.measured
    assert row.offsets == "fio/whole"


def test_a_repeated_time_bounded_row_gives_the_range_of_its_runs() -> None:
    """--repeat: per real run (replication), data_clusters and the reads, writes and trims
    per clone; the table shows their least and most (fio-rand-RW: 4 clones)."""
    import pandas as pd

    table = _table()
    rows = [("vm:a", m, v, r) for r, (reads, writes, clusters) in
            enumerate([(300, 100, 50), (500, 140, 52), (420, 120, 49)])
            for m, v in (("read_ios", reads), ("write_ios", writes),
                         ("data_clusters", clusters))]
    rows += [("vm:b", "read_ios", 10_000, 0), ("image:base", "data_clusters", 9, 0)]
    frame = pd.DataFrame(rows, columns=["entity", "metric", "value", "replication"])
    frame["t_s"] = float("nan")
    assert table.clones("fio-rand-RW.fio", None) == 4
    assert table.clones("ssd-test.fio", None) == 4  # several jobs: over all their clones
    clusters, ios = table.run_ranges(frame, "a", 4)
    assert clusters == (49.0, 52.0)
    assert ios == (100.0, 160.0)
    none = table.run_ranges(frame, "c", 1)  # no such VM: no range
    assert all(math.isnan(x) for pair in none for x in pair)


def test_a_time_bounded_row_says_whether_its_count_is_within_the_runs_spread(
        capsys: pytest.CaptureFixture[str]) -> None:
    """web-cache at load 5 to 7 (14:41 UTC): 43,309 I/Os predicted against runs of 14,869 to
    28,642 (mean 20,872): beyond their spread; a row of one run has no spread to say."""
    table = _table()
    row = table.Row("web-cache", True, 445.0, 390.3, 0.1385, "fio/predicted", 145.0,
                    43309.0, 20872.0, 390.3, 3, (365.0, 420.0), (14869.0, 28642.0), False)
    one = table.Row("db-wal", True, 64.0, 64.0, 0.0, "fio/predicted", 20.0, 1200.0, 1195.0,
                    64.0)
    table.print_table([row, one])
    lines = capsys.readouterr().out.splitlines()
    head = next(x for x in lines if x.startswith("job") and "in spread" in x)
    at = head.index("in spread") + len("in spread")
    web = next(x for x in lines if x.startswith("web-cache") and "14869-28642" in x)
    wal = next(x for x in lines if x.startswith("db-wal") and "1195" in x)
    assert web[:at].endswith(" no") and wal[:at].endswith(" -")
