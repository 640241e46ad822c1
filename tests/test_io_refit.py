"""benchmarks/io_refit.py: a stored session's IOPS errors split into the host's level (the
profile's) and each VM's share once that level is taken out (the scheduler's)."""

from __future__ import annotations

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
