"""Relative and absolute paths reach the external tools intact (issue 15).

fio runs in its ``raw/`` folder, so a relative path handed to it (``--output``, an iolog) would
point nowhere: every command here is run twice, once from the directory the relative paths are
relative to and once from an unrelated directory with absolute paths, and the run must land
where it was asked to and be complete. Run, repredict, a lifecycle with an rsync cold
migration, a reflink run (loop mount, mkfs.xfs, cp --reflink) and a sweep; calibrate with a
relative ``--dir`` and ``--out`` is tests/test_calibrate.py's (one calibration for both).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import mounts_under, needs_tools, processes_mentioning, small_dict
from .test_cli import cowbench
from .test_lifecycle import life
from .test_reflink import CAN_LOOP

pytestmark = [pytest.mark.real, needs_tools]
MODES = ("relative", "absolute")


def _place(tmp_path: Path, mode: str, name: str) -> tuple[Path, str, Path]:
    """(cwd to run in, the path to pass, where it must land): a relative path from tmp_path,
    or an absolute one from a directory that has nothing to do with it."""
    target = tmp_path / name
    if mode == "relative":
        return tmp_path, name, target
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return elsewhere, str(target), target


def _scenario(tmp_path: Path, mode: str, data: dict[str, Any]) -> str:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    return "s.yaml" if mode == "relative" else str(tmp_path / "s.yaml")


def _assert_ok_run(run: Path, *files: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok", meta.get("reason")
    for name in files:
        assert (run / name).is_file(), name
    assert not (run / "work").exists(), "the built trees are removed"
    return meta


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("mode", MODES)
def test_run_and_repredict(tmp_path: Path, mode: str, no_leaks: None) -> None:
    """qemu-img (a path image relative to the scenario file, convert, create, check), qemu-io,
    qemu-nbd, fio with --output and --write_iolog, fio's null engine (offsets: fio)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "img.qcow2"),
                    "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 8M",
                    str(tmp_path / "img.qcow2")], check=True)
    d = small_dict()
    d["images"][0] = {"name": "img", "format": "qcow2", "path": "img.qcow2"}
    for wl in d["workloads"].values():
        wl["write_iolog"] = True
    d["workloads"]["w"]["offsets"] = "fio"
    cwd, out, run = _place(tmp_path, mode, "runs/one")
    _ok(cowbench("run", _scenario(tmp_path, mode, d), "--backend", "both", "--out", out,
                 "--uncalibrated", cwd=cwd))
    _assert_ok_run(run, "predicted.parquet", "measured.parquet", "comparison.csv")
    fio = [json.loads(d.read_text()) for d in (run / "raw").glob("*-fio-*/argv.json")]
    outputs = [a.partition("=")[2] for argv in fio for a in argv if a.startswith("--output=")]
    assert len(outputs) >= 4 and all(Path(o).is_absolute() for o in outputs), outputs
    _ok(cowbench("repredict", out, cwd=cwd))
    assert (run / "repredicted.parquet").is_file()
    assert (run / "comparison-repredicted.csv").is_file()


@pytest.mark.parametrize("mode", MODES)
def test_lifecycle_with_an_rsync_cold_migration(tmp_path: Path, mode: str,
                                                no_leaks: None) -> None:
    d = life()
    d["nova"]["remote_filesystem_transport"] = "rsync"
    d["timeline"]["events"] = [e for e in d["timeline"]["events"] if e.get("kind") != "internal"]
    assert any(e["op"] == "migrate" and e.get("kind") == "cold" for e in d["timeline"]["events"])
    cwd, out, run = _place(tmp_path, mode, "runs/life")
    _ok(cowbench("run", _scenario(tmp_path, mode, d), "--backend", "real", "--out", out,
                 cwd=cwd))
    _assert_ok_run(run, "measured.parquet")
    rsyncs = sorted((run / "raw").glob("*-rsync"))
    assert rsyncs, "the cold migration copied with rsync"
    for r in rsyncs:
        assert (r / "returncode").read_text().strip() == "0"
        argv = json.loads((r / "argv.json").read_text())
        assert all(Path(a).is_absolute() for a in argv[-2:]), argv


@pytest.mark.skipif(not CAN_LOOP, reason="needs root and loop devices to mount an XFS image")
@pytest.mark.parametrize("mode", MODES)
def test_reflink_run(tmp_path: Path, mode: str, no_leaks: None) -> None:
    cwd, out, run = _place(tmp_path, mode, "runs/reflink")
    d = small_dict(strategy={"kind": "reflink_copy"})
    _ok(cowbench("run", _scenario(tmp_path, mode, d), "--backend", "real", "--out", out,
                 cwd=cwd))
    _assert_ok_run(run, "measured.parquet")
    assert mounts_under(tmp_path) == []  # its XFS is unmounted


@pytest.mark.parametrize("mode", MODES)
def test_sweep_with_the_real_backend(tmp_path: Path, mode: str, private_tmp: Path) -> None:
    # not no_leaks: Dask keeps its dask-scratch-space in $TMPDIR (private_tmp removes it)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    sweep = {"scenario": "s.yaml", "grid": {"strategy.cluster_size": ["64KiB"]}, "seeds": 1,
             "backend": "real"}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    cwd, out, where = _place(tmp_path, mode, "runs/sweep")
    sweep_file = "sweep.yaml" if mode == "relative" else str(tmp_path / "sweep.yaml")
    _ok(cowbench("sweep", sweep_file, "--out", out, "--scheduler", "inprocess", cwd=cwd))
    points = json.loads((where / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok"]
    _assert_ok_run(where / points[0]["dir"], "measured.parquet")
    assert not processes_mentioning(tmp_path, private_tmp)
