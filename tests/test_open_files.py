"""The open files a deep chain needs, counted before anything is made (``cowbench.openfiles``,
which ``real.world.openfiles`` acts on and ``cowbench validate`` prints).

qemu-nbd keeps every file of its chain open. Under a soft ``RLIMIT_NOFILE`` below that
(``ulimit -n 256``, a snapshot_chain of depth 300) it failed mid-run, after the chain was
built, with "Could not open backing file:" 248 times over and "Too many open files". Now the
run raises its soft limit to the hard one when that is enough, says so, and otherwise refuses
(exit code 2) before anything is made. Limits are set in the ``cowbench`` subprocess only
(``preexec_fn``), never on the test process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.openfiles import (
    NBD_FIXED,
    OWN,
    OWN_FIXED,
    OWN_PER_VM,
    QEMU_IMG_FIXED,
    SPARE_CONNECTIONS,
    largest_need,
    most_possible,
    needs,
)
from cowbench.scenario import parse_scenario

from .conftest import needs_tools
from .test_chain_create import scenario

DEPTH = 100
#: qemu-nbd over the chain and its base, with fio's one clone connected
NEED = DEPTH + 1 + NBD_FIXED + 1 + SPARE_CONNECTIONS


def test_a_chain_needs_its_files_and_qemu_nbds_own() -> None:
    need = largest_need(parse_scenario(scenario(DEPTH)))
    assert need is not None
    assert (need.key, need.files, need.layers, need.process) == ("vms[0]", DEPTH + 1, DEPTH,
                                                                 "qemu-nbd")
    assert need.descriptors == NEED


def test_external_snapshots_add_a_file_each_and_a_live_snapshot_opens_the_chain_twice(
        ) -> None:
    """Five external snapshots on an overlay: 7 files; the live snapshot's ``convert -B``
    opens the chain and, for its target's backing, the chain less its top: 2 x 7 + 8."""
    d: dict[str, Any] = scenario(1)
    d["timeline"] = {"events": [
        *({"t": 10 * k, "op": "snapshot", "vm": "v", "kind": "external"} for k in range(1, 6)),
        {"t": 60, "op": "snapshot", "vm": "v", "kind": "live"}]}
    need = needs(parse_scenario(d))[0]  # the tools' (cowbench's own: 52, for one VM)
    assert need is not None
    assert (need.files, need.snapshots) == (7, 5)
    assert need.descriptors == 2 * 7 + QEMU_IMG_FIXED
    assert need.process.startswith("qemu-img convert -B")


@pytest.mark.parametrize("name", ["quickstart", "nova-lifecycle", "io-density", "fio-random",
                                  "deep", "snapshots"])
def test_validates_bound_is_never_below_the_walks_need(name: str) -> None:
    """``cowbench validate`` skips Nova's walk where :func:`most_possible` is within the soft
    limit (10 s at 100,000 VMs): a bound, so never below what the walk finds."""
    d: dict[str, Any]
    if name == "deep":
        d = scenario(DEPTH)
    elif name == "snapshots":
        d = scenario(3)
        d["timeline"] = {"events": [
            *({"t": 10 * k, "op": "snapshot", "vm": "v", "kind": "external"} for k in range(1, 5)),
            {"t": 60, "op": "snapshot", "vm": "v", "kind": "live"}]}
    else:
        root = Path(__file__).resolve().parents[1]
        d = yaml.safe_load((root / "scenarios" / f"{name}.yaml").read_text())
    s = parse_scenario(d)
    need = largest_need(s)
    assert need is not None
    assert most_possible(s) >= need.descriptors


def many(vms: int) -> dict[str, Any]:
    """``vms`` one-layer overlays, each writing 64 KiB, all at once."""
    d: dict[str, Any] = scenario(1)
    d["vms"] = [{"name": "v", "count": vms, "image": "b", "root_size": "64MiB",
                 "workload": "w"}]
    return d


def test_cowbench_itself_needs_a_few_descriptors_a_vm_run_at_once() -> None:
    """Each VM running its workload holds its fio's two output files and, while the run
    waits, a pidfd of its fio and of its qemu-nbd in cowbench itself: 300 at once need more
    than any one VM's tool, and are named as such (before, the count left them out: 140 VMs
    under ``ulimit -n 256`` failed with "Too many open files" once every disk was built)."""
    need = largest_need(parse_scenario(many(300)))
    assert need is not None
    assert (need.process, need.at_once, need.key) == (OWN, 300, "vms")
    assert need.descriptors == OWN_FIXED + OWN_PER_VM * 300
    assert need.describe() == (
        f"cowbench itself holds up to {need.descriptors} descriptors with 300 VMs running "
        f"their workloads at once (4 a VM: its fio's output files and the waits on its fio "
        f"and qemu-nbd; {OWN_FIXED} beside)")
    assert most_possible(parse_scenario(many(300))) >= need.descriptors
    tool, own = needs(parse_scenario(many(1)))  # one VM: qemu-nbd's 13, cowbench's 52
    assert tool is not None and own is not None
    assert (tool.process, tool.descriptors, own.descriptors) == ("qemu-nbd", 13, 52)


def _run(tmp_path: Path, soft: int, hard: int, d: dict[str, Any] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """``cowbench run`` of ``d`` (a chain of depth ``DEPTH``) on the real backend, its
    open-file limits (soft, hard) set in the child before it starts."""
    s = tmp_path / "deep.yaml"
    s.write_text(yaml.safe_dump(scenario(DEPTH) if d is None else d))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-m", "cowbench", "run", str(s), "--backend", "real",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          preexec_fn=limit, env=dict(os.environ), timeout=600)


@needs_tools
@pytest.mark.real
@pytest.mark.slow
def test_a_soft_limit_below_the_chain_is_raised_to_the_hard_one(tmp_path: Path,
                                                                 no_leaks: None) -> None:
    """Soft 100 under a chain that needs 113: the run raises it (to the hard limit, which
    is enough), completes, and says so in its output and run.json."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard >= 2 * NEED, "the machine's hard limit is too low for this test"
    r = _run(tmp_path, 100, hard)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"open files: the soft limit raised from 100 to {hard}" in r.stdout
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "ok"
    assert meta["open_files"] == {
        "needed": NEED, "soft_limit": 100, "hard_limit": hard, "raised_to": hard,
        "by": f"vms[0]: qemu-nbd of VM 'v' opens its disk's {DEPTH + 1} files (chain_depth "
              f"{DEPTH} and 0 external snapshots, over its base), {NEED} descriptors in all"}


@needs_tools
@pytest.mark.real
@pytest.mark.slow
def test_a_soft_limit_below_cowbenchs_own_need_is_raised(tmp_path: Path,
                                                         no_leaks: None) -> None:
    """Twelve VMs at once under a soft limit of 40: their fio's output files alone took
    cowbench past it, and the run failed with "[Errno 24] Too many open files" once every
    disk was built, the count having said 13. Now cowbench's own need (96) raises it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = OWN_FIXED + OWN_PER_VM * 12
    assert hard >= need, "the machine's hard limit is too low for this test"
    r = _run(tmp_path, 40, hard, many(12))
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "ok"
    assert meta["open_files"]["needed"] == need and meta["open_files"]["raised_to"] == hard
    assert meta["open_files"]["by"].startswith("vms: cowbench itself holds up to 96 ")


@needs_tools
@pytest.mark.slow
def test_a_hard_limit_below_the_chain_is_refused_before_anything_is_made(
        tmp_path: Path, no_leaks: None) -> None:
    """Hard 100 under a chain that needs 113: exit code 2, one line naming the VM's key path,
    the depth, the descriptors and the limit; no run directory, nothing running."""
    r = _run(tmp_path, 100, 100)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: vms[0]: qemu-nbd"), r.stderr
    for needle in (f"chain_depth {DEPTH}", f"{NEED} descriptors",
                   "hard limit of open files (100,"):
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "run").exists()


@needs_tools
@pytest.mark.real
@pytest.mark.slow
def test_the_count_is_enough_for_every_process_of_the_run(tmp_path: Path,
                                                          no_leaks: None) -> None:
    """Soft and hard limits at exactly the count: nothing to raise, and every tool of the run
    (the chain's creates, qemu-nbd with fio connected, qemu-img check) fits."""
    r = _run(tmp_path, NEED, NEED)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "ok" and meta["open_files"]["raised_to"] is None
    assert "open files:" not in r.stdout


def _validate(tmp_path: Path, soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    """``cowbench validate`` of the depth-``DEPTH`` chain under limits (soft, hard), and
    the limits it left on itself (printed by a wrapper after validate returned)."""
    s = tmp_path / "deep.yaml"
    s.write_text(yaml.safe_dump(scenario(DEPTH)))
    code = ("import resource, sys\nfrom cowbench.cli import main\nsys.argv = ['cowbench', "
            f"'validate', {str(s)!r}]\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    code = e.code\nelse:\n    code = 0\n"
            "print('limits after:', *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
            "sys.exit(code)\n")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=limit, env={**os.environ, "COLUMNS": "400"}, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(("soft", "hard", "says"), [
    (NEED, NEED, "within the soft limit"),
    (100, 2 * NEED, "past the soft limit: a real run raises it to the hard one while it runs"),
    (100, 100, "past the hard limit: a real run is refused before anything is made")])
def test_validate_says_what_the_deepest_chain_needs_and_whether_the_limits_allow_it(
        tmp_path: Path, soft: int, hard: int, says: str) -> None:
    """validate prints the count the real backend acts on, beside this process's limits and
    what a real run would do about them, and changes no limit (before: no such line; a
    chain past the hard limit validated silently and was refused only by ``run``)."""
    r = _validate(tmp_path, soft, hard)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("open files:"))
    assert line == (
        f"open files: vms[0]: qemu-nbd of VM 'v' opens its disk's {DEPTH + 1} files "
        f"(chain_depth {DEPTH} and 0 external snapshots, over its base), {NEED} descriptors "
        f"in all; this process's limits: soft {soft}, hard {hard} (ulimit -n, -Hn): {says}"
        + ("" if hard >= NEED else " (raise it as root, use a shallower chain, or "
           "--backend sim)"))
    assert f"limits after: {soft} {hard}" in r.stdout
