"""The strategies report: each strategy and knob setting that ran is a category, never a number.

A category is a point's label (``qcow2_overlay, cluster 64 KiB, extended L2 on``,
``reflink_copy``): a strategy is drawn with the knobs it uses only, so a full copy is never
placed "at 64 KiB". Per category: space, write and read amplification per VM (a box over the
VMs, one dot per VM coloured by VM), a reflink copy's exclusive and shared bytes, and the I/O
each VM saw (IOPS, mean and p99 completion latency). Categories are on the y axis, wrapped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .knobs import label_order, point_labels
from .plots import (
    MAX_SERIES,
    category_axis,
    category_height,
    display_unit,
    empty,
    legend_below,
    new_figure,
    pretty_metric,
    style,
)
from .results import SweepResults, amplification

SETTING = "setting"
_WHAT = {"space_amplification": "host bytes the disk holds per byte the guest wrote",
         "write_amplification": "host bytes written per byte the guest wrote",
         "read_amplification": "host bytes read per byte the guest read"}


@dataclass
class StrategyView:
    amp: pd.DataFrame  # one row per VM and point: amplifications, I/O, bytes; SETTING
    order: list[str]  # settings in knob order, only those that ran


def strategy_view(res: SweepResults) -> StrategyView:
    """Per VM and point the amplifications and I/O figures, labelled by setting."""
    amp = amplification(res.records, by=["point"])
    labels = point_labels(res.points, res.knobs) if res.knobs else pd.Series(
        "all", index=res.points["point"].to_numpy(), dtype=object)
    amp[SETTING] = amp["point"].map(labels)
    if not res.knobs and amp["backend"].nunique() > 1:
        amp[SETTING] = amp["backend"].map({"sim": "predicted", "real": "measured"})
    _io_columns(amp)
    order = label_order(res.points, res.knobs) if res.knobs else sorted(amp[SETTING].unique())
    return StrategyView(amp, [o for o in order if o in set(amp[SETTING])])


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return pd.to_numeric(frame[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=frame.index, dtype=float)


def _io_columns(amp: pd.DataFrame) -> None:
    """IOPS (reads + writes) and the latency of the VM's main direction (writes if any)."""
    r, w = _col(amp, "read_iops"), _col(amp, "write_iops")
    amp["iops"] = r.fillna(0) + w.fillna(0)
    amp.loc[r.isna() & w.isna(), "iops"] = np.nan
    writes = _col(amp, "write_ios").fillna(0) > 0
    for stat in ("mean", "p99"):
        amp[f"lat_{stat}_s"] = _col(amp, f"write_lat_{stat}_s").where(
            writes, _col(amp, f"read_lat_{stat}_s"))


def _vm_colours(amp: pd.DataFrame) -> dict[str, str]:
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    vms = sorted(amp["entity"].astype(str).unique())
    return {v: cycle[i % len(cycle)] for i, v in enumerate(vms)}


def _dots(ax: Axes, amp: pd.DataFrame, column: str, order: Sequence[str],
          scale: float = 1.0) -> None:
    """One dot per VM in each category, coloured by VM (a legend entry per VM)."""
    colours = _vm_colours(amp)
    many = len(colours) > MAX_SERIES
    pos = {name: i for i, name in enumerate(order)}
    for j, (vm, g) in enumerate(sorted(amp.groupby(amp["entity"].astype(str)))):
        spread = (j / (len(colours) - 1) - 0.5) * 0.4 if len(colours) > 1 else 0.0
        y = g[SETTING].map(pos).to_numpy(float) + spread  # one VM: on its box's line
        ax.scatter(g[column].to_numpy(float) / scale, y, s=18, zorder=3, alpha=0.8,
                   color="tab:blue" if many else colours[vm],
                   label=(None if many and j else "a VM" if many else vm.removeprefix("vm:")))


def amplification_boxes(view: StrategyView, column: str) -> Figure:
    """One box per strategy and knob setting over its VMs, and each VM as a dot."""
    d = view.amp[np.isfinite(_col(view.amp, column).to_numpy())] if not view.amp.empty \
        else view.amp
    order = [o for o in view.order if not d.empty and o in set(d[SETTING])]
    title = f"{pretty_metric(column)} by strategy"
    with style():
        fig, (ax,) = new_figure(category_height(order, 2.2))
        if not order:
            return empty(fig, ax, title, f"no VM with a defined {pretty_metric(column)} "
                         "(it needs guest I/O: a workload that wrote or read)")
        data = [d[d[SETTING] == o][column].to_numpy(float) for o in order]
        ax.boxplot(data, orientation="horizontal", positions=range(len(order)), widths=0.6,
                   whis=(0, 100), showfliers=False)
        _dots(ax, d, column, order)
        values = np.concatenate(data)
        if values.min() > 0 and values.max() / values.min() > 50:
            ax.set_xscale("log")
        else:  # 1 (no amplification) in view, and the largest mark whole
            ax.set_xlim(0, max(1.0, float(values.max())) * 1.05)
        ax.axvline(1, color="grey", lw=1, ls="--")
        category_axis(ax, order)
        ax.set_title(f"{title}\n({_WHAT.get(column, column)})")
        ax.set_xlabel(f"{pretty_metric(column)} (×)")
        ax.plot([], [], color="black", lw=1,
                label="box: p25 to p75 of VMs, line: median, whiskers: min to max")
        legend_below(fig, ax, ncols=4)
    return fig


def reflink_bytes(view: StrategyView) -> Figure:
    """A reflink copy's bytes per VM: those it holds alone and those still shared."""
    a = view.amp
    d = a[_col(a, "exclusive_bytes").notna()] if not a.empty else a
    title = "reflink copies: bytes each VM holds alone and bytes it shares with the base"
    rows = [f"{s}, {e.removeprefix('vm:')}" for s, e in zip(d[SETTING], d["entity"],
                                                            strict=True)] if len(d) else []
    with style():
        fig, (ax,) = new_figure(category_height(rows, 2.0))
        if d.empty:
            return empty(fig, ax, title, "no reflink copy in these runs")
        excl, shared = _col(d, "exclusive_bytes").to_numpy(), _col(d, "shared_bytes").to_numpy()
        label, div = display_unit("B", np.concatenate([excl + shared]))
        y = np.arange(len(rows))
        ax.barh(y, excl / div, color="tab:orange", label="exclusive (this VM's own blocks)")
        ax.barh(y, shared / div, left=excl / div, color="tab:blue", alpha=0.5,
                label="shared with the base (costs nothing more)")
        category_axis(ax, rows)
        ax.set_title(title)
        ax.set_xlabel(f"bytes ({label})")
        legend_below(fig, ax, ncols=2)
    return fig


def io_by_strategy(view: StrategyView) -> Figure:
    """What each VM saw per setting: IOPS, mean and p99 completion latency (ms), side by side."""
    d = view.amp[_col(view.amp, "iops").notna()] if not view.amp.empty else view.amp
    order = [o for o in view.order if not d.empty and o in set(d[SETTING])]
    title = "I/O each VM saw, by strategy"
    with style():
        fig = Figure(figsize=(10.0, category_height(order, 2.4)), layout="constrained")
        axes = list(fig.subplots(1, 3, sharey=True, squeeze=False)[0])
        if not order:
            return empty(fig, axes[0], title, "no I/O figures recorded")
        for ax, (column, scale) in zip(axes, (("iops", 1.0), ("lat_mean_s", 1e-3),
                                              ("lat_p99_s", 1e-3)), strict=True):
            _dots(ax, d[d[SETTING].isin(order)], column, order, scale)
            ax.set_xlabel({"iops": "IOPS (reads + writes)", "lat_mean_s": "mean latency (ms)",
                           "lat_p99_s": "p99 latency (ms)"}[column])
            seen = _col(d, column).to_numpy(float) / scale
            seen = seen[np.isfinite(seen)]
            ax.set_xlim(0, float(seen.max()) * 1.05 if seen.size and seen.max() > 0 else None)
        category_axis(axes[0], order)
        fig.suptitle(f"{title} (latency: writes for a VM that wrote, else reads)")
        legend_below(fig, axes[0], ncols=4)
    return fig


def strategy_table(view: StrategyView) -> pd.DataFrame:
    """Medians over VMs per setting that ran, in display units."""
    cols = ["space_amplification", "write_amplification", "read_amplification", "iops",
            "lat_mean_s", "lat_p99_s"]
    a = view.amp
    if a.empty:
        return pd.DataFrame(columns=[SETTING])
    med = a.groupby(SETTING)[[c for c in cols if c in a.columns]].median()
    med = med.reindex([o for o in view.order if o in med.index])

    def x(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.3g}×"

    def ms(v: float) -> str:
        return "-" if math.isnan(v) else f"{v * 1e3:.3g} ms"

    return pd.DataFrame({
        "strategy and knobs": med.index,
        "space amp.": [x(v) for v in med["space_amplification"]],
        "write amp.": [x(v) for v in med["write_amplification"]],
        "read amp.": [x(v) for v in med["read_amplification"]],
        "IOPS": ["-" if math.isnan(v) else f"{v:,.0f}" for v in med["iops"]],
        "mean latency": [ms(v) for v in med["lat_mean_s"]],
        "p99 latency": [ms(v) for v in med["lat_p99_s"]]})
