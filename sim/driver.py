"""The model as a backend: ``simulate(scenario, seed) -> records``, for every kind of scenario.

A fleet scenario goes to ``sim.fleet`` (its lifecycle in SimPy, its disks in closed form or
write by write), a scenario with a timeline to ``sim.world.timeline``, any other to
``sim.world.model`` (its VMs booted at t=0, each running its workload).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from cowbench.iolog import Trace
from cowbench.records import Recorder
from cowbench.scenario import Scenario
from sim.fleet.fleet import simulate_fleet
from sim.world.model import record_images, simulate_vms
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
