"""Backends by name: the core asks for ``sim`` or ``real`` and never imports either.

The shape is dask distributed's ``comm/registry.py``: an abstract :class:`Backend`, a dict of
backends by name, and the installed entry points as the fallback. ``get_backend(name)`` looks
in :data:`backends` first; a name not there is loaded from the entry points of the group
``cowbench.backends`` (pyproject.toml declares ``sim`` and ``real``), or, when the package was
installed before it declared them (entry points appear only on install), from
:data:`BUILT_IN`, the same table. Either way the backend is made once and kept.

The model (``sim``) simulates and fits a calibration; the real backend (``real``) executes a
scenario and measures the probes of a calibration. What a backend does not do it refuses by
name (:class:`~cowbench.errors.UsageError`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from .iolog import Trace
    from .lease import Lease
    from .profile import FitRow, PerfParams, Probe
    from .scenario import Scenario
    from .tools import RawLog

ENTRY_POINT_GROUP = "cowbench.backends"
#: what pyproject.toml's ``[project.entry-points."cowbench.backends"]`` declares
BUILT_IN = {"sim": "sim.driver:SimBackend", "real": "real.driver:RealBackend"}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Checks(Protocol):
    """What a backend checked during a run, for run.json (the real backend's integrity)."""

    def report(self) -> dict[str, Any]: ...


class Backend(ABC):
    """What the core needs of a backend; the methods a backend lacks refuse, by name."""

    name = ""

    @abstractmethod
    def check(self, scenario: Scenario) -> None:
        """Refuse, before anything is created, a scenario this backend cannot run here."""

    def simulate(self, scenario: Scenario, seed: int | None = None,
                 traces: Mapping[str, Sequence[Trace]] | None = None) -> pd.DataFrame:
        """The scenario's records, predicted."""
        raise self._lacks("simulate a scenario")

    def predict_space(self, scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
        """The allocation figures the free-space check needs (a model may skip the rest)."""
        return self.simulate(scenario, seed)

    def io_events(self, scenario: Scenario, seed: int | None = None,
                  traces: Mapping[str, Sequence[Trace]] | None = None
                  ) -> dict[str, pd.DataFrame]:
        """Per VM, every guest I/O of :meth:`simulate`'s run that fio counts (``issued_s``,
        ``done_s``, ``bytes``, ``is_write``; ``clone``, its place in fio's run order,
        ``origin_s``, when that clone's fio logs count their time from, and ``end_s``, when
        it finished), for fio's time-series logs."""
        raise self._lacks("list the I/Os of a run")

    def limits(self, scenario: Scenario) -> dict[str, Any]:
        """This machine's limits the backend's run of ``scenario`` meets, and what the run
        does about them, for run.json (the real backend's ``open_files``); none by default."""
        return {}

    def integrity(self, log: RawLog) -> Checks:
        """A fresh record of the checks a run makes (passed to :meth:`execute`)."""
        raise self._lacks("check images")

    def execute(self, scenario: Scenario, work: Path, log: RawLog, *, run_id: str,
                progress: Progress = _quiet, seed: int | None = None,
                step_done: Progress = _quiet, integrity: Checks | None = None,
                lease: Lease | None = None) -> pd.DataFrame:
        """The scenario built and run under ``work``; its records, measured; what it creates
        and mounts is recorded in ``lease`` (``cowbench.lease``)."""
        raise self._lacks("execute a scenario")

    def probe_settings(self, matrix: str, exports: int, aio: str = "threads") -> Any:
        """The settings of a calibration's probe matrix (a dataclass with ``as_dict()``),
        its exports served by qemu-nbd with ``--aio=aio``."""
        raise self._lacks("measure calibration probes")

    def measure_probes(self, directory: Path, settings: Any,
                       progress: Any = None, lease: Lease | None = None) -> list[Probe]:
        """The calibration's probes, measured on ``directory``; the private directory it
        makes is recorded in ``lease``."""
        raise self._lacks("measure calibration probes")

    def measure_again(self, directory: Path, settings: Any, probes: Sequence[Probe],
                      progress: Any = None, lease: Lease | None = None) -> list[Probe]:
        """``probes`` of a profile measured again on ``directory`` with ``settings`` (the
        drift since the calibration, ``cowbench.drift``), in the same order; the private
        directory it makes is recorded in ``lease``."""
        raise self._lacks("measure calibration probes")

    #: the version of :meth:`fit`'s answer for the same probes (0: no fit); a profile records
    #: it, and one fitted by an older version is fitted again (``cowbench.autoprofile``)
    fit_version: int = 0

    def fit(self, probes: Sequence[Probe], cores: int | None = None) -> PerfParams:
        """The I/O model's parameters fitted to the probes, measured on a machine of
        ``cores`` cores (None: this one's)."""
        raise self._lacks("fit a calibration")

    def fit_rows(self, params: PerfParams, probes: Sequence[Probe],
                 ios: int = 3000) -> list[FitRow]:
        """Each probe replayed by the fitted model (``ios`` simulated I/Os) beside what was
        measured."""
        raise self._lacks("fit a calibration")

    def _lacks(self, what: str) -> UsageError:
        return UsageError(f"backend {self.name!r} cannot {what}")


#: backends by name, filled on first use (or by :func:`register`)
backends: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Make ``backend`` the one :func:`get_backend` returns for its name."""
    backends[backend.name] = backend


def _load(target: str) -> type[Backend]:
    module, _, attr = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), attr)
    return cls


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (``sim``, ``real``, or one an installed package declares)."""
    backend = backends.get(name)
    if backend is not None:
        return backend
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if found:
        cls: type[Backend] = next(iter(found)).load()
    elif name in BUILT_IN:
        cls = _load(BUILT_IN[name])
    else:
        known = sorted({*BUILT_IN, *backends, *entry_points(group=ENTRY_POINT_GROUP).names})
        raise UsageError(f"no backend named {name!r}; known: {', '.join(known)}")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"backend {name!r} is not a cowbench.backends.Backend: {cls!r}")
    backend = backends[name] = cls()
    return backend
