"""A sweep point's run directory travelling from its worker to the client (issue 21): read
through descriptors, bounded, checked, and written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import yaml

import cowbench.sweep_files as sweep_files
from cowbench.errors import UsageError
from cowbench.fdtree import DIR_FLAGS
from cowbench.sweep import load_sweep, run_sweep
from cowbench.sweep_files import PointTooLarge, check_point, read_point, write_point
from cowbench.sweep_points import run_point

from .conftest import small_dict


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _read(path: Path, max_bytes: int = sweep_files.MAX_POINT_BYTES) -> sweep_files.PointFiles:
    fd = os.open(path, DIR_FLAGS)
    try:
        return read_point(fd, max_bytes)
    finally:
        os.close(fd)


def _write(points: Path, name: str, files: sweep_files.PointFiles) -> None:
    fd = os.open(points, DIR_FLAGS)
    try:
        write_point(fd, name, files)
    finally:
        os.close(fd)


@pytest.fixture
def run_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "raw" / "0001-fio").mkdir(parents=True)
    (src / "run.json").write_text('{"status": "ok"}\n')
    (src / "predicted.parquet").write_bytes(bytes(range(256)) * 40)
    (src / "raw" / "0001-fio" / "stdout").write_text("")
    (src / "empty").mkdir()
    return src


def test_a_run_directory_arrives_whole_through_a_hidden_staging_name(
        run_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    points = tmp_path / "points"
    points.mkdir()
    seen: list[tuple[str, str, dict[str, bytes | None]]] = []
    real_rename = os.rename

    def spy(src: str, dst: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
        seen.append((src, dst, _tree(points / src)))  # complete before it gets its name
        real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(sweep_files.os, "rename", spy)
    _write(points, "p0003", _read(run_tree))
    assert _tree(points / "p0003") == _tree(run_tree)
    ((src, dst, staged),) = seen
    assert src.startswith(".p0003.") and src.endswith(".tmp") and dst == "p0003"
    assert staged == _tree(run_tree)
    assert os.listdir(points) == ["p0003"]


def test_a_write_that_fails_midway_leaves_nothing(run_tree: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    points = tmp_path / "points"
    points.mkdir()
    files = _read(run_tree)
    calls = [0]
    real_fsync = os.fsync

    def full(fd: int) -> None:
        calls[0] += 1
        if calls[0] == 3:  # after the first files, before the rename
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(sweep_files.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        _write(points, "p0000", files)
    assert os.listdir(points) == []


def test_a_symlink_in_a_run_directory_is_refused_not_followed(run_tree: Path) -> None:
    (run_tree / "raw" / "link").symlink_to("/etc/passwd")
    with pytest.raises(UsageError, match="raw/link: neither a file nor a directory"):
        _read(run_tree)


def test_the_bound_is_checked_before_reading_past_it(run_tree: Path) -> None:
    size = sum(len(d) for _, d in _read(run_tree) if d is not None)
    assert len(_read(run_tree, size)) == 6
    with pytest.raises(PointTooLarge, match=f"more than {size - 1} bytes"):
        _read(run_tree, size - 1)


@pytest.mark.parametrize("files, why", [
    ([("../escape", b"x")], "not a plain relative name"),
    ([("/etc/cron.d/x", b"x")], "not a plain relative name"),
    ([("a//b", b"x")], "not a plain relative name"),
    ([("run.json", b"x"), ("run.json", b"y")], "given twice"),
    ([("raw/stdout", b"x")], "its directory is not listed before it"),
    ([("big", b"x" * 11)], "11 bytes of files, more than 10"),
])
def test_what_a_worker_sends_is_checked_before_anything_is_written(
        tmp_path: Path, files: sweep_files.PointFiles, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        check_point(files, 10)
    if "bytes" not in why:
        points = tmp_path / "points"
        points.mkdir()
        with pytest.raises(UsageError, match=why):
            _write(points, "p0000", files)
        assert os.listdir(points) == [] and not (tmp_path / "escape").exists()


@pytest.mark.slow
def test_a_worker_runs_its_point_in_private_scratch_and_keeps_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    scenario = small_dict()
    status, reason, files = run_point(scenario, 3, "sim", {"point": "p0007"})
    assert (status, reason) == ("ok", None)
    names = [n for n, _ in files]
    assert {"run.json", "scenario.yaml", "predicted.parquet", "raw"} <= set(names)
    assert json.loads(dict(files)["run.json"] or b"")["status"] == "ok"
    assert os.listdir(scratch) == []
    # over the bound: the point fails, says why in its run.json, and sends only that back
    status, reason, files = run_point(scenario, 3, "sim", {"point": "p0007"}, max_bytes=4096)
    assert status == "failed" and reason is not None
    assert "a point sends back at most 4096 bytes to the sweep's client" in reason
    assert [n for n, _ in files] == ["run.json", "scenario.yaml"]
    meta = json.loads(dict(files)["run.json"] or b"")
    assert meta["status"] == "failed" and meta["reason"] == reason and meta["point"] == "p0007"
    assert os.listdir(scratch) == []


@pytest.mark.slow
def test_a_resumed_sweep_removes_a_killed_clients_staging_directory(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 1}))
    sw = load_sweep(tmp_path / "sw.yaml")
    out = tmp_path / "out"
    run_sweep(sw, out, scheduler="inprocess")
    staged = out / "points" / ".p0000.0123abcd.tmp"
    (staged / "raw").mkdir(parents=True)
    (staged / "run.json").write_text("{")
    (out / "points" / "p0000" / "run.json").unlink()  # and the point itself to redo
    again = run_sweep(sw, out, scheduler="inprocess")
    assert list(again.status) == ["ok"]
    assert os.listdir(out / "points") == ["p0000"]


@pytest.mark.slow
def test_a_point_over_the_bound_fails_and_its_run_json_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: exit 1, sweep.json and the point's run.json (all it sent back) give
    the reason; the other point is whole."""
    from .clirun import cowbench

    monkeypatch.setattr(sweep_files, "MAX_POINT_BYTES", 100_000)  # 3 VMs 89 KB, 32 VMs 111 KB
    # (measured with offsets: auto, whose null-engine streams are in each point's raw/)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({
        "scenario": "s.yaml", "seeds": 1, "grid": {"vms[1].count": [1, 30]}}))
    out = tmp_path / "out"
    ran = cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(out), "--scheduler",
                   "inprocess", "--csv")
    assert ran.code == 1 and "1 point(s) failed" in ran.stderr, ran.stderr
    meta = json.loads((out / "sweep.json").read_text())
    (failed,) = [p for p in meta["points"] if p["status"] == "failed"]
    assert "a point sends back at most 100000 bytes to the sweep's client" in failed["reason"]
    run = json.loads((out / failed["dir"] / "run.json").read_text())
    assert run["status"] == "failed" and run["reason"] == failed["reason"]
    assert sorted(os.listdir(out / failed["dir"])) == ["run.json", "scenario.yaml"]
    (ok,) = [p for p in meta["points"] if p["status"] == "ok"]
    assert ok["overrides"] == {"vms[1].count": 1}
    assert (out / ok["dir"] / "predicted.parquet").is_file()


@pytest.mark.slow
def test_a_failed_points_reason_names_its_directory_in_the_sweep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point whose run fails: its reason says "details in <dir>/run.json and <dir>/raw/"
    of the directory the user can open, ``<sweep>/points/<id>``, not the worker's scratch
    (removed once the point was sent back: /tmp/dask-scratch-space/worker-*/cowbench-*)."""
    from cowbench.errors import ToolError
    from sim.driver import SimBackend

    def fails(*_a: object, **_k: object) -> None:
        raise ToolError(["qemu-img"], 1, "", "qemu-img: Could not open 'x'")

    monkeypatch.setattr(SimBackend, "simulate", fails)
    monkeypatch.setattr(SimBackend, "predict_space", fails)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 1}))
    out = tmp_path / "out"
    summary = run_sweep(load_sweep(tmp_path / "sw.yaml"), out, scheduler="inprocess")
    assert list(summary.status) == ["failed"]
    (point,) = json.loads((out / "sweep.json").read_text())["points"]
    reason = point["reason"]
    where = out / "points" / point["id"]
    assert f"details in {where}/run.json and {where}/raw/" in reason, reason
    assert str(scratch) not in reason and (where / "run.json").is_file()
    from .clirun import cowbench

    shown = cowbench("show", str(out)).stdout
    assert f"{point['id']} failed: " in shown and f"details in {where}/" in shown, shown
