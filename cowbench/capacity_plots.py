"""The capacity report's figures: the Monte Carlo headline first, then disk use per group.

Times are in the unit the horizon reads in (days for a fleet of weeks, minutes for a timeline)
and never drawn past the simulated horizon: a replication whose hosts did
not fill is drawn at the horizon as "later" (an open triangle), the axis ends just after the
horizon, and a dashed line marks it. Each group is drawn against its own capacity. Categories
(groups) are on the y axis, labels wrapped, so none overlaps another at 1000 px.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import capacity as cap
from .capacity import days_text, interval_text
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
from .units import format_duration

#: At most this many host series (hosts x replications) in a group, each is drawn as its own
#: line or dot: a percentile over so few is an interpolation between them (the "median" of two
#: hosts is their mean, a host that does not exist; their p95 is short of the fullest), and six
#: lines are still told apart by colour and named in the legend. Past it, the median and the
#: p5-p95 band over hosts, with the fullest host's own line, which the band stops short of.
FEW_HOSTS = 6

#: The name every host-use figure gives the quantity it draws: the bytes the model charges a
#: host's disk (shared extents counted once), which can pass the disk's size.
DEMAND = "host disk demand"
#: How every figure of host use names the shading past a capacity (the peak figure's words).
PAST_FULL = "past a full disk: the model keeps writing (a host's writes would fail)"


def host_series(hosts: pd.DataFrame) -> list[str]:
    """The columns that name one host series: its replication's keys and the host."""
    return [k for k in (*cap.REPLICATION_KEYS, "entity") if k in hosts.columns]


def series_names(frame: pd.DataFrame) -> list[str]:
    """Each host series of ``frame`` (one row a series) as a reader names it: the host, and
    what tells its replication from the others' where the group has several (the seed, else
    the point, else the replication)."""
    host = frame["entity"].astype(str).str.removeprefix("host:").tolist()
    for key in ("seed", "point", "replication", "backend"):
        if key in frame.columns and frame[key].nunique(dropna=False) > 1:
            return [f"{h}, {key} {v}" for h, v in zip(host, frame[key], strict=True)]
    return host


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


#: The area (points²) of one replication's mark on the peak figure.
MARK_S = 18.0


def mark_width(fig: Figure, ax: Axes, span: float) -> float:
    """One mark's width in data units of an x axis ``span`` wide: values closer than this are
    drawn on one another, so they are one mark with its count. A pixel (the rule before)
    merged 77.1% and 77.2% into "×2" but left 87.0%, 87.2% and 87.8%, as far apart as a mark
    is wide, three marks drawn as one with no count."""
    fig.draw_without_rendering()  # the layout: the axes' width once their labels are set
    diameter_px = math.sqrt(MARK_S) / 72.0 * fig.dpi
    axis_px = ax.get_position().width * fig.get_figwidth() * fig.dpi
    return span * diameter_px / max(axis_px, 1.0)


def _marks_with_counts(ax: Axes, values: np.ndarray, row: int, within: float,
                       label: str | None) -> None:
    """One mark per value on the row's line, never jittered, so replications that agree read
    as one figure, not as a spread; values closer than ``within`` (a mark's width on the axis,
    :func:`mark_width`) are one mark that says ×n."""
    v, counts = coinciding(values, within) if values.size else (values, np.zeros(0, int))
    ax.scatter(v, np.full(v.size, float(row)), s=MARK_S + 10 * np.minimum(counts - 1, 6),
               color="tab:blue", alpha=0.7, zorder=3, label=label)
    for x, n in zip(v, counts, strict=True):
        if n > 1:
            ax.annotate(f"×{n}", (x, row), xytext=(0, 7), textcoords="offset points",
                        ha="center", va="bottom", fontsize=9, color="tab:blue", zorder=3)


def first_full_figure(first: pd.DataFrame, head: pd.DataFrame, group: str,
                      order: Sequence[str]) -> Figure:
    """When each replication's first host fills, per group: one dot per replication (an open
    triangle at the horizon when none filled), the median and its 95% interval. Times in the
    unit the horizon reads in (:func:`cowbench.plots.time_unit`: days for a fleet of weeks,
    minutes for a timeline of twenty), as the table above says them; every mark's legend
    entry is given by the first row that draws one (a first group with no median did hide
    the median's)."""
    names = [o for o in order if o in set(head[group])] if not head.empty else []
    title = "when the first host's disk is full (one mark per replication)"
    with style():
        fig, (ax,) = new_figure(category_height(names, 2.2))
        if not names:
            return empty(fig, ax, title, "no host series with a capacity")
        horizon_s = float(head["horizon_s"].max())
        tlabel, tdiv = time_unit(np.array([horizon_s]))
        horizon = horizon_s / tdiv
        named: set[str] = set()
        for i, name in enumerate(names):
            _first_full_row(ax, i, first[first[group] == name],
                            head[head[group] == name].iloc[0], horizon, tdiv, named)
        ax.axvline(horizon, color="grey", ls="--", lw=1,
                   label=f"end of the simulation ({format_duration(horizon_s)})")
        category_axis(ax, names)
        ax.set_ylim(len(names) - 0.5, -0.62)  # room for the first row's line of text
        ax.set_xlim(0, horizon * 1.1)
        ax.set_title(title)
        ax.set_xlabel(f"time until the first host is full ({tlabel}; censored at the horizon)")
        legend_below(fig, ax, ncols=2)
    return fig


def _once(named: set[str], label: str) -> str | None:
    """``label`` the first time a mark is drawn, None after: one legend entry a mark."""
    if label in named:
        return None
    named.add(label)
    return label


def _first_full_row(ax: Axes, i: int, g: pd.DataFrame, row: pd.Series, horizon: float,
                    tdiv: float, named: set[str]) -> None:
    t = g["t_first_full_s"].to_numpy(float) / tdiv
    y = i + _jitter(t.size)
    full = np.isfinite(t)
    if full.any():
        ax.scatter(t[full], y[full], s=22, color="tab:blue", alpha=0.7, zorder=3,
                   label=_once(named, "a replication: first host full"))
    if (~full).any():
        ax.scatter(np.full((~full).sum(), horizon), y[~full], s=40, marker=">",
                   facecolors="none", edgecolors="tab:red", zorder=3,
                   label=_once(named, "a replication: no host full by the end"))
    lo, hi, med = (row["median_ci_low_s"] / tdiv, row["median_ci_high_s"] / tdiv,
                   row["median_s"] / tdiv)
    if math.isfinite(lo):
        ax.plot([lo, min(hi, horizon)], [i, i], color="black", lw=3, alpha=0.5, zorder=2,
                label=_once(named, f"{row['level']:.0%} interval of the median"))
    if math.isfinite(med):
        ax.scatter([med], [i], s=90, marker="D", color="black", zorder=4,
                   label=_once(named, "median replication"))
    horizon_s = horizon * tdiv
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
        ax.axvline(100, color="tab:red", ls=":", label="its capacity (100%)")
        category_axis(ax, names)
        ax.set_xlim(0, top * 1.05)  # the largest mark whole, not cut by the frame
        if top > 100.0:
            ax.axvspan(100, top * 1.05, color="tab:red", alpha=0.08, lw=0, zorder=0,
                       label=PAST_FULL)
        ax.set_title(title)
        ax.set_xlabel("the fullest host's peak demand (% of capacity); box: p25 to p75, "
                      "line: median, whiskers: min to max")
        within = mark_width(fig, ax, top * 1.05)  # the axes laid out: their labels in place
        for i, v in enumerate(data):
            _marks_with_counts(ax, v, i, within, "a replication (×n: n "
                               "replications that coincide at this scale)" if i == 0 else None)
        legend_below(fig, ax, ncols=2)
    return fig


#: line styles and markers the groups of the refused-VMs figure cycle through: groups that
#: refused none lie on one another at 0, and colour alone let the last drawn hide the others
_DASHES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def rejections_figure(band: pd.DataFrame, group: str, order: Sequence[str]) -> Figure:
    """VMs placement refused (NoValidHost), cumulative over time: median replication, p5-p95.

    Each group has its own colour, dash and marker; the groups that refused no VM in any
    replication (lines on one another at 0) are named in a note inside the axes. The y axis
    counts VMs: whole ticks, from 0 to at least 1."""
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
        # a count: whole ticks, and at least 0 to 1 (none refused drew 0.00 to 0.05)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max(1.0, float(d["p95"].max()) * 1.05))
        legend_below(fig, ax, ncols=2)
    return fig


def _every(n: int, i: int, groups: int) -> slice:
    """Markers on about ten samples of a line, each group's shifted, so that lines lying on
    one another still show every group's marker side by side."""
    step = max(1, n // 10, groups)
    return slice(i % step, None, step)


def disk_use_facets(band: pd.DataFrame, capacity: pd.Series, group: str,
                    order: Sequence[str], hosts: pd.DataFrame | None = None) -> Figure:
    """Host disk demand over time, one panel per group, each with its own capacity line (a
    line per host size when its hosts differ: ``capacity`` repeats the group's label).

    With ``hosts`` (the samples the bands were taken over), a group of at most
    :data:`FEW_HOSTS` host series draws each host, named; a larger one the median and the
    p5-p95 band over hosts and replications, and the fullest host's own line (the series with
    the highest sample), which the band stops short of. Without ``hosts``, the median and
    band only. Where a drawn value passes a capacity, the panel is shaded above it."""
    d = band[band["t_s"].notna()] if not band.empty else band
    names = [o for o in order if o in set(d[group])] if not d.empty else []
    ncols = min(max(len(names), 1), 2)
    nrows = max(1, math.ceil(len(names) / ncols))
    known = capacity[capacity.index.isin(names)].to_numpy(float) if not capacity.empty \
        else np.zeros(0)
    title = f"{DEMAND} over time" + (", each group against its own capacity"
                                      if np.isfinite(known).any() else "")
    timed = hosts[hosts["t_s"].notna()] if hosts is not None and not hosts.empty else None
    with style():
        fig = Figure(figsize=(10.0, 1.2 + 2.9 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
        if not names:
            return empty(fig, axes[0], title, "no time series recorded (end-of-run only)")
        caps = [capacity[capacity.index == n].to_numpy(float) for n in names]
        every = np.concatenate([np.array([math.nan]), *caps])
        label, div = display_unit("B", np.concatenate([d["p50"].to_numpy(float), every]))
        tlabel, tdiv = time_unit(d["t_s"].to_numpy(float))
        top = np.nanmax([*every, float(d["max"].max())]) / div * 1.08
        end = float(d["t_s"].max()) / tdiv
        for ax, name, sizes in zip(axes, names, caps, strict=False):
            g = d[d[group] == name].sort_values("t_s")
            mine = timed[timed[group] == name] if timed is not None else None
            most = (_each_host(ax, mine, tdiv, div, end) if mine is not None
                    and _count(mine) <= FEW_HOSTS else _median_band(ax, g, mine, tdiv, div, end))
            _capacity_lines(ax, sizes, div, most, top)
            ax.set_title(name, fontsize=11)
            ax.set_ylim(0, top)
        for ax in axes[len(names):]:
            ax.set_axis_off()
        for ax in axes[max(0, len(names) - ncols):len(names)]:
            ax.set_xlabel(f"time ({tlabel})")
        fig.suptitle(title)
        fig.supylabel(f"{DEMAND} ({label})")
        _legend_of_all(fig, list(axes[:len(names)]))
    return fig


def _count(samples: pd.DataFrame) -> int:
    return int(samples.groupby(host_series(samples), dropna=False).ngroups)


def _held_to(series: pd.DataFrame, end: float, tdiv: float, div: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """One host series as a step (its use holds between samples), held to ``end``."""
    s = series.sort_values("t_s", kind="stable")
    t = s["t_s"].to_numpy(float) / tdiv
    y = s["value"].to_numpy(float) / div
    if t.size and t[-1] < end:
        t, y = np.append(t, end), np.append(y, y[-1])
    return t, y


def _each_host(ax: Axes, samples: pd.DataFrame, tdiv: float, div: float, end: float) -> float:
    """Every host series of a small group as its own named step line; its highest value."""
    keys = host_series(samples)
    firsts = samples.drop_duplicates(keys)
    for (_, s), who in zip(samples.groupby(keys, dropna=False, sort=False),
                           series_names(firsts), strict=True):
        t, y = _held_to(s, end, tdiv, div)
        ax.step(t, y, where="post", lw=2, label=who)
    return float(samples["value"].max()) / div


def _median_band(ax: Axes, g: pd.DataFrame, samples: pd.DataFrame | None, tdiv: float,
                 div: float, end: float) -> float:
    """A large group's median host, p5-p95 band and (with its samples) fullest host's line;
    the highest value drawn."""
    ax.plot(g["t_s"] / tdiv, g["p50"] / div, lw=2, color="tab:blue",
            label="median over hosts (at each time)")
    ax.fill_between(g["t_s"] / tdiv, g["p5"] / div, g["p95"] / div, alpha=0.2,
                    color="tab:blue", lw=0, label="p5 to p95 of hosts")
    if samples is None or samples.empty:
        return float(g["p95"].max()) / div
    ids = _ids(samples)
    at = int(np.argmax(samples["value"].to_numpy(float)))
    fullest = samples[ids == ids[at]]
    t, y = _held_to(fullest, end, tdiv, div)
    who = _name_of(samples, ids, at)
    ax.step(t, y, where="post", lw=1.5, color="tab:orange",
            label="the group's fullest host (named): its own line")
    ax.annotate(who, (t[-1], y[-1]), xytext=(-4, 4), textcoords="offset points", ha="right",
                va="bottom", fontsize=9, color="tab:orange")
    return float(fullest["value"].max()) / div


def _ids(samples: pd.DataFrame) -> np.ndarray:
    """One string per row naming its host series (its :func:`host_series` keys)."""
    return samples[host_series(samples)].astype(str).agg("\x1f".join, axis=1).to_numpy()


def _name_of(samples: pd.DataFrame, ids: np.ndarray, at: int) -> str:
    """The name :func:`series_names` gives, among all of ``samples``'s series, the series of
    the row at position ``at``."""
    first = ~pd.Series(ids).duplicated().to_numpy()
    names = dict(zip(ids[first], series_names(samples[first]), strict=True))
    return str(names[ids[at]])


def _capacity_lines(ax: Axes, sizes: np.ndarray, div: float, most: float, top: float) -> None:
    """A group's capacity lines, named, and the band above each one shaded where a value
    drawn (``most``) passes it: the peak figure's warning, on every figure of host use."""
    for j, c in enumerate(sizes[np.isfinite(sizes)]):
        ax.axhline(c / div, color="tab:red", ls=":", label=None if j else (
            "capacity of the group" if sizes.size == 1 else "its hosts' capacities"))
        ax.text(0.01, c / div, f" {size_text(c)}", color="tab:red", va="bottom",
                transform=ax.get_yaxis_transform(), fontsize=9)
        if most > c / div:
            ax.axhspan(c / div, top, color="tab:red", alpha=0.08, lw=0, zorder=0,
                       label=PAST_FULL)


def _legend_of_all(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend under the figure with every panel's entries, each name once (a panel's
    own hosts, another's fullest host, the shading where only one panel has it)."""
    seen: dict[str, Artist] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=min(2, len(seen)), frameon=False)


def host_disk_at_end(hosts: pd.DataFrame, capacity: pd.Series, group: str,
                     order: Sequence[str]) -> Figure:
    """Host disk demand at the end of the run, a row per group, against its own capacity (a
    mark per host size). A group of at most :data:`FEW_HOSTS` host series draws a dot per host
    and names each with its value; a larger one a bar at the median host, whiskers from p5 to
    p95, and the fullest host's own mark (the band stops short of it). A row whose values pass
    its capacity is shaded past it, as the peak figure is."""
    d = hosts.dropna(subset=["value"]) if not hosts.empty else hosts
    names = [o for o in order if o in set(d[group])] if not d.empty else []
    known = capacity[capacity.index.isin(names)].to_numpy(float) if not capacity.empty \
        else np.zeros(0)
    title = f"{DEMAND} at the end" + (", each group against its own capacity"
                                      if np.isfinite(known).any() else "")
    with style():
        fig, (ax,) = new_figure(category_height(names, 2.0))
        if not names:
            return empty(fig, ax, title, "no end-of-run host figures")
        caps = [capacity[capacity.index == n].to_numpy(float) for n in names]
        label, div = display_unit("B", d["value"].to_numpy(float))
        right = np.nanmax([float(d["value"].max()), *np.concatenate([np.zeros(1), *caps])]) \
            / div * 1.08
        for i, (name, sizes) in enumerate(zip(names, caps, strict=True)):
            g = d[d[group] == name]
            if _count(g) <= FEW_HOSTS:
                _end_dots(ax, g, i, div)
            else:
                _end_bar(ax, g, i, div)
            most = float(g["value"].max()) / div
            for c in sizes[np.isfinite(sizes)]:
                ax.plot([c / div] * 2, [i - 0.4, i + 0.4], color="tab:red", lw=2.5, zorder=4,
                        label="the group's capacity")
                if most > c / div:
                    ax.fill_betweenx([i - 0.45, i + 0.45], c / div, right, color="tab:red",
                                     alpha=0.08, lw=0, zorder=0, label=PAST_FULL)
        category_axis(ax, names)
        ax.set_ylim(len(names) - 0.5, -0.62)  # room for the first row's line of text
        ax.set_xlim(-0.01 * right, right)  # a host at 0 drawn whole, not cut by the frame
        ax.set_title(title)
        ax.set_xlabel(f"{DEMAND} ({label}): shared extents counted once")
        _legend_of_all(fig, [ax])
    return fig


def _end_dots(ax: Axes, g: pd.DataFrame, row: int, div: float) -> None:
    """A few hosts: a dot each and, above the row, each one's name and value."""
    keys = host_series(g)
    last = g.drop_duplicates(keys, keep="last").sort_values("value", ascending=False)
    v = last["value"].to_numpy(float)
    ax.scatter(v / div, np.full(v.size, float(row)), s=40, color="tab:blue", zorder=3,
               label="a host (a group of few: each drawn)")
    text = "; ".join(f"{who} {size_text(x)}" for who, x in zip(series_names(last), v,
                                                                  strict=True))
    ax.text(0.005, row - 0.36, text, transform=ax.get_yaxis_transform(), fontsize=9,
            va="center", zorder=1, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1})


def _end_bar(ax: Axes, g: pd.DataFrame, row: int, div: float) -> None:
    """Many hosts: the median host's bar, p5-p95 whiskers, and the fullest host's mark."""
    v = g["value"].to_numpy(float) / div
    v = v[np.isfinite(v)]
    p5, mid, p95 = np.percentile(v, [5, 50, 95])
    ax.barh([row], [mid], xerr=[[mid - p5], [p95 - mid]], capsize=5, color="tab:blue",
            alpha=0.8, height=0.6, label="median host; whiskers: p5 to p95 of hosts")
    ax.scatter([v.max()], [row], marker="D", s=50, color="tab:orange", zorder=5,
               label="the group's fullest host")
