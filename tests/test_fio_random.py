"""scenarios/fio-random.yaml meets issue #3's target in both backends.

Eight VMs mixing random distributions, block sizes, bssplit, rw mixes, numjobs, cluster sizes
(4 KiB to 2 MiB) and extended L2, offsets from fio itself: every VM's data_clusters equals the
measured count, file_bytes is within one cluster, allocated_bytes within 0.1%.
"""

from pathlib import Path

import pandas as pd
import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario

from .conftest import needs_tools

pytestmark = [pytest.mark.real, needs_tools]
SCENARIO = Path(__file__).parent.parent / "scenarios" / "fio-random.yaml"


def test_fio_random_meets_target(tmp_path: Path, no_leaks: None) -> None:
    s = load_scenario(SCENARIO)
    outcome = run_scenario(s, tmp_path / "run", "both")
    comp = outcome.comparison
    assert comp is not None
    vms = comp[comp.entity.str.startswith("vm:")]
    by = {m: vms[vms.metric == m].set_index("entity") for m in
          ("data_clusters", "file_bytes", "allocated_bytes")}
    assert len(by["data_clusters"]) == 8
    assert (by["data_clusters"].predicted == by["data_clusters"].measured).all()
    for vm in s.vms:
        row = by["file_bytes"].loc[f"vm:{vm.name}"]
        assert abs(row.predicted - row.measured) <= s.strategy_of(vm).cluster_size, vm.name
    worst = by["allocated_bytes"].rel_error.abs().max()
    assert worst <= 0.001, by["allocated_bytes"][["predicted", "measured", "rel_error"]]
    assert isinstance(comp, pd.DataFrame)
