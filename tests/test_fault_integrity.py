"""Integrity after a real run: damaged images and changed bases are found and fail the run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import real.world.backend
import real.world.timeline
from cowbench.errors import RunFailed
from cowbench.runner import run_scenario
from cowbench.tools import RawLog
from real.measure.digest import file_digest
from real.measure.integrity import Integrity, IntegrityError

from .conftest import needs_tools, small_scenario
from .qcow2_faults import corrupt_a_cluster, leak_a_cluster

pytestmark = [pytest.mark.real, needs_tools]


def _image_with_data(tmp_path: Path) -> Path:
    path = tmp_path / "x.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 1M", str(path)],
                   check=True)
    return path


@pytest.mark.parametrize("damage,kind", [(leak_a_cluster, "leaks"),
                                         (corrupt_a_cluster, "corruptions")])
def test_qemu_img_check_finds_the_damage(tmp_path: Path, damage: Callable[[Path], None],
                                         kind: str) -> None:
    path = _image_with_data(tmp_path)
    clean = Integrity()
    clean.check("vm:x", path)
    assert clean.problems == [] and clean.checks["vm:x"]["allocated_clusters"] == 16
    damage(path)
    found = Integrity()
    found.check("vm:x", path)
    assert found.checks["vm:x"][kind] >= 1
    assert len(found.problems) == 1 and kind in found.problems[0] and "vm:x" in found.problems[0]
    with pytest.raises(IntegrityError, match=kind):
        found.raise_if_bad()


def test_images_checked_at_once_are_reported_in_order(tmp_path: Path) -> None:
    """``check_all`` runs the checks side by side; each image's result is its own, and the
    report lists them in the order given, the damaged one found among clean ones."""
    paths = []
    for i in range(4):
        (tmp_path / str(i)).mkdir()
        paths.append(_image_with_data(tmp_path / str(i)))
    corrupt_a_cluster(paths[2])
    it = Integrity()
    outs = it.check_all([(f"vm:{i}", p, "qcow2", False) for i, p in enumerate(paths)])
    assert [o["filename"] for o in outs] == [str(p) for p in paths]
    assert list(it.checks) == ["vm:0", "vm:1", "vm:2", "vm:3"]
    assert [it.checks[f"vm:{i}"]["corruptions"] > 0 for i in range(4)] == [0, 0, 1, 0]
    assert len(it.problems) == 1 and "vm:2" in it.problems[0]


def test_a_changed_base_is_found(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.write_bytes(b"\1" * (1 << 20))
    it = Integrity()
    it.hash_before("cache:h/img", base)
    it.settle()
    with open(base, "r+b") as f:
        f.seek(4096)
        f.write(b"\2")
    it.compare()
    it.close()
    assert not it.report()["ok"] and "base changed" in it.problems[0]
    assert "cache:h/img" in it.problems[0]
    assert file_digest(base) == it.checksums["cache:h/img"]["after"]


@pytest.mark.parametrize("change", ["fill a hole", "grow", "remove"])
def test_a_base_changed_where_it_was_sparse_is_found(tmp_path: Path, change: str) -> None:
    """The digest skips holes when reading; writing into one (or past the end, or removing the
    file) still changes it."""
    base = tmp_path / "base"
    with open(base, "wb") as f:
        f.truncate(64 << 20)
        f.write(b"\7" * 4096)
    it = Integrity()
    it.hash_before("image:img", base)
    it.settle()
    if change == "remove":
        base.unlink()
    else:
        with open(base, "r+b") as f:
            f.seek(40 << 20 if change == "fill a hole" else 64 << 20)
            f.write(b"\0\0\1")
    it.compare()
    it.close()
    assert len(it.problems) == 1 and "image:img: base changed" in it.problems[0]


def test_an_unchanged_base_passes(tmp_path: Path) -> None:
    base = tmp_path / "base"
    with open(base, "wb") as f:
        f.truncate(40 << 20)
        f.seek(20 << 20)
        f.write(b"\3" * (1 << 20))
    it = Integrity()
    it.hash_before("image:img", base)
    it.compare()
    it.close()
    assert it.report()["ok"], it.problems
    entry = it.checksums["image:img"]
    assert entry["before"] == entry["after"] == file_digest(base)


def test_a_synthetic_base_is_held_to_its_content(tmp_path: Path) -> None:
    """A synthetic image's raw base is not read before the workloads: its first digest comes
    from the scenario (extents and fill bytes). Generated and converted as a run does, it
    matches; a byte of it changed fails."""
    image = small_scenario().image("img")
    src, base = tmp_path / "img.qcow2", tmp_path / "base"
    real.world.backend.write_synthetic(image, src, RawLog(tmp_path / "raw"))
    it = Integrity()
    it.expect("cache:h/img", base, real.world.backend.synthetic_digest(image), "images[0]")
    real.world.backend.fetch_to_cache(src, "qcow2", base, RawLog(tmp_path / "raw"))
    assert it.checksums["cache:h/img"]["before"] == file_digest(base)
    it.compare()
    assert it.problems == []
    with open(base, "r+b") as f:
        f.seek(40 << 20)  # inside the second extent
        f.write(b"\0")
    again = Integrity()
    again.expect("cache:h/img", base, real.world.backend.synthetic_digest(image), "images[0]")
    again.compare()
    again.close()
    assert len(again.problems) == 1 and "base changed" in again.problems[0]
    assert "not the content of images[0]" in again.problems[0]


def _damage(fault: str, disks: dict[str, tuple[Path, str]]) -> None:
    overlay = disks["c"][0]  # the sequential writer: data clusters from 1 MiB on
    if fault == "leak":
        leak_a_cluster(overlay)
    elif fault == "corruption":
        corrupt_a_cluster(overlay)
    elif fault == "base":
        base = next((overlay.parent.parent / "_base").iterdir())
        with open(base, "r+b") as f:  # a byte inside the base's data
            f.seek(1 << 20)
            f.write(b"\xff")


@pytest.mark.parametrize("fault,problem", [("none", None), ("leak", "leaks"),
                                           ("corruption", "corruptions"),
                                           ("base", "base changed")])
def test_a_damaged_run_fails_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          no_leaks: None, fault: str, problem: str | None) -> None:
    """The damage is done after fio, as a bug would leave it: an overlay's once the exports
    are stopped, a base's as soon as fio is done (the final digests start then)."""
    original = real.world.timeline.run_workloads

    def damaging(scenario: Any, jobs: list[Any], *a: Any,
                 fio_done: Callable[[], None] | None = None) -> Any:
        disks = {vm.name: (path, fmt) for vm, _, path, fmt in jobs}

        def base_damaged_then_hashed() -> None:
            if fault == "base":
                _damage(fault, disks)
            if fio_done is not None:
                fio_done()

        result = original(scenario, jobs, *a, fio_done=base_damaged_then_hashed)
        if fault != "base":
            _damage(fault, disks)
        return result

    monkeypatch.setattr(real.world.timeline, "run_workloads", damaging)
    out = tmp_path / "run"
    if problem is None:
        run_scenario(small_scenario(), out, "real")
    else:
        with pytest.raises(RunFailed, match=problem):
            run_scenario(small_scenario(), out, "real")
    meta = json.loads((out / "run.json").read_text())
    report = meta["integrity"]
    assert set(report["checks"]) == {"vm:a", "vm:b", "vm:c", "image:img"}
    assert set(report["checksums"]) == {"image:img", "cache:host1/img"}
    if problem is None:
        assert meta["status"] == "ok" and report["ok"] and report["problems"] == []
        assert all(c["corruptions"] == c["leaks"] == 0 for c in report["checks"].values())
        assert all(c["before"] == c["after"] is not None for c in report["checksums"].values())
    else:
        assert meta["status"] == "failed" and problem in meta["reason"]
        assert not report["ok"] and len(report["problems"]) == 1
        assert "integrity" not in meta["real_completed"] and "real" not in meta["completed"]
    assert not (out / "work").exists()
