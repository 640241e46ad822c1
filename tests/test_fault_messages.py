"""Messages that said the wrong thing (finding 8 of the SRE test): each names what the file
is and where the user wrote it, says nothing about nothing, and Dask's port choice stays off
the terminal."""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cowbench.lease import _boot_id, registry
from cowbench.sweep_cluster import client_for, shut_down

from .clirun import cowbench
from .conftest import needs_tools, small_dict


def _iolog_scenario(tmp_path: Path, trace: str) -> Path:
    (tmp_path / "db.fio").write_text(f"[db]\nrw=randwrite\nbs=4k\nread_iolog={trace}\n")
    d = small_dict()
    d["workloads"]["w"] = {"job_file": "db.fio", "section": "db"}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_a_trace_that_is_a_device_or_a_fifo_is_named_so(tmp_path: Path) -> None:
    """Both exist: 'no such file' was wrong; and a FIFO is refused without being read."""
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    for trace, kind in (("/dev/zero", "is a character device"), (str(fifo), "is a FIFO")):
        r = cowbench("validate", str(_iolog_scenario(tmp_path, trace)))
        assert r.code == 2, r
        assert f"read_iolog: {trace}: {kind}, not a regular file; refused" in r.stderr, r.stderr
        assert "no such file" not in r.stderr
    r = cowbench("validate", str(_iolog_scenario(tmp_path, str(tmp_path / "gone"))))
    assert r.code == 2 and "no such file" in r.stderr
    assert time.monotonic() - t0 < 20


@needs_tools
@pytest.mark.real
def test_an_empty_image_file_is_refused_at_its_path(tmp_path: Path) -> None:
    """The user wrote ``path``; ``virtual_size`` is filled in from the file."""
    (tmp_path / "empty.raw").write_bytes(b"")
    d = small_dict()
    d["images"][0] = {"name": "img", "format": "raw", "path": str(tmp_path / "empty.raw")}
    for vm in d["vms"]:
        vm["root_size"] = "96MiB"
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    r = cowbench("validate", str(p))
    assert r.code == 2, r
    assert "images[0].path: its virtual size is 0 bytes (an empty file)" in r.stderr, r.stderr
    assert "virtual_size" not in r.stderr


@pytest.fixture
def own_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COWBENCH_RUNTIME_DIR", str(tmp_path / "leases"))
    return registry()


def _dead(where: Path, run: Path, **left: list[dict[str, object]]) -> None:
    record = {"token": "t", "pid": 2 ** 22 + 7, "start_ticks": 1, "boot_id": _boot_id(),
              "run_dir": str(run), "trees": [], "mounts": [], "files": [], **left}
    (where / "t.json").write_text(json.dumps(record))


def test_a_dead_run_that_left_nothing_is_not_warned_about(tmp_path: Path,
                                                          own_registry: Path) -> None:
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(small_dict()))
    _dead(own_registry, tmp_path / "r")
    r = cowbench("validate", str(s))
    assert r.code == 0 and "died" not in r.stderr, r.stderr
    tree = {"parent": str(tmp_path), "name": "work", "dev": 1, "ino": 2}
    _dead(own_registry, tmp_path / "r", trees=[tree], files=[tree])
    r = cowbench("validate", str(s))
    assert f"run {tmp_path / 'r'} (pid {2 ** 22 + 7}) died and left 1 directories and 1 " \
           "partial file(s); `cowbench gc` removes them" in r.stderr, r.stderr


@pytest.fixture
def port_8787_taken() -> Iterator[None]:
    """Dask's default port held, as another sweep on the machine holds it."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 8787))
        s.listen(1)
    except OSError:
        pass  # taken already: the same condition
    try:
        yield
    finally:
        s.close()


@pytest.mark.slow
def test_the_local_cluster_says_nothing_of_its_port(tmp_path: Path,
                                                    port_8787_taken: None) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client, cluster = client_for("local", 1, tmp_path)
        try:
            host, port = cluster.scheduler.http_server.address, cluster.scheduler.http_server.port
        finally:
            shut_down(client, cluster, [])
    assert not [w for w in caught if "already in use" in str(w.message)], \
        [str(w.message) for w in caught]
    assert host == "127.0.0.1" and port != 8787
