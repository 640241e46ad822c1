"""A calibration's probes go through qemu-nbd with the ``--aio`` asked for (``cowbench
calibrate --aio``, a scenario's ``real.aio`` for the quick calibration of a run), and the
profile says which: a crowded host's tail depends on it (benchmarks/io_turns.py --aio)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from real.measure import calibrate as cal

from .conftest import needs_tools
from .test_cli import assert_clean_error, cowbench

MiB = 1 << 20


def test_the_settings_carry_the_aio_into_the_profile() -> None:
    assert cal.settings("short", 4).as_dict()["aio"] == "threads"  # qemu's default, as before
    for matrix in ("quick", "short", "long"):
        assert cal.settings(matrix, 2, "native").as_dict()["aio"] == "native"  # type: ignore[arg-type]


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("aio", ["native", "threads"])
def test_every_probe_export_is_served_with_the_settings_aio(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None, aio: str) -> None:
    """Each qemu-nbd a probe starts is given ``--aio`` of the settings (its argv as run)."""
    argvs: list[list[str]] = []

    class Recording(cal.NbdExport):
        def launch(self) -> cal.NbdExport:
            out = super().launch()
            assert self.proc is not None
            argvs.append([str(a) for a in self.proc.args])  # type: ignore[union-attr]
            return out

    monkeypatch.setattr(cal, "NbdExport", Recording)
    s = replace(cal.settings("quick", 2, aio), runtime_s=0.3, ramp_s=0.05,  # type: ignore[arg-type]
                span=64 * MiB, rounds=1)
    wanted = ("raw-randread-4k-qd1-x1", "raw-randread-4k-qd4-x2", "cow-write-4k-qd1-x1")
    specs = [sp for sp in cal.probe_matrix(s) if sp.name in wanted]
    assert [sp.name for sp in specs] == list(wanted)
    probes = cal.measure(tmp_path, s, specs)
    assert [p.name for p in probes] == [sp.name for sp in specs]
    assert all(p.iops > 0 for p in probes)
    assert len(argvs) >= 5  # the throwaway probe's, then one per export
    for argv in argvs:
        assert f"--aio={aio}" in argv, argv


def test_calibrate_refuses_an_unknown_aio(tmp_path: Path) -> None:
    r = cowbench("calibrate", "--dir", str(tmp_path), "--out", str(tmp_path / "p.json"),
                 "--aio", "posix")
    assert_clean_error(r, "--aio must be threads, native or io_uring, not 'posix'")
    assert list(tmp_path.iterdir()) == []
