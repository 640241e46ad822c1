"""The capacity and timeline reports as a capacity planner reads them before a budget meeting
(findings of a user-tester on nova-lifecycle, fleet-small and sweeps/capacity.yaml):

- a group of few hosts drew a "median host" (of two hosts, their mean: a host that does not
  exist) and its p5-p95 band, and never the full host (1432 MiB of a 1 GiB disk drawn as
  716 MiB, "under capacity");
- ``--capacity 8GiB`` read the claims against the run's 64 GiB hosts ("17 GiB claimed of
  96 GiB") and never said placement and refusals were the run's, decided at 64 GiB;
- a 20-minute timeline's time to full on an axis of fractional days (0.000 to 0.014);
- host use past a full disk shaded on the peak figure only, and named "used" on one figure
  and "demand" on another;
- a median mark with no legend entry, three coinciding marks with no "×3", a count axis from
  0.00 to 0.05, text about capacity on a page that has none, and "disk use per VM at the end"
  over VMs deleted long before it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cowbench import capacity as cap
from cowbench import capacity_plots
from cowbench.capacity_plots import FEW_HOSTS, PAST_FULL
from cowbench.capacity_view import (
    CapacityView,
    capacity_view,
    headline_table,
    over_time_text,
    vm_disk_title,
    what_if_note,
)
from cowbench.records import records_frame
from cowbench.results import load_results

from .reportkit import synthetic_run

GiB = float(2**30)
MiB = float(2**20)
DAY = 86400.0


def timeline_hosts(values: dict[str, list[float]], step_s: float = 60.0) -> pd.DataFrame:
    """Host samples of one replication, a sample every ``step_s`` (bytes per host)."""
    rows = [("sim", i * step_s, f"host:{h}", "allocated_bytes", v, "B", 7, 0)
            for h, vs in values.items() for i, v in enumerate(vs)]
    return records_frame(rows).assign(point=".", group="all hosts")


def facets(hosts: pd.DataFrame, capacity: float | None):
    band = cap.bands(hosts, by=["group"])
    caps = pd.Series({"all hosts": capacity if capacity else math.nan})
    return capacity_plots.disk_use_facets(band, caps, "group", ["all hosts"], hosts=hosts)


def labels(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []


# nova-lifecycle's two hosts, as the run has them: compute-1 ends at 1432.5 MiB, compute-2 at 0
TWO = {"compute-1": [505 * MiB, 1000 * MiB, 1432.5 * MiB, 1432.5 * MiB],
       "compute-2": [0.0, 900 * MiB, 380 * MiB, 0.0]}


def test_two_hosts_are_drawn_each_never_as_a_median_host() -> None:
    fig = facets(timeline_hosts(TWO), 1 * GiB)
    ax = fig.axes[0]
    drawn = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()
             if not ln.get_label().startswith("_") and ln.get_linestyle() != ":"}
    assert set(drawn) == {"compute-1", "compute-2"}
    assert drawn["compute-1"][-1] == pytest.approx(1432.5)  # MiB: the full host, as it is
    assert not any("median" in x for x in labels(fig))
    assert not ax.collections  # no p5-p95 band over two hosts
    # 1432.5 MiB passes the 1 GiB disk: shaded past it, named as the peak figure names it
    assert PAST_FULL in labels(fig)
    assert fig.get_suptitle() == "host disk demand over time, each group against its own " \
        "capacity"


def test_many_hosts_draw_the_median_band_and_the_fullest_hosts_own_line() -> None:
    n = FEW_HOSTS + 4
    values = {f"h{i:02d}": [GiB * (1 + i * 0.1) * t for t in range(5)] for i in range(n)}
    values["h99"] = [0.0, 1 * GiB, 9 * GiB, 12 * GiB, 11 * GiB]  # past p95, and past 8 GiB
    fig = facets(timeline_hosts(values), 8 * GiB)
    ax = fig.axes[0]
    assert "median over hosts (at each time)" in labels(fig)
    fullest = [ln for ln in ax.get_lines() if "fullest host" in ln.get_label()]
    assert len(fullest) == 1 and max(fullest[0].get_ydata()) == pytest.approx(12.0)  # GiB
    assert [t.get_text() for t in ax.texts if t.get_text() == "h99"] == ["h99"]
    assert PAST_FULL in labels(fig)


def test_no_capacity_no_capacity_words_nor_shading() -> None:
    fig = facets(timeline_hosts(TWO), None)
    assert fig.get_suptitle() == "host disk demand over time"
    assert PAST_FULL not in labels(fig)


def test_hosts_under_their_capacity_are_not_shaded() -> None:
    fig = facets(timeline_hosts(TWO), 4 * GiB)
    assert PAST_FULL not in labels(fig) and "capacity of the group" in labels(fig)


def end_hosts(groups: dict[str, list[float]]) -> pd.DataFrame:
    rows = [("sim", math.nan, f"host:h{i}", "allocated_bytes", v, "B", s, 0)
            for g, vs in groups.items() for s, v in enumerate(vs) for i in range(1)]
    frame = records_frame(rows)
    group = [g for g, vs in groups.items() for _ in vs]
    return frame.assign(group=group, point=[f"{g}-{s}" for g, vs in groups.items()
                                            for s in range(len(vs))])


def test_at_the_end_few_hosts_are_dots_many_a_bar_with_the_fullest_host() -> None:
    many = list(np.linspace(1, 6, 29) * GiB) + [11.85 * GiB]  # p95 short of the fullest
    hosts = end_hosts({"few": [1432.5 * MiB, 0.0], "many": many})
    caps = pd.Series({"few": 1 * GiB, "many": 8 * GiB})
    fig = capacity_plots.host_disk_at_end(hosts, caps, "group", ["few", "many"])
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_label().startswith("a host")]
    assert len(dots) == 1 and sorted(np.asarray(dots[0].get_offsets())[:, 0].round(3)) == \
        [0.0, 1.399]  # GiB: each of the two hosts, none a median of them
    assert any("1.4 GiB" in t.get_text() and "0 B" in t.get_text() for t in ax.texts)
    [bar] = [c for c in ax.containers
             if c.get_label() == "median host; whiskers: p5 to p95 of hosts"]
    assert bar.patches[0].get_width() == pytest.approx(float(np.median(many)) / GiB)
    [top] = [c for c in ax.collections if c.get_label() == "the group's fullest host"]
    assert np.asarray(top.get_offsets())[0, 0] == pytest.approx(11.85)
    assert PAST_FULL in labels(fig)  # both groups pass their capacity
    assert ax.get_title() == "host disk demand at the end, each group against its own capacity"
    assert ax.get_xlabel().startswith("host disk demand (GiB)")


def test_the_same_quantity_has_one_name_in_every_title() -> None:
    first = pd.DataFrame({"group": ["g"], "point": ["p"], "t_first_full_s": [math.nan],
                          "peak_bytes": [9 * GiB], "capacity_bytes": [8 * GiB],
                          "horizon_s": [20 * DAY]})
    peak = capacity_plots.peak_figure(first, "group", ["g"]).axes[0]
    assert "peak demand" in peak.get_title() and "peak demand" in peak.get_xlabel()
    assert "used" not in peak.get_xlabel()
    assert PAST_FULL in peak.get_legend_handles_labels()[1]


def first_and_head(minutes_full: list[float], horizon_s: float, group: str = "g"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    first = pd.DataFrame({"group": group, "point": [f"p{i}" for i in range(len(minutes_full))],
                          "t_first_full_s": [m * 60 for m in minutes_full],
                          "peak_bytes": 1.0, "capacity_bytes": 1.0, "horizon_s": horizon_s})
    return first, cap.headline(first, pd.DataFrame(), "group")


def test_a_timeline_of_minutes_has_its_time_to_full_in_minutes() -> None:
    first, head = first_and_head([2.5], 1200.0)
    ax = capacity_plots.first_full_figure(first, head, "group", ["g"]).axes[0]
    assert ax.get_xlabel().startswith("time until the first host is full (min;")
    assert ax.get_xlim()[1] == pytest.approx(22.0)
    [median] = [c for c in ax.collections if c.get_label() == "median replication"]
    assert np.asarray(median.get_offsets())[0, 0] == pytest.approx(2.5)
    assert "end of the simulation (20 min)" in ax.get_legend_handles_labels()[1]


def test_every_mark_has_its_legend_entry_whichever_group_draws_it_first() -> None:
    """The first group filled in 3 of 10 (no median): the second group's median diamond had no
    legend entry, as every label was given by the first row only."""
    a, _ = first_and_head([10.0 * 1440, 11 * 1440, 12 * 1440] + [math.nan] * 7, 20 * DAY, "a")
    b, _ = first_and_head([14.0 * 1440 + i * 600 for i in range(7)] + [math.nan] * 3,
                          20 * DAY, "b")
    first = pd.concat([a, b], ignore_index=True)
    head = cap.headline(first, pd.DataFrame(), "group")
    ax = capacity_plots.first_full_figure(first, head, "group", ["a", "b"]).axes[0]
    names = ax.get_legend_handles_labels()[1]
    assert names.count("median replication") == 1
    assert names.count("95% interval of the median") == 1
    assert ax.get_xlabel().startswith("time until the first host is full (days;")


def test_marks_drawn_on_one_another_are_one_mark_with_their_count() -> None:
    """87.0%, 87.2% and 87.8% on an axis to 160% (sweeps/capacity.yaml's): farther apart than
    a pixel but nearer than a mark is wide, three marks drawn as one with no count, while
    77.1% and 77.2% said ×2."""
    peaks = {"8 GiB": [0.870, 0.872, 0.878, 0.95, 1.05, 1.1, 1.52],
             "12 GiB": [0.771, 0.772, 0.6, 0.65, 0.7, 0.8, 0.84]}
    first = pd.DataFrame([{"group": g, "point": f"{g}{i}", "peak_bytes": p,
                           "capacity_bytes": 1.0} for g, ps in peaks.items()
                          for i, p in enumerate(ps)])
    ax = capacity_plots.peak_figure(first, "group", list(peaks)).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["×2", "×3"]


def test_no_vm_refused_is_counted_on_whole_ticks() -> None:
    band = pd.DataFrame({"group": "g", "t_s": np.arange(5) * DAY, "n": 1, "min": 0.0,
                         "p5": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0})
    fig = capacity_plots.rejections_figure(band, "group", ["g"])
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert ax.get_ylim() == (0.0, 1.0) and ticks == [0.0, 1.0]


def test_the_text_over_a_figure_says_only_what_it_draws() -> None:
    hosts = timeline_hosts(TWO)
    empty = pd.DataFrame()
    view = CapacityView(empty, empty, hosts, ["all hosts"],
                        pd.Series({"all hosts": math.nan}), empty, empty, empty, empty, empty)
    text = over_time_text(view)
    assert "draws each host" in text and "median" not in text.replace("a median of so", "")
    assert "capacit" not in text
    with_cap = CapacityView(empty, empty, hosts, ["all hosts"], pd.Series({"all hosts": GiB}),
                            empty, empty, empty, empty, empty)
    assert "capacities" in over_time_text(with_cap)


def test_vm_disk_title_says_which_vms_it_holds() -> None:
    grid = pd.DataFrame({"entity": ["vms:p0", "vms:p100"], "metric": "allocated_bytes"})
    per_vm = pd.DataFrame({"entity": ["vm:a"], "metric": "allocated_bytes"})
    assert "end of its life" in vm_disk_title(grid) and "deleted" in vm_disk_title(grid)
    assert vm_disk_title(per_vm) == "disk use per VM at the end (VMs alive at the end)"


def what_if_run(root: Path, reserved: int = 0) -> Path:
    """fleet-small's question in small: a host of 64 GiB at ratio 1.5 (an inventory of
    96 GiB) whose VMs claimed 17 GiB and wrote 8.81 GiB (``reserved``: its
    reserved_host_disk_bytes)."""
    rows = [("sim", t * DAY, "host:h0", "allocated_bytes", (8.81 * t / 4) * GiB, "B", 1, 0)
            for t in range(5)]
    rows += [("sim", t * DAY, "host:h0", "provisioned_bytes", (17 * t / 4) * GiB, "B", 1, 0)
             for t in range(5)]
    scenario = (f"name: fleet\nduration: {4 * DAY}\nhosts: [{{name: h0, capacity_bytes: "
                f"{64 << 30}, disk_allocation_ratio: 1.5, reserved_host_disk_bytes: "
                f"{reserved}}}]\n")
    return synthetic_run(root, records_frame(rows), scenario=scenario)


def test_a_what_if_capacity_reads_the_claims_against_it_and_says_what_it_cannot(
        tmp_path: Path) -> None:
    res = load_results(what_if_run(tmp_path / "run"))
    [own] = headline_table(capacity_view(res)).to_dict("records")
    assert own["most claimed host (median)"] == "17 GiB claimed of 96 GiB (18%)"
    assert what_if_note(capacity_view(res)) is None
    view = capacity_view(res, 8 * GiB)
    [row] = headline_table(view).to_dict("records")
    assert row["capacity"] == "8 GiB"
    assert row["most claimed host (median)"] == "17 GiB claimed of 12 GiB (142%)"
    note = what_if_note(view)
    assert note is not None
    assert "every host read against 8 GiB" in note and "hosts with 64 GiB for" in note
    assert "the VMs refused are the run's, decided at 64 GiB" in note
    assert "sweep over `hosts[0].capacity_bytes`" in note


def test_a_what_if_capacity_loses_each_hosts_reserve_as_its_own_capacity_does(
        tmp_path: Path) -> None:
    """A host of 64 GiB reserving 2 GiB has 62 GiB for instances; read at a what-if 16 GiB it
    has 14 GiB, its inventory 21 GiB at ratio 1.5 (before: 16 GiB and 24 GiB, the reserve
    dropped by --capacity alone)."""
    res = load_results(what_if_run(tmp_path / "run", reserved=2 << 30))
    [own] = headline_table(capacity_view(res)).to_dict("records")
    assert own["capacity"] == "62 GiB"
    assert own["most claimed host (median)"] == "17 GiB claimed of 93 GiB (18%)"
    [row] = headline_table(capacity_view(res, 16 * GiB)).to_dict("records")
    assert row["capacity"] == "14 GiB"
    assert row["most claimed host (median)"] == "17 GiB claimed of 21 GiB (81%)"
    note = what_if_note(capacity_view(res, 16 * GiB))
    assert note is not None and "less each host's reserve" in note
