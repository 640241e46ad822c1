"""``run --repeat N`` and the drift probes for real (qemu-img, qemu-nbd, fio), and the README's
commands for them exactly as written.

The profiles here are made by hand (the model's parameters of tests/test_perf.py, probes named
as the quick matrix names them, 0.2 s each on a 128 MiB image) so that measuring their probes
again takes seconds, not the minute of a calibration."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from cowbench.profile import Probe, Profile, profile_json
from cowbench.profile_cache import fingerprint, store
from cowbench.spread import FLOOR, SPREAD_COLUMNS
from cowbench.store import now_iso
from sim.perf.perf import FIT_VERSION

from .clirun import cowbench, cowbench_line
from .conftest import needs_tools, small_dict
from .test_cli import write
from .test_perf import TRUE

pytestmark = [pytest.mark.real, needs_tools]

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETTINGS = {"matrix": "quick", "runtime_s": 0.2, "ramp_s": 0.05, "rounds": 2,
            "span_bytes": 128 << 20, "max_exports": 4}


def probe(name: str, target: str, rw: str, bs: int, iodepth: int, exports: int = 1,
          depth: int = 0) -> Probe:
    return Probe(name=name, target=target, rw=rw, bs=bs, iodepth=iodepth,  # type: ignore[arg-type]
                 exports=exports, depth=depth, runtime_s=0.4, ios=400, iops=2000.0,
                 bw_bytes_per_s=2000.0 * bs, lat_mean_s=5e-4, lat_p99_s=1e-3, rounds=2,
                 iops_min=1900.0, iops_max=2100.0)


PROBES = [probe("raw-randread-4k-qd1-x1", "raw", "randread", 4096, 1),
          probe("raw-randread-64k-qd32-x1", "raw", "randread", 65536, 32),
          probe("raw-randwrite-4k-qd32-x1", "raw", "randwrite", 4096, 32),
          probe("raw-randread-4k-qd4-x4", "raw", "randread", 4096, 4, exports=4),
          probe("cow-write-4k-qd1-x1", "cow", "write", 4096, 1),
          probe("cow-write-4k-qd8-x1", "cow", "write", 4096, 8),
          probe("chain-d1-randread-4k-qd1-x1", "chain", "randread", 4096, 1, depth=1)]


def a_profile(where: Path, fp: dict[str, object] | None = None) -> Profile:
    return Profile(created="2026-12-02T00:00:00+00:00", duration_s=1.0, matrix="quick",
                   dir=str(where), host={}, tools={}, settings=SETTINGS, probes=PROBES,
                   params=TRUE, fingerprint=fp, fit_version=FIT_VERSION)


def just_made(prof: Profile) -> Profile:
    """``prof`` as a calibration that just ended made it: a run does not check it against the
    machine before using it (``cowbench.profile_check.RECHECK_AFTER_S``), as it would a
    hand-made profile it finds in the cache (and make it again)."""
    return prof.model_copy(update={"created": now_iso()})


def test_repeat_runs_the_real_backend_n_times_and_measures_the_drift(
        tmp_path: Path, no_leaks: None) -> None:
    """As a calibration that just ended left its profile (``just_made``): the run does not
    first check it against the machine (tests/test_profile_check.py does), so the only
    probes measured are the drift's, after the runs."""
    prof = tmp_path / "p.json"
    prof.write_text(profile_json(just_made(a_profile(tmp_path))))
    s = write(tmp_path, small_dict(real={"keep_images": True}))
    out = tmp_path / "run"
    ran = cowbench("run", str(s), "--profile", str(prof), "--repeat", "2", "--out", str(out))
    assert ran.code == 0, ran.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "ok"
    runs = meta["real_runs"]
    assert (runs["asked"], runs["done"]) == (2, 2)
    # the machine's cores over each run: how busy, how much the hypervisor took
    assert [m["run"] for m in runs["machine"]] == [1, 2]
    for m in runs["machine"]:
        assert m["wall_s"] > 0 and 0 < m["busy_share"] <= 1 and 0 <= m["steal_share"] <= 1
    assert meta["completed"] == ["sim", "real", "compare", "drift"]
    assert [r["ok"] for r in meta["integrity"]["runs"]] == [True, True]
    measured = pd.read_parquet(out / "measured.parquet")
    assert sorted(measured.replication.unique()) == [0, 1]
    assert measured.groupby("replication").size().nunique() == 1  # every run, every figure
    comp = pd.read_csv(out / "comparison.csv").set_index(["entity", "metric"])
    spread = pd.read_csv(out / "spread.csv")
    assert list(spread.columns) == SPREAD_COLUMNS and (spread.runs == 2).all()
    w = measured[(measured.entity == "vm:a") & (measured.metric == "write_iops")].value
    row = spread.set_index(["entity", "metric"]).loc[("vm:a", "write_iops")]
    assert comp.loc[("vm:a", "write_iops"), "measured"] == pytest.approx(w.mean())
    assert row.spread == pytest.approx((w.max() - w.min()) / w.mean())
    assert row.within_spread == float(abs(row.rel_error) <= max(row.spread, FLOOR))
    # fresh disks each time: both runs allocated the same clusters for the sequential writer
    c = measured[(measured.entity == "vm:c") & (measured.metric == "data_clusters")].value
    assert list(c) == [96.0, 96.0]
    drift = meta["drift"]
    assert drift["measured"] is True and drift["profile"] == str(prof)
    by = {r["probe"]: r for r in drift["probes"]}
    assert {n: r["stands_for"] for n, r in by.items()} == {
        "cow-write-4k-qd8-x1": ["a"], "cow-write-4k-qd1-x1": ["c"],
        "chain-d1-randread-4k-qd1-x1": ["b"]}
    for r in by.values():
        assert r["iops"] > 0 and r["iops_change"] == pytest.approx(r["iops"] / 2000 - 1,
                                                                   abs=1e-4)
    assert drift["median_abs_change"]["iops"] is not None and drift["duration_s"] < 60
    assert "the mean of 2 real runs" in ran.stdout and "within" in ran.stdout
    assert "drift since the calibration: 3 probe(s)" in ran.stdout
    assert not list(out.glob(".cowbench-calibrate-*"))
    # keep_images keeps the last run's tree only: the first run's was removed for the second
    assert sorted(p.name for p in (out / "work").iterdir()) == ["glance", "hosts"]
    assert len(list((out / "work" / "hosts" / "host1" / "instances").glob("*/disk"))) == 3
    shown = cowbench("show", str(out))
    assert shown.code == 0 and "drift since the calibration" in shown.stdout
    assert "the mean of 2 real runs" in shown.stdout


def test_a_run_without_a_profile_file_records_why_no_drift(tmp_path: Path,
                                                           no_leaks: None) -> None:
    s = write(tmp_path, small_dict())
    out = tmp_path / "run"
    ran = cowbench("run", str(s), "--uncalibrated", "--out", str(out))
    assert ran.code == 0, ran.stderr
    drift = json.loads((out / "run.json").read_text())["drift"]
    assert drift["measured"] is False and "no calibration profile file" in drift["reason"]
    assert "comparison from one real run" in ran.stdout
    assert not (out / "spread.csv").exists()


def readme_command(prefix: str) -> str:
    """The README's command line that starts with ``prefix`` (in a code block)."""
    found = re.findall(rf"^{re.escape(prefix)}.*$", README, re.M)
    assert found, f"the README shows a command starting {prefix!r}"
    return str(found[0]).strip()


@pytest.fixture
def in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the repository's scenarios and an empty results/."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    (tmp_path / "results").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_as_the_readme_writes_it(in_a_checkout: Path, no_leaks: None) -> None:
    line = readme_command("cowbench calibrate --check ")
    profile = Path(line.split()[3])
    profile.write_text(profile_json(a_profile(in_a_checkout / "results")))
    ran = cowbench_line(line)
    assert ran.code == 0, ran.stderr
    for name in ("raw-randread-4k-qd1-x1", "raw-randread-64k-qd32-x1",
                 "raw-randwrite-4k-qd32-x1", "cow-write-4k-qd8-x1", "raw-randread-4k-qd4-x4"):
        assert name in ran.stdout
    assert "drift since the calibration: 5 probe(s)" in ran.stdout
    assert sorted(p.name for p in (in_a_checkout / "results").iterdir()) == [profile.name]


@pytest.mark.slow
def test_repeat_as_the_readme_writes_it(in_a_checkout: Path, no_leaks: None) -> None:
    """`cowbench run scenarios/quickstart.yaml --repeat 3 ...` with a cached profile of this
    storage (so no calibration runs first)."""
    line = readme_command("cowbench run scenarios/quickstart.yaml --repeat ")
    out = Path(line.split("--out ")[1].split()[0])
    store(just_made(a_profile(in_a_checkout, fingerprint(out / "work"))))
    ran = cowbench_line(line)
    assert ran.code == 0, ran.stderr
    meta = json.loads((out / "run.json").read_text())
    runs = meta["real_runs"]
    assert (runs["asked"], runs["done"], len(runs["machine"])) == (3, 3, 3)
    assert meta["drift"]["measured"] is True
    assert "the mean of 3 real runs" in ran.stdout
    assert (pd.read_csv(out / "spread.csv").runs == 3).all()
    assert os.path.getsize(out / "comparison.csv") > 0


def test_kill_9_while_the_drift_probes_run_leaves_nothing_after_gc(
        tmp_path: Path, private_tmp: Path, lease_registry: Path) -> None:
    """The probes' private directory is in the run's lease: `cowbench gc` removes it. The
    profile is as a calibration that just ended left it (``just_made``): the run does not
    check it against the machine first (``cowbench.profile_check``, in a probes' directory of
    its own beside the run's, 2 rounds of these 3 s probes), so the only probes are the
    drift's, after the real run, in the run directory: the ones this test kills."""
    import signal
    import subprocess
    import sys
    import time

    slow = just_made(a_profile(tmp_path)).model_copy(
        update={"settings": {**SETTINGS, "runtime_s": 3.0}})
    prof = tmp_path / "p.json"
    prof.write_text(profile_json(slow))
    s, out = write(tmp_path, small_dict()), tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "run", str(s), "--profile",
                             str(prof), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(".cowbench-calibrate-*")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the drift probes never started"
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert json.loads((out / "run.json").read_text())["status"] == "running"
        assert list(out.glob(".cowbench-calibrate-*")), "killed after the probes' images went"
        gc = cowbench("gc")
        assert gc.code == 0 and "abandoned" in gc.stdout, gc.stderr
        assert not list(out.glob(".cowbench-calibrate-*"))
        assert json.loads((out / "run.json").read_text())["status"] == "abandoned"
        assert list(lease_registry.iterdir()) == []
        from .conftest import processes_mentioning

        assert not processes_mentioning(out, f"/proc/{proc.pid}/fd/")
    finally:
        if proc.poll() is None:
            proc.kill()
        cowbench("gc")


def test_a_repeat_whose_second_run_fails_keeps_the_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    """The real runs done before one that fails keep their records (measured.parquet,
    run.json's ``real_runs.kept``); they were lost with the run (tests/test_fault_interrupt.py
    has the same for an interrupt)."""
    from cowbench.backends import get_backend
    from cowbench.errors import ToolError

    real = get_backend("real")
    execute, calls = real.execute, []

    def second_fails(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise ToolError(["fio"], 1, "", "the second run's fio failed")
        return execute(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(real, "execute", second_fails)
    s = write(tmp_path, small_dict())
    out = tmp_path / "run"
    ran = cowbench("run", str(s), "--backend", "real", "--repeat", "3", "--out", str(out))
    assert ran.code == 1 and "the second run's fio failed" in ran.stderr, ran.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and "real" not in meta["completed"]
    runs = meta["real_runs"]
    assert (runs["asked"], runs["done"], runs["kept"]) == (3, 1, "measured.parquet"), runs
    assert "the 1 real run(s) done of 3 are kept in measured.parquet" in ran.stderr, ran.stderr
    measured = pd.read_parquet(out / "measured.parquet")
    assert sorted(measured.replication.unique()) == [0]
    assert {"vm:a", "vm:b", "vm:c"} <= set(measured.entity)
