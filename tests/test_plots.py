"""Figures on small frames: titles, labelled axes with units, legends, the data really drawn;
and the capacity arithmetic they show (bands, time to full)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from cowbench import capacity as cap
from cowbench import capacity_plots, plots, strategy_plots
from cowbench.compare import compare
from cowbench.records import records_frame

from .reportkit import GiB, host_series


def texts(fig):
    ax = fig.axes[0]
    legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
    return (ax.get_title(), ax.get_xlabel(), ax.get_ylabel(),
            [t.get_text() for t in legend.get_texts()] if legend else [])


def test_display_units_follow_the_magnitude():
    assert plots.display_unit("B", [3 * GiB, 5 * GiB]) == ("GiB", 2.0**30)
    assert plots.display_unit("B", [2**20, 3 * 2**20]) == ("MiB", 2.0**20)
    assert plots.display_unit("B/s", [200e6]) == ("MiB/s", 2.0**20)
    assert plots.display_unit("s", [0.002]) == ("ms", 1e-3)
    assert plots.display_unit("s", [30.0]) == ("s", 1.0)
    assert plots.display_unit("1/s", [5000.0]) == ("IOPS", 1.0)


def test_pretty_metric_words():
    assert plots.pretty_metric("write_lat_p99_s") == "write latency p99"
    assert plots.pretty_metric("read_bw_bytes_per_s") == "read bandwidth"
    assert plots.pretty_metric("allocated_bytes") == "allocated space"


def _comparison():
    rows_p, rows_m = [], []
    for i, e in enumerate(["vm:a", "vm:b", "host:h"]):
        rows_p.append(("sim", math.nan, e, "allocated_bytes", (i + 1) * GiB * 1.05, "B", 1, 0))
        rows_m.append(("real", math.nan, e, "allocated_bytes", (i + 1) * GiB, "B", 1, 0))
        rows_p.append(("sim", math.nan, e, "write_lat_mean_s", 0.001 * (i + 1), "s", 1, 0))
        rows_m.append(("real", math.nan, e, "write_lat_mean_s", 0.002 * (i + 1), "s", 1, 0))
    return compare(records_frame(rows_p), records_frame(rows_m))


def test_scatter_has_identity_bands_units_and_every_point():
    fig = plots.scatter_predicted_measured(_comparison(), "allocated_bytes")
    title, xlabel, ylabel, legend = texts(fig)
    assert "allocated space" in title
    assert xlabel == "measured (GiB)" and ylabel == "predicted (GiB)"
    assert {"vm:a", "vm:b", "host:h", "y = x", "±10%", "±25%"} <= set(legend)
    ax = fig.axes[0]
    offsets = np.vstack([c.get_offsets() for c in ax.collections if c.get_offsets().size
                         and not isinstance(c, PolyCollection)])
    assert sorted(offsets[:, 0].round(3)) == [1.0, 2.0, 3.0]  # measured, in GiB
    assert sorted(offsets[:, 1].round(3)) == [1.05, 2.1, 3.15]
    assert fig.get_size_inches()[0] * plots.SCREEN_DPI == 1000


def test_a_fleet_is_drawn_by_entity_kind():
    n = 30
    rows_p = [("sim", math.nan, f"vm:v{i}", "allocated_bytes", GiB * (1 + i), "B", 1, 0)
              for i in range(n)] + [("sim", math.nan, "host:h", "allocated_bytes", 40 * GiB,
                                     "B", 1, 0)]
    rows_m = [(("real",) + r[1:]) for r in rows_p]
    comp = compare(records_frame(rows_p), records_frame(rows_m))
    legend = texts(plots.scatter_predicted_measured(comp, "allocated_bytes"))[3]
    assert legend[:2] == ["host (1)", "vm (30)"]
    few = plots.entity_groups(pd.Series(["vm:a", "vm:b"]))
    assert list(few) == ["vm:a", "vm:b"]


def test_latency_is_shown_in_ms():
    fig = plots.scatter_predicted_measured(_comparison(), "write_lat_mean_s")
    assert texts(fig)[1] == "measured (ms)"


@pytest.mark.slow  # three Python processes drawing the figure
def test_rel_error_plot_is_the_same_in_every_process():
    """Each entity's offset on its row is fixed (it came from hash(), salted per process:
    the same run drew another figure each time)."""
    import os
    import subprocess
    import sys

    script = ("import sys; sys.path.insert(0, '.'); from tests.test_plots import _comparison; "
              "from cowbench import plots; ax = plots.rel_error_by_metric(_comparison()).axes[0]; "
              "print([c.get_offsets()[:, 1].round(3).tolist() for c in ax.collections])")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    seen = {subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                           text=True, check=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": str(salt)}).stdout
            for salt in (1, 2, 3)}
    assert len(seen) == 1, seen


def test_missing_metric_gives_a_titled_empty_figure():
    fig = plots.scatter_predicted_measured(_comparison(), "read_iops")
    assert "read IOPS" in texts(fig)[0]
    assert any("no figure known" in t.get_text() for t in fig.axes[0].texts)


def test_rel_error_plot_has_one_row_per_metric():
    fig = plots.rel_error_by_metric(_comparison())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["allocated space",
                                                             "write latency mean"]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections
                         if c.get_offsets().size])
    assert sorted(xs.round(1)) == [-50.0] * 3 + [5.0] * 3
    assert texts(fig)[1] == "relative error (%)"


def test_rel_error_plot_marks_uncalibrated_metrics_and_keeps_them_apart():
    """A lifecycle's duration_s (not calibrated) sits below a rule at the bottom, marked."""
    comp = pd.DataFrame({"entity": ["vm:a", "op:1", "vm:a"], "t_s": [math.nan] * 3,
                         "metric": ["allocated_bytes", "duration_s", "write_iops"],
                         "predicted": [1.0, 3.56, 1.0], "measured": [1.0, 1.0, 2.0],
                         "rel_error": [0.0, 2.56, -0.5], "unit": ["B", "s", "1/s"]})
    ax = plots.rel_error_by_metric(comp).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "duration (uncalibrated)"  # y = 0: the bottom row
    assert sorted(labels[1:]) == ["allocated space", "write IOPS"]
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax.get_lines())
    title = plots.scatter_predicted_measured(comp, "duration_s").axes[0].get_title()
    assert title == "duration (uncalibrated): predicted vs measured"


def test_time_series_overlays_prediction_and_measurement():
    rows = []
    for t in range(5):
        rows.append(("sim", float(t * 60), "vm:a", "allocated_bytes", t * 2**20, "B", 1, 0))
        rows.append(("real", float(t * 60), "vm:a", "allocated_bytes", t * 2**20 * 1.1,
                     "B", 1, 0))
    fig = plots.time_series(records_frame(rows), "allocated_bytes")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (min)" and ax.get_ylabel() == "MiB"
    assert "allocated space" in fig.get_suptitle()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        ["vm:a", "predicted", "measured"]
    lines = ax.get_lines()
    assert [line.get_linestyle() for line in lines] == ["-", "--"]
    assert lines[1].get_ydata()[-1] == pytest.approx(4 * 1.1)


def _drawn(fig) -> dict[str, list[float]]:
    return {line.get_label(): list(line.get_ydata()) for ax in fig.axes
            for line in ax.get_lines()}


def test_time_series_draws_two_samples_at_one_instant_as_a_step_never_their_mean():
    """Before and after an operation at t = 60 s: 0 B and 96 MiB, both drawn, 48 MiB nowhere."""
    rows = [(b, t, "host:b", "allocated_bytes", v * 2**20, "B", 1, 0)
            for b in ("sim", "real") for t, v in ((0.0, 0), (60.0, 0), (60.0, 96), (120.0, 96))]
    fig = plots.time_series(records_frame(rows), "allocated_bytes")
    line = fig.axes[0].get_lines()[1]
    assert list(line.get_xdata()) == [0.0, 60.0, 60.0, 120.0]
    assert list(line.get_ydata()) == [0.0, 0.0, 96.0, 96.0]
    assert line.get_drawstyle() == "steps-post"


def test_time_series_averages_real_runs_sample_by_sample():
    rows = [("real", 60.0, "host:b", "used_bytes", v, "B", 1, rep)
            for rep, pair in enumerate(((0, 100), (0, 300))) for v in pair]
    fig = plots.time_series(records_frame(rows), "used_bytes")
    assert _drawn(fig)["host:b (measured)"] == [0.0, 200.0]


def test_time_series_draws_every_entity_or_names_those_left_out():
    rows = [("sim", float(t), e, "allocated_bytes", 2.0**20, "B", 1, 0)
            for t in (0, 60) for e in ["host:a", "host:b", "cache:a"]
            + [f"vm:{i:02d}" for i in range(13)]]
    rows.append(("sim", math.nan, "image:ubuntu", "allocated_bytes", 2.0**20, "B", 1, 0))
    fig = plots.time_series(records_frame(rows), "allocated_bytes", first=["vm:12"], most=10)
    drawn = {k.split(" (")[0] for k in _drawn(fig)}
    assert {"host:a", "host:b", "cache:a", "vm:12"} <= drawn and len(drawn) == 13
    note = fig.get_supxlabel()
    left = [f"vm:{i:02d}" for i in range(9, 12)]
    assert all(e in note and e not in drawn for e in left)
    assert "at most 10 per panel, worst predicted first" in note
    assert "image:ubuntu" in note and "end of the run" in note


def test_time_series_without_samples_says_so():
    rows = [("sim", math.nan, "vm:a", "allocated_bytes", 1.0, "B", 1, 0)]
    fig = plots.time_series(records_frame(rows), "allocated_bytes")
    assert any("end-of-run figures only" in t.get_text() for t in fig.axes[0].texts)


def test_bands_are_percentiles_over_hosts_and_seeds():
    series = host_series(hosts=3, seeds=2, days=2)
    band = cap.bands(cap.host_disk(series))
    assert list(band["t_s"]) == [0.0, 86400.0, 172800.0]
    assert list(band["n"]) == [6, 6, 6]
    day2 = series[series["t_s"] == 172800.0]["value"]
    assert band["p50"].iloc[2] == pytest.approx(np.median(day2))
    assert band["min"].iloc[2] == day2.min() and band["max"].iloc[2] == day2.max()
    assert (band["p5"] <= band["p50"]).all() and (band["p50"] <= band["p95"]).all()


def _two_points(caps=(12 * GiB, 40 * GiB)) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Two points of 2 hosts growing 1 and 1.2 GiB a day from 10 GiB over 4 days, each point
    with its own capacity; a 730-day horizon (the scenario's duration)."""
    hosts = pd.concat([cap.host_disk(host_series(hosts=2, seeds=1, days=4)).assign(point=p)
                       for p in ("small", "big")])
    return (hosts, pd.Series(list(caps), index=["small", "big"]),
            pd.Series([730 * 86400.0] * 2, index=["small", "big"]))


def test_time_to_full_is_interpolated_against_each_points_capacity_and_never_extrapolated():
    hosts, caps, horizon = _two_points()
    ttf = cap.times_to_full(hosts, caps, horizon).set_index(["point", "entity"])
    # 12 GiB: h0 (1 GiB/day from 10) full at day 2, h1 (1.2 GiB/day) at day 1.67
    assert ttf.loc[("small", "host:h0"), "t_full_s"] / 86400 == pytest.approx(2.0, abs=1e-3)
    assert ttf.loc[("small", "host:h1"), "t_full_s"] / 86400 == pytest.approx(5 / 3, abs=1e-3)
    # 40 GiB is never reached in 4 days: censored, no guess past the samples
    big = ttf.loc["big"]
    assert big["t_full_s"].isna().all() and set(big["how"]) == {"not full"}
    assert (big["capacity_bytes"] == 40 * GiB).all() and (big["horizon_s"] == 730 * 86400).all()
    assert cap.days_text(math.nan, 730 * 86400.0) == "> 730 d"
    assert cap.days_text(math.inf, 730 * 86400.0) == "> 730 d"
    assert cap.days_text(86400.0 * 363.8, 730 * 86400.0) == "363.8 d"


def test_the_headline_is_the_first_host_with_its_interval_or_the_seeds_it_needs():
    first = pd.DataFrame({"group": ["g"] * 5, "point": list("abcde"),
                          "t_first_full_s": [10.0, 20.0, 30.0, math.nan, 40.0],
                          "peak_bytes": [5.0, 6.0, 7.0, 4.0, 8.0], "capacity_bytes": [8.0] * 5,
                          "horizon_s": [100.0] * 5})
    head = cap.headline(first, pd.DataFrame(), "group").iloc[0]
    assert head["filled"] == 4 and head["median_s"] == 30.0 and head["peak_bytes"] == 6.0
    assert cap.interval_text(head) == "needs 6 seeds for a 95% interval (has 5)"
    six = pd.concat([first, first.iloc[:1].assign(point="f")])
    head = cap.headline(six, pd.DataFrame(), "group").iloc[0]
    assert cap.interval_text(head) == "10 s to > 1 min 40 s"  # under a day: not 0.00 d


def test_disk_use_facets_draw_each_group_against_its_own_capacity():
    hosts, caps, horizon = _two_points()
    hosts["group"] = hosts["point"].map({"small": "capacity 12 GiB", "big": "capacity 40 GiB"})
    band = cap.bands(hosts, by=["group"])
    fig = capacity_plots.disk_use_facets(
        band, pd.Series({"capacity 12 GiB": 12 * GiB, "capacity 40 GiB": 40 * GiB}), "group",
        ["capacity 12 GiB", "capacity 40 GiB"])
    a, b = fig.axes[:2]
    assert (a.get_title(), b.get_title()) == ("capacity 12 GiB", "capacity 40 GiB")
    lines = [[ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"]
             for ax in (a, b)]
    assert lines == [[12.0], [40.0]]  # GiB, each its own
    assert a.get_ylim()[1] >= 40.0  # the larger capacity is on the shared scale


def test_first_full_figure_never_draws_past_the_horizon():
    first = pd.DataFrame({"group": ["g"] * 6, "point": list("abcdef"),
                          "t_first_full_s": [5.0, 6.0, 7.0, math.nan, math.nan, math.nan],
                          "peak_bytes": [1.0] * 6, "capacity_bytes": [1.0] * 6,
                          "horizon_s": [20 * 86400.0] * 6})
    first["t_first_full_s"] *= 86400
    head = cap.headline(first, pd.DataFrame(), "group")
    fig = capacity_plots.first_full_figure(first, head, "group", ["g"])
    ax = fig.axes[0]
    assert ax.get_xlim()[1] <= 22.0 + 1e-9
    censored = ax.collections[1].get_offsets()
    assert len(censored) == 3 and set(np.asarray(censored)[:, 0]) == {20.0}
    assert any("> 20 d" in t.get_text() for t in ax.texts)


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])]


def test_category_labels_and_legend_never_overlap_at_1000_px():
    labels = [f"snapshot_chain, cluster {c} KiB, extended L2 {e}, refcount bits 16, chain "
              f"depth {d}" for c in (16, 64, 2048) for e in ("on", "off") for d in (1, 4, 8, 16)]
    amp = pd.DataFrame({"setting": np.repeat(labels, 3), "entity": ["vm:a", "vm:b", "vm:c"]
                        * len(labels), "space_amplification": np.linspace(1, 30, 3 * len(labels))})
    fig = strategy_plots.amplification_boxes(
        strategy_plots.StrategyView(amp, labels), "space_amplification")
    assert fig.get_figwidth() * fig.dpi == 1000
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels()]
    assert len(ticks) == 24 and _overlaps(ticks) == []
    legend = fig.legends[0].get_window_extent(renderer)
    xlabel = ax.xaxis.label.get_window_extent(renderer)
    assert not legend.overlaps(xlabel) and not any(legend.overlaps(t) for t in ticks)
    assert all(t.x0 >= 0 for t in ticks)  # nothing cut off at the left edge
    assert "whiskers: min to max" in fig.legends[0].get_texts()[-1].get_text()
    assert [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()] == labels


def test_strategies_are_categories_not_numbers():
    amp = pd.DataFrame({"setting": ["full_copy", "qcow2_overlay, cluster 64 KiB"] * 2,
                        "entity": ["vm:a", "vm:a", "vm:b", "vm:b"],
                        "write_amplification": [1.0, 2.0, 1.0, 4.0]})
    view = strategy_plots.StrategyView(amp, ["qcow2_overlay, cluster 64 KiB", "full_copy"])
    ax = strategy_plots.amplification_boxes(view, "write_amplification").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["qcow2_overlay, cluster 64 KiB",
                                                             "full_copy"]
    assert ax.get_xlabel() == "write amplification (×)"
    medians = [ln.get_xdata()[0] for ln in ax.get_lines()[: 12] if len(ln.get_xdata()) == 2
               and ln.get_xdata()[0] == ln.get_xdata()[1] and ln.get_color() != "grey"]
    assert 3.0 in medians and 1.0 in medians


def test_end_of_run_disk_use_by_group():
    final = cap.host_disk(host_series(days=1)).assign(group="g", t_s=math.nan)
    fig = plots.disk_use_by_group(cap.bands(final, by=["group"]), "group")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["g"]
    assert ax.get_xlabel() == "used (GiB): shared extents counted once"
    assert ax.patches[0].get_width() == pytest.approx(final["value"].median() / GiB)


def test_save_figure_writes_png_and_svg(tmp_path):
    fig = plots.rel_error_by_metric(_comparison())
    png, svg = plots.save_figure(fig, tmp_path, "errors")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png.read_bytes()[16:20], "big")
    assert width == plots.WIDTH_IN * plots.PRINT_DPI
    assert "relative error" in svg.read_text()  # text kept as text in the SVG


def test_all_hosts_peak_sums_one_state_of_the_fleet_at_a_time():
    """A lifecycle samples every host after each operation: at t = 60 each host has its
    state before and after a migration there. All hosts' peak is the largest sum of one state
    (270 + 10 before, 151 + 129 after), never every sample at 60 s summed (560)."""
    rows = [("sim", 0.0, "host:h1", "allocated_bytes", 270.0, "B", 1, 0),
            ("sim", 0.0, "host:h2", "allocated_bytes", 10.0, "B", 1, 0),
            ("sim", 60.0, "host:h1", "allocated_bytes", 270.0, "B", 1, 0),
            ("sim", 60.0, "host:h2", "allocated_bytes", 10.0, "B", 1, 0),
            ("sim", 60.0, "host:h1", "allocated_bytes", 151.0, "B", 1, 0),
            ("sim", 60.0, "host:h2", "allocated_bytes", 129.0, "B", 1, 0)]
    hosts = cap.host_disk(records_frame(rows))
    ttf = pd.DataFrame({"backend": ["sim"] * 2, "seed": [1, 1], "replication": [0, 0],
                        "entity": ["host:h1", "host:h2"],
                        "capacity_bytes": [300.0, 300.0]})
    fill = cap.fleet_fill(hosts, ttf, [])
    assert fill["fleet_peak_bytes"].tolist() == [280.0]
    assert fill["fleet_capacity_bytes"].tolist() == [600.0]


def test_a_zero_on_log_axes_is_named_not_warned_about():
    """Figures spanning decades go on log axes, where a 0 (a read-only run's predicted
    writes after a flatten) cannot be drawn: matplotlib warned "Attempt to set non-positive
    xlim on a log-scaled axis" into the report's HTML. The range is the positive values', and
    the figure says how many it leaves out."""
    import warnings

    rows_p = [("sim", math.nan, "vm:a", "host_write_bytes", 131072.0, "B", 1, 0),
              ("sim", math.nan, "vm:b", "host_write_bytes", 5e9, "B", 1, 0)]
    rows_m = [("real", math.nan, "vm:a", "host_write_bytes", 0.0, "B", 1, 0),
              ("real", math.nan, "vm:b", "host_write_bytes", 5e9, "B", 1, 0)]
    comp = compare(records_frame(rows_p), records_frame(rows_m))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.scatter_predicted_measured(comp, "host_write_bytes")
        fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] > 0
    assert "1 figure(s) of 0 not drawn (log axes)" in [t.get_text() for t in ax.texts]


# --- a paper's figures: legends off the data, one colour per entity, nothing hidden ---------


def _rendered(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _comp(rows):
    """A comparison from ``(entity, metric, predicted, measured, unit)`` rows."""
    p = [("sim", math.nan, e, m, pv, u, 1, 0) for e, m, pv, _, u in rows]
    r = [("real", math.nan, e, m, mv, u, 1, 0) for e, m, _, mv, u in rows]
    return compare(records_frame(p), records_frame(r))


def test_no_legend_over_a_point_in_the_scatter_or_the_error_figure():
    """An over-prediction lands top left, where the scatter's legend sat ("upper left"): the
    tester's ro-1 read latency, +120%, was hidden under it. Every legend is outside the
    axes now, so no point is under one."""
    comp = _comp([("vm:ro-1", "read_lat_mean_s", 0.000872, 0.000396, "s"),
                  ("vm:db-1", "read_lat_mean_s", 0.0004, 0.0004, "s")])
    for fig in (plots.scatter_predicted_measured(comp, "read_lat_mean_s"),
                plots.rel_error_by_metric(comp)):
        renderer = _rendered(fig)
        ax = fig.axes[0]
        assert ax.get_legend() is None and len(fig.legends) == 1
        legend = fig.legends[0].get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))


def test_one_colour_per_entity_in_every_figure_of_a_report():
    """vm:ro-1 was blue where it was alone (read figures) and orange beside db-1: each figure
    coloured its own series in order. One map for the report: VMs first by name, then the
    rest, so the validation and strategies reports of one scenario agree too."""
    comp = _comp([("vm:db-1", "write_iops", 1.0, 1.0, "1/s"),
                  ("vm:ro-1", "read_iops", 2.0, 1.0, "1/s"),
                  ("cache:h", "allocated_bytes", 1.0, 1.0, "B"),
                  ("vm:db-1", "allocated_bytes", 2.0, 2.0, "B"),
                  ("vm:ro-1", "allocated_bytes", 3.0, 3.0, "B")])
    colours = plots.entity_colours(comp["entity"])
    assert list(colours) == ["vm:db-1", "vm:ro-1", "cache:h"]

    def faces(fig):
        from matplotlib.colors import to_hex

        return {c.get_label().split(" (")[0]: to_hex(c.get_facecolor()[0])
                for c in fig.axes[0].collections if c.get_label() in colours}

    seen = [faces(plots.scatter_predicted_measured(comp, m, colours=colours))
            for m in ("read_iops", "write_iops", "allocated_bytes")]
    seen.append(faces(plots.rel_error_by_metric(comp, colours)))
    for drawn in seen:
        assert drawn and all(colours[e] == c for e, c in drawn.items())
    assert seen[0]["vm:ro-1"] == colours["vm:ro-1"] != colours["vm:db-1"]
    # the time series too: ro-1 alone in its panel keeps its report colour
    from matplotlib.colors import to_hex

    rows = [(b, float(t), "vm:ro-1", "read_ios", 1.0 + t, "ios", 1, 0)
            for b in ("sim", "real") for t in (0, 60)]
    lines = plots.time_series(records_frame(rows), "read_ios", colours=colours).axes[0]
    assert {to_hex(ln.get_color()) for ln in lines.get_lines()} == {colours["vm:ro-1"]}
    # the strategies figures: a VM keeps its colour in a figure that draws only some VMs
    amp = pd.DataFrame({"setting": ["s"] * 2, "entity": ["vm:db-1", "vm:ro-1"],
                        "space_amplification": [1.0, 2.0],
                        "read_amplification": [np.nan, 0.5]})
    view = strategy_plots.StrategyView(amp, ["s"], colours=plots.entity_colours(amp["entity"]))
    read = strategy_plots.amplification_boxes(view, "read_amplification").axes[0]
    from matplotlib.colors import to_hex

    dots = [c for c in read.collections if c.get_offsets().size]
    assert [to_hex(c.get_facecolor()[0]) for c in dots] == [colours["vm:ro-1"]]


def test_markers_on_one_spot_are_marked_and_the_covered_entities_named():
    """cache:host1 (1.0 GiB) sat under image:ubuntu, db-1 and web-1 under web-2: seven
    legend entries, four markers, no word. The spot says ×n and the legend names the
    entity on top beside each one it covers."""
    comp = _comp([("cache:host1", "allocated_bytes", GiB, GiB, "B"),
                  ("image:ubuntu", "allocated_bytes", GiB, GiB, "B"),
                  ("vm:db-1", "allocated_bytes", 0.8 * GiB, 0.8 * GiB, "B"),
                  ("vm:web-1", "allocated_bytes", 0.8 * GiB, 0.8 * GiB, "B"),
                  ("vm:web-2", "allocated_bytes", 0.8 * GiB, 0.8 * GiB, "B"),
                  ("host:host1", "allocated_bytes", 3.4 * GiB, 3.4 * GiB, "B")])
    fig = plots.scatter_predicted_measured(comp, "allocated_bytes")
    legend = texts(fig)[3]
    assert "cache:host1 (same point as image:ubuntu)" in legend
    assert "vm:db-1 (same point as vm:web-2)" in legend
    assert "vm:web-1 (same point as vm:web-2)" in legend
    assert {"image:ubuntu", "vm:web-2", "host:host1"} <= set(legend)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["×2", "×3"]


def test_entities_with_one_error_sit_apart_in_the_error_figure():
    """Every byte figure exact (0%): each entity was a fixed offset from crc32 % 7, and two
    could share one (cache:host1 never visible). Each entity its own height now."""
    names = ["cache:host1", "host:host1", "image:ubuntu", "vm:db-1", "vm:ro-1", "vm:web-1",
             "vm:web-2"]
    comp = _comp([(e, "allocated_bytes", GiB, GiB, "B") for e in names])
    fig = plots.rel_error_by_metric(comp)
    ys = [float(c.get_offsets()[0, 1]) for c in fig.axes[0].collections
          if c.get_offsets().size and c.get_label() in names]
    assert len(ys) == 7 and len({round(y, 3) for y in ys}) == 7
    # the ±10% and ±25% bands have their legend entries
    assert {"±10%", "±25%"} <= set(texts(fig)[3])


def test_repeated_runs_draw_their_range_in_the_scatter():
    """With --repeat the measured side is a mean of runs: db-1's write IOPS 3250 and 4506
    (32% apart) drew one dot with no bar. Each mean now carries a bar from the least to the
    most the runs measured, and the legend says so."""
    from cowbench.spread import spread_table

    pred = records_frame([("sim", math.nan, "vm:db-1", "write_iops", 11900.0, "1/s", 1, 0)])
    meas = records_frame([("real", math.nan, "vm:db-1", "write_iops", v, "1/s", 1, k)
                          for k, v in enumerate((3250.0, 4506.0))])
    comp = compare(pred, meas)
    fig = plots.scatter_predicted_measured(comp, "write_iops", spread_table(comp, meas))
    from matplotlib.collections import LineCollection

    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    xs = sorted(x for c in bars for seg in c.get_segments() for x in (seg[0][0], seg[-1][0]))
    assert xs[0] == pytest.approx(3250.0) and xs[-1] == pytest.approx(4506.0)
    assert any("mean of 2 runs; bar: min to max" in t for t in texts(fig)[3])
    assert not any("runs" in t for t in texts(plots.scatter_predicted_measured(
        comp, "write_iops"))[3])


def test_the_strategy_table_gives_io_per_direction_never_a_reader_and_writers_pooled():
    """full_copy's "IOPS 9,511" was the median of one reader's 10,230 read IOPS and three
    writers' write IOPS: (8,792 + 10,230) / 2, no workload's figure."""
    amp = pd.DataFrame({"setting": ["full_copy"] * 4,
                        "entity": ["vm:db-1", "vm:ro-1", "vm:web-1", "vm:web-2"],
                        "read_ios": [np.nan, 16384, np.nan, np.nan],
                        "write_ios": [16384, np.nan, 16384, 16384],
                        "read_iops": [np.nan, 10230.0, np.nan, np.nan],
                        "write_iops": [11636.0, np.nan, 3428.0, 8792.0],
                        "read_lat_mean_s": [np.nan, 0.00078, np.nan, np.nan],
                        "write_lat_mean_s": [0.0003, np.nan, 0.0009, 0.00045],
                        "read_lat_p99_s": [np.nan, 0.002, np.nan, np.nan],
                        "write_lat_p99_s": [0.001, np.nan, 0.003, 0.0013],
                        "space_amplification": [1.0] * 4, "write_amplification": [1.0] * 4,
                        "read_amplification": [np.nan, 0.5, np.nan, np.nan]})
    strategy_plots._io_columns(amp)
    strategy_plots._no_io_in_ceph(amp)
    row = strategy_plots.strategy_table(strategy_plots.StrategyView(amp, ["full_copy"])).iloc[0]
    assert row["read IOPS"] == "10,230" and row["write IOPS"] == "8,792"
    assert row["read mean latency"] == "0.78 ms" and row["write mean latency"] == "0.45 ms"
    assert row["read p99 latency"] == "2 ms" and row["write p99 latency"] == "1.3 ms"
    assert "IOPS" not in row.index


def test_a_kinds_own_knob_stays_in_its_label_where_it_is_not_the_default():
    """A sweep of kinds with a snapshot chain four deep at every point of it: chain_depth
    never varies, so "snapshot_chain, cluster 16 KiB" dropped the depth that summary.csv and
    `cowbench show` give; a full copy at its default sparseness gains no word."""
    points = pd.DataFrame({"point": ["a", "b", "c"],
                           "strategy.kind": ["qcow2_overlay", "snapshot_chain", "full_copy"],
                           "strategy.cluster_size": pd.array([16384, 16384, None],
                                                             dtype="Int64"),
                           "strategy.chain_depth": pd.array([None, 4, None], dtype="Int64"),
                           "strategy.sparse": pd.array([None, None, True], dtype="boolean")})
    knobs = strategy_plots.label_knobs(points, ["strategy.kind"])
    assert knobs == ["strategy.kind", "strategy.chain_depth"]
    from cowbench.knobs import point_labels

    assert list(point_labels(points, knobs)) == ["qcow2_overlay", "snapshot_chain, chain depth 4",
                                                 "full_copy"]
    one_kind = points[points["strategy.kind"] == "snapshot_chain"]
    assert strategy_plots.label_knobs(one_kind, ["strategy.cluster_size"]) == \
        ["strategy.cluster_size"]
