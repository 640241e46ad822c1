"""Input files a hostile or careless user hands cowbench (issue 20): read only from regular
files, size-capped, never a blocking read; YAML without deep nesting, alias bombs or
duplicate keys. Each case: exit 2, one line naming the file and the reason, at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from cowbench.errors import ScenarioError
from cowbench.safeload import MAX_INPUT_BYTES, load_yaml, read_input

from .clikit import assert_one_line, cli
from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = cli(command, str(fifo))
    assert time.monotonic() - t0 < 5
    assert_one_line(r, 2, f"{fifo}: is a FIFO, not a regular file")


def test_dev_zero_and_a_directory_are_refused(tmp_path: Path) -> None:
    assert_one_line(cli("validate", "/dev/zero"), 2, "/dev/zero: is a character device")
    assert_one_line(cli("validate", str(tmp_path)), 2, "is a directory")


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:  # sparse: the cap is checked on the size, not by reading
        f.truncate(MAX_INPUT_BYTES + 1)
    assert_one_line(cli("validate", str(big)), 2, f"{MAX_INPUT_BYTES + 1} bytes: larger than")
    with pytest.raises(ScenarioError, match="larger than"):
        read_input(big)


def test_nesting_500_deep_is_one_line(tmp_path: Path) -> None:
    s = _write(tmp_path / "s.yaml", "name: x\nimages: " + "[" * 500 + "]" * 500 + "\n")
    assert_one_line(cli("validate", str(s)), 2, "nested more than 64 deep")
    j = tmp_path / "p.json"  # the same for JSON (a profile)
    j.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ScenarioError, match="nested too deep"):
        from cowbench.safeload import load_json_file
        load_json_file(j)


def _laughs(levels: int) -> str:
    text = "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text


def test_billion_laughs_in_a_scenario_and_a_sweep_grid(tmp_path: Path) -> None:
    s = _write(tmp_path / "s.yaml", "name: x\n" + _laughs(9) + "images: *a8\n")
    assert_one_line(cli("validate", str(s)), 2, "aliases expand to more than")
    _write(tmp_path / "base.yaml", yaml.safe_dump(small_dict()))
    sw = _write(tmp_path / "sw.yaml", "scenario: base.yaml\n" + _laughs(9)
                + "grid: {strategy.cluster_size: *a8}\n")
    assert_one_line(cli("sweep", str(sw), "--out", str(tmp_path / "out")), 2,
                    "aliases expand to more than")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("char", ["\n", "\t", "\x1b"])
def test_a_control_character_in_out_is_refused_before_anything_is_made(
        tmp_path: Path, char: str) -> None:
    """A newline in a run's --out reached fio in its command line and came back unescaped in
    its JSON, which then did not parse: the real run built everything and failed with "fio
    wrote no JSON result", its error broken across lines. Refused at once now, as a run's
    other --out checks are (exit 2, one line, the reason), for a sweep too; nothing made."""
    s = _write(tmp_path / "s.yaml", yaml.safe_dump(small_dict()))
    sw = _write(tmp_path / "sw.yaml", "scenario: s.yaml\n")
    shown = repr(char)[1:-1]
    for args in (("run", str(s), "--backend", "real"), ("run", str(s), "--backend", "sim"),
                 ("sweep", str(sw))):
        out = tmp_path / f"a{char}b" / "run"
        assert_one_line(cli(*args, "--out", str(out)), 2,
                        f"{tmp_path}/a{shown}b/run: holds a control character ({char!r})",
                        "fio writes a run's paths into its JSON unescaped")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "sw.yaml"]


def test_an_alias_inside_itself_is_refused() -> None:
    with pytest.raises(ScenarioError, match="refers to the collection that holds it"):
        load_yaml("a: &x [1, *x]\n", "s.yaml")


def test_too_many_aliases_are_refused() -> None:
    with pytest.raises(ScenarioError, match="more than 1000 aliases"):
        load_yaml("a: &x 1\nb: [" + ", ".join(["*x"] * 1001) + "]\n", "s.yaml")


def test_a_duplicate_vms_list_is_refused_not_dropped(tmp_path: Path) -> None:
    text = (yaml.safe_dump(small_dict(), sort_keys=False)
            + "vms:\n  - {name: only, image: img}\n")
    s = _write(tmp_path / "s.yaml", text)
    first = text.splitlines().index("vms:") + 1
    assert_one_line(cli("validate", str(s)), 2,
                    f"duplicate key 'vms' (first given at line {first})")


def test_duplicate_keys_deep_inside_and_in_a_sweep(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="line 4, column 5: duplicate key 'bs'"):
        load_yaml("workloads:\n  w:\n    bs: 4k\n    bs: 8k\n", "s.yaml")
    _write(tmp_path / "base.yaml", yaml.safe_dump(small_dict()))
    sw = _write(tmp_path / "sw.yaml", "scenario: base.yaml\nseeds: 2\nseeds: 3\n")
    assert_one_line(cli("sweep", str(sw), "--out", str(tmp_path / "o")), 2,
                    "duplicate key 'seeds'")


def test_merge_keys_may_still_override() -> None:
    data = load_yaml("base: &b {bs: 4k, rw: read}\nw: {<<: *b, bs: 8k}\n", "s.yaml")
    assert data["w"] == {"bs": "8k", "rw": "read"}


def test_the_shipped_scenarios_and_sweeps_still_load() -> None:
    for p in [*(ROOT / "scenarios").glob("*.yaml"), *(ROOT / "sweeps").glob("*.yaml")]:
        assert isinstance(load_yaml(read_input(p), str(p)), dict), p
