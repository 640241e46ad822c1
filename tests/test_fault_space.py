"""Free space: a run that cannot fit is refused before it writes; a disk that fills anyway
(another writer takes the space mid-run) ends the run cleanly, with the reason.

The small filesystems are real: a file formatted ext4 and loop-mounted under the test's
directory (needs root and loop devices; skipped with the reason otherwise), unmounted and
detached by the fixture's finalizer whatever happens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.errors import RunFailed
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from cowbench.space import MARGIN_FRACTION, space_needs
from sim import simulate

from .clirun import cowbench
from .conftest import needs_tools, processes_mentioning, small_dict

pytestmark = [pytest.mark.real, needs_tools]


def _tiny(storage_dir: Path, **wl: Any) -> dict[str, Any]:
    """One 16 MiB image with 4 MiB of data and one VM writing 8 MiB sequentially."""
    job = {"rw": "write", "bs": "64k", "iodepth": 1, "io_size": "8MiB", "rate_iops": 100}
    job.update(wl)
    return {"name": "tiny", "hosts": [{"name": "h", "storage_dir": str(storage_dir)}],
            "images": [{"name": "img", "virtual_size": "16MiB", "format": "raw",
                        "synthetic": {"data": [{"offset": 0, "length": "4MiB"}]}}],
            "workloads": {"w": job},
            "vms": [{"name": "v", "image": "img", "workload": "w"}]}


def _entries(mnt: Path) -> list[str]:
    return sorted(p.name for p in mnt.iterdir() if p.name != "lost+found")


def test_a_run_that_cannot_fit_is_refused_before_writing(tmp_path: Path,
                                                         small_fs: Callable[[int], Path]) -> None:
    mnt = small_fs(32)
    d = small_dict(hosts=[{"name": "host1", "storage_dir": str(mnt)}])  # ~90 MiB predicted
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(d))
    out = tmp_path / "run"
    proc = cowbench("run", str(scenario), "--backend", "real", "--out", str(out))
    assert proc.code == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "hosts[0].storage_dir" in proc.stderr and "is free" in proc.stderr, proc.stderr
    assert not out.exists() and _entries(mnt) == []


def test_the_need_is_the_model_prediction_plus_margin(tmp_path: Path,
                                                      small_fs: Callable[[int], Path]) -> None:
    mnt = small_fs(32)
    s = parse_scenario(small_dict(hosts=[{"name": "host1", "storage_dir": str(mnt)}]))
    predicted = simulate(s)
    needs = {n.directory: n for n in space_needs(s, predicted, tmp_path / "run")}
    host = predicted[(predicted.entity == "host:host1") & (predicted.metric == "allocated_bytes")]
    assert needs[mnt].predicted == int(host.value.iloc[0]) > 32 << 20
    assert needs[mnt].needed > needs[mnt].predicted * (1 + MARGIN_FRACTION)
    assert needs[tmp_path].predicted > 0  # the generated Glance image lives in the run dir


@pytest.mark.parametrize("when,failing", [
    # the download into _base hits ENOSPC: a raw image is written byte for byte into
    # <sha1>.part as Nova's download does (no qemu-img convert any more), the error names it
    ("caching", ".part'"),
    ("fio:", "fio"),  # the guest's writes hit ENOSPC through qemu-nbd
])
def test_a_disk_that_fills_anyway_ends_the_run_cleanly(
        tmp_path: Path, small_fs: Callable[[int], Path], no_leaks: None, private_tmp: Path,
        when: str, failing: str) -> None:
    mnt = small_fs(64)
    filler = mnt / "someone-else"
    filled: list[str] = []

    def progress(msg: str) -> None:  # another writer takes the space once the run is going
        if msg.startswith(when) or msg.split(": ", 1)[-1].startswith(when):
            if not filled:
                st = os.statvfs(mnt)
                with open(filler, "wb") as f:
                    os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - 64 * 1024)
                filled.append(msg)

    out = tmp_path / "run"
    with pytest.raises(RunFailed, match="No space left on device") as err:
        run_scenario(parse_scenario(_tiny(mnt)), out, "real", progress=progress)
    assert filled, "the filesystem was filled during the run"
    assert failing in str(err.value)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and "No space left on device" in meta["reason"]
    assert _entries(mnt) == ["someone-else"], "the run's tree is removed"
    assert processes_mentioning(mnt, out, private_tmp) == []
