"""The real backend's bound on the VMs it runs at once (real/world/concurrency.py): counted from
the scenario before anything is made, refused with the figures (exit code 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cowbench.scenario import parse_scenario
from real.world import concurrency
from real.world.concurrency import FIO_BYTES, JOB_BYTES, NBD_BYTES, largest_group

from .clirun import cowbench
from .conftest import needs_tools, processes_mentioning, small_dict
from .test_cli import write

MIB = 1 << 20


def timeline(later: int, **wl: Any) -> dict[str, Any]:
    """Two VMs run together at t=0, ``later`` more at t=60 (one of them an RBD clone, which
    the real backend does not build)."""
    names = [f"v{i}" for i in range(2 + later)]
    d = small_dict(
        vms=[{"name": n, "image": "img", "workload": "w"} for n in names],
        workloads={"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "1MiB", **wl}})
    d["vms"][-1]["strategy"] = {"kind": "rbd_clone"}
    d["timeline"] = {"events": [
        *({"t": 0, "op": "boot", "vm": n} for n in names[:2]),
        *({"t": 0, "op": "run", "vm": n} for n in names[:2]),
        *({"t": 60, "op": "boot", "vm": n} for n in names[2:]),
        *({"t": 60, "op": "run", "vm": n} for n in names[2:])]}
    return d


def per_vm(disk: int, iodepth: int, bs: int, numjobs: int = 1) -> int:
    """The estimate of one VM's run: its qemu-nbd with the L2 cache of its 64 KiB-cluster
    qcow2 disk, fio, its jobs' processes and buffers."""
    return NBD_BYTES + disk // 65536 * 8 + FIO_BYTES + numjobs * (JOB_BYTES + iodepth * bs)


def test_the_largest_group_of_runs_that_start_together_is_counted() -> None:
    s = parse_scenario(timeline(4))
    need = largest_group(s)
    assert need is not None
    # t=60: four VMs boot and run, the RBD clone among them is the model's alone
    assert (need.t, need.vms) == (60.0, 3)
    assert need.bytes == 3 * per_vm(64 * MIB, 4, 4096)
    wider = largest_group(parse_scenario(timeline(4, numjobs=2, iodepth=8, bs="1m")))
    assert wider is not None and wider.bytes == 3 * per_vm(64 * MIB, 8, MIB, numjobs=2)
    assert wider.tasks > need.tasks


def test_a_split_or_a_range_of_block_sizes_is_counted_by_its_largest() -> None:
    split = largest_group(parse_scenario(timeline(1, bssplit="4k/50:256k/50")))
    assert split is not None and split.bytes == 2 * per_vm(64 * MIB, 4, 256 << 10)


def test_no_workload_run_no_bound() -> None:
    d = small_dict()
    for vm in d["vms"]:
        vm.pop("workload")
    assert largest_group(parse_scenario(d)) is None


@needs_tools
def test_thousands_of_vms_at_once_are_refused_before_anything_is_made(tmp_path: Path) -> None:
    d = small_dict(vms=[{"name": "vm", "image": "img", "workload": "w", "count": 3000}])
    out = tmp_path / "run"
    ran = cowbench("run", str(write(tmp_path, d)), "--backend", "real", "--out", str(out))
    assert ran.code == 2, ran.stderr
    assert "vms: 3,000 VMs run their workloads at once on the real backend" in ran.stderr
    assert "of memory, where this machine has" in ran.stderr and "--backend sim" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not out.exists() and not processes_mentioning(tmp_path)
    assert cowbench("validate", str(write(tmp_path, d))).code == 0  # the model runs them


@needs_tools
def test_a_run_short_of_process_ids_is_refused_before_a_calibration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--backend both`` and no profile of this machine (the tests' cache is empty),
    the refusal comes first: no quick calibration runs to end in it."""
    monkeypatch.setattr(concurrency, "free_tasks", lambda: 100)
    out = tmp_path / "run"
    ran = cowbench("run", str(write(tmp_path, timeline(20))), "--backend", "both",
                   "--out", str(out))
    assert ran.code == 2, ran.stderr
    assert "timeline: 19 VMs run their workloads at once at t=1 min on the real" in ran.stderr
    assert "process ids free" in ran.stderr and not out.exists()
    assert "calibration" not in ran.stderr


@needs_tools
@pytest.mark.real
def test_a_real_run_beside_another_is_warned(tmp_path: Path) -> None:
    """Two real runs at once measure each other (a user's pair: one said its machine had
    drifted 44% in IOPS) and nothing said so: a run of the real backend names every other run
    or calibration of this machine still running (their leases), and goes on."""
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from cowbench.lease import Lease; "
        f"Lease.take(Path({str(tmp_path / 'other')!r}), None, 'other-run'); "
        "print('held', flush=True); time.sleep(120)")], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        ran = cowbench("run", str(write(tmp_path, small_dict())), "--backend", "real",
                       "--out", str(tmp_path / "run"))
        assert ran.code == 0, ran.stderr
        assert (f"warning: run {tmp_path / 'other'} (pid {other.pid}) is running on this "
                "machine: this run's I/O is measured beside it") in " ".join(ran.stderr.split())
        alone = cowbench("run", str(write(tmp_path, small_dict())), "--backend", "sim",
                         "--out", str(tmp_path / "model"))
        assert "is running on this machine" not in alone.stderr  # the model measures nothing
    finally:
        other.kill()
        other.wait()
