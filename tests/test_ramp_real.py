"""ramp_time and startdelay in both backends (issue 19): the ramp's writes allocate on the real
disk as in the model, and the model's reported writes leave the ramp out as fio's do."""

import json
from pathlib import Path

import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario

from .conftest import needs_tools

pytestmark = [pytest.mark.real, needs_tools]


def test_a_ramp_in_both_backends(tmp_path: Path, no_leaks: None) -> None:
    # 2,048 random 4 KiB writes over 8 MiB at 1,000 a second: about 1,001 in the 1 s ramp
    (tmp_path / "ramp.fio").write_text("[ramp]\nrw=randwrite\nbs=4k\nsize=8m\n"
                                       "rate_iops=1000\nramp_time=1\nstartdelay=500ms\n")
    (tmp_path / "s.yaml").write_text(
        "name: ramp-real\nimages: [{name: base, virtual_size: 256MiB, synthetic: "
        "{data: [{offset: 0, length: 4MiB}]}}]\n"
        "strategy: {kind: qcow2_overlay, cluster_size: 64KiB}\n"
        "workloads: {w: {job_file: ramp.fio, offsets: fio}}\n"
        "vms: [{name: v, image: base, workload: w}]\n")
    outcome = run_scenario(load_scenario(tmp_path / "s.yaml"), tmp_path / "run", "both")
    comp = outcome.comparison
    assert comp is not None
    row = comp[comp.entity == "vm:v"].set_index("metric")
    # every write of the stream, the ramp's too, reached the disk in both
    assert row.loc["data_clusters", "predicted"] == row.loc["data_clusters", "measured"]
    pred = outcome.predicted
    assert pred is not None
    p = pred[pred.entity == "vm:v"].set_index("metric").value
    assert p["write_ios"] + p["ramp_ios"] == 2048
    assert 1000 <= p["ramp_ios"] <= 1002
    # fio's figures leave the ramp out; its ramp, paced at 1,000 a second, holds at most the
    # model's ramp (1,001) and, on a busy machine, a few fewer: the real run reports at least
    # the model's writes and not many more (the ramp's I/Os left out, not a handful of them)
    measured = row.loc["write_ios", "measured"]
    assert p["write_ios"] - 2 <= measured < 2048 - 900, (p["write_ios"], measured)
    argv = json.loads(next((tmp_path / "run" / "raw").glob("*fio-v*/argv.json")).read_text())
    assert "--ramp_time=1s" in argv and "--startdelay=500000us" in argv
