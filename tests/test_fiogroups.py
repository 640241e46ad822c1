"""fio's reporting groups folded from its per-clone JSON (``real.workload.fiogroups``): the real
backend reads every clone's count, and the VM's figures stay those ``group_reporting`` gives."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from real.workload.fio import FioResult
from real.workload.fiogroups import groups, latency, percentiles

from .conftest import needs_tools


def _stat(samples: list[int]) -> dict[str, Any]:
    a = np.asarray(samples, dtype=float)
    bins: dict[str, int] = {}
    for v in samples:
        bins[str(v)] = bins.get(str(v), 0) + 1
    return {"min": int(a.min()), "max": int(a.max()), "mean": float(a.mean()),
            "stddev": float(a.std(ddof=1)), "N": len(samples), "bins": bins,
            "percentile": {"50.000000": 0, "99.000000": 0}}


def _clone(gid: int, ios: int, runtime: int, lat: list[int]) -> dict[str, Any]:
    d = {"total_ios": ios, "io_bytes": ios * 4096, "runtime": runtime, "clat_ns": _stat(lat)}
    return {"jobname": "v", "groupid": gid, "read": d}


def test_clones_of_a_group_add_up_as_group_reporting_does() -> None:
    """I/Os and bytes add up, the runtime is the longest clone's, IOPS and bandwidth are
    over it; the latency's mean, spread and percentiles are those of all samples."""
    a, b = [100, 100, 200, 300], [100, 400, 400, 400, 400, 500]
    jobs = [_clone(0, 4, 1000, a), _clone(0, 6, 1500, b), _clone(1, 3, 10, [7, 8, 9])]
    got = groups(jobs)
    assert len(got) == 2 and got[1] is jobs[2]  # a group of one clone: as fio wrote it
    d = got[0]["read"]
    assert (d["total_ios"], d["runtime"], d["io_bytes"]) == (10, 1500, 40960)
    assert d["iops"] == pytest.approx(10 / 1.5) and d["bw_bytes"] == 40960 * 1000 // 1500
    every = np.asarray(a + b, dtype=float)
    lat = d["clat_ns"]
    assert lat["mean"] == pytest.approx(every.mean())
    assert lat["stddev"] == pytest.approx(every.std(ddof=1))
    assert (lat["min"], lat["max"], lat["N"]) == (100, 500, 10)
    # 50%: the 5th of 10 samples; 99%: the 10th (fio: the first bin reaching the share)
    assert lat["percentile"] == {"50.000000": 300, "99.000000": 500}


def test_a_model_file_of_one_job_reads_as_before() -> None:
    job = _clone(0, 4, 1000, [100, 100, 200, 300])
    job["read"]["iops"], job["read"]["bw_bytes"] = 4.0, 16384
    figs = FioResult({"jobs": [job]}).figures("read")
    assert figs["read_ios"] == 4 and figs["read_iops"] == 4.0


def test_groups_run_in_turn_give_the_p99_of_all_their_ios() -> None:
    """A VM whose jobs run in turn (``stonewall``: two groups): its p99 is that of all its
    I/Os, from the groups' summed histograms (before: none, and the comparison dropped the
    model's); a group without a histogram (a model's file) leaves it out."""
    first, then = [100] * 98 + [900, 900], [200] * 50 + [700] * 50
    jobs = [_clone(0, 100, 1000, first), _clone(1, 100, 1000, then)]
    figs = FioResult({"jobs": jobs}).figures("read")
    # 200 samples: the 198th in order is a 700 (then's), not first's 900 nor then's p99 alone
    assert figs["read_lat_p99_s"] == pytest.approx(700e-9)
    assert figs["read_ios"] == 200
    del jobs[1]["read"]["clat_ns"]["bins"]
    assert "read_lat_p99_s" not in FioResult({"jobs": jobs}).figures("read")


def test_no_samples_is_fios_empty_statistic() -> None:
    assert latency([{"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}])["N"] == 0


def _fio(tmp: Path, name: str, *extra: str) -> dict[str, Any]:
    out = tmp / f"{name}.json"
    subprocess.run(["fio", "--ioengine=null", *extra, "--name=a", "--rw=randread", "--bs=4k",
                    "--size=2m", "--numjobs=3", "--name=b", "--stonewall", "--rw=randwrite",
                    "--bs=8k", "--size=1m", "--numjobs=2", "--output-format=json+",
                    f"--output={out}"], check=True, capture_output=True, timeout=60)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@needs_tools
@pytest.mark.real
def test_fios_own_percentiles_and_group_counts(tmp_path: Path) -> None:
    """On real fio 3.33 output: each clone's percentiles come back from its histogram by the
    same rule, and the folded groups count what fio's ``group_reporting`` counts."""
    clones = _fio(tmp_path, "clones")
    assert len(clones["jobs"]) == 5
    for job in clones["jobs"]:
        for kind in ("read", "write"):
            lat = job[kind]["clat_ns"]
            if lat["N"]:
                bins = {int(v): int(c) for v, c in lat["bins"].items()}
                assert percentiles(bins, lat["N"], list(lat["percentile"])) == lat["percentile"]
    grouped = _fio(tmp_path, "grouped", "--group_reporting=1")["jobs"]
    folded = groups(clones["jobs"])
    assert len(folded) == len(grouped) == 2
    for mine, fios in zip(folded, grouped, strict=True):
        for kind in ("read", "write"):
            for key in ("total_ios", "io_bytes"):
                assert mine[kind][key] == fios[kind][key], (kind, key)
            assert mine[kind]["clat_ns"]["N"] == fios[kind]["clat_ns"]["N"]
    assert FioResult(clones).figures("read")["read_ios"] == 3 * 512
    assert FioResult(clones).figures("write")["write_ios"] == 2 * 128


def test_a_runtime_under_a_second_reaches_fio_whole() -> None:
    """fio reads no fraction (``--runtime=0.2s`` is 0: a time-based job refuses to start and
    fio still exits 0): sub-second times go in microseconds."""
    from cowbench.fiojob import fio_time

    assert [fio_time(x) for x in (3.0, 60.0, 0.2, 1.5)] == ["3s", "60s", "200000us",
                                                            "1500000us"]
    # 100 days in whole seconds: fio read '8.64e+06s' as 8 s (and the run said ok)
    assert fio_time(100 * 86400.0) == "8640000s"
