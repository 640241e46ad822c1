"""User-supplied images are hostile until inspected (the class of CVE-2015-5162, CVE-2022-47951).

Each test builds a real image that a careless harness would follow somewhere it should not (a
backing file naming a host file, an external data file, a VMDK whose extent is a host file, a
format that is not the declared one) and checks it is refused with the key path and the reason;
and that ``qemu-img info`` on such files runs under Nova's CPU and address-space limits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import cowbench.tools
from cowbench.errors import ScenarioError
from cowbench.resolve import resolve
from cowbench.scenario import load_scenario

from .clirun import cowbench
from .conftest import needs_tools, small_dict

pytestmark = [pytest.mark.real, needs_tools]


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def _scenario_with(tmp_path: Path, image: Path, fmt: str) -> Path:
    d = small_dict()
    d["images"][0] = {"name": "img", "format": fmt, "path": str(image)}
    for vm in d["vms"]:
        vm["root_size"] = "96MiB"
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _hostile(tmp_path: Path, kind: str) -> tuple[Path, str]:
    p = tmp_path / f"{kind}.img"
    if kind == "backing-host-file":  # reads /etc/passwd through the chain
        _qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(p), "64M")
        return p, "qcow2"
    if kind == "external-data-file":  # guest writes land in a file named by the image
        _qemu_img("create", "-f", "qcow2", "-o", f"data_file={tmp_path / 'data.raw'}",
                  str(p), "64M")
        return p, "qcow2"
    if kind == "qcow2-declared-raw":  # raw would hand the guest the qcow2 metadata, and a
        _qemu_img("create", "-f", "qcow2", str(p), "64M")  # later probe would follow it
        return p, "raw"
    if kind == "vmdk-declared-raw":  # CVE-2022-47951: a VMDK descriptor naming a host file
        p.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                     'createType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n')
        return p, "raw"
    if kind == "raw-declared-qcow2":
        p.write_bytes(b"\0" * (1 << 20))
        return p, "qcow2"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,reason", [
    ("backing-host-file", "backing file"),
    ("external-data-file", "external data file"),
    ("qcow2-declared-raw", "declared raw but the content is qcow2"),
    ("vmdk-declared-raw", "declared raw but the content is vmdk"),
    ("raw-declared-qcow2", "not a valid qcow2 image"),
])
def test_hostile_images_are_refused(tmp_path: Path, kind: str, reason: str) -> None:
    image, fmt = _hostile(tmp_path, kind)
    scenario = _scenario_with(tmp_path, image, fmt)
    with pytest.raises(ScenarioError) as err:
        resolve(load_scenario(scenario), str(scenario))
    assert any(where == "images[0].path" and reason in why for where, why in err.value.problems)


def test_refusal_through_the_cli_creates_nothing(tmp_path: Path) -> None:
    image, fmt = _hostile(tmp_path, "backing-host-file")
    scenario = _scenario_with(tmp_path, image, fmt)
    out = tmp_path / "run"
    proc = cowbench("run", str(scenario), "--backend", "real", "--out", str(out))
    assert proc.code == 2 and "Traceback" not in proc.stderr
    assert "images[0].path" in proc.stderr and "backing file" in proc.stderr
    assert not out.exists()


def _fake_qemu_img(tmp_path: Path, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "qemu-img"
    fake.write_text(f"#!{sys.executable}\n{body}\n")
    fake.chmod(0o755)
    return bindir


def test_inspection_runs_under_nova_limits(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The process that inspects an untrusted image has 30 s of CPU and 1 GiB of memory."""
    limits = tmp_path / "limits"
    bindir = _fake_qemu_img(tmp_path, "import shutil, sys\n"
                            f"shutil.copy('/proc/self/limits', {str(limits)!r})\nsys.exit(1)")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    image, fmt = _hostile(tmp_path, "raw-declared-qcow2")
    with pytest.raises(ScenarioError, match="not a valid qcow2"):
        resolve(load_scenario(_scenario_with(tmp_path, image, fmt)))
    table = {line[:26].strip(): line[26:].split() for line in limits.read_text().splitlines()}
    assert table["Max cpu time"][:2] == ["30", "30"]
    assert table["Max address space"][:2] == [str(1 << 30)] * 2


@pytest.mark.parametrize("body,cpu_s,how", [
    # more memory than the limit: the allocation fails (without the limit it would succeed)
    ("x = bytearray(2 << 30)", 30, "MemoryError"),
    # a parser that never ends: killed at the CPU limit, long before the 120 s timeout
    ("while True: pass", 1, "was stopped by SIGKILL (limits: 1 s of CPU"),
])
def test_a_runaway_inspection_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         body: str, cpu_s: int, how: str) -> None:
    bindir = _fake_qemu_img(tmp_path, body)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("cowbench.tools.UNTRUSTED_CPU_S", cpu_s)  # 30 s is too long for CI
    image, fmt = _hostile(tmp_path, "raw-declared-qcow2")
    t0 = time.monotonic()
    with pytest.raises(ScenarioError, match="images\\[0\\].path") as err:
        resolve(load_scenario(_scenario_with(tmp_path, image, fmt)))
    assert time.monotonic() - t0 < 20
    assert how in str(err.value)


def test_an_image_swapped_after_resolving_is_refused_by_the_real_run(
        tmp_path: Path, no_leaks: None) -> None:
    """Between ``resolve`` and the real run, the file is replaced by one naming a backing file:
    the real backend inspects it again before use and refuses it; the clean file runs."""
    from cowbench.errors import RunFailed
    from cowbench.runner import run_scenario

    image = tmp_path / "user.qcow2"
    _qemu_img("create", "-f", "qcow2", str(image), "64M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 3 0 8M", str(image)],
                   check=True, capture_output=True)
    scenario = resolve(load_scenario(_scenario_with(tmp_path, image, "qcow2")))
    run_scenario(scenario, tmp_path / "clean", "real")
    image.unlink()
    _qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(image), "64M")
    out = tmp_path / "swapped"
    with pytest.raises(RunFailed, match="backing file"):
        run_scenario(scenario, out, "real")
    assert not (out / "work").exists() and not (out / "measured.parquet").exists()
