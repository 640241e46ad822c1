"""A time-based job's I/O count is bounded before the model runs (finding 5 of the SRE test).

``runtime: 100000000000h`` passed validate, and ``run --backend sim`` then sat in the model's
event loop, its memory growing, until killed. A time-based job repeats until its time is up,
so its I/Os are at most its time times the fastest rate the model could give it
(``cowbench.bounds.timed_ios``); at 32 bytes an I/O that must fit the model's memory budget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.bounds import fastest_io_s, timed_ios
from cowbench.errors import ScenarioError
from cowbench.scenario import parse_scenario

from .clikit import assert_one_line, cli
from .conftest import small_dict


def _timed(runtime: str, count: int = 1, **job: Any) -> dict[str, Any]:
    d = small_dict()
    d["workloads"]["t"] = {"rw": "randwrite", "bs": "4k", "iodepth": 1, "runtime": runtime,
                           "time_based": True, **job}
    d["vms"] = [{"name": "v", "image": "img", "workload": "t", "count": count}]
    return d


def test_a_runtime_of_1e11_hours_is_refused_before_the_model_runs(tmp_path: Path) -> None:
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(_timed("100000000000h")))
    t0 = time.monotonic()
    r = cli("run", str(s), "--backend", "sim", "--uncalibrated", "--out", str(tmp_path / "r"))
    assert_one_line(r, 2, "workloads.t.runtime", "device.metadata_latency_s", "8.0 GiB")
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "r").exists()
    assert_one_line(cli("validate", str(s)), 2, "workloads.t.runtime")


def test_the_bound_is_the_fastest_rate_of_the_uncalibrated_device() -> None:
    """1 I/O in flight, each at least 20 us (device.metadata_latency_s): 50,000 a second; 16
    in flight are held to the host queue's 4 channels: 200,000 a second."""
    s = parse_scenario(_timed("10s"))
    assert fastest_io_s(s, s.vms[0]) == (20e-6, 4 / 20e-6, "device.metadata_latency_s")
    assert timed_ios(s)["t"][0] == pytest.approx(50_000 * 11)
    s = parse_scenario(_timed("10s", iodepth=16))
    assert timed_ios(s)["t"][0] == pytest.approx(200_000 * 11)


def test_jobs_are_counted_together() -> None:
    """One VM of an hour's job fits (1.8e8 I/Os, 5.4 GiB); ten of them do not."""
    parse_scenario(_timed("1h"))
    with pytest.raises(ScenarioError) as err:
        parse_scenario(_timed("1h", count=10))
    assert err.value.problems[0][0] == "workloads.t.runtime"


def test_rate_iops_bounds_a_long_job() -> None:
    s = parse_scenario(_timed("1000h", rate_iops=10))
    assert timed_ios(s)["t"][0] == pytest.approx(10 * (1000 * 3600 + 1))


def test_a_device_whose_io_takes_no_time_cannot_bound_a_time_based_job() -> None:
    d = _timed("1s")
    d["device"] = {"metadata_latency_s": 0}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert err.value.problems[0][0] == "workloads.t.runtime"
    d["workloads"]["t"] = {"rw": "randwrite", "bs": "4k", "io_size": "1MiB"}
    parse_scenario(d)  # a job bounded by its bytes is not


def test_the_shipped_time_based_scenarios_still_pass() -> None:
    root = Path(__file__).resolve().parents[1]
    for name in ("io-density.yaml", "io-holdout.yaml"):
        r = cli("validate", str(root / "scenarios" / name))
        assert r.code == 0, r.err


def test_each_run_of_the_timeline_counts() -> None:
    """An hour's job fits once; run nine more times by the timeline, it does not."""
    d = _timed("1h")
    d["timeline"] = {"events": [{"t": 7200 * k, "op": "run", "vm": "v"} for k in range(1, 10)]}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert err.value.problems[0][0] == "workloads.t.runtime"


def test_validate_counts_a_time_based_job_by_its_runtime_not_its_size(tmp_path: Path) -> None:
    """`cowbench validate`'s memory-and-time line counts a time-based job by the I/Os its run
    is bounded by (:func:`timed_ios`), not by its bytes: an hour of 4 KiB writes on a 1 GiB
    disk is 1.8e8 I/Os (5.4 GiB, 30 min), a second of them on a 64 GiB disk 1e5, however many
    blocks its region has."""
    def line(runtime: str, size: str) -> str:
        d = _timed(runtime)
        d["images"][0]["virtual_size"] = size
        d["vms"][0]["root_size"] = size
        path = tmp_path / f"{runtime}-{size}.yaml"
        path.write_text(yaml.safe_dump(d))
        r = cli("validate", str(path))
        assert r.code == 0, r
        return r.out.strip().splitlines()[-1]

    assert line("1h", "1GiB") == "expected: about 5.4 GiB of memory and 30 min in the model"
    assert line("30min", "1GiB") == "expected: about 2.7 GiB of memory and 15 min in the model"
    # four times the disk: the same I/Os (its maps' few more MiB are lost in the rounding)
    assert line("1h", "4GiB") == "expected: about 5.4 GiB of memory and 30 min in the model"
    assert not line("1s", "64GiB").startswith("expected")  # 1e5 I/Os: a second of model
