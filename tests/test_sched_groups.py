"""How the machine's kernel groups cowbench's processes on its cores
(``cowbench.store.sched_groups``), recorded with the machine's facts in a profile and a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowbench.store import host_facts, sched_groups


def machine(tmp_path: Path, autogroup: str | None, cgroup: str,
            controllers: dict[str, str] | None = None) -> tuple[Path, Path]:
    """A made-up /proc (``autogroup``: the sysctl's text, None: absent) and cgroup tree."""
    proc, fs = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "sys/kernel").mkdir(parents=True)
    (proc / "self").mkdir()
    if autogroup is not None:
        (proc / "sys/kernel/sched_autogroup_enabled").write_text(autogroup)
    (proc / "self/cgroup").write_text(cgroup)
    for rel, text in (controllers or {}).items():
        (fs / rel).mkdir(parents=True, exist_ok=True)
        (fs / rel / "cgroup.controllers").write_text(text)
    return proc, fs


V1_ROOT = "9:name=systemd:/\n4:memory:/process_api/6b2f\n2:cpuacct:/\n1:cpu:/\n0::/\n"


@pytest.mark.parametrize(("autogroup", "cgroup", "controllers", "expected"), [
    ("1\n", V1_ROOT, None, "session"),  # this project's machine
    ("0\n", V1_ROOT, None, "none"),  # autogroup off
    (None, V1_ROOT, None, "none"),  # a kernel without it
    ("1\n", "3:cpu,cpuacct:/docker/abc\n0::/\n", None, "none"),  # v1, a CPU cgroup below root
    ("1\n", "0::/\n", None, "session"),  # v2, the root cgroup
    ("1\n", "0::/system.slice/x.service\n",
     {"system.slice": "cpu io memory pids", "system.slice/x.service": "memory pids"}, "none"),
    ("1\n", "0::/user.slice/session-1.scope\n",
     {"user.slice": "memory pids", "user.slice/session-1.scope": "memory pids"}, "session"),
])
def test_the_machine_s_grouping_is_read_from_autogroup_and_the_cpu_cgroup(
        tmp_path: Path, autogroup: str | None, cgroup: str,
        controllers: dict[str, str] | None, expected: str) -> None:
    proc, fs = machine(tmp_path, autogroup, cgroup, controllers)
    assert sched_groups(proc, fs) == expected


def test_a_profile_records_it_with_the_machine_s_facts() -> None:
    assert host_facts()["sched_groups"] == sched_groups()

