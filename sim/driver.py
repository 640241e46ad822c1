"""The model as a backend: ``simulate(scenario, seed) -> records``, for every kind of scenario.

A fleet scenario goes to ``sim.fleet`` (its lifecycle in SimPy, its disks in closed form or
write by write), a scenario with a timeline to ``sim.world.timeline``, any other to
``sim.world.model`` (its VMs booted at t=0, each running its workload).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from cowbench.backends import Backend
from cowbench.iolog import Trace
from cowbench.profile import FitRow, PerfParams, Probe
from cowbench.records import Recorder
from cowbench.scenario import Scenario
from sim.fleet.fleet import simulate_fleet
from sim.perf import perf
from sim.world.model import place_vms, record_images, simulate_vms, untimed_is_upper_bound
from sim.world.timeline import simulate_timeline


def simulate(scenario: Scenario, seed: int | None = None,
             traces: Mapping[str, Sequence[Trace]] | None = None) -> pd.DataFrame:
    """Run the model once; return its records (backend ``sim``).

    ``traces`` gives, per VM name, the exact I/O stream of each fio clone (``offsets: fio`` or
    ``iolog``, or a finished real run's record); other VMs generate their offsets."""
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    if scenario.fleet is not None:
        return simulate_fleet(scenario, seed)
    rec = Recorder("sim", seed)
    if scenario.timeline is not None:
        record_images(scenario, rec)
        simulate_timeline(scenario, rec)
    else:
        simulate_vms(scenario, rec, traces)
    return rec.frame()


def predict_space(scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
    """The model's allocation figures, for the free-space check before a real run alone: its
    VMs' writes applied without the clock (``sim.world.model.place_vms``) where that is an
    upper bound of what :func:`simulate` allocates, else :func:`simulate` itself."""
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    if scenario.fleet is not None or scenario.timeline is not None \
            or not untimed_is_upper_bound(scenario):
        return simulate(scenario, seed)
    rec = Recorder("sim", seed)
    place_vms(scenario, rec)
    return rec.frame()


class SimBackend(Backend):
    """The model, as the core finds it (``cowbench.backends``, entry point ``sim``)."""

    name = "sim"

    def check(self, scenario: Scenario) -> None:
        """The model runs anything that validated."""

    def simulate(self, scenario: Scenario, seed: int | None = None,
                 traces: Mapping[str, Sequence[Trace]] | None = None) -> pd.DataFrame:
        return simulate(scenario, seed, traces)

    def predict_space(self, scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
        return predict_space(scenario, seed)

    def fit(self, probes: Sequence[Probe]) -> PerfParams:
        return perf.fit(probes)

    def fit_rows(self, params: PerfParams, probes: Sequence[Probe],
                 ios: int = 3000) -> list[FitRow]:
        return perf.fit_rows(params, probes, ios)
