"""The model as a backend: ``simulate(scenario, seed) -> records``, for every kind of scenario.

A fleet scenario goes to ``sim.fleet`` (its lifecycle an event loop, its disks in closed form or
write by write), any other is a timeline (``sim.world.runs``): one without a ``timeline``
section boots its VMs at t=0, each running its workload then.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from cowbench.backends import Backend
from cowbench.iolog import Trace
from cowbench.profile import FitRow, PerfParams, Probe
from cowbench.records import Recorder
from cowbench.scenario import Scenario
from cowbench.timeline_fleet import record_fleet
from sim.fleet.fleet import simulate_fleet
from sim.perf import perf
from sim.world.runs import place_vms, simulate_timeline, untimed_is_upper_bound
from sim.world.vm import IoEvents


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
    simulate_timeline(scenario, rec, traces)
    record_fleet(scenario, rec)  # a timeline's placement and capacity figures, as a fleet's
    return rec.frame()


def predict_space(scenario: Scenario, seed: int | None = None) -> pd.DataFrame:
    """The model's allocation figures, for the free-space check before a real run alone: its
    VMs' writes applied without the clock (``sim.world.runs.place_vms``) where that is an
    upper bound of what :func:`simulate` allocates, else :func:`simulate` itself."""
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    if not untimed_is_upper_bound(scenario):
        return simulate(scenario, seed)
    rec = Recorder("sim", seed)
    place_vms(scenario, rec)
    return rec.frame()


def io_events(scenario: Scenario, seed: int | None = None,
              traces: Mapping[str, Sequence[Trace]] | None = None) -> dict[str, pd.DataFrame]:
    """Per VM, every guest I/O the model completes that fio counts (:func:`simulate`'s run,
    same seed): columns ``issued_s``, ``done_s``, ``bytes``, ``is_write``, ``clone`` (its
    place in fio's run order, 0 for fio's thread 1), ``origin_s`` (when that clone's fio
    logs count their time from) and ``end_s`` (when it finished; both
    :class:`sim.world.vm.IoEvents`). Scenarios with a timeline or a fleet are refused (their
    VMs run several times, or are not simulated one by one)."""
    if scenario.timeline is not None or scenario.fleet is not None:
        raise ValueError("io events: only for scenarios without timeline and fleet")
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    events: dict[str, IoEvents] = {vm.name: IoEvents() for vm in scenario.vms}
    simulate_timeline(scenario, Recorder("sim", seed), traces, events)
    cols = ["issued_s", "done_s", "bytes", "is_write", "clone"]
    out = {}
    for vm, ev in events.items():
        frame = pd.DataFrame(ev.ios, columns=cols)
        frame["origin_s"] = frame.clone.map(ev.origins).astype(float)
        frame["end_s"] = frame.clone.map(ev.ends).astype(float)
        out[vm] = frame
    return out


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

    def io_events(self, scenario: Scenario, seed: int | None = None,
                  traces: Mapping[str, Sequence[Trace]] | None = None
                  ) -> dict[str, pd.DataFrame]:
        return io_events(scenario, seed, traces)

    fit_version = perf.FIT_VERSION

    def fit(self, probes: Sequence[Probe], cores: int | None = None) -> PerfParams:
        """The I/O model's parameters, then the host's allocation rate (``sim.perf.alloc``);
        the host scheduler's cores are those the probes ran on (default: this machine's,
        where a calibration runs them)."""
        if cores is None:
            cores = len(os.sched_getaffinity(0))
        return perf.fit_with_alloc(probes, cores)

    def fit_rows(self, params: PerfParams, probes: Sequence[Probe],
                 ios: int = 3000) -> list[FitRow]:
        return perf.fit_rows(params, probes, ios)
