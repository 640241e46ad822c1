"""The YAML limits hold on both parsers safeload uses (libyaml's events when PyYAML has it,
PyYAML's pure Python otherwise), and a run directory's own scenario.yaml gets the larger
resolved caps while a user's scenario file of that size is refused."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cowbench import safeload
from cowbench.errors import ScenarioError
from cowbench.safeload import MAX_INPUT_BYTES, MAX_RESOLVED_BYTES, load_yaml
from cowbench.scenario import load_scenario

from .clikit import assert_one_line, cli
from .clirun import cowbench
from .conftest import small_dict


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML built without libyaml")
        from yaml.cyaml import CParser  # type: ignore[attr-defined]
        assert isinstance(safeload._loader("a: 1\n"), CParser)
    else:
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
        assert isinstance(safeload._loader("a: 1\n"), safeload._PyLoader)
    yield request.param


def test_depth_64_loads_and_65_is_refused(parser: str) -> None:
    doc = load_yaml("[" * 64 + "]" * 64, "s.yaml")
    for _ in range(63):
        doc = doc[0]
    assert doc == []
    with pytest.raises(ScenarioError, match=r"line 1, column 65: nested more than 64 deep"):
        load_yaml("[" * 65 + "]" * 65, "s.yaml")


def _aliases(n: int) -> str:
    return "a: &x 1\nb: [" + ", ".join(["*x"] * n) + "]\n"


def test_1000_aliases_load_and_1001_are_refused(parser: str) -> None:
    assert load_yaml(_aliases(1000), "s.yaml")["b"] == [1] * 1000
    with pytest.raises(ScenarioError, match="more than 1000 aliases; refused"):
        load_yaml(_aliases(1001), "s.yaml")


def test_alias_expansion_is_counted_to_the_node(parser: str) -> None:
    # mapping 1 + key a 1 + [1, 2, 3] 4 + key b 1 + [*x, *x, *x] 1 + 3 * 4 = 20 nodes
    text = "a: &x [1, 2, 3]\nb: [*x, *x, *x]\n"
    assert load_yaml(text, "s.yaml", max_nodes=20)["b"] == [[1, 2, 3]] * 3
    with pytest.raises(ScenarioError, match="aliases expand to more than 19 nodes"):
        load_yaml(text, "s.yaml", max_nodes=19)
    bomb = "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))
    with pytest.raises(ScenarioError, match="expand to more than 2000000 nodes"):
        load_yaml(bomb, "s.yaml")
    with pytest.raises(ScenarioError, match="refers to the collection that holds it"):
        load_yaml("a: &x [1, *x]\n", "s.yaml")


def test_duplicate_keys_are_refused_with_both_lines(parser: str) -> None:
    with pytest.raises(ScenarioError, match=r"line 4, column 5: duplicate key 'bs' \(first "
                                            r"given at line 3\); refused"):
        load_yaml("workloads:\n  w:\n    bs: 4k\n    bs: 8k\n", "s.yaml")
    with pytest.raises(ScenarioError, match="duplicate key 1"):
        load_yaml("{1: a, 1: b}", "s.yaml")
    merged = load_yaml("base: &b {bs: 4k, rw: read}\nw: {<<: *b, bs: 8k}\n", "s.yaml")
    assert merged["w"] == {"bs": "8k", "rw": "read"}


def _with_vms(resolved: str, n: int) -> str:
    """``resolved`` (a run's scenario.yaml) with its VMs replaced by ``n`` VMs of workload r,
    each with its own copy of the scenario's strategy, as a resolved scenario writes them."""
    head, tail = resolved.split("\nvms:\n", 1)
    rest = tail[tail.index("\ndevice:\n"):]
    found = re.search(r"^strategy:\n((?:  .*\n)+)", resolved, re.M)
    assert found, resolved
    strategy = "".join("    " + line[2:] + "\n" for line in found.group(1).splitlines())
    vm = ("- name: v{}\n  image: img\n  host: null\n  flavor: null\n  root_size: null\n"
          "  workload: r\n  count: 1\n  strategy:\n" + strategy.replace("{", "{{")
          .replace("}", "}}"))
    return head + "\nvms:\n" + "".join(vm.format(i) for i in range(n)) + rest[1:]


def _described(resolved: str, size: int) -> str:
    """``resolved`` with a description of ``size`` bytes: one scalar, so the file passes the
    input cap without the millions of YAML nodes (and seconds of parsing) of VMs alone."""
    assert "\ndescription: ''\n" in resolved, resolved
    return resolved.replace("\ndescription: ''\n", f"\ndescription: {'x' * size}\n", 1)


@pytest.mark.slow
def test_a_resolved_scenario_over_the_input_cap_loads_from_its_run_dir(tmp_path: Path) -> None:
    user = tmp_path / "s.yaml"
    user.write_text(yaml.safe_dump(small_dict()))
    ran = cowbench("run", str(user), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    run = tmp_path / "big-run"
    shutil.copytree(tmp_path / "run", run)
    # what crosses the 16 MiB input cap is bytes, and a description's are the cheapest to
    # parse (one scalar); 1,000 VMs of 41 YAML nodes each are many VMs and no cap (10,000
    # were 410,000 nodes, under every node cap too, and took ten times as long to load twice)
    text = _described(_with_vms((run / "scenario.yaml").read_text(), 1_000), 16 << 20)
    assert MAX_INPUT_BYTES < len(text.encode()) < MAX_RESOLVED_BYTES
    (run / "scenario.yaml").write_text(text)
    scenario = load_scenario(run / "scenario.yaml", resolved=True)
    assert len(scenario.vms) == 1_000 and scenario.vms[-1].name == "v999"
    assert len(scenario.description) == 16 << 20
    shown = cowbench("show", str(run))
    assert shown.code == 0, shown.stderr
    assert "status ok" in shown.stdout
    big = tmp_path / "big.yaml"  # the same text as a user's scenario: the normal cap
    big.write_text(text)
    with pytest.raises(ScenarioError, match="larger than the 16 MiB a scenario file may be"):
        load_scenario(big)
    assert_one_line(cli("validate", str(big)), 2, "larger than the 16 MiB a scenario file")


@pytest.mark.parametrize(("text", "where"), [
    ("seed: {n}\n", "seed"),
    ("images:\n  - {{name: i, virtual_size: {n}}}\n", "images[0].virtual_size"),
    ("x: &x {n}\ny: *x\n", "x"),  # an unknown key, and an alias of it
    ("seed: 0x{h}\n", "seed"),  # no limit reading hex, but printing it fails later
    ("vms:\n  - ? {n}\n    : 1\n", "vms[0].99999999999999999999..."),  # a key
])
def test_an_integer_over_pythons_digit_limit_is_refused_at_its_key(
        parser: str, tmp_path: Path, text: str, where: str) -> None:
    """Python converts at most 4300 digits between int and text: such a number anywhere in
    a scenario was 'internal error (ValueError)', exit 1; now exit 2 at its key path."""
    p = tmp_path / "s.yaml"
    p.write_text(text.format(n="9" * 5000, h="f" * 4000))
    r = cli("validate", str(p))
    assert_one_line(r, 2, f"{p}: {where}: line ", "digits Python reads or prints; refused")
    assert "9" * 100 not in r.err
    doc = load_yaml("seed: " + "9" * 4300 + "\n", "s.yaml")  # at the limit: read
    assert doc["seed"] == int("9" * 4300)
