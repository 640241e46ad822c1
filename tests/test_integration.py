"""Both backends end to end on a small scenario, with real qemu-img, qemu-nbd and fio."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import real.workload.fio
from cowbench.compare import COMPARISON_COLUMNS
from cowbench.errors import RunFailed
from cowbench.records import COLUMNS
from cowbench.runner import run_scenario

from .conftest import needs_tools, small_scenario

pytestmark = [pytest.mark.real, needs_tools]


def test_small_scenario_both_backends(tmp_path: Path, no_leaks: None) -> None:
    out = tmp_path / "run"
    outcome = run_scenario(small_scenario(), out, "both")
    for name in ("run.json", "scenario.yaml", "predicted.parquet", "measured.parquet",
                 "comparison.csv", "raw"):
        assert (out / name).exists(), name
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "ok" and meta["completed"] == ["sim", "real", "compare", "drift"]
    assert meta["tools"]["fio"].startswith("fio-") and meta["host"]["cpu_count"] >= 1
    assert not (out / "work").exists(), "images are removed unless keep_images"
    for name in ("predicted", "measured"):
        df = pd.read_parquet(out / f"{name}.parquet")
        assert list(df.columns) == COLUMNS
    comp = pd.read_csv(out / "comparison.csv")
    assert list(comp.columns) == COMPARISON_COLUMNS
    by = comp.set_index(["entity", "metric"])
    # deterministic offsets (sequential writer, reader, base, cache): file sizes exact, and
    # allocation within 0.1% (ext4 may add an extent-tree block when free space is fragmented)
    for entity in ("vm:b", "vm:c", "image:img", "cache:host1"):
        assert by.loc[(entity, "file_bytes"), "rel_error"] == 0, entity
        assert abs(by.loc[(entity, "allocated_bytes"), "rel_error"]) <= 0.001, entity
    assert by.loc[("vm:c", "data_clusters"), "measured"] == 6 * 16 + 0  # 6 MiB from 1 MiB
    assert by.loc[("vm:b", "data_clusters"), "measured"] == 0
    # the random writer: fio's own stream vs the model's; the measurement must fall within
    # the model's spread over independent streams (4 sigma)
    spread = _model_spread("a", "data_clusters")
    measured = by.loc[("vm:a", "data_clusters"), "measured"]
    predicted = by.loc[("vm:a", "data_clusters"), "predicted"]
    assert abs(measured - predicted) <= 4 * spread + 1, (measured, predicted, spread)
    m = outcome.measured
    assert m is not None
    io = comp[comp.metric.isin(["write_ios", "read_ios"])]
    assert (io.rel_error == 0).all(), "both backends issue exactly io_size / bs I/Os"
    raw_dirs = sorted(p.name for p in (out / "raw").iterdir())
    assert any("fio-a" in d for d in raw_dirs) and any("qemu-img-check" in d for d in raw_dirs)


def _model_spread(vm: str, metric: str, n: int = 12) -> float:
    from sim import simulate

    base = small_scenario()
    wl = {k: v.model_copy(update={"randrepeat": False}) for k, v in base.workloads.items()}
    values = []
    for seed in range(n):
        s = base.model_copy(update={"workloads": wl, "seed": seed})
        df = simulate(s, seed)
        values.append(df[(df.entity == f"vm:{vm}") & (df.metric == metric)].value.iloc[0])
    return float(pd.Series(values).std())


def test_failing_fio_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           no_leaks: None) -> None:
    original = real.workload.fio.fio_options
    monkeypatch.setattr(real.workload.fio, "fio_options",
                        lambda wl, cap=None: [*original(wl, cap), "--no_such_option=1"])
    out = tmp_path / "run"
    with pytest.raises(RunFailed, match="fio"):
        run_scenario(small_scenario(), out, "real")
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and "fio" in meta["reason"]
    assert not (out / "work").exists()
    assert not list(out.glob("**/*.tmp")) and not list(out.glob("**/.*.tmp"))


def test_keep_images_keeps_the_nova_layout(tmp_path: Path, no_leaks: None) -> None:
    s = small_scenario(real={"keep_images": True})
    out = tmp_path / "run"
    run_scenario(s, out, "real")
    instances = out / "work" / "hosts" / "host1" / "instances"
    bases = list((instances / "_base").iterdir())
    assert len(bases) == 1 and len(bases[0].name) == 40  # sha1 of the image id
    disks = sorted(instances.glob("*/disk"))
    assert len(disks) == 3
    info = json.loads((disks[0].parent / "disk.info").read_text())
    assert info == {str(disks[0]): "qcow2"}
