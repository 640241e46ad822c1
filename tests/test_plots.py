"""Figures on small frames: titles, labelled axes with units, legends, the data really drawn;
and the capacity arithmetic they show (bands, time to full)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from cowbench import capacity as cap
from cowbench import plots
from cowbench.compare import compare
from cowbench.records import records_frame

from .reportkit import GiB, host_series


def texts(fig):
    ax = fig.axes[0]
    legend = ax.get_legend()
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


def test_time_series_overlays_prediction_and_measurement():
    rows = []
    for t in range(5):
        rows.append(("sim", float(t * 60), "vm:a", "allocated_bytes", t * 2**20, "B", 1, 0))
        rows.append(("real", float(t * 60), "vm:a", "allocated_bytes", t * 2**20 * 1.1,
                     "B", 1, 0))
    fig = plots.time_series(records_frame(rows), "allocated_bytes")
    title, xlabel, ylabel, legend = texts(fig)
    assert xlabel == "time (min)" and ylabel == "allocated space (MiB)"
    assert legend == ["vm:a (predicted)", "vm:a (measured)"]
    lines = fig.axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == ["-", "--"]
    assert lines[1].get_ydata()[-1] == pytest.approx(4 * 1.1)


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


def test_time_to_full_reached_extrapolated_never_unknown():
    t = np.array([0.0, 10.0, 20.0])
    assert cap.time_to_full(t, np.array([0.0, 50.0, 100.0]), 75.0) == (15.0, "reached")
    assert cap.time_to_full(t, np.array([0.0, 10.0, 20.0]), 40.0) == (pytest.approx(40.0),
                                                                      "extrapolated")
    assert cap.time_to_full(t, np.array([5.0, 5.0, 5.0]), 40.0) == (math.inf, "never")
    assert cap.time_to_full(np.array([math.nan]), np.array([5.0]), 40.0)[1] == "unknown"
    assert cap.time_to_full(t, np.array([50.0, 60.0, 70.0]), 40.0) == (0.0, "reached")


def test_times_to_full_per_host_and_the_figure():
    series = cap.host_disk(host_series(hosts=2, seeds=1, days=4, growth_gib_per_day=1.0))
    series["group"] = "qcow2"
    ttf = cap.times_to_full(series, 20 * GiB, by=["group"])
    # host h0 grows 1 GiB/day from 10 GiB (full at day 10), h1 1.2 GiB/day (day 8.33)
    days = (ttf.set_index("entity")["t_full_s"] / 86400).round(1).to_dict()
    assert days == {"host:h0": 10.0, "host:h1": 8.3}
    assert set(ttf["how"]) == {"extrapolated"}
    fig = plots.time_to_full_bars(ttf, "group")
    assert texts(fig)[1] == "time to full (days)"


def test_disk_use_over_time_draws_a_band_per_group_and_the_capacity():
    a = cap.host_disk(host_series(days=3)).assign(group="qcow2 64k")
    b = cap.host_disk(host_series(days=3, growth_gib_per_day=3)).assign(group="full copy")
    band = cap.bands(pd.concat([a, b]), by=["group"])
    fig = plots.disk_use_over_time(band, "group", capacity=64 * GiB)
    title, xlabel, ylabel, legend = texts(fig)
    assert (xlabel, ylabel) == ("time (days)", "allocated (GiB)")
    assert legend == ["full copy (median)", "full copy (p5–p95)", "qcow2 64k (median)",
                      "qcow2 64k (p5–p95)", "capacity"]
    assert sum(isinstance(c, PolyCollection) for c in fig.axes[0].collections) == 2


def test_end_of_run_disk_use_by_group():
    final = cap.host_disk(host_series(days=1)).assign(group="g", t_s=math.nan)
    fig = plots.disk_use_by_group(cap.bands(final, by=["group"]), "group")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["g"]
    assert texts(fig)[2] == "allocated (GiB)"
    assert ax.patches[0].get_height() == pytest.approx(final["value"].median() / GiB)


def test_amplification_by_knob_uses_a_binary_log_axis_for_cluster_size():
    amp = pd.DataFrame({"strategy.cluster_size": [4096, 65536, 65536, 2**20],
                        "space_amplification": [1.0, 4.0, 6.0, 16.0],
                        "backend": ["sim"] * 4})
    fig = plots.amplification_by_knob(amp, "space_amplification", "strategy.cluster_size",
                                      "backend")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4 KiB", "64 KiB", "1 MiB"]
    assert texts(fig)[1:] == ("cluster size (bytes)", "space amplification (×)",
                              ["predicted"])
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 5.0, 16.0]  # medians


def test_amplification_by_a_categorical_knob_draws_no_line_between_categories():
    amp = pd.DataFrame({"backend": ["sim", "real", "sim"], "entity": ["vm:a"] * 3,
                        "write_amplification": [2.0, 3.0, 4.0]})
    fig = plots.amplification_by_knob(amp, "write_amplification", "backend")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["measured", "predicted"]
    line = ax.get_lines()[0]
    assert line.get_linestyle() == "None"
    assert list(line.get_ydata()) == [3.0, 3.0]  # real: 3; sim: median of 2 and 4
    assert ax.get_ylim() == (0.0, pytest.approx(4.4))  # the whiskers fit


def test_save_figure_writes_png_and_svg(tmp_path):
    fig = plots.rel_error_by_metric(_comparison())
    png, svg = plots.save_figure(fig, tmp_path, "errors")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png.read_bytes()[16:20], "big")
    assert width == plots.WIDTH_IN * plots.PRINT_DPI
    assert "relative error" in svg.read_text()  # text kept as text in the SVG
