"""The model's fio JSON against a real fio 3.33 run: the same keys, and fio-plot draws both.

fio-plot (PyPI ``fio-plot``, in the test extras) is the tool users read fio's JSON with; it is
run here as a user runs it, headless, on the model's file and a real fio run's file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.fiojson import fio_json
from cowbench.runner import run_scenario
from cowbench.scenario import Workload
from cowbench.tools import which
from sim import simulate

from .clirun import cowbench
from .conftest import needs_tools, small_scenario

pytestmark = [pytest.mark.real, needs_tools]


def real_fio(tmp: Path, wl: Workload, name: str) -> dict[str, Any]:
    """A real fio 3.33 run of ``wl`` on a file in ``tmp`` (libaio, direct), its JSON."""
    target, out = tmp / f"{name}.dat", tmp / f"{name}.json"
    argv = [which("fio"), f"--name={name}", "--ioengine=libaio", "--direct=1",
            f"--filename={target}", "--size=4M", f"--io_size={wl.io_size or 4 << 20}",
            f"--rw={wl.rw}", f"--bs={wl.bs}", f"--iodepth={wl.iodepth}",
            f"--numjobs={wl.numjobs}", f"--rwmixread={wl.rwmixread}", "--output-format=json",
            f"--output={out}"]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    target.unlink()
    raw: dict[str, Any] = json.loads(out.read_text())
    return raw


def key_paths(doc: Any, prefix: str = "") -> set[str]:
    """Every key path of ``doc`` as a JSON Pointer (lists by index), inner nodes included."""
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return set()
    out: set[str] = set()
    for key, value in items:
        out |= {f"{prefix}/{key}"} | key_paths(value, f"{prefix}/{key}")
    return out


def test_every_key_of_a_real_fio_job_is_in_the_model_json(tmp_path: Path) -> None:
    s = small_scenario(workloads={"m": {"rw": "randrw", "bs": "4k", "iodepth": 2,
                                        "io_size": "2MiB"}},
                       vms=[{"name": "a", "image": "img", "workload": "m"}])
    wl = s.workloads["m"]
    real = real_fio(tmp_path, wl, "a")
    model = fio_json(simulate(s), "vm:a", wl)
    real_job = real["jobs"][0]
    assert real_job["read"]["total_ios"] and real_job["write"]["total_ios"]
    assert "99.000000" in real_job["write"]["clat_ns"]["percentile"]
    unknown = set(model["cowbench"]["unknown"])
    mine = key_paths(model)
    # job options are the job's own (fio's engine and target options are the backend's);
    # disk_util is the host disk's, which libaio on a file reports and the real backend's
    # nbd engine does not (its output.json has none): the model's file has none either
    wanted = {p for p in key_paths(real) if not p.startswith(("/jobs/0/job options/",
                                                               "/disk_util"))}
    missing = sorted(p for p in wanted if p not in mine and p not in unknown
                     and not any(p.startswith(u + "/") for u in unknown))
    assert not missing, missing
    assert real["fio version"] == "fio-3.33"


def fio_plot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "fio_plot", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_fio_plot_draws_the_model_beside_a_real_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    s = small_scenario()
    run_scenario(s, run, "sim")
    assert cowbench("fio-json", str(run)).code == 0
    wl = s.workloads["w"]  # VM a's randwrite, iodepth 4
    (tmp_path / "model").mkdir()
    (tmp_path / "real").mkdir()
    shutil.copy(run / "fio-json" / "a.json", tmp_path / "model" / "a.json")
    (tmp_path / "real" / "a.json").write_text(json.dumps(real_fio(tmp_path, wl, "a")))
    common = ["-r", "randwrite", "-d", str(wl.iodepth), "-n", "1"]
    compare = fio_plot("-i", "model", "real", "-T", "model vs real", "-C", *common,
                       "-o", "compare.png", cwd=tmp_path)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    bars = fio_plot("-i", "model", "-T", "model", "-l", *common, "-o", "bars.png", cwd=tmp_path)
    assert bars.returncode == 0, bars.stdout + bars.stderr
    for png in ("compare.png", "bars.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_fio_plot_draws_the_model_logs_beside_real_fio_logs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    s = small_scenario()
    run_scenario(s, run, "sim")
    assert cowbench("fio-json", str(run), "--logs", "--log-avg-msec", "20").code == 0
    wl = s.workloads["w"]
    name = f"randwrite-iodepth-{wl.iodepth}-numjobs-1"  # how fio-plot's -g finds its logs
    (tmp_path / "model").mkdir()
    for kind in ("bw", "iops", "lat"):
        shutil.copy(run / "fio-json" / f"a_{kind}.1.log",
                    tmp_path / "model" / f"{name}_{kind}.1.log")
    (tmp_path / "real").mkdir()
    logs = [f"--write_{k}_log={tmp_path / 'real' / name}" for k in ("bw", "iops", "lat")]
    subprocess.run([which("fio"), "--name=a", "--ioengine=libaio", "--direct=1",
                    f"--filename={tmp_path / 'a.dat'}", "--size=4M", "--rw=randwrite",
                    "--bs=4096", f"--iodepth={wl.iodepth}", "--time_based=1", "--runtime=1s",
                    "--log_avg_msec=20", *logs,
                    "--output-format=json", f"--output={tmp_path / 'a.json'}"],
                   check=True, capture_output=True, timeout=120)
    (tmp_path / "a.dat").unlink()
    for kind in ("bw", "iops", "lat"):
        real_rows = (tmp_path / "real" / f"{name}_{kind}.1.log").read_text().splitlines()
        model_rows = (tmp_path / "model" / f"{name}_{kind}.1.log").read_text().splitlines()
        assert real_rows and model_rows
        # the same columns: time ms, value, direction 1, block size 0 (averaged), priority 0
        for row in (real_rows[0], model_rows[0]):
            assert [c.strip() for c in row.split(",")][2:] == ["1", "0", "0"], (kind, row)
    plot = fio_plot("-i", "model", "real", "-T", "model vs real", "-g", "-t", "bw", "iops",
                    "lat", "-r", "randwrite", "-d", str(wl.iodepth), "-n", "1", "-o",
                    "logs.png", cwd=tmp_path)
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert (tmp_path / "logs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_model_json_has_the_real_run_s_jobs_and_fio_plot_draws_both(
        tmp_path: Path, no_leaks: None) -> None:
    """Issue 19: a VM of two job sections (a writer, then a stonewalled reader) and a VM of
    ``numjobs=2``: the model's fio JSON lists the jobs of the real run's own fio JSON (under
    ``raw/``), in its order, by its names and groupids, each with its I/O count (the jobs are
    bounded by their size: exact); before, one job per VM. A VM whose job file asks for
    ``group_reporting`` gets fio's folded entry, where the real backend asks fio for every
    clone and folds them itself (real.workload.fiogroups). fio-plot draws both files."""
    from cowbench.scenario import load_scenario
    from real.workload.fiogroups import groups

    from .test_fiojobs import CLONES, CLONES_GROUPED, WRITE_THEN_READ

    vms = {"sections": (WRITE_THEN_READ, "write", 1), "clones": (CLONES, "randwrite", 2),
           "grouped": (CLONES_GROUPED, "randwrite", 2)}
    for vm, (job, _, _) in vms.items():
        (tmp_path / f"{vm}.fio").write_text(job)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: jobs\nseed: 3\nimages: [{name: b, virtual_size: 64MiB, synthetic: {data: "
        "[{offset: 0, length: 16MiB}]}}]\nstrategy: {kind: qcow2_overlay, cluster_size: 64KiB}"
        "\nvms:\n" + "".join(f"  - {{name: {vm}, image: b, workload: {{job_file: {vm}.fio}}}}\n"
                             for vm in vms))
    run = tmp_path / "run"
    run_scenario(load_scenario(scenario), run, "both")
    assert cowbench("fio-json", str(run)).code == 0
    # the stonewalled VM's p99s are measured (its stages' summed histograms; each direction
    # here done in one stage: that stage's own p99) and compared; before, none
    comp = pd.read_csv(run / "comparison.csv")
    p99 = comp[(comp.entity == "vm:sections") & comp.metric.str.endswith("_lat_p99_s")]
    assert set(p99.metric) == {"read_lat_p99_s", "write_lat_p99_s"}
    sections = json.loads((next((run / "raw").glob("*-fio-sections")) / "output.json")
                          .read_text())["jobs"]
    for kind in ("read", "write"):
        [own] = [j[kind]["clat_ns"]["percentile"]["99.000000"] for j in sections
                 if j[kind]["total_ios"]]
        got = p99[p99.metric == f"{kind}_lat_p99_s"].measured.item()
        assert got == pytest.approx(own * 1e-9)

    def jobs(doc: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
        return [(j["groupid"], j["read"]["total_ios"], j["write"]["total_ios"]) for j in doc]

    for vm, (_, rw, numjobs) in vms.items():
        model = json.loads((run / "fio-json" / f"{vm}.json").read_text())
        real = json.loads((next((run / "raw").glob(f"*-fio-{vm}")) / "output.json").read_text())
        if vm == "grouped":
            assert jobs(model["jobs"]) == jobs(groups(real["jobs"])) == [(0, 0, 512)]
            assert [j["jobname"] for j in model["jobs"]] == [vm]
        else:
            assert [(j["jobname"], j["groupid"]) for j in model["jobs"]] == [
                (j["jobname"], j["groupid"]) for j in real["jobs"]]
            assert jobs(model["jobs"]) == jobs(real["jobs"])
        for side, doc in (("model", model), ("real", real)):
            (tmp_path / vm / side).mkdir(parents=True)
            (tmp_path / vm / side / f"{vm}.json").write_text(json.dumps(doc))
        common = ["-r", rw, "-d", "2", "-n", str(numjobs)]
        compare = fio_plot("-i", "model", "real", "-T", "model vs real", "-C", *common,
                           "-o", "compare.png", cwd=tmp_path / vm)
        assert compare.returncode == 0, compare.stdout + compare.stderr
        bars = fio_plot("-i", "model", "-T", "model", "-l", *common, "-o", "bars.png",
                        cwd=tmp_path / vm)
        assert bars.returncode == 0, bars.stdout + bars.stderr
        for png in ("compare.png", "bars.png"):
            assert (tmp_path / vm / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (vm, png)
