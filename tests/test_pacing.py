"""fio's ``rate_iops`` in the model: each direction on its own schedule, per clone.

fio 3.33 caps reads, writes and trims separately; one value caps each of them, so a read/write
mix at ``rate_iops=300`` issues 300 reads AND 300 writes a second whatever its ``rwmixread``
(the model paced their total at 300 and predicted half of each: 450 reads and 450 writes in
3 s where fio issued 899 and 900, data_clusters 446 of 876)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.errors import UsageError
from cowbench.scenario import parse_scenario
from sim import simulate

from .conftest import needs_tools

#: fio 3.33's null engine, ``--rw=randrw --bs=8k --size=1g --time_based --runtime=2``: reads
#: and writes one clone issued (rwmixread, rate_iops) -> (reads, writes), measured here.
NULL_2S = {(10, "300"): (601, 600), (30, "300"): (600, 600), (50, "300"): (601, 600),
           (70, "300"): (600, 600), (90, "300"): (601, 600),
           (70, "300,100"): (601, 200), (30, "300,100"): (600, 201),
           (70, "100,300"): (200, 600), (10, "100,300"): (200, 601),
           (0, "300"): (0, 601), (100, "300"): (601, 0), (0, "100,50"): (0, 100)}


def _scenario(**wl: Any) -> Any:
    return parse_scenario({
        "name": "paced", "seed": 1,
        "images": [{"name": "b", "virtual_size": "1GiB",
                    "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"w": {"rw": "randrw", "bs": "8k", "time_based": True, "runtime": 2,
                            "offsets": "model", **wl}},
        "vms": [{"name": "v", "image": "b", "workload": "w"}]})


def _ios(records: pd.DataFrame) -> tuple[int, int]:
    v = records.set_index(["entity", "metric"]).value
    return (int(v.get(("vm:v", "read_ios"), 0)), int(v.get(("vm:v", "write_ios"), 0)))


@pytest.mark.parametrize(("mix", "rate"), list(NULL_2S), ids=lambda x: str(x))
def test_each_direction_is_paced_at_its_own_rate_as_fios_null_engine(mix: int,
                                                                     rate: str) -> None:
    """Per direction, the model's count in 2 s is fio's null-engine count, within one I/O
    (fio issues the first of each direction at 0 s), for mixes from 0 to 100% reads and the
    three forms of rate_iops; a direction the mix never picks issues nothing, and the other
    one does not take its share."""
    reads, writes = _ios(simulate(_scenario(rwmixread=mix, rate_iops=rate)))
    fio_reads, fio_writes = NULL_2S[(mix, rate)]
    assert abs(reads - fio_reads) <= 1 and abs(writes - fio_writes) <= 1, (reads, writes)


def test_every_clone_is_paced_on_its_own() -> None:
    """numjobs=2 at rate_iops=300 (fio's null engine: 601/600 and 600/600 reads/writes)."""
    reads, writes = _ios(simulate(_scenario(rwmixread=70, rate_iops=300, numjobs=2)))
    assert abs(reads - 1200) <= 2 and abs(writes - 1200) <= 2


def test_an_uncapped_direction_takes_what_the_capped_one_leaves() -> None:
    """``rate_iops=,50``: fio caps writes at 50 a second and issues reads as fast as it can
    (fio's null engine: 100 writes and 8 million reads in 2 s); a rate-capped mix at
    rwmixread=10 still issues its reads in between."""
    reads, writes = _ios(simulate(_scenario(rwmixread=10, rate_iops=",50")))
    assert abs(writes - 100) <= 1 and reads > 20 * writes


@pytest.mark.parametrize(("given", "kept", "rates"), [
    (300, 300, (300, 300, 300)), ("300", 300, (300, 300, 300)),
    ("100,50", "100,50,50", (100, 50, 50)), ("100,", "100,,", (100, 0, 0)),
    (",50", ",50,50", (0, 50, 50)), ("100,50,20", "100,50,20", (100, 50, 20))])
def test_rate_iops_takes_fios_forms(given: object, kept: object,
                                    rates: tuple[int, int, int]) -> None:
    wl = _scenario(rwmixread=70, rate_iops=given).workloads["w"]
    assert wl.rate_iops == kept and wl.rates == rates


@pytest.mark.parametrize("bad", ["0", "0,0", "a,5", "1,2,3,4", "-5", True])
def test_a_rate_that_caps_nothing_or_is_not_a_number_is_refused(bad: object) -> None:
    with pytest.raises(UsageError, match="rate_iops"):
        _scenario(rate_iops=bad)


def _run_fio_null(mix: int, rate: str, tmp: Path) -> tuple[int, int]:
    out = tmp / f"null-{mix}.json"
    subprocess.run(["fio", "--name=x", "--ioengine=null", "--rw=randrw", f"--rwmixread={mix}",
                    "--bs=8k", "--size=1g", f"--rate_iops={rate}", "--time_based",
                    "--runtime=2", "--output-format=json", f"--output={out}"],
                   check=True, capture_output=True)
    job = json.loads(out.read_text())["jobs"][0]
    return job["read"]["total_ios"], job["write"]["total_ios"]


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize(("mix", "rate"), [(20, "300"), (70, "200,50")])
def test_the_model_counts_what_fios_null_engine_issues(tmp_path: Path, mix: int,
                                                       rate: str) -> None:
    """The same against fio itself (the table above, measured again on this machine)."""
    fio_reads, fio_writes = _run_fio_null(mix, rate, tmp_path)
    reads, writes = _ios(simulate(_scenario(rwmixread=mix, rate_iops=rate)))
    assert abs(reads - fio_reads) <= 2 and abs(writes - fio_writes) <= 2


@needs_tools
@pytest.mark.real
def test_a_paced_mix_predicts_the_real_runs_count_of_each_direction(tmp_path: Path) -> None:
    """Through qemu-nbd, ``rate_iops=100`` on a 70% read mix for 2 s: fio issues about 200
    reads and 200 writes, and so does the model (offsets: auto, its count predicted by the
    model's own pacing): it had 100 and 100."""
    from cowbench.runner import run_scenario
    from cowbench.store import read_run

    s = _scenario(rwmixread=70, rate_iops=100, offsets="auto")
    out = tmp_path / "run"
    run_scenario(s, out, "both")
    comp = pd.read_csv(out / "comparison.csv").set_index(["entity", "metric"])
    for metric in ("read_ios", "write_ios", "data_clusters"):
        row = comp.loc[("vm:v", metric)]
        assert row.predicted == pytest.approx(row.measured, rel=0.1), metric
    assert read_run(out)["offsets"]["v"]["at_measured_ios"]["predicted_ios_per_clone"] \
        == pytest.approx(400, abs=2)


def test_a_job_files_rate_iops_takes_fios_forms(tmp_path: Path) -> None:
    """``rate_iops=100,50`` in a job file was refused as not a whole number; fio's 0 (no cap)
    leaves the workload unpaced, as ``runtime=0`` leaves it untimed; four values are refused
    with the key path, exit 2."""
    from cowbench.scenario import load_scenario

    from .clirun import cowbench
    from .test_jobfile_fio import _scenario as _job_scenario

    p = _job_scenario(tmp_path, "[j]\nrw=randrw\nsize=8m\nrate_iops=100,50\n")
    assert load_scenario(p).workloads["w"].rates == (100, 50, 50)
    p = _job_scenario(tmp_path, "[j]\nrw=randrw\nsize=8m\nrate_iops=0\n")
    assert load_scenario(p).workloads["w"].rate_iops is None
    ran = cowbench("validate", str(_job_scenario(tmp_path, "[j]\nrw=randrw\nrate_iops=1,2,3,4\n")))
    assert ran.code == 2 and "workloads.w.job_file[j].rate_iops: rate_iops takes at most 3 " \
        "values" in ran.stderr and "Traceback" not in ran.stderr
    ran = cowbench("validate", str(_job_scenario(tmp_path, "", "{rw: randrw, rate_iops: 'x,5'}")))
    assert ran.code == 2 and "workloads.w.rate_iops" in ran.stderr, ran.stderr
