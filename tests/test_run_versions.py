"""run.json's ``tools`` records the versions the figures rest on: python, the libraries, and
the git commit of the checkout cowbench runs from (read from .git, no git needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cowbench.runner import run_scenario
from cowbench.store import LIBRARIES, source_tree

from .conftest import small_scenario


def test_run_json_records_library_versions_and_the_commit(tmp_path: Path) -> None:
    run_scenario(small_scenario(), tmp_path / "run", "sim")
    tools = json.loads((tmp_path / "run" / "run.json").read_text())["tools"]
    for name in ("python", "cowbench", *LIBRARIES):
        assert isinstance(tools[name], str) and tools[name][0].isdigit(), name
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        assert len(tools["git_commit"]) == 40 and tools["git_dirty"] in (True, False, None)


def test_commit_read_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worktree's .git file and a packed ref; git absent: the commit, dirty unknown."""
    common = tmp_path / "main.git"
    (common / "worktrees" / "w").mkdir(parents=True)
    (common / "packed-refs").write_text("# pack-refs\n" + "ab" * 20 + " refs/heads/w\n")
    wt = common / "worktrees" / "w"
    (wt / "HEAD").write_text("ref: refs/heads/w\n")
    (wt / "commondir").write_text("../..\n")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / ".git").write_text(f"gitdir: {wt}\n")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert source_tree(tmp_path / "tree") == {"git_commit": "ab" * 20, "git_dirty": None}
    assert source_tree(tmp_path / "nowhere") == {}


def test_a_profile_takes_the_versions_a_run_records() -> None:
    """A calibration profile records the same versions as run.json; ``git_dirty`` is a bool,
    which the profile's ``tools`` refused (every calibration in a git checkout with git
    installed failed with an internal error: the whole suite's README calibration)."""
    from pydantic import TypeAdapter

    from cowbench.profile import Profile
    from cowbench.store import tool_versions

    tools = tool_versions() | {"git_dirty": True}
    assert TypeAdapter(Profile.model_fields["tools"].annotation).validate_python(tools) == tools
