"""The capacity report's figures: the Monte Carlo headline first, then disk use per group.

Times are in days and never drawn past the simulated horizon: a replication whose hosts did
not fill is drawn at the horizon as "later" (an open triangle), the axis ends just after the
horizon, and a dashed line marks it. Each group is drawn against its own capacity. Categories
(groups) are on the y axis, labels wrapped, so none overlaps another at 1000 px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .capacity import DAY, days_text, interval_text
from .knobs import size_text
from .plots import (
    category_axis,
    category_height,
    display_unit,
    empty,
    legend_below,
    new_figure,
    style,
    time_unit,
)


def _jitter(n: int) -> np.ndarray:
    return np.linspace(-0.15, 0.15, n) if n > 1 else np.zeros(n)


def coinciding(values: np.ndarray, within: float) -> tuple[np.ndarray, np.ndarray]:
    """The finite values in runs no wider than ``within`` (replications a figure cannot tell
    apart at its scale), as each run's mean and how many values it stands for."""
    v = np.sort(values[np.isfinite(values)])
    starts = [0] if v.size else []
    for i in range(1, v.size):  # a run starts where a value lies ``within`` past its first
        if v[i] - v[starts[-1]] > within:
            starts.append(i)
    ends = [*starts[1:], v.size]
    return (np.array([v[a:b].mean() for a, b in zip(starts, ends, strict=True)]),
            np.array([b - a for a, b in zip(starts, ends, strict=True)]))


def _marks_with_counts(ax: Axes, values: np.ndarray, row: int, within: float,
                       label: str | None) -> None:
    """One mark per value on the row's line, never jittered, so replications that agree read
    as one figure, not as a spread; values closer than ``within`` (a pixel of the axis) are one
    mark that says ×n."""
    v, counts = coinciding(values, within) if values.size else (values, np.zeros(0, int))
    ax.scatter(v, np.full(v.size, float(row)), s=18 + 10 * np.minimum(counts - 1, 6),
               color="tab:blue", alpha=0.7, zorder=3, label=label)
    for x, n in zip(v, counts, strict=True):
        if n > 1:
            ax.annotate(f"×{n}", (x, row), xytext=(0, 7), textcoords="offset points",
                        ha="center", va="bottom", fontsize=9, color="tab:blue", zorder=3)


def first_full_figure(first: pd.DataFrame, head: pd.DataFrame, group: str,
                      order: Sequence[str]) -> Figure:
    """When each replication's first host fills, per group: one dot per replication (an open
    triangle at the horizon when none filled), the median and its 95% interval."""
    names = [o for o in order if o in set(head[group])] if not head.empty else []
    title = "when the first host's disk is full (one mark per replication)"
    with style():
        fig, (ax,) = new_figure(category_height(names, 2.2))
        if not names:
            return empty(fig, ax, title, "no host series with a capacity")
        horizon = float(head["horizon_s"].max()) / DAY
        for i, name in enumerate(names):
            _first_full_row(ax, i, first[first[group] == name],
                            head[head[group] == name].iloc[0], horizon)
        ax.axvline(horizon, color="grey", ls="--", lw=1,
                   label=f"end of the simulation ({horizon:.3g} d)")
        category_axis(ax, names)
        ax.set_ylim(len(names) - 0.5, -0.62)  # room for the first row's line of text
        ax.set_xlim(0, horizon * 1.1)
        ax.set_title(title)
        ax.set_xlabel("time until the first host is full (days; censored at the horizon)")
        legend_below(fig, ax, ncols=2)
    return fig


def _first_full_row(ax: object, i: int, g: pd.DataFrame, row: pd.Series,
                    horizon: float) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    t = g["t_first_full_s"].to_numpy(float) / DAY
    y = i + _jitter(t.size)
    full = np.isfinite(t)
    ax.scatter(t[full], y[full], s=22, color="tab:blue", alpha=0.7, zorder=3,
               label="a replication: first host full" if i == 0 else None)
    ax.scatter(np.full((~full).sum(), horizon), y[~full], s=40, marker=">", facecolors="none",
               edgecolors="tab:red", zorder=3,
               label="a replication: no host full by the end" if i == 0 else None)
    lo, hi, med = (row["median_ci_low_s"] / DAY, row["median_ci_high_s"] / DAY,
                   row["median_s"] / DAY)
    if math.isfinite(lo):
        ax.plot([lo, min(hi, horizon)], [i, i], color="black", lw=3, alpha=0.5, zorder=2,
                label=f"{row['level']:.0%} interval of the median" if i == 0 else None)
    if math.isfinite(med):
        ax.scatter([med], [i], s=90, marker="D", color="black", zorder=4,
                   label="median replication" if i == 0 else None)
    horizon_s = horizon * DAY
    # the count first: a filled replication's dot beside "median > 20 d" is read right
    text = (f"{int(row['filled'])} of {int(row['replications'])} filled; median "
            f"{days_text(row['median_s'], horizon_s)}; {row['level']:.0%} interval: "
            f"{interval_text(row)}")
    # above the row's marks, and under them where a mark reaches it (zorder 1: a mark is
    # never hidden by the text's box)
    ax.text(0.005, i - 0.36, text, transform=ax.get_yaxis_transform(), fontsize=9,
            va="center", zorder=1, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1})


def peak_figure(first: pd.DataFrame, group: str, order: Sequence[str]) -> Figure:
    """The fullest host's peak demand per replication, as a share of its own capacity; past
    100% shaded: the model keeps writing past a full disk, where a host's writes would have
    failed (the demand asked for, not bytes held)."""
    names = [o for o in order if o in set(first[group])] if not first.empty else []
    title = "the fullest host's peak demand against its capacity"
    with style():
        fig, (ax,) = new_figure(category_height(names, 2.0))
        if not names:
            return empty(fig, ax, title, "no host series with a capacity")
        data = [100 * (g["peak_bytes"] / g["capacity_bytes"]).to_numpy(float)
                for g in (first[first[group] == n] for n in names)]
        ax.boxplot(data, orientation="horizontal", positions=range(len(names)), widths=0.5,
                   whis=(0, 100), showfliers=False)
        top = max([100.0, *(float(np.nanmax(v)) for v in data if np.isfinite(v).any())])
        for i, v in enumerate(data):  # a pixel of the 1000 px figure's axis: 1/1000 of it
            _marks_with_counts(ax, v, i, top * 1.05 / 1000, "a replication (×n: n "
                               "replications that coincide at this scale)" if i == 0 else None)
        ax.axvline(100, color="tab:red", ls=":", label="its capacity (100%)")
        category_axis(ax, names)
        ax.set_xlim(0, top * 1.05)  # the largest mark whole, not cut by the frame
        if top > 100.0:
            ax.axvspan(100, top * 1.05, color="tab:red", alpha=0.08, lw=0, zorder=0,
                       label="past a full disk: the model keeps writing (a host's writes "
                             "would fail)")
        ax.set_title(title)
        ax.set_xlabel("peak used on the fullest host (% of capacity); box: p25 to p75, "
                      "line: median, whiskers: min to max")
        legend_below(fig, ax, ncols=2)
    return fig


#: line styles and markers the groups of the refused-VMs figure cycle through: groups that
#: refused none lie on one another at 0, and colour alone let the last drawn hide the others
_DASHES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def rejections_figure(band: pd.DataFrame, group: str, order: Sequence[str]) -> Figure:
    """VMs placement refused (NoValidHost), cumulative over time: median replication, p5-p95.

    Each group has its own colour, dash and marker; the groups that refused no VM in any
    replication (lines on one another at 0) are named in a note inside the axes."""
    title = "VMs refused by placement (NoValidHost), cumulative"
    with style():
        fig, (ax,) = new_figure(5.0)
        d = band[band["t_s"].notna()] if not band.empty else band
        if d.empty:
            return empty(fig, ax, title, "no rejection series recorded")
        tlabel, tdiv = time_unit(d["t_s"].to_numpy(float))
        names = [o for o in order if o in set(d[group])]
        none: list[str] = []
        for i, name in enumerate(names):
            g = d[d[group] == name].sort_values("t_s")
            line = ax.plot(g["t_s"] / tdiv, g["p50"], lw=2, label=name,
                           ls=_DASHES[i % len(_DASHES)], marker=_MARKERS[i % len(_MARKERS)],
                           markersize=6, markevery=_every(len(g), i, len(names)))[0]
            ax.fill_between(g["t_s"] / tdiv, g["p5"], g["p95"], color=line.get_color(),
                            alpha=0.15, lw=0)
            if not (g["max"] > 0).any():
                none.append(name)
        if none:
            ax.text(0.01, 0.97, "no VM refused in any replication:\n" + "\n".join(none),
                    transform=ax.transAxes, va="top", fontsize=9,
                    bbox={"facecolor": "white", "alpha": 0.85, "lw": 0.5,
                          "edgecolor": "grey"})
        ax.set_title(title)
        ax.set_xlabel(f"time ({tlabel})")
        ax.set_ylabel("VMs refused (median replication; band p5 to p95)")
        ax.set_ylim(bottom=0)
        legend_below(fig, ax, ncols=2)
    return fig


def _every(n: int, i: int, groups: int) -> slice:
    """Markers on about ten samples of a line, each group's shifted, so that lines lying on
    one another still show every group's marker side by side."""
    step = max(1, n // 10, groups)
    return slice(i % step, None, step)


def disk_use_facets(band: pd.DataFrame, capacity: pd.Series, group: str,
                    order: Sequence[str]) -> Figure:
    """Host demand over time, one panel per group, each with its own capacity line (a line
    per host size when its hosts differ: ``capacity`` repeats the group's label): the median
    host and the p5-p95 band over hosts and replications."""
    d = band[band["t_s"].notna()] if not band.empty else band
    names = [o for o in order if o in set(d[group])] if not d.empty else []
    ncols = min(max(len(names), 1), 2)
    nrows = max(1, math.ceil(len(names) / ncols))
    title = "host disk demand over time, each group against its own capacity"
    with style():
        fig = Figure(figsize=(10.0, 1.2 + 2.9 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
        if not names:
            return empty(fig, axes[0], title, "no time series recorded (end-of-run only)")
        caps = [capacity[capacity.index == n].to_numpy(float) for n in names]
        every = np.concatenate([np.array([math.nan]), *caps])
        label, div = display_unit("B", np.concatenate([d["p50"].to_numpy(float), every]))
        tlabel, tdiv = time_unit(d["t_s"].to_numpy(float))
        top = np.nanmax([*every, float(d["p95"].max())]) / div * 1.08
        for ax, name, sizes in zip(axes, names, caps, strict=False):
            g = d[d[group] == name].sort_values("t_s")
            ax.plot(g["t_s"] / tdiv, g["p50"] / div, lw=2, color="tab:blue",
                    label="median host")
            ax.fill_between(g["t_s"] / tdiv, g["p5"] / div, g["p95"] / div, alpha=0.2,
                            color="tab:blue", lw=0, label="p5 to p95 of hosts")
            for j, cap in enumerate(sizes[np.isfinite(sizes)]):
                ax.axhline(cap / div, color="tab:red", ls=":", label=None if j else (
                    "capacity of the group" if sizes.size == 1 else "its hosts' capacities"))
                ax.text(0.01, cap / div, f" {size_text(cap)}", color="tab:red", va="bottom",
                        transform=ax.get_yaxis_transform(), fontsize=9)
            ax.set_title(name, fontsize=11)
            ax.set_ylim(0, top)
        for ax in axes[len(names):]:
            ax.set_axis_off()
        for ax in axes[max(0, len(names) - ncols):len(names)]:
            ax.set_xlabel(f"time ({tlabel})")
        fig.suptitle(title)
        fig.supylabel(f"used on a host ({label})")
        legend_below(fig, axes[0])
    return fig
