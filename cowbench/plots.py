"""Figures for reports and papers: one function per figure, a tidy frame in, a Figure out.

Every figure has a title, axis labels with display units (GiB, MiB/s, IOPS, ms), a legend when
more than one series is drawn, and text sized to be read at 1000 px wide (10 in at 100 dpi,
11 pt text). Figures are built with :class:`matplotlib.figure.Figure` directly, never pyplot,
so no global figure state is kept and the Agg canvas is used whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from .compare import UNCALIBRATED
from .vmdist import group_quantiles

WIDTH_IN = 10.0
SCREEN_DPI = 100  # 10 in x 100 dpi = 1000 px, the width the figures are made to be read at
PRINT_DPI = 200
STYLE: dict[Any, Any] = {
    "font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 10,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "figure.dpi": SCREEN_DPI, "svg.fonttype": "none"}
#: Series beyond which entities are drawn by kind (vm, host, ...) rather than one by one.
MAX_SERIES = 10
#: Relative error bands drawn around y = x on predicted-vs-measured plots.
ERROR_BANDS = (0.10, 0.25)
_BIN = [("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10), ("B", 1.0)]


def display_unit(unit: str, values: Sequence[float] | np.ndarray | pd.Series) -> tuple[str, float]:
    """``(label, divisor)`` to show values of a record ``unit``: bytes in the largest binary
    unit the median reaches, latency in ms, rates in IOPS."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    typical = float(np.median(v)) if v.size else 1.0
    if unit in ("B", "B/s"):
        label, div = next((n, d) for n, d in _BIN if typical >= d or d == 1.0)
        return (label if unit == "B" else f"{label}/s"), div
    if unit == "s":
        return ("ms", 1e-3) if typical < 1.0 else ("s", 1.0)
    if unit == "1/s":
        return "IOPS", 1.0
    return {"ios": "I/Os"}.get(unit, unit), 1.0


_WORDS = {"allocated_bytes": "allocated space", "file_bytes": "file size",
          "host_read_bytes": "host bytes read", "host_write_bytes": "host bytes written",
          "read_iops": "read IOPS", "write_iops": "write IOPS", "read_ios": "read I/Os",
          "write_ios": "write I/Os", "duration_s": "duration",
          "transfer_bytes": "bytes transferred"}


def pretty_metric(metric: str) -> str:
    """``write_lat_p99_s`` -> ``write latency p99``: words for titles and labels."""
    if metric in _WORDS:
        return _WORDS[metric]
    words = metric.replace("_bw_bytes_per_s", " bandwidth").replace("_lat_", " latency ")
    return words.removesuffix("_s").replace("_", " ").strip()


@contextmanager
def style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def new_figure(height_in: float = 5.5, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    with style():
        fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save_figure(fig: Figure, directory: Path, name: str) -> list[Path]:
    """Write ``name.png`` (print resolution) and ``name.svg`` (text kept as text)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.png", directory / f"{name}.svg"]
    with style():
        fig.savefig(paths[0], dpi=PRINT_DPI)
        fig.savefig(paths[1])
    return paths


#: Characters of a category label per line before it wraps (11 pt text, 1000 px figure).
LABEL_WRAP = 50
#: Height (inches) of one line of a category label on a horizontal category axis.
ROW_IN = 0.21


def wrap_label(text: str, width: int = LABEL_WRAP) -> str:
    """A long label on several lines, broken after commas first, then at spaces."""
    import textwrap

    lines: list[str] = []
    for part in str(text).split(", "):
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.extend(textwrap.wrap(part, width) or [""])
    return "\n".join(lines)


def category_height(labels: Sequence[str], extra_in: float = 1.6) -> float:
    """A figure height (inches) giving each wrapped category label room on a y axis."""
    lines = sum(max(1, wrap_label(x).count("\n") + 1) + 0.6 for x in labels)
    return max(3.2, ROW_IN * lines + extra_in)


def category_axis(ax: Axes, labels: Sequence[str]) -> None:
    """Categories on the y axis, first at the top, labels wrapped so none overlaps another."""
    ax.set_yticks(range(len(labels)), [wrap_label(x) for x in labels])
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(False, axis="y")


def legend_below(fig: Figure, ax: Axes, ncols: int = 3) -> None:
    """The legend under the axes, outside them: never over data or tick labels."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        legend = fig.legend(handles, labels, loc="outside lower center",
                            ncols=min(ncols, len(handles)), frameon=False)
        for handle in legend.legend_handles:  # a row-tall mark drawn in a legend's line
            if isinstance(handle, PathCollection) and handle.get_sizes().max(initial=0) > 120:
                handle.set_sizes([120])


def empty(fig: Figure, ax: Axes, title: str, why: str) -> Figure:
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _spans_decades(v: np.ndarray) -> bool:
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size) and float(v.max() / v.min()) > 100


#: Two markers closer than this (a share of the axes' width and height) are drawn as one: a
#: marker of ``s=40`` is about 1.3% of a 1000 px scatter's axes across.
COINCIDE = 0.012


def entity_colours(entities: Iterable[object]) -> dict[str, str]:
    """One colour per entity for every figure of a report: VMs first in name order, then the
    other entities (cache, host, image, ...) in name order, along matplotlib's ``tab10``
    (``tab20`` beyond ten entities, then round again).

    A figure that coloured its own series in its own order gave one VM a colour per figure
    (ro-1 blue where it was alone, orange beside db-1); built once from every entity of a run
    or sweep, the map gives a VM the same colour in each figure, and the validation and
    strategies reports of one scenario the same colour for the same VM (VMs come first)."""
    names = sorted({str(e) for e in entities}, key=lambda e: (not e.startswith("vm:"), e))
    palette = "tab10" if len(names) <= 10 else "tab20"
    cycle = [mpl.colors.to_hex(c) for c in mpl.colormaps[palette].colors]  # type: ignore[attr-defined]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def series_colours(labels: Iterable[object], colours: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
    """A colour per series label: the report's map (:func:`entity_colours`) where it names the
    label, else one made for these labels (a fleet's kind groups, ``vm (120)``)."""
    names = sorted({str(x) for x in labels})
    own = entity_colours(names)
    return {n: (colours or {}).get(n, own[n]) for n in names}


def legend_right(fig: Figure, ax: Axes, **kwargs: Any) -> Legend | None:
    """The axes' legend beside them, right of the axes and outside: never over a point (an
    over-prediction lands top left, where a legend inside the axes sat on it). The entities
    first, then the guides (the error bands, y = x)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    guides = {f"±{b:.0%}" for b in ERROR_BANDS} | {"y = x"}
    pairs = sorted(zip(handles, labels, strict=True), key=lambda hl: hl[1] in guides)
    handles, labels = [h for h, _ in pairs], [lb for _, lb in pairs]
    return fig.legend(handles, labels, loc="outside right upper", frameon=False, **kwargs)


def _fractions(ax: Axes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Data points as shares of the axes (0..1 across the limits, log or linear)."""
    xy = np.column_stack([x, y]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((ax.transScale + ax.transLimits).transform(xy))


def coinciding_markers(ax: Axes, x: np.ndarray, y: np.ndarray, series: Sequence[str]
               ) -> list[list[int]]:
    """Groups of row indices (two or more series each) whose markers fall on one spot of the
    axes (within :data:`COINCIDE` of the first marker of the group), in row order."""
    pos = _fractions(ax, x, y)
    groups: list[list[int]] = []
    for i, (px, py) in enumerate(pos):
        if not (np.isfinite(px) and np.isfinite(py)):
            continue
        for g in groups:
            gx, gy = pos[g[0]]
            if abs(px - gx) <= COINCIDE and abs(py - gy) <= COINCIDE:
                g.append(i)
                break
        else:
            groups.append([i])
    return [g for g in groups if len({series[i] for i in g}) > 1]


def scatter_predicted_measured(comparison: pd.DataFrame, metric: str,
                               spread: pd.DataFrame | None = None,
                               colours: Mapping[str, str] | None = None) -> Figure:
    """Predicted against measured for one metric: y = x, +-10% and +-25% bands, one marker per
    entity (end-of-run figures and time samples alike), each entity in its report colour
    (``colours``, :func:`entity_colours`), the legend outside the axes.

    With the real runs' ``spread`` (``spread.csv`` of ``run --repeat N``) the measured mean
    carries a bar from the least to the most any run measured. Markers that fall on one spot
    (two VMs of one size, a cache the size of its image) are marked ``×n`` there, and the
    legend says of an entity whose every marker is covered which one covers it, so every
    legend entry can be found on the figure."""
    with style():
        fig, (ax,) = new_figure(6.5)
        d = comparison[comparison["metric"] == metric]
        mark = " (uncalibrated)" if metric in UNCALIBRATED else ""
        title = f"{pretty_metric(metric)}{mark}: predicted vs measured"
        if d.empty:
            return empty(fig, ax, title, "no figure known to both backends")
        d = d.reset_index(drop=True)
        unit = str(d["unit"].iloc[0])
        lo_hi = _runs_range(d, spread)
        both = np.concatenate([d["measured"].to_numpy(float), d["predicted"].to_numpy(float),
                               lo_hi[["lo", "hi"]].to_numpy(float).ravel()])
        both = both[np.isfinite(both)]
        label, div = display_unit(unit, both)
        log = _identity_with_bands(ax, both / div)
        series = entity_groups(d["entity"])
        cmap = series_colours(series, colours)
        x, y = d["measured"].to_numpy(float) / div, d["predicted"].to_numpy(float) / div
        names = sorted(series.unique())
        groups = coinciding_markers(ax, x, y, list(series))
        covered = _covered(groups, list(series), names)
        for name in names:
            rows = (series == name).to_numpy()
            ax.scatter(x[rows], y[rows], s=40, color=cmap[name], zorder=3,
                       label=name + (f" ({covered[name]})" if name in covered else ""))
        _runs_bars(ax, d, lo_hi, series, cmap, div)
        for group in groups:
            n = len({str(d["entity"].iloc[i]) for i in group})
            ax.annotate(f"×{n}", (x[group[0]], y[group[0]]), xytext=(7, -3),
                        textcoords="offset points", fontsize=9, ha="left", va="top", zorder=5)
        if log:
            zeros = int(((d["measured"] <= 0) | (d["predicted"] <= 0)).sum())
            if zeros:  # a log axis has no 0: say what is not drawn
                ax.text(0.99, 0.01, f"{zeros} figure(s) of 0 not drawn (log axes)",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                        color="dimgray")
        ax.set_title(title)
        ax.set_xlabel(f"measured ({label})")
        ax.set_ylabel(f"predicted ({label})")
        legend_right(fig, ax)
    return fig


def _covered(groups: Sequence[Sequence[int]], series: Sequence[str], order: Sequence[str]
             ) -> dict[str, str]:
    """Per series whose every marker lies under another series' marker (drawn later, in
    ``order``, so on top): the words for its legend entry."""
    rank = {n: i for i, n in enumerate(order)}
    on_top: dict[int, str] = {}
    for g in groups:
        top = max((series[i] for i in g), key=rank.__getitem__)
        for i in g:
            if series[i] != top:
                on_top[i] = top
    out: dict[str, str] = {}
    for name in order:
        rows = [i for i, s in enumerate(series) if s == name]
        tops = {on_top.get(i) for i in rows}
        if rows and None not in tops:
            out[name] = f"same point as {tops.pop()}" if len(tops) == 1 else \
                "under other markers"
    return out


def _runs_range(d: pd.DataFrame, spread: pd.DataFrame | None) -> pd.DataFrame:
    """Per row of ``d`` (one metric's comparison), the least and most the real runs measured
    (``spread.csv``); NaN without two or more runs."""
    out = pd.DataFrame({"lo": np.nan, "hi": np.nan, "runs": 0}, index=d.index)
    if spread is None or spread.empty:
        return out
    from .compare import nth

    keys = ["entity", "metric", "t_s"]
    sp = spread[spread["runs"] >= 2][[*keys, "runs", "measured_min", "measured_max"]]
    left = d[keys].assign(t_s=d["t_s"].fillna(-1.0))
    sp = sp.assign(t_s=sp["t_s"].fillna(-1.0))
    left, sp = left.assign(_nth=nth(left, keys)), sp.assign(_nth=nth(sp, keys))
    m = left.merge(sp, on=[*keys, "_nth"], how="left")
    out["lo"] = m["measured_min"].to_numpy(float)
    out["hi"] = m["measured_max"].to_numpy(float)
    out["runs"] = m["runs"].fillna(0).to_numpy(int)
    return out


def _runs_bars(ax: Axes, d: pd.DataFrame, lo_hi: pd.DataFrame, series: pd.Series,
               cmap: Mapping[str, str], div: float) -> None:
    """A horizontal bar per measured mean, from the least to the most of the real runs."""
    known = lo_hi["lo"].notna().to_numpy()
    if not known.any():
        return
    x = d["measured"].to_numpy(float) / div
    y = d["predicted"].to_numpy(float) / div
    lo, hi = lo_hi["lo"].to_numpy(float) / div, lo_hi["hi"].to_numpy(float) / div
    for name in sorted(series.unique()):
        rows = known & (series == name).to_numpy()
        if rows.any():
            ax.errorbar(x[rows], y[rows], xerr=[np.maximum(x[rows] - lo[rows], 0),
                                                np.maximum(hi[rows] - x[rows], 0)],
                        fmt="none", ecolor=cmap[name], elinewidth=1.2, capsize=4, zorder=2)
    from matplotlib.lines import Line2D

    runs = int(lo_hi["runs"].max())
    ax.add_line(Line2D([], [], color="dimgray", lw=1.2, marker="|", ms=8,
                       label=f"measured: mean of {runs} runs; bar: min to max"))


def entity_groups(entities: pd.Series, most: int = MAX_SERIES) -> pd.Series:
    """Entities as legend entries: each its own up to ``most``, else by kind (``vm (120)``),
    so a fleet's plots keep a legend one can read."""
    if entities.nunique() <= most:
        return entities.astype(str)
    kinds = entities.astype(str).str.split(":").str[0]
    counts = entities.groupby(kinds).nunique()
    return kinds.map(lambda k: f"{k} ({counts[k]})")


def _identity_with_bands(ax: Axes, values: np.ndarray) -> bool:
    """y = x and the error bands over the values' range; True when the axes are logarithmic
    (the values span more than two decades), where only the positive values set the range."""
    finite = values[np.isfinite(values)]
    log = _spans_decades(finite)
    if log:  # a 0 (a read-only run's writes) has no place on a log axis
        finite = finite[finite > 0]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if log:
        lo, hi = lo / 1.5, hi * 1.5
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
        lo, hi = max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad
    x = np.geomspace(lo, hi, 200) if log and lo > 0 else np.linspace(lo, hi, 200)
    for band, alpha in zip(sorted(ERROR_BANDS, reverse=True), (0.10, 0.18), strict=False):
        ax.fill_between(x, x * (1 - band), x * (1 + band), color="tab:green", alpha=alpha,
                        lw=0, label=f"±{band:.0%}")
    ax.plot(x, x, color="black", lw=1, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    return log


def rel_error_by_metric(comparison: pd.DataFrame,
                        colours: Mapping[str, str] | None = None) -> Figure:
    """Every figure's signed relative error, one row per metric (the error table at a glance).

    Each entity has its own height in a row (a fixed offset, the same in every process), so
    entities with one error (0% for every byte figure of an exact model) sit one above the
    other rather than one under the other; the rows are made tall enough for that. The ±10%
    and ±25% bands have their legend entries, and the legend is outside the axes."""
    with style():
        d = comparison[np.isfinite(comparison["rel_error"].to_numpy(float))] \
            if not comparison.empty else comparison
        # the uncalibrated metrics (compare.UNCALIBRATED) at the bottom, below a rule, marked
        metrics = sorted(d["metric"].unique(), key=lambda m: (m not in UNCALIBRATED, m)) \
            if not d.empty else []
        series = entity_groups(d["entity"]) if not d.empty else pd.Series(dtype=str)
        names = sorted(series.unique())
        row_in = max(0.45, 0.09 * len(names))  # each entity a marker's height apart
        fig, (ax,) = new_figure(max(3.5, row_in * len(metrics) + 1.8))
        title = "relative error of each figure: (predicted − measured) / measured"
        if d.empty:
            return empty(fig, ax, title, "no figure known to both backends")
        ypos = {m: i for i, m in enumerate(metrics)}
        cmap = series_colours(names, colours)
        for j, name in enumerate(names):
            g = d[(series == name).to_numpy()]
            # the j-th entity at its own height in the row: fixed by name order (never hash(),
            # salted per process), so no two entities share one
            offset = (j / (len(names) - 1) - 0.5) * 0.7 if len(names) > 1 else 0.0
            ax.scatter(g["rel_error"] * 100, [ypos[m] + offset for m in g["metric"]], s=30,
                       color=cmap[name], label=name, zorder=3)
        for band, alpha in zip(sorted(ERROR_BANDS, reverse=True), (0.08, 0.14), strict=False):
            ax.axvspan(-band * 100, band * 100, color="tab:green", alpha=alpha, lw=0,
                       label=f"±{band:.0%}")
        ax.axvline(0, color="black", lw=1)
        ax.set_yticks(range(len(metrics)), [pretty_metric(m) + (" (uncalibrated)" if m in
                                            UNCALIBRATED else "") for m in metrics])
        ax.set_ylim(-0.6, len(metrics) - 0.4)
        apart = sum(m in UNCALIBRATED for m in metrics)
        if 0 < apart < len(metrics):
            ax.axhline(apart - 0.5, color="dimgray", lw=1.2)
        ax.set_title(title)
        ax.set_xlabel("relative error (%)")
        legend_right(fig, ax, fontsize=9)
    return fig


def time_series(records: pd.DataFrame, metric: str, first: Sequence[str] = (),
                title: str | None = None, most: int = MAX_SERIES,
                colours: Mapping[str, str] | None = None) -> Figure:
    """A metric over time, one panel per kind of entity (host, cache, vm, ...), one colour per
    entity, the model solid and the measurement dashed with a dot at each sample.

    A level (disk use) changes at operations and holds until the next sample, so each sample
    is drawn as a step held to the next one; two samples at one instant (before and after an
    operation) are both drawn, as a vertical step, never averaged. Several real runs are
    averaged sample by sample (the k-th sample at an instant with the k-th). A panel draws at
    most ``most`` entities, those in ``first`` (e.g. the worst predicted) before the rest in
    name order; the note under the figure names every entity not drawn and why (over the cap,
    or sampled only at the end of the run), so no entity is left out silently. Each entity is
    in its report colour (``colours``, :func:`entity_colours`; by default one map over the
    records' entities)."""
    d = records[records["metric"] == metric]
    timed = d[d["t_s"].notna()]
    title = title or f"{pretty_metric(metric)} over time"
    if timed.empty:
        fig, (ax,) = new_figure()
        return empty(fig, ax, title, "no time series recorded (end-of-run figures only)")
    kinds = _kind(timed["entity"])
    panels = sorted(kinds.unique())
    colours = series_colours(records["entity"], colours)
    with style():
        fig = Figure(figsize=(WIDTH_IN, 1.4 + 2.6 * len(panels)), layout="constrained")
        axes = list(fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
        tlabel, tdiv = time_unit(timed["t_s"].to_numpy(float))
        left: list[str] = []
        for ax, kind in zip(axes, panels, strict=True):
            g = timed[kinds == kind]
            names = _ordered(g["entity"], first)
            left += names[most:]
            _time_panel(ax, g[g["entity"].isin(names[:most])], sorted(names[:most]), tdiv,
                        colours)
            ax.set_title(f"{kind} ({len(names)})" if len(names) > most or len(panels) > 1
                         else kind, loc="left", fontsize=11)
        axes[-1].set_xlabel(f"time ({tlabel})")
        fig.suptitle(title)
        _time_notes(fig, metric, left, most, bool(first),
                    sorted(set(d["entity"].astype(str)) - set(timed["entity"].astype(str))))
    return fig


def _kind(entities: pd.Series) -> pd.Series:
    return entities.astype(str).str.split(":").str[0]


def _ordered(entities: pd.Series, first: Sequence[str]) -> list[str]:
    present = set(entities.astype(str))
    head = [e for e in dict.fromkeys(first) if e in present]
    return head + sorted(present - set(head))


def _instants(b: pd.DataFrame) -> pd.DataFrame:
    """One backend's samples of one entity in time order, the k-th sample at an instant
    averaged over real runs with the k-th (samples at one instant kept apart)."""
    b = b.sort_values("t_s", kind="stable")
    k = b.groupby(["replication", "t_s"], sort=False).cumcount() if "replication" in b \
        else b.groupby("t_s", sort=False).cumcount()
    mean = b.assign(_k=k).groupby(["t_s", "_k"], sort=True)["value"].mean()
    return mean.reset_index()


def _time_panel(ax: Axes, g: pd.DataFrame, names: Sequence[str], tdiv: float,
                colours: Mapping[str, str]) -> None:
    from matplotlib.lines import Line2D

    label, div = display_unit(str(g["unit"].iloc[0]), g["value"].to_numpy(float))
    lone = ""  # a predicted series of one sample has no line: it is drawn as an x
    for entity in names:
        colour = colours[entity]
        by_backend = g[g["entity"] == entity].groupby("backend")
        for backend, b in sorted(by_backend, key=lambda kv: kv[0] != "sim"):  # model first
            m = _instants(b)
            sim = backend == "sim"
            mark = ("x" if len(m) == 1 else "") if sim else "."
            lone = lone or (mark if sim else "")
            ax.plot(m["t_s"] / tdiv, m["value"] / div, color=colour, ls="-" if sim else "--",
                    marker=mark, ms=6 if sim else 5, lw=1.6 if sim else 1.2,
                    drawstyle="steps-post", label=f"{entity} ({_backend_word(str(backend))})")
    handles = [Line2D([], [], color=colours[e], lw=2, label=e) for e in names]
    handles += [Line2D([], [], color="black", ls="-", marker=lone, label="predicted"),
                Line2D([], [], color="black", ls="--", marker=".", label="measured")]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9,
              ncols=2 if len(handles) > 12 else 1, frameon=False)
    ax.set_ylabel(label)
    lo = min(0.0, float(np.nanmin(g["value"])) / div)
    hi = float(np.nanmax(g["value"])) / div
    ax.set_ylim(lo, hi + 0.08 * (hi - lo) if hi > lo else lo + 1.0)  # a level at the top shows


def _time_notes(fig: Figure, metric: str, left: Sequence[str], most: int, ranked: bool,
                end_only: Sequence[str]) -> None:
    """Say under the figure which entities are not drawn, and the rule that left them out."""
    import textwrap

    rule = "worst predicted first" if ranked else "in name order"
    notes = []
    if left:
        notes.append(f"Not drawn ({len(left)}; at most {most} per panel, {rule}): "
                     + ", ".join(left) + ".")
    if end_only:
        notes.append(f"Sampled only at the end of the run (no {metric} over time): "
                     + ", ".join(end_only) + ".")
    if notes:
        fig.supxlabel("\n".join(textwrap.fill(n, 120) for n in notes), fontsize=9,
                      color="dimgray", ha="left", x=0.01)


def _backend_word(backend: str) -> str:
    return {"sim": "predicted", "real": "measured"}.get(backend, backend)


def time_unit(t: np.ndarray) -> tuple[str, float]:
    top = float(np.nanmax(t)) if t.size else 0.0
    for name, div in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if top >= 3 * div:
            return name, div
    return "s", 1.0


def disk_use_by_group(band: pd.DataFrame, group: str | None = None,
                      order: Sequence[str] | None = None,
                      title: str = "host disk use at the end",
                      capacity: pd.Series | None = None) -> Figure:
    """End-of-run host disk use per group: a bar at the median host, whiskers p5 to p95, and
    each group's own capacity (``capacity`` by group label; a label repeated for each size
    when its hosts differ) as a mark on its row."""
    d = band[band["t_s"].isna()] if not band.empty else band
    names = [str(x) for x in d[group]] if group and not d.empty else ["all hosts"] * len(d)
    if order is not None and group and not d.empty:
        d = d.set_index(d[group].astype(str)).reindex([o for o in order if o in set(names)])
        names = list(d.index)
    with style():
        fig, (ax,) = new_figure(category_height(names))
        if d.empty:
            return empty(fig, ax, title, "no end-of-run host figures")
        rows, caps = _capacity_marks(capacity, names)
        label, div = display_unit("B", d["p50"].to_numpy(float))
        mid = d["p50"].to_numpy(float) / div
        err = np.vstack([mid - d["p5"].to_numpy(float) / div, d["p95"].to_numpy(float) / div - mid])
        ax.barh(range(len(d)), mid, xerr=err, capsize=5, color="tab:blue", alpha=0.8,
                height=0.6, label="median host; whiskers: p5 to p95 of hosts")
        if np.isfinite(caps).any():
            ax.scatter(caps / div, rows, marker="|", s=900, color="tab:red",
                       linewidths=2.5, zorder=4, label="the group's capacity")
        category_axis(ax, names)
        ax.set_title(title)
        ax.set_xlabel(f"used ({label}): shared extents counted once")
        legend_below(fig, ax)
    return fig


def _capacity_marks(capacity: pd.Series | None, names: Sequence[str]
                    ) -> tuple[list[int], np.ndarray]:
    """The rows and values of every capacity mark (several on a row whose hosts differ)."""
    if capacity is None:
        return list(range(len(names))), np.full(len(names), np.nan)
    marks = [(i, float(c)) for i, n in enumerate(names)
             for c in capacity[capacity.index == n].to_numpy(float)]
    return [i for i, _ in marks], np.array([c for _, c in marks], dtype=float)


def vm_disk_by_group(records: pd.DataFrame, group: str, order: Sequence[str] | None = None,
                     title: str = "disk use per VM at the end") -> Figure:
    """The spread of VM disk use (``allocated_bytes`` of ``vm:`` entities, or a fleet's
    quantile grid, ``cowbench.vmdist``) per group: a box from p25 to p75 with the median,
    whiskers from p5 to p95 (said in the axis title)."""
    levels = (5, 25, 50, 75, 95)
    q = group_quantiles(records, group, "allocated_bytes", levels) if not records.empty else {}
    names = [o for o in (order or sorted(q)) if o in q]
    with style():
        fig, (ax,) = new_figure(category_height(names))
        if not names:
            return empty(fig, ax, title, "no VM disk figures")
        label, div = display_unit("B", np.concatenate([q[n] for n in names]))
        stats = [{"whislo": lo, "q1": q1, "med": med, "q3": q3, "whishi": hi, "fliers": []}
                 for lo, q1, med, q3, hi in (q[n] / div for n in names)]
        ax.bxp(stats, showfliers=False, orientation="horizontal", positions=range(len(names)),
               widths=0.6)
        category_axis(ax, names)
        ax.set_title(title)
        ax.set_xlabel(f"allocated per VM ({label}); box: p25 to p75, line: median, "
                      "whiskers: p5 to p95")
        ax.set_xlim(left=0)
    return fig
