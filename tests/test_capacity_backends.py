"""The capacity report on a run of both backends: the predicted hosts and the measured ones are
groups of their own, never pooled as if the real run were one more replication of the model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cowbench.capacity_view import capacity_view, headline_table
from cowbench.report import choose_notebooks, make_report
from cowbench.results import load_results

from .reportkit import host_series, synthetic_run

GiB = float(1 << 30)


def both(out: Path, capacity: str = f", capacity_bytes: {20 << 30}") -> Path:
    """One seed's three hosts per backend: the model's grow 1 GiB a day (from 10 GiB), the
    real run's 3 GiB a day; hosts of 20 GiB (a resolved scenario: in bytes)."""
    predicted = host_series(hosts=3, seeds=1, days=8)
    measured = host_series(hosts=3, seeds=1, days=8, growth_gib_per_day=3).assign(
        backend="real")
    return synthetic_run(out, predicted, measured,
                         scenario="name: fleet\nhosts: [" + ", ".join(
                             f"{{name: h{i}{capacity}}}" for i in range(3)) + "]\n")


def test_each_backend_is_a_group_of_its_own(tmp_path: Path) -> None:
    view = capacity_view(load_results(both(tmp_path / "run")), 20 * GiB)
    assert view.order == ["all hosts, predicted", "all hosts, measured"]
    first = view.first.set_index("group")
    # each group one replication, its own backend's: the real hosts (3 to 4.2 GiB a day from
    # 10 GiB) fill first after 10 / 4.2 = 2.4 days, the model's (1 to 1.4) after 7.1
    assert list(first.loc[view.order, "backend"]) == ["sim", "real"]
    days = first.loc[view.order, "t_first_full_s"] / 86400
    assert days.iloc[0] == pytest.approx(10 / 1.4, abs=0.05)
    assert days.iloc[1] == pytest.approx(10 / 4.2, abs=0.05)
    head = headline_table(view)
    assert list(head["group"]) == view.order and list(head["replications filled"]) == \
        ["1 of 1", "1 of 1"]


def test_a_run_of_both_backends_whose_hosts_fill_gets_validation_then_capacity(
        tmp_path: Path) -> None:
    assert choose_notebooks(both(tmp_path / "cap")) == ["validation", "capacity"]
    # no capacity: no time to full to give, the validation report alone
    assert choose_notebooks(both(tmp_path / "none", capacity="")) == ["validation"]


@pytest.mark.slow
def test_the_capacity_report_names_the_predicted_and_the_measured_hosts(tmp_path: Path
                                                                        ) -> None:
    run = both(tmp_path / "run")
    outcome = make_report(run)  # the default: validation, then capacity
    assert outcome.notebook == "validation+capacity"
    text = (run / "report" / "report.html").read_text()
    assert "all hosts, predicted" in text and "all hosts, measured" in text
    assert "predicted vs measured" in text  # the validation report's table


def test_bands_hold_each_series_between_its_own_samples() -> None:
    """Two replications of a timeline, each host sampled at its own operations: the band at
    an instant is over every series, each at its last value (disk use holds between samples),
    not over whichever was sampled at that very instant."""
    import math

    from cowbench.capacity import bands, held

    rows = [("sim", t, "host:a", 1, v) for t, v in ((0.0, 1.0), (10.0, 2.0), (10.0, 2.5),
                                                     (20.0, 3.0))]
    rows += [("sim", t, "host:a", 2, v) for t, v in ((5.0, 10.0), (15.0, 20.0))]
    rows += [("sim", math.nan, "host:a", 1, 3.0), ("sim", math.nan, "host:a", 2, 20.0)]
    d = pd.DataFrame(rows, columns=["backend", "t_s", "entity", "seed", "value"]).assign(
        point=".", replication=0, group="g")
    b = bands(d, by=["group"]).set_index("t_s")
    assert list(b.loc[[0.0, 5.0, 10.0, 15.0, 20.0], "n"]) == [1, 2, 2, 2, 2]
    # at 10: the first at its later sample there (2.5), the second held at 10
    assert (b.loc[10.0, "min"], b.loc[10.0, "max"]) == (2.5, 10.0)
    assert (b.loc[15.0, "min"], b.loc[15.0, "max"]) == (2.5, 20.0)
    assert b.loc[b.index.isna(), "n"].iloc[0] == 2  # the end of the run as it was
    same = d[d["seed"] == 1].drop_duplicates(["t_s"], keep="last")
    pd.testing.assert_frame_equal(held(same, ["group"]), same)  # one grid: as it is


def test_the_headline_gives_the_most_claimed_host_against_its_inventory(tmp_path: Path
                                                                        ) -> None:
    """Placement refuses VMs by their DISK_GB claims, not by what they wrote: the headline
    says how near its inventory, (capacity - reserved) x ratio, the most claimed host came,
    which is why VMs are refused while the disks are nearly empty."""
    from cowbench.records import records_frame

    rows = [("sim", float(t), f"host:h{h}", "allocated_bytes", (1 + t) * GiB, "B", 1, 0)
            for h in range(2) for t in range(3)]
    # h1's claims reach 18 GiB of its (20 - 2) x 1.0 = 18 GiB; h0's 9 of 18
    rows += [("sim", float(t), f"host:h{h}", "provisioned_bytes", c * GiB, "B", 1, 0)
             for h, cs in ((0, (3, 6, 9)), (1, (6, 18, 12))) for t, c in enumerate(cs)]
    hosts = ", ".join(f"{{name: h{i}, capacity_bytes: {20 << 30}, reserved_host_disk_bytes: "
                      f"{2 << 30}}}" for i in range(2))
    run = synthetic_run(tmp_path / "run", records_frame(rows),
                        scenario=f"name: fleet\nhosts: [{hosts}]\n")
    head = headline_table(capacity_view(load_results(run)))
    assert list(head["most claimed host (median)"]) == ["18 GiB claimed of 18 GiB (100%)"]
    assert list(head["fullest host's peak (median)"]) == ["3 GiB (17% of capacity)"]
