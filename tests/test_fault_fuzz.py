"""Bad scenario files, fuzzed: never a traceback, always one line per problem naming its key
path, exit code 2.

Hypothesis mutates the small scenario (a value replaced by junk of the wrong type, a huge or
negative number, a wrong or ambiguous unit; an unknown key added; a key deleted) and breaks its
YAML text; ``cowbench validate`` runs in-process on each file, as the CLI's ``main`` does.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowbench.cli import main

from .conftest import small_dict

Key = str | int
UNITS_JUNK = ["64MB", "4KB", "4 parsecs", "-4k", "-1", "1e400", "2GiB", "10m", "0", "lots",
              "1.5", "NaN", "inf", "-inf", "9" * 40 + "PiB", "1" + "0" * 400 + "m", "4k ",
              "0x10", "½GiB", "", " ", "null"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(UNITS_JUNK))
CONTAINERS = st.one_of(st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(min_size=1, max_size=5), st.integers(),
                                       min_size=1, max_size=2))
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paths(node: Any, prefix: tuple[Key, ...] = ()) -> list[tuple[Key, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def key_path(path: tuple[Key, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parent(d: Any, path: tuple[Key, ...]) -> Any:
    for part in path[:-1]:
        d = d[part]
    return d


@st.composite
def mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, tuple[Key, ...]]:
    d = small_dict()
    path = draw(st.sampled_from(_paths(d)))
    kind = draw(st.sampled_from(["scalar", "container", "unknown", "delete"]))
    parent = _parent(d, path)
    if kind == "unknown":
        target = parent if isinstance(parent, dict) else _parent(d, path[:-1])
        key = draw(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).filter(
            lambda k: k not in target and k not in ("count",)))
        target[key] = draw(SCALARS)
        where = path[:-1] if isinstance(parent, dict) else path[:-2]
        return d, kind, (*where, key)
    if kind == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(CONTAINERS if kind == "container" else SCALARS)
    return d, kind, path


def validate(path: Path) -> tuple[int, str]:
    """``cowbench validate PATH`` in-process; returns (exit code, stderr)."""
    err = io.StringIO()
    argv = sys.argv
    sys.argv = ["cowbench", "validate", str(path)]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return int(code or 0), err.getvalue()


def _assert_clean(code: int, stderr: str, source: Path) -> list[str]:
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    if code == 2:
        assert lines
        for line in lines:  # one line per problem: "error: FILE: KEY PATH: reason"
            assert line.startswith(f"error: {source}: "), line
    return lines


@SETTINGS
@given(case=mutations())
@pytest.mark.slow
def test_mutated_scenarios_fail_cleanly_naming_the_key(tmp_path: Path,
                                                        case: tuple[dict[str, Any], str,
                                                                    tuple[Key, ...]]) -> None:
    d, kind, path = case
    source = tmp_path / "s.yaml"
    source.write_text(yaml.safe_dump(d))
    code, stderr = validate(source)
    lines = _assert_clean(code, stderr, source)
    named = key_path(path)
    if kind == "unknown" and path[:-1] == ("workloads",):  # a new workload, not a key
        assert code == 0 or any(f": {named}" in line for line in lines), stderr
    elif kind == "unknown":
        assert code == 2 and any(f": {named}: unknown key" in line for line in lines), stderr
    if kind == "container":  # a list or mapping where none belongs: refused at its key path
        assert code == 2 and any(f": {named}" in line for line in lines), (named, stderr)


@SETTINGS
@given(cut=st.integers(0, 2000), junk=st.sampled_from(
    [":", "[", "]", "{", "}", "\t", "*x", "&a", "!!python/object/apply:os.system ['true']",
     "- ", "? ", "\n  - a: [", "\x00", "'", '"', "%YAML 9.9\n", "---\n...\n---\n", "|"]))
@pytest.mark.slow
def test_broken_yaml_fails_cleanly(tmp_path: Path, cut: int, junk: str) -> None:
    text = yaml.safe_dump(small_dict())
    cut = cut % (len(text) + 1)
    source = tmp_path / "s.yaml"
    source.write_text(text[:cut] + junk + text[cut:])
    code, stderr = validate(source)
    _assert_clean(code, stderr, source)


@pytest.mark.parametrize("text,needle", [
    ("!!python/object/apply:os.system ['touch /tmp/cowbench-pwned']", "not valid YAML"),
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "mapping"),
    ("", "mapping"),
])
def test_hostile_or_empty_yaml(tmp_path: Path, text: str, needle: str) -> None:
    source = tmp_path / "s.yaml"
    source.write_text(text)
    code, stderr = validate(source)
    assert code == 2 and needle in stderr and "Traceback" not in stderr
    assert not Path("/tmp/cowbench-pwned").exists()


def test_key_path_format() -> None:
    assert key_path(("vms", 0, "image")) == "vms[0].image"
    assert re.fullmatch(r"workloads\.w\.bs", key_path(("workloads", "w", "bs")))


# -- damaged run and sweep directories --------------------------------------------------------

DAMAGES = ["truncate", "junk", "empty", "directory", "fifo", "dev-zero", "json-list",
           "json-bad-status", "delete", "deep-yaml", "dup-yaml"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished model run and a finished two-point sweep, to copy and damage."""
    from cowbench.runner import run_scenario
    from cowbench.scenario import parse_scenario
    from cowbench.sweep import load_sweep, run_sweep

    base = tmp_path_factory.mktemp("pristine")
    run_scenario(parse_scenario(small_dict()), base / "run", "sim")
    (base / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (base / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 2}))
    run_sweep(load_sweep(base / "sw.yaml"), base / "sweep", "inprocess")
    return {"run": base / "run", "sweep": base / "sweep", "spec": base / "sw.yaml"}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and "raw" not in p.relative_to(root).parts)


def _damage(path: Path, kind: str, cut: int) -> None:
    import json
    import os

    text = path.read_bytes()
    if kind in ("directory", "fifo", "dev-zero", "delete"):
        path.unlink()
    if kind == "truncate":
        path.write_bytes(text[:cut % (len(text) + 1)])
    elif kind == "junk":
        path.write_bytes(text[:cut % (len(text) + 1)] + b"\x00\xff{[\"" + text[cut:])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "json-list":
        path.write_text("[1, 2, 3]")
    elif kind == "json-bad-status":
        path.write_text(json.dumps({"status": {"x": [1]}, "seed": "nope", "reason": "[red]x",
                                    "points": 7}))
    elif kind == "deep-yaml":
        path.write_text("a: " + "[" * 300 + "]" * 300)
    elif kind == "dup-yaml":
        path.write_text("name: a\nname: b\n")


def _in_time(args: list[str]) -> tuple[int, str]:
    """``cowbench ARGS`` in-process; a read that blocks (a FIFO) fails the test, not hangs."""
    import signal

    def expire(_s: int, _f: Any) -> None:
        raise TimeoutError("the command blocked for 60 s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    err = io.StringIO()
    code: int | str | None = 0
    argv, sys.argv = sys.argv, ["cowbench", *args]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as e:
        code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        sys.argv = argv
    return int(code or 0), err.getvalue()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.slow
def test_commands_on_damaged_run_and_sweep_dirs_fail_cleanly(pristine: dict[str, Path],
                                                              data: st.DataObject) -> None:
    import shutil
    import tempfile

    which = data.draw(st.sampled_from(["run", "sweep"]))
    files = _files(pristine[which])
    target = data.draw(st.sampled_from(files))
    kind = data.draw(st.sampled_from(DAMAGES))
    cut = data.draw(st.integers(0, 4000))
    commands = ([["show"], ["fio-json"], ["repredict"]] if which == "run" else
                [["show"], ["sweep", str(pristine["spec"]), "--scheduler", "inprocess",
                            "--out"]])
    command = data.draw(st.sampled_from(commands))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / which
        shutil.copytree(pristine[which], d, symlinks=True)
        _damage(d / target, kind, cut)
        code, stderr = _in_time([*command, str(d)])
        assert code in (0, 1, 2), (target, kind, command, code, stderr)
        assert "Traceback" not in stderr, stderr
        lines = [line for line in stderr.splitlines()
                 if line.strip() and not line.startswith("warning: ")]
        if code:
            assert lines and all(line.startswith("error: ") for line in lines), \
                (target, kind, command, stderr)
            assert "internal error" not in stderr, (target, kind, command, stderr)
        if which == "sweep" and command[0] == "sweep" and (d / "sweep.json").is_file():
            meta = (d / "sweep.json").read_bytes()
            assert b'"status": "running"' not in meta, meta


@pytest.mark.slow
def test_show_of_a_sweep_whose_status_is_not_text_fails_cleanly(pristine: dict[str, Path],
                                                                tmp_path: Path) -> None:
    """The case hypothesis found (a TypeError from ``show``): sweep.json's status a mapping."""
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(pristine["sweep"], sweep, symlinks=True)
    _damage(sweep / "sweep.json", "json-bad-status", 0)
    code, err = _in_time(["show", str(sweep)])
    assert "internal error" not in err and "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
