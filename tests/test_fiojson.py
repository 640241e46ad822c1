"""The model's figures as fio JSON: readable by the same reader that reads real fio output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cowbench.fiojson import fio_json
from cowbench.runner import run_scenario
from real.workload.fio import FioResult
from sim import simulate

from .clirun import cowbench
from .conftest import small_scenario


def test_fio_json_round_trips_through_the_real_fio_reader() -> None:
    s = small_scenario()
    pred = simulate(s)
    for vm in s.vms:
        wl = s.workload_of(vm)
        assert wl is not None
        raw = fio_json(pred, f"vm:{vm.name}", wl)
        job = raw["jobs"][0]
        assert job["job options"]["rw"] == wl.rw and job["job options"]["bs"] == str(wl.bs)
        result = FioResult(raw)
        rows = pred[(pred.entity == f"vm:{vm.name}") & pred.t_s.isna()]
        model = dict(zip(rows.metric, rows.value, strict=True))
        kinds = [k for k in ("read", "write") if f"{k}_iops" in model]
        assert kinds and all(k in job for k in kinds)
        for kind in kinds:
            for metric, value in result.figures(kind).items():
                assert value == pytest.approx(model[metric], rel=1e-6, abs=1e-9), metric
        assert "trim" not in job  # what the model does not know is left out


def test_fio_json_command_writes_one_file_per_vm(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_scenario(small_scenario(), out, "sim")
    proc = cowbench("fio-json", str(out))
    assert proc.code == 0, proc.stderr
    files = sorted(p.name for p in (out / "fio-json").iterdir())
    assert files == ["a.json", "b.json", "c.json"]
    data = json.loads((out / "fio-json" / "a.json").read_text())
    assert data["jobs"][0]["write"]["total_ios"] == 1024  # 4 MiB of 4 KiB writes
    bad = cowbench("fio-json", str(tmp_path))
    assert bad.code == 2 and "Traceback" not in bad.stderr
