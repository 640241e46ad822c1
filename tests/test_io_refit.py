"""benchmarks/io_refit.py: a stored session's IOPS errors split into the host's level (the
profile's) and each VM's share once that level is taken out (the scheduler's)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from .conftest import load_benchmark


def io_refit() -> ModuleType:
    return load_benchmark("io_refit")


def test_a_host_twice_as_fast_for_every_vm_is_its_level_and_no_share_is_off() -> None:
    rows = pd.DataFrame({"model": [200.0, 40.0, 6.0], "measured_mean": [100.0, 20.0, 3.0]})
    level, shares = io_refit().level_and_shares(rows)
    assert level == pytest.approx(2.0)
    assert np.abs(shares).max() < 1e-12


def test_a_vm_that_takes_more_than_its_share_stands_out_beside_the_level() -> None:
    # the level is the median over the VMs (geometric): one VM four times as fast as the
    # others' level, one with no figure in the model
    rows = pd.DataFrame({"model": [200.0, 40.0, 12.0, np.nan],
                         "measured_mean": [100.0, 20.0, 3.0, 5.0]})
    level, shares = io_refit().level_and_shares(rows)
    assert level == pytest.approx(2.0)
    assert shares.tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_a_stored_session_is_read_from_a_repeat_directory_or_an_io_holdout_output(
        tmp_path: Path) -> None:
    """A ``cowbench run --repeat`` directory gives its scenario and its spread.csv's
    end-of-run rows; an io_holdout output its first real run's scenario and its holdout.csv;
    the model's figures are compared with either the same way."""
    mod = io_refit()
    rep = tmp_path / "rep"
    rep.mkdir()
    pd.DataFrame({"entity": ["vm:a", "vm:a", "host:h"], "metric": ["read_iops"] * 3,
                  "t_s": [np.nan, 1.0, np.nan], "measured_mean": [100.0, 90.0, 5.0],
                  "spread": [0.1, 0.1, 0.1]}).to_csv(rep / "spread.csv", index=False)
    scenario, real = mod.stored(rep)
    assert scenario == rep / "scenario.yaml"
    assert real.measured_mean.tolist() == [100.0, 5.0]  # the end-of-run rows
    hold = tmp_path / "hold"
    hold.mkdir()
    pd.DataFrame({"entity": ["vm:a", "vm:b"], "metric": ["read_iops", "write_iops"],
                  "predicted": [1.0, 1.0], "measured_mean": [100.0, 50.0],
                  "rel_error": [0.0, 0.0]}).to_csv(hold / "holdout.csv", index=False)
    scenario, real = mod.stored(hold)
    assert scenario == hold / "real-1" / "scenario.yaml"
    predicted = tmp_path / "predicted.csv"
    pd.DataFrame({"entity": ["vm:a", "vm:b"], "metric": ["read_iops", "write_iops"],
                  "t_s": [np.nan, np.nan], "value": [110.0, 40.0]}).to_csv(predicted,
                                                                           index=False)
    rows = mod.compare(predicted, real)
    assert rows.error.tolist() == pytest.approx([0.1, -0.2])
    with pytest.raises(SystemExit, match="neither a spread.csv"):
        mod.stored(tmp_path)
