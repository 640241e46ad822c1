"""Every program the code can start is in cowbench/packages.py, bootstrap.sh installs its
package when it is missing, and Debian agrees which package provides it (issue 15).

The programs are found in the sources (cowbench/, sim/, real/, benchmarks/, tests/, scripts/)
with ast: an argument list literal (``["fio", ...]``, ``[which("fio"), ...]``) handed to
run/Popen/subprocess or assigned to an ``argv``/``cmd``, ``which("x")`` / ``shutil.which`` /
``tool_version`` / ``require_tools`` arguments, ``*TOOLS`` tuples, and
string tuples looped over with ``which`` in the body. A new program started without a table
entry fails here.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cowbench.packages import PREREQUISITES, PROGRAMS, package_of, programs
from cowbench.tools import MissingToolError, which

from .test_cli import ROOT

SOURCES = ("cowbench", "sim", "real", "benchmarks", "tests", "scripts")
RUNNERS = {"run", "run_json", "Popen", "check_output", "check_call", "call", "sh"}
NAMERS = {"which", "tool_version"}
#: argument-list heads that are not a program name here, and why that is fine
NOT_NAMED_HERE = {
    "sys.executable": "Python itself (bootstrap's prerequisite)",
    "str(bindir / 'dask')": "the venv's own command (pip), not Debian's",
    "list(argv)": "tools.run: its callers' argument lists are scanned",
    "tool": "tools.tool_version(tool): its callers name the program",
    "CHROMIUM": "tests/browser.py: which('chromium'), scanned",
    "str(exe)": "tests/test_io_trace.py: Python itself, under a tool's name",
}


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _strings(node: ast.AST) -> list[str] | None:
    """The strings of a tuple/list literal made only of strings, else None."""
    if isinstance(node, ast.Tuple | ast.List) and node.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


def _head(node: ast.AST, where: str) -> Iterator[str]:
    """The program an argument list literal starts."""
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return
    first = node.elts[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        yield first.value
    elif isinstance(first, ast.Call) and _name(first) == "which" and first.args:
        yield from _const(first.args[0])
    elif isinstance(first, ast.Starred | ast.Constant):
        return
    else:
        text = ast.unparse(first)
        if re.fullmatch(r"str\(ROOT / 'scripts' / '[\w.-]+\.sh'\)", text):
            return  # this repository's own scripts (their programs: bootstrap's table)
        assert text in NOT_NAMED_HERE, f"{where}: cannot tell what {text} runs"


def _const(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value


def _argv_target(t: ast.AST) -> bool:
    if ast.unparse(t) == "sys.argv":  # Python's own argv (an in-process CLI call)
        return False
    name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
    return "argv" in name.lower() or "cmd" in name.lower()


def _looped(node: ast.For | ast.comprehension, body: list[ast.AST]) -> Iterator[str]:
    """A string tuple looped over with ``which(target)`` in the body."""
    names = _strings(node.iter)
    if names is None or not isinstance(node.target, ast.Name):
        return
    var = node.target.id
    for sub in (n for b in body for n in ast.walk(b)):
        if isinstance(sub, ast.Call) and _name(sub) in NAMERS and sub.args and \
                isinstance(sub.args[0], ast.Name) and sub.args[0].id == var:
            yield from names
            return


def programs_in(path: Path) -> Iterator[tuple[str, str]]:
    """``(program, where)`` for every program the module at ``path`` can start."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(ROOT)  # once: per node it was most of the scan's time
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        found: list[str] = []
        if isinstance(node, ast.Call):
            name = _name(node)
            if name in RUNNERS and node.args:
                found += _head(node.args[0], where)
                if name == "sh":
                    found += _const(node.args[0])
            if name in NAMERS and node.args:
                found += _const(node.args[0])
            if name == "require_tools" and node.args:
                found += _strings(node.args[0]) or []
        elif isinstance(node, ast.Assign):
            if any(_argv_target(t) for t in node.targets):
                found += _head(node.value, where)
            if any(isinstance(t, ast.Name) and t.id.endswith(("TOOLS", "TOOL_NAMES"))
                   for t in node.targets):
                found += _strings(node.value) or []
        elif isinstance(node, ast.For):
            found += _looped(node, list(node.body))
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            for gen in node.generators:
                found += _looped(gen, [node.elt, *gen.ifs])
        for program in found:
            yield program, where


@functools.cache
def started_programs() -> dict[str, list[str]]:
    """Program -> where it is started; scanned once per process (two tests read it)."""
    out: dict[str, list[str]] = {}
    for d in SOURCES:
        for path in sorted((ROOT / d).rglob("*.py")):
            if path.name == "packages.py":
                continue
            for program, where in programs_in(path):
                out.setdefault(program, []).append(where)
    return out


@pytest.mark.slow
def test_the_scan_finds_what_the_code_is_known_to_start() -> None:
    """The scanner itself: programs started in each of its ways are found."""
    found = started_programs()
    for program in ("qemu-img", "qemu-io", "qemu-nbd", "fio", "rsync", "cp", "mount", "umount",
                    "mkfs.xfs", "xfs_io", "xfs_spaceman", "losetup", "filefrag", "chromium"):
        assert program in found, program


@pytest.mark.slow
def test_every_program_started_is_in_the_table() -> None:
    missing = {p: w for p, w in started_programs().items() if p not in PROGRAMS}
    assert not missing, f"add these to cowbench/packages.py: {missing}"


def test_a_missing_tool_names_its_own_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    for program, (package, _group) in PROGRAMS.items():
        with pytest.raises(MissingToolError) as info:
            which(program)
        assert f"apt-get install {package} " in str(info.value), (program, str(info.value))


def _dry_run(path_dir: Path, *options: str) -> set[str]:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"),
                           "--dry-run", *options], executable=BASH,
                          env={**os.environ, "PATH": str(path_dir)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


BASH = shutil.which("bash") or "/bin/bash"  # bash itself may be what PATH leaves out
#: what bootstrap.sh itself needs on PATH beside the table's programs
SHELL = ("python3", "dirname", "id", "cat", "cut", "sha256sum")


def _system_python() -> str:
    """Debian's python3 (a pyenv shim on PATH would need pyenv's own PATH)."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def _fake_path(tmp_path: Path, leave_out: str | None, only_shell: bool = False) -> Path:
    """A PATH holding every program of this machine that bootstrap looks for, but one."""
    d = tmp_path / f"bin-{leave_out}-{only_shell}"
    d.mkdir()
    for program in (*SHELL, *(() if only_shell else PROGRAMS)):
        real = _system_python() if program == "python3" else shutil.which(program)
        if real and program != leave_out:
            (d / program).symlink_to(real)
    return d


@pytest.mark.parametrize("group,options", [("run", ()), ("test", ("--test",)),
                                           ("fresh-check", ("--fresh-check",))])
@pytest.mark.slow
def test_bootstrap_installs_the_package_of_each_missing_program(
        tmp_path: Path, group: str, options: tuple[str, ...]) -> None:
    baseline = _dry_run(_fake_path(tmp_path, None), *options)
    for program, package in programs(group):
        wanted = _dry_run(_fake_path(tmp_path, program), *options)
        assert package in wanted, (program, package, wanted)
        others = [p for p, k in PROGRAMS.items() if k[0] == package and p != program]
        if shutil.which(program) and all(shutil.which(p) for p in others):
            assert package not in baseline, (program, package, baseline)


@pytest.mark.slow
def test_bootstrap_installs_what_its_options_ask_for(tmp_path: Path) -> None:
    """With none of the table's programs on PATH: each option's packages, no more."""
    bare = _fake_path(tmp_path, None, only_shell=True)
    assert _dry_run(bare) == {pkg for _p, pkg in programs("run")}
    assert _dry_run(bare, "--test") == {pkg for _p, pkg in programs("run", "test")}
    assert _dry_run(bare, "--fresh-check") == {pkg for _p, pkg in programs("fresh-check")}


def test_bootstrap_lists_the_prerequisites_it_installs_before_python() -> None:
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    for package in PREREQUISITES:
        assert f"want {package}\n" in text, package
    assert "python3 cowbench/packages.py" in text  # and the rest from the table


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (a Debian system)")
@pytest.mark.slow
def test_debian_says_the_same_package_provides_each_program() -> None:
    checked = 0
    for program, (package, _group) in PROGRAMS.items():
        path = shutil.which(program)
        if path is None:
            continue
        owners = _dpkg_owners(Path(path))
        assert package in owners, (program, path, owners)
        checked += 1
    assert checked >= len(programs("run")), "the real backend's programs are installed here"


def _dpkg_owners(path: Path) -> set[str]:
    """Packages dpkg says own ``path`` (merged /usr: dpkg may know it as /bin/x)."""
    candidates = [path, path.resolve()]
    for p in list(candidates):
        if str(p).startswith("/usr/"):
            candidates.append(Path(str(p)[4:]))
    for p in candidates:
        proc = subprocess.run(["dpkg", "-S", str(p)], capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0:
            return {pkg.strip().split(":")[0] for line in proc.stdout.splitlines()
                    for pkg in line.rpartition(": ")[0].split(",")}
    return set()


def test_package_of() -> None:
    assert package_of("rsync") == "rsync" and package_of("qemu-nbd") == "qemu-utils"
    assert package_of("no-such-program") is None
