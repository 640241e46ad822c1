"""Per-VM distributions read back from per-VM records or from a fleet's quantile grid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cowbench.vmdist import (
    LEVELS,
    grid_entities,
    group_quantiles,
    has_vm_figures,
    pooled_quantiles,
    vm_quantiles,
)


def _records(point: str, values: np.ndarray, per_vm: bool) -> pd.DataFrame:
    if per_vm:
        entity = [f"vm:{point}-{i}" for i in range(values.size)]
        value = values
    else:
        entity, value = list(grid_entities()), np.percentile(values, LEVELS)
    rows = pd.DataFrame({"t_s": math.nan, "entity": entity, "metric": "allocated_bytes",
                         "value": value, "point": point})
    placed = pd.DataFrame({"t_s": math.nan, "entity": "fleet:all",
                           "metric": ["arrived_vms", "rejected_vms"],
                           "value": [values.size + 5.0, 5.0], "point": point})
    return pd.concat([rows, placed], ignore_index=True)


def test_a_grid_gives_back_the_percentiles_it_was_made_of() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(20, 1, 5000)
    per, grid = _records("a", values, True), _records("a", values, False)
    assert has_vm_figures(per) and has_vm_figures(grid)
    assert not has_vm_figures(grid, "data_clusters")
    for levels in ([50, 95, 99], [0, 100], [12.5, 60.5]):
        want = np.percentile(values, levels)
        assert np.allclose(vm_quantiles(per, "allocated_bytes", levels), want, rtol=0)
        got = vm_quantiles(grid, "allocated_bytes", levels)
        if float(levels[0]).is_integer() and float(levels[-1]).is_integer():
            assert np.array_equal(got, want)  # on the grid: the very numbers
        else:
            assert np.allclose(got, want, rtol=0.02)  # between its levels: interpolated
    assert np.isnan(vm_quantiles(grid, "data_clusters", [50])).all()


@pytest.mark.parametrize("shapes", [((0, 1), (0, 1)), ((0, 1), (2, 0.3)), ((0, 0.1), (5, 0.1))])
def test_pooled_grids_are_the_quantiles_of_all_the_vms(shapes: tuple[tuple[float, float], ...],
                                                       ) -> None:
    """Runs of different sizes and spreads (disjoint ones too): the pooled grids give the
    quantiles of all their VMs together, within the grids' resolution."""
    rng = np.random.default_rng(7)
    runs = [rng.lognormal(mu, sigma, n) for (mu, sigma), n in zip(shapes, (30_000, 10_000),
                                                                  strict=True)]
    grids = [np.percentile(r, LEVELS) for r in runs]
    levels = [5, 25, 50, 70, 95]  # not 75: where disjoint runs meet, any value between is one
    got = pooled_quantiles(grids, [r.size for r in runs], levels)
    want = np.percentile(np.concatenate(runs), levels)
    assert np.allclose(got, want, rtol=0.01), (got, want)
    assert np.allclose(pooled_quantiles(grids[:1], [1.0]), grids[0], rtol=1e-12, atol=0)


def test_pooled_grids_keep_a_value_many_vms_share() -> None:
    """A third of the VMs at exactly 0 (a jump in the distribution): pooled, it stays a jump."""
    rng = np.random.default_rng(1)
    runs = [np.r_[np.zeros(1000), rng.random(2000)], np.r_[np.zeros(500), rng.random(1000)]]
    got = pooled_quantiles([np.percentile(r, LEVELS) for r in runs], [3000, 1500], [10, 33, 60])
    want = np.percentile(np.concatenate(runs), [10, 33, 60])
    assert got[0] == 0.0 and got[1] == 0.0 and got[2] == pytest.approx(want[2], rel=0.02)


def test_groups_pool_their_points_in_either_form() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 1, 4000), rng.lognormal(1, 1, 4000)
    for per_vm in (True, False):
        rec = pd.concat([_records("p1", a, per_vm), _records("p2", b, per_vm)])
        rec["group"] = "g"
        got = group_quantiles(rec, "group", "allocated_bytes", [25, 50, 75])
        want = np.percentile(np.concatenate([a, b]), [25, 50, 75])
        assert list(got) == ["g"] and np.allclose(got["g"], want, rtol=0.01)
