"""The capacity report's words and marks agree with its data (a user's budget-meeting read of
``cowbench report`` on sweeps/capacity.yaml): a group where one replication of ten filled said
"all later than the horizon" beside that replication's dot; the peak column was a median
without saying so; peaks past 100% went unexplained; groups refusing no VM hid one another's
lines at 0."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.text import Text

from cowbench import capacity as cap
from cowbench import capacity_plots
from cowbench.capacity_view import CapacityView, capacity_view, headline_table, overfull_note
from cowbench.results import load_results

from .test_show import capped_sweep

DAY = 86400.0
GIB = float(1 << 30)
GROUPS = ["capacity 8 GiB", "capacity 12 GiB"]


def first_rows() -> pd.DataFrame:
    """10 replications a group: 7 of 10 fill the 8 GiB hosts (peaks to 150%), 1 of 10 the
    12 GiB ones (at 18.6 d; its peak 101%)."""
    rows = []
    for g, filled, peaks in ((GROUPS[0], 7, [1.5, 1.2, 1.1, 1.05, 1.02, 1.01, 1.0, .9, .9, .8]),
                             (GROUPS[1], 1, [1.01, .7, .7, .7, .7, .6, .6, .6, .6, .6])):
        size = 8 * GIB if "8" in g else 12 * GIB
        for i in range(10):
            rows.append({"group": g, "point": f"{g}-{i}", "capacity_bytes": size,
                         "t_first_full_s": (18.6 - i) * DAY if i < filled else math.nan,
                         "peak_bytes": peaks[i] * size, "horizon_s": 20 * DAY})
    return pd.DataFrame(rows)


def view_of(first: pd.DataFrame, band: pd.DataFrame | None = None) -> CapacityView:
    head = cap.headline(first, pd.DataFrame(), "group")
    empty = pd.DataFrame()
    caps = pd.Series([8 * GIB, 12 * GIB], index=GROUPS)
    return CapacityView(empty, empty, empty, GROUPS, caps, empty, first, head, empty,
                        band if band is not None else empty)


def test_one_filled_of_ten_says_both_ends_of_the_interval_not_all() -> None:
    """With 10 replications the interval of the median is the 2nd to the 9th time: one filled
    leaves the 2nd censored, both ends past the horizon. The text names the ends, never
    "all", and the figure's line says how many filled."""
    view = view_of(first_rows())
    head = view.head.set_index("group")
    assert head.loc[GROUPS[1], "filled"] == 1
    assert math.isinf(head.loc[GROUPS[1], "median_ci_low_s"])  # X_(2) of 10: censored
    table = headline_table(view).set_index("group")
    assert table.loc[GROUPS[1], "95% interval of the median"] == \
        "both ends > 20 d (later than the horizon)"
    assert "all later" not in " ".join(table["95% interval of the median"])
    fig = capacity_plots.first_full_figure(view.first, view.head, "group", GROUPS)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "1 of 10 filled; median > 20 d; 95% interval: both ends > 20 d (later than the " \
        "horizon)" in texts
    assert any(t.startswith("7 of 10 filled; median ") for t in texts)


def test_the_peak_columns_say_they_are_medians() -> None:
    table = headline_table(view_of(first_rows()))
    assert "fullest host's peak (median)" in table.columns
    assert "all hosts' peak (median)" in table.columns
    assert "VMs refused (median)" in table.columns
    assert "fullest host's peak" not in table.columns


def test_peaks_past_capacity_are_explained() -> None:
    view = view_of(first_rows())
    note = overfull_note(view)
    assert note is not None
    assert "up to 150%" in note and "`capacity 8 GiB`: 6 of 10" in note
    assert "`capacity 12 GiB`: 1 of 10" in note
    assert "keeps writing past a full disk" in note and "would have failed" in note
    fig = capacity_plots.peak_figure(view.first, "group", GROUPS)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("past a full disk: the model keeps writing")
               for label in labels)
    under = first_rows().assign(peak_bytes=lambda d: d["capacity_bytes"] * 0.5)
    assert overfull_note(view_of(under)) is None


def test_groups_refusing_no_vm_stay_distinguishable() -> None:
    t = np.arange(21.0) * DAY
    rows = []
    for g, per_day in (("a", 0.5), ("b", 0.0), ("c", 0.0), ("d", 0.0)):
        for x in t:
            v = per_day * x / DAY
            rows.append({"group": g, "t_s": x, "n": 10, "min": v, "p5": v, "p50": v,
                         "p95": v, "max": v})
    fig = capacity_plots.rejections_figure(pd.DataFrame(rows), "group", list("abcd"))
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert [ln.get_label() for ln in lines] == list("abcd")
    styles = {(ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(styles) == 4  # not colour alone: the last drawn hid the others at 0
    # the markers of the lines lying on one another at 0 fall on different samples
    marked = [tuple(np.arange(21)[ln.get_markevery()]) for ln in lines[1:]]
    assert len({m[0] for m in marked}) == 3
    notes = [x.get_text() for x in ax.findobj(Text) if "no VM refused" in x.get_text()]
    assert notes == ["no VM refused in any replication:\nb\nc\nd"]


def test_a_group_whose_hosts_cannot_fill_says_never(tmp_path: Path) -> None:
    """A group whose hosts hold at most two VMs of 23 GiB on 64 GiB: its first host full
    "never", with the most its VMs' disks hold, not "> 60 d"; the group that fills, its
    time; "--capacity" smaller than the ceiling takes "never" back."""
    sweep = capped_sweep(tmp_path)
    res = load_results(sweep)
    table = headline_table(capacity_view(res)).set_index("group")
    assert table.loc["ratio 1", "first host full, median"] == \
        "never (its VMs' disks hold at most 51 GiB)"
    assert table.loc["ratio 2", "first host full, median"].endswith(" d")
    assert not table.loc["ratio 2", "first host full, median"].startswith(">")
    small = headline_table(capacity_view(res, 40 * GIB)).set_index("group")
    assert small.loc["ratio 1", "first host full, median"] != table.loc[
        "ratio 1", "first host full, median"]
    assert not small.loc["ratio 1", "first host full, median"].startswith("never")


def test_replications_of_one_value_are_one_mark_with_their_count() -> None:
    """Replications the model gives the same peak (to a pixel) were jittered apart and read as
    a spread: now each is a mark on its row's line, and those nearer than a mark is wide (so
    drawn on one another) one mark with ×n: 100% and 101%, 5 px apart at this scale with
    marks 6 px wide, were two marks read as one, with no count."""
    rows = first_rows()
    alike = 0.6 * 12 * GIB * (1 + np.linspace(0, 3e-5, 10))  # 10 alike: 61 KiB apart at most
    rows.loc[rows["group"] == GROUPS[1], "peak_bytes"] = alike
    fig = capacity_plots.peak_figure(rows, "group", GROUPS)
    ax = fig.axes[0]
    marks = [c.get_offsets() for c in ax.collections if c.get_offsets().size]
    row1 = np.concatenate([m[np.isclose(m[:, 1], 1.0)] for m in marks])
    assert row1.shape == (1, 2) and round(row1[0, 0], 2) == 60.0  # one mark, on the line
    row0 = np.concatenate([m[np.abs(m[:, 1]) < 0.5] for m in marks])
    assert set(row0[:, 1]) == {0.0}  # no jitter: distinct values differ along x only
    assert sorted(row0[:, 0].round(6)) == [80.0, 90.0, 100.5, 102.0, 105.0, 110.0, 120.0,
                                            150.0]
    counts = [t.get_text() for t in ax.texts]
    # the two replications at 90%, the two at 100% and 101%, and the ten at 60%
    assert sorted(counts) == ["×10", "×2", "×2"]
