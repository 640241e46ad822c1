"""The CPU of each VM's processes over a workload run (``issuer_cpu_s``: its fio, every
process; ``server_cpu_s``: its qemu-nbd, every thread), as the real backend measures it; the
model's side is pinned in tests/test_perf_sched.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cowbench.runner import run_scenario
from cowbench.tools import proc_cpu_s, proc_tree_cpu_s

from .conftest import needs_tools, small_dict, small_scenario

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_an_exited_child_counts_the_descendants_it_waited_for() -> None:
    """Read between ``waitid(WNOWAIT)`` and the reap: the child's own CPU and its children's
    (0.3 s burnt by a grandchild, 0.1 s by the child itself); its own figure alone has only
    the 0.1 s."""
    grandchild = BURN.format(s=0.3)
    code = (f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {grandchild!r}])\n"
            + BURN.format(s=0.1))
    child = subprocess.Popen([sys.executable, "-c", code])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    try:
        whole, own = proc_tree_cpu_s(child.pid), proc_cpu_s(child.pid)
    finally:
        assert child.wait() == 0
    # each of the four times truncated to a tick (10 ms); starting two Pythons costs some
    assert 0.36 <= whole <= 0.4 + 0.5
    assert 0.08 <= own <= whole - 0.26


@pytest.mark.real
@needs_tools
def test_a_real_run_records_the_cpu_of_each_vms_fio_and_qemu_nbd(
        tmp_path: Path, no_leaks: None) -> None:
    """A reader at iodepth 1 for 1.5 s and a writer of 4 MiB: each VM's fio used at least
    what fio itself reports of its job (usr_cpu + sys_cpu over job_runtime: the job process
    alone), its qemu-nbd some CPU for every I/O; neither more than the machine's cores over
    the run."""
    d = small_dict()
    d["workloads"]["r"] = {"rw": "randread", "bs": "4k", "iodepth": 1, "runtime": "1500ms",
                           "time_based": True}
    d["vms"] = [d["vms"][0], d["vms"][1]]
    t0 = time.monotonic()
    run_scenario(small_scenario(**{k: d[k] for k in ("workloads", "vms")}), tmp_path / "run",
                 "real")
    wall = time.monotonic() - t0
    df = pd.read_parquet(tmp_path / "run" / "measured.parquet")
    got = {(e, m): v for e, m, v in df[df.metric.str.endswith("_cpu_s")][
        ["entity", "metric", "value"]].itertuples(index=False)}
    assert set(got) == {(f"vm:{v}", m) for v in "ab" for m in ("issuer_cpu_s", "server_cpu_s")}
    for vm in "ab":
        [raw] = (tmp_path / "run" / "raw").glob(f"*fio-{vm}*")
        jobs = json.loads((raw / "output.json").read_text())["jobs"]
        own = sum((j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1e3 for j in jobs)
        # /proc/PID/stat truncates each of its four times to a tick (10 ms): 40 ms at most
        assert own - 0.045 <= got[(f"vm:{vm}", "issuer_cpu_s")] <= wall * os.cpu_count()
        assert 0.0 <= got[(f"vm:{vm}", "server_cpu_s")] <= wall * os.cpu_count()
    # 1.5 s of reads at iodepth 1, thousands of them: each one costs qemu-nbd tens of us
    reads = float(df[(df.entity == "vm:b") & (df.metric == "read_ios")].value.iloc[0])
    assert reads > 1000
    assert got[("vm:b", "server_cpu_s")] >= 5e-6 * reads
    assert got[("vm:b", "issuer_cpu_s")] >= 0.1
    # the machine's cores over the run: at least what the two VMs' processes used of them
    [busy] = df[df.metric == "cpu_busy_share"][["entity", "value"]].itertuples(index=False)
    assert busy.entity == "host:host1" and 0 < busy.value <= 1
    assert busy.value * wall * os.cpu_count() >= sum(got.values()) - 0.05
