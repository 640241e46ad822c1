"""Root reads for a user only what that user could read (finding 4 of the SRE test).

Under sudo (``SUDO_UID``), every file a scenario makes cowbench read (the scenario, a job file
and its includes, a ``read_iolog`` trace) is held to the image rule
(``cowbench.imagefile.check_policy``) before a byte of it is read: readable by the invoking
user, directories above it included, and not under ``/etc``, ``/proc``, ``/sys``, ``/dev``.
An error never prints a line of a file that user could not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .clirun import Ran, cowbench
from .conftest import small_dict
from .hostile import NOBODY, shared_dir

MARKER = "SECRET-OF-ROOT-5d1e0b"
SUDO: dict[str, str | None] = {"SUDO_UID": str(NOBODY), "SUDO_GID": str(NOBODY),
                               "SUDO_USER": "nobody"}


@pytest.fixture
def shared() -> Iterator[Path]:
    with shared_dir() as d:
        yield d


def _secret(where: Path, mode: int = 0o600) -> Path:
    """A root-owned file of YAML-ish lines, each holding the marker (like /etc/shadow)."""
    p = where / "secret"
    p.write_text("".join(f"{MARKER}-{i}:x:1:2:::\n" for i in range(5)))
    p.chmod(mode)
    return p


def _job_scenario(where: Path, job: str) -> Path:
    (where / "db.fio").write_text(job)
    d = small_dict()
    d["workloads"]["w"] = {"job_file": "db.fio", "section": "db"}
    p = where / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _refused(ran: Ran, why: str) -> None:
    assert ran.code == 2, ran
    assert why in ran.stderr, ran.stderr
    assert MARKER not in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_scenario_file_the_user_cannot_read_is_refused_unread(shared: Path) -> None:
    _refused(cowbench("validate", str(_secret(shared)), env=SUDO),
             "not readable by the invoking user (uid 65534)")


def test_a_file_in_a_directory_the_user_cannot_enter_is_refused(shared: Path) -> None:
    """Read permission on the file is not enough: the user must be able to reach it."""
    private = shared / "private"
    private.mkdir(mode=0o700)
    _refused(cowbench("validate", str(_secret(private, 0o644)), env=SUDO),
             "not readable by the invoking user")


def test_a_job_file_include_the_user_cannot_read_is_refused_unread(shared: Path) -> None:
    secret = _secret(shared)
    s = _job_scenario(shared, f"[db]\nrw=randwrite\nbs=4k\nio_size=1m\ninclude {secret}\n")
    _refused(cowbench("validate", str(s), env=SUDO), "not readable by the invoking user")


def test_a_trace_the_user_cannot_read_is_refused_unread(shared: Path) -> None:
    secret = _secret(shared)
    s = _job_scenario(shared, f"[db]\nrw=randwrite\nbs=4k\nread_iolog={secret}\n")
    _refused(cowbench("validate", str(s), env=SUDO), "not readable by the invoking user")


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ"])
def test_includes_under_system_trees_are_refused_even_for_root(
        shared: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sudo: root may read them, but a job file has no business there (the image rule)."""
    monkeypatch.delenv("SUDO_UID", raising=False)
    s = _job_scenario(shared, f"[db]\nrw=randwrite\nbs=4k\nio_size=1m\ninclude {target}\n")
    ran = cowbench("validate", str(s))
    _refused(ran, "under /etc, /proc, /sys, /dev; refused")
    assert "root:" not in ran.stderr and "PATH=" not in ran.stderr


def test_files_the_user_can_read_still_work_under_sudo(shared: Path) -> None:
    s = _job_scenario(shared, "[db]\nrw=randwrite\nbs=4k\nio_size=1m\n")
    ran = cowbench("validate", str(s), env=SUDO)
    assert ran.code == 0, ran


def test_an_unknown_key_error_does_not_echo_a_long_key(shared: Path) -> None:
    """A line of some other file read as YAML is a long key: the error names it, cut."""
    d = small_dict()
    key = f"{MARKER}:" + "x" * 200
    d[key] = 1
    p = shared / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "unknown key" in ran.stderr
    assert f"({len(key)} characters)" in ran.stderr
    assert key not in ran.stderr and "x" * 40 not in ran.stderr


def test_a_cached_profile_is_cowbenchs_own_and_read_under_sudo(
        shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run under sudo uses root's cached profile (``~/.cache`` of root, not the user's to
    read): the cache is cowbench's own. The same file elsewhere, unreadable by the user, is a
    file the user named, and refused."""
    from cowbench.errors import UsageError
    from cowbench.profile import load_profile, profile_json

    from .test_profile_cache import fake_profile

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # tmp_path: root's alone
    cache = tmp_path / "cache" / "cowbench" / "profiles"
    cache.mkdir(parents=True)
    text = profile_json(fake_profile(None))
    (cache / "p.json").write_text(text)
    (shared / "p.json").write_text(text)
    (shared / "p.json").chmod(0o600)
    for key, value in SUDO.items():
        monkeypatch.setenv(key, str(value))
    assert load_profile(cache / "p.json").matrix == "quick"
    with pytest.raises(UsageError, match="not readable by the invoking user"):
        load_profile(shared / "p.json")
