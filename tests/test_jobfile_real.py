"""Job files in both backends (issue 19, deliverable 1): with offsets: fio, an option the model
does not generate (offset_increment spreading two clones) reaches fio in the null-engine stream
and in the real run alike, and every VM's data_clusters predicted equals the measured count."""

import json
from pathlib import Path

import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario

from .conftest import needs_tools

pytestmark = [pytest.mark.real, needs_tools]
JOBS = Path(__file__).resolve().parent.parent / "scenarios" / "jobs"


def test_job_files_in_both_backends(tmp_path: Path, no_leaks: None) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: jobs-real\nimages: [{name: base, virtual_size: 192MiB, synthetic: "
        "{data: [{offset: 0, length: 32MiB}]}}]\n"
        f"workloads: {{strided: {{job_file: {JOBS / 'strided.fio'}, offsets: fio}}}}\n"
        "vms:\n  - {name: strided, image: base, workload: strided}\n"
        f"  - {{name: randw, image: base, workload: {{job_file: "
        f"{JOBS / 'fio-rand-write.fio'}, offsets: fio}}}}\n")
    s = load_scenario(scenario)
    assert s.workloads["strided"].fio_extra == {"offset_increment": "64m"}
    outcome = run_scenario(s, tmp_path / "run", "both")
    comp = outcome.comparison
    assert comp is not None
    dc = comp[(comp.metric == "data_clusters") & comp.entity.str.startswith("vm:")]
    assert sorted(dc.entity) == ["vm:randw", "vm:strided"]
    assert (dc.predicted == dc.measured).all(), dc[["entity", "predicted", "measured"]]
    # two clones 64 MiB apart, 8 MiB of random 4 KiB writes each over 16 MiB: more clusters
    # than one clone's 16 MiB region holds (256 of 64 KiB), so offset_increment reached fio
    strided = dc.set_index("entity").loc["vm:strided"]
    assert strided.measured > 256
    argv = json.loads(next((tmp_path / "run" / "raw").glob("*fio-strided*/argv.json"))
                      .read_text())
    assert "--offset_increment=64m" in argv
    notes = json.loads((tmp_path / "run" / "run.json").read_text())["workload_notes"]
    assert {n["option"] for n in notes["randw"]} == {"name", "filename", "direct", "ioengine"}
