"""``raw/``: one folder per external command, holding the command's record (``argv.json``,
``stdout``, ``stderr``, ``returncode``) and every file it writes, fio's JSON made atomic
(README.md, "Reading a run directory" and "Faults and bad input: Atomic results"). The
null-engine runs that give a job's offset stream (``cowbench.fiojob``) used to be split over
two folders: ``-issued`` with fio's JSON and iolog, another with the record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cowbench import fiojob
from cowbench.errors import ToolError
from cowbench.fiojob import fio_null_traces
from cowbench.scenario import Workload
from cowbench.tools import RawLog
from cowbench.traces import fio_dirs

from .conftest import needs_tools

RECORD = {"argv.json", "stdout", "stderr", "returncode"}


class Lease:
    """What a run's lease is told about partial files, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def add_file(self, path: Path) -> None:
        assert path.exists()  # made before the tool starts
        self.events.append(("add", path.name))

    def drop_file(self, path: Path) -> None:
        self.events.append(("drop", path.name))


def _output_arg(argv: Sequence[str]) -> Path:
    return Path(next(a for a in argv if a.startswith("--output=")).split("=", 1)[1])


@needs_tools
@pytest.mark.real
def test_a_null_engine_run_is_one_folder_with_its_json_renamed_in(tmp_path: Path) -> None:
    log = RawLog(tmp_path / "raw", lease=Lease())
    traces = fio_null_traces(Workload(rw="randwrite", io_size=1 << 20), "v", 16 << 20, log,
                             None, 1)
    assert sum(len(t) for t in traces) == 256
    folders = list((tmp_path / "raw").iterdir())
    assert [f.name for f in folders] == ["0001-fio-null-v"]
    names = {p.name for p in folders[0].iterdir()}
    assert names == RECORD | {"output.json", "issued.iolog"}
    argv = json.loads((folders[0] / "argv.json").read_text())
    # fio wrote a hidden partial file in this folder, renamed once it exited 0
    assert _output_arg(argv) == folders[0] / ".output.json.part"
    assert json.loads((folders[0] / "output.json").read_text())["jobs"][0]["jobname"] == "v"
    assert (folders[0] / "returncode").read_text() == "0\n"
    assert log.lease is not None and log.lease.events == [  # type: ignore[attr-defined]
        ("add", ".output.json.part"), ("drop", ".output.json.part")]


def test_a_failed_null_engine_run_leaves_no_output_json(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """fio exits 1 after writing part of its JSON: the folder keeps the record, no
    ``output.json`` and no partial file, and the lease lets go of it."""
    def failing(argv: Sequence[str], **kw: Any) -> None:
        _output_arg(argv).write_text('{"fio version": "fio-3.33", "jobs": [')
        kw["log"].record("fio-null-v", argv, 1, "", "fio: boom\n", into=kw["raw_dir"])
        raise ToolError(argv, 1, "", "fio: boom\n")

    monkeypatch.setattr(fiojob, "run", failing)
    monkeypatch.setattr(fiojob, "which", lambda tool: f"/usr/bin/{tool}")
    log = RawLog(tmp_path / "raw", lease=Lease())
    with pytest.raises(ToolError):
        fio_null_traces(Workload(rw="randwrite", io_size=1 << 20), "v", 16 << 20, log, None, 1)
    folders = list((tmp_path / "raw").iterdir())
    assert len(folders) == 1
    assert {p.name for p in folders[0].iterdir()} == RECORD
    assert log.lease is not None and log.lease.events == [  # type: ignore[attr-defined]
        ("add", ".output.json.part"), ("drop", ".output.json.part")]


def test_a_stream_run_is_not_the_real_run_of_a_vm_of_its_name(tmp_path: Path) -> None:
    """VM ``x``'s null-engine stream runs and VM ``null-x``'s real fio share a folder name
    (``NNNN-fio-null-x``): only the real runs are ``null-x``'s, for the counts fio reported
    and the recorded stream (``repredict``), a run's from before fio reported ``json+`` too."""
    raw = tmp_path / "raw"
    folders = {"0001-fio-null-x": ["--ioengine=null", "--output-format=json"],
               "0002-fio-null-x": ["--ioengine=nbd", "--uri=nbd+unix:///?socket=/tmp/"
                                   "cowbench-null-k2j4/null.sock", "--output-format=json"],
               "0003-fio-null-x": ["--ioengine=nbd", "--uri=nbd+unix:///?socket=/r/work/"
                                   "null-x.sock", "--output-format=json+"],
               "0004-fio-null-x": ["--ioengine=nbd", "--uri=nbd+unix:///?socket=/r/work/"
                                   "null-x.sock", "--output-format=json"]}
    for folder, argv in folders.items():
        (raw / folder).mkdir(parents=True)
        (raw / folder / "argv.json").write_text(json.dumps(["fio", *argv]))
        (raw / folder / "output.json").write_text('{"jobs": []}')
    (raw / "0005-fio-null-x").mkdir()  # a stream run killed before its record
    assert fio_dirs(raw, "null-x") == [raw / "0003-fio-null-x", raw / "0004-fio-null-x"]
    assert fio_dirs(raw, "x") == []


@needs_tools
@pytest.mark.real
def test_the_null_export_leaves_a_whole_record(tmp_path: Path) -> None:
    """The qemu-nbd serving a null-co disk (``cowbench.nullexport``) is a command like any:
    ``argv.json`` (not a text ``argv``) and, once stopped, its ``returncode``."""
    from cowbench.nullexport import null_export

    log = RawLog(tmp_path / "raw")
    with null_export(1 << 20, log, "v") as uri:
        assert uri.startswith("nbd+unix://")
    (folder,) = (tmp_path / "raw").iterdir()
    assert {p.name for p in folder.iterdir()} == RECORD
    assert "driver=null-co,size=1048576" in json.loads((folder / "argv.json").read_text())


def test_stream_runs_in_threads_keep_the_lease_true(tmp_path: Path, lease_registry: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The null-engine stream runs of several VMs run at once in threads
    (``cowbench.streams``), each adding its partial JSON to the run's lease and dropping it:
    once held, a file is in the lease file, and the lease file ends listing exactly the files
    still held (unlocked, a thread's write of an older record could land after another's, or
    a drop lose another thread's add: a kill then left a partial file gc did not know). Each
    write is slowed by 0 to 2 ms, as a loaded disk would, so that threads meet there."""
    import threading
    import time

    import cowbench.lease
    from cowbench.atomic import ToolOutput
    from cowbench.lease import LEASE, Lease

    write = cowbench.lease.atomic_write_text

    jitter = iter(((k * 7) % 5) * 0.0005 for k in range(100_000))

    def slow(*a: Any, **kw: Any) -> None:
        time.sleep(next(jitter))
        write(*a, **kw)

    monkeypatch.setattr(cowbench.lease, "atomic_write_text", slow)

    run = tmp_path / "run"
    run.mkdir()
    lease = Lease.take(run, run, "t")
    held: list[ToolOutput] = []

    unlisted: list[str] = []  # partial files held but not in the lease file: gc misses them

    def work(k: int) -> None:
        for i in range(40):
            out = ToolOutput(run / f"{k}-{i}.json", lease)
            out.hold()
            names = {f["name"] for f in json.loads((run / LEASE).read_text())["files"]}
            if out.partial.name not in names:
                unlisted.append(out.partial.name)
            if i % 20 == 19:
                held.append(out)  # still running when the lease is read
            else:
                out.discard()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unlisted == []
    listed = json.loads((run / LEASE).read_text())["files"]
    assert sorted(f["name"] for f in listed) == sorted(o.partial.name for o in held)
    assert json.loads((lease_registry / "t.json").read_text())["files"] == listed
