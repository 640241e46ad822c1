"""Backends by name (cowbench.backends): the core finds sim and real without importing them."""

import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from cowbench import backends
from cowbench.backends import BUILT_IN, Backend, get_backend, register
from cowbench.errors import UsageError
from sim import simulate
from tests.conftest import small_scenario

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry for the test; the process's own comes back afterwards."""
    monkeypatch.setattr(backends, "backends", {})


def test_the_built_in_table_is_what_pyproject_declares() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["cowbench.backends"] == BUILT_IN


def test_sim_and_real_are_found_by_name_and_made_once(fresh: None) -> None:
    sim, real = get_backend("sim"), get_backend("real")
    assert (type(sim).__module__, sim.name) == ("sim.driver", "sim")
    assert (type(real).__module__, real.name) == ("real.driver", "real")
    assert get_backend("sim") is sim


def test_the_sim_backend_gives_the_model_records() -> None:
    s = small_scenario()
    pd.testing.assert_frame_equal(get_backend("sim").simulate(s, 3), simulate(s, 3))


def test_an_unknown_backend_is_refused_with_the_known_names(fresh: None) -> None:
    with pytest.raises(UsageError, match=r"no backend named 'qemu'; known: .*real, sim"):
        get_backend("qemu")


def test_what_a_backend_does_not_do_it_refuses_by_name() -> None:
    with pytest.raises(UsageError, match="backend 'real' cannot simulate a scenario"):
        get_backend("real").simulate(small_scenario())
    with pytest.raises(UsageError, match="backend 'sim' cannot execute a scenario"):
        get_backend("sim").execute(small_scenario(), Path("."), None, run_id="x")  # type: ignore[arg-type]


class _Echo(Backend):
    name = "echo"

    def check(self, scenario: Any) -> None:
        pass


def test_a_registered_backend_comes_first(fresh: None) -> None:
    mine = _Echo()
    register(mine)
    assert get_backend("echo") is mine


def test_an_installed_entry_point_is_loaded(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def found(group: str, name: str | None = None) -> list[Any]:
        assert group == "cowbench.backends"
        return [SimpleNamespace(load=lambda: _Echo)] if name == "echo" else []

    monkeypatch.setattr(backends, "entry_points", found)
    assert isinstance(get_backend("echo"), _Echo)


def test_an_entry_point_that_is_not_a_backend_is_refused(fresh: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "entry_points",
                        lambda group, name=None: [SimpleNamespace(load=lambda: dict)])
    with pytest.raises(UsageError, match="is not a cowbench.backends.Backend"):
        get_backend("odd")
