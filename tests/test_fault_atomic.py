"""Atomic results: a crash or a failed write never leaves a half-written file looking complete."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import cowbench.atomic
from cowbench.store import RunDir, atomic_write_parquet, atomic_write_text, read_run

WRITER = """
import sys
from pathlib import Path
import pandas as pd
from cowbench.store import RunDir
rd = RunDir(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    blob = "x" * (1000 * (i % 300))
    rd.write_meta(i=i, blob=blob, blob_len=len(blob))
    rd.write_records("predicted", pd.DataFrame({"i": [i] * (100 * (i % 50) + 1)}))
    print(i, flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_write_leaves_complete_files_only(tmp_path: Path) -> None:
    """A writer rewriting run.json and the records as fast as it can is SIGKILLed at random
    moments; every file it leaves is one complete version, never a torn one."""
    rng = random.Random(8)
    for _ in range(6):
        rd = tmp_path / f"run{_}"
        rd.mkdir()
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(rd)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        child.stdout.readline()  # one full round written
        time.sleep(rng.uniform(0.05, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        meta = read_run(rd)
        assert len(meta["blob"]) == meta["blob_len"]
        df = pd.read_parquet(rd / "predicted.parquet")
        assert df["i"].nunique() == 1 and len(df) == 100 * (int(df["i"].iloc[0]) % 50) + 1
        csv = pd.read_csv(rd / "predicted.csv")
        assert csv["i"].nunique() == 1
        stray = [p.name for p in rd.iterdir() if p.name not in
                 ("run.json", "predicted.parquet", "predicted.csv")]
        assert all(n.startswith(".") and n.endswith(".tmp") for n in stray), stray


def test_a_failed_write_keeps_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "run.json"
    atomic_write_text(target, '{"status": "running"}\n')

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cowbench.atomic.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, '{"status": "ok", "much": "' + "x" * 100000 + '"}\n')
    assert json.loads(target.read_text()) == {"status": "running"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_a_parquet_writer_that_dies_midway_leaves_nothing(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def torn(self: pd.DataFrame, path: str, **kw: object) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt  # an interrupt in the middle of the write

    monkeypatch.setattr(pd.DataFrame, "to_parquet", torn)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_parquet(tmp_path / "measured.parquet", pd.DataFrame({"a": [1]}))
    assert os.listdir(tmp_path) == []


def test_run_dir_writes_every_file_through_a_rename(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each result file appears only by ``os.replace`` of a hidden temporary name."""
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str | Path) -> None:
        renamed.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(cowbench.atomic.os, "replace", spy)
    rd = RunDir.create(tmp_path / "run")
    rd.write_meta(status="running")
    rd.write_text("scenario.yaml", "name: x\n")
    rd.write_records("measured", pd.DataFrame({"a": [1.0]}))
    rd.write_text("comparison.csv", "entity\n")
    made = {dst for _, dst in renamed}
    assert made == {"run.json", "scenario.yaml", "measured.parquet", "measured.csv",
                    "comparison.csv"}
    assert all(src.startswith(f".{dst}.") and src.endswith(".tmp") for src, dst in renamed)
