"""The strategies report: each strategy and knob setting that ran is a category, never a number.

A category is a point's label (``qcow2_overlay, cluster 64 KiB, extended L2 on``,
``reflink_copy``): a strategy is drawn with the knobs it uses only, so a full copy is never
placed "at 64 KiB". Per category: what the hosts' disks hold at the end in bytes (the bases
in ``_base`` and the instances' disks; a median over the seeds, their range beside it), space,
write and read amplification per VM (a box over the VMs, one dot per VM coloured by VM), a
reflink copy's exclusive and shared bytes, and the I/O each VM saw (IOPS, mean and p99
completion latency). Categories are on the y axis, wrapped.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .knobs import label_knobs, label_order, point_labels, vm_labels
from .plots import (
    MAX_SERIES,
    category_axis,
    category_height,
    display_unit,
    empty,
    entity_colours,
    legend_below,
    new_figure,
    pretty_metric,
    style,
)
from .results import SweepResults, amplification

SETTING = "setting"
#: A VM's I/O figures per direction; the table takes each direction's median over the VMs
#: that did I/O in it.
_DIRECTED = tuple(f"{d}_{stat}" for d in ("read", "write")
                  for stat in ("iops", "lat_mean_s", "lat_p99_s"))
_WHAT = {"space_amplification": "host bytes the disk holds per byte the guest wrote",
         "write_amplification": "host bytes written per byte the guest wrote",
         "read_amplification": "host bytes read per byte the guest read"}


@dataclass
class StrategyView:
    amp: pd.DataFrame  # one row per VM and point: amplifications, I/O, bytes; SETTING
    order: list[str]  # settings in knob order, only those that ran
    disk: pd.DataFrame | None = None  # one row per point and backend: host_disk's columns
    colours: dict[str, str] | None = None  # VM -> colour, one map for every figure
    #: the categories are the VMs' own strategies (``vms[].strategy``), which share hosts:
    #: a host's bytes cannot be split per strategy
    per_vm: bool = False


def strategy_labels(res: SweepResults) -> pd.Series:
    """Each point's label in the strategies report, indexed by ``point``
    (:func:`label_knobs`)."""
    return point_labels(res.points, label_knobs(res.points, res.knobs))


def strategy_view(res: SweepResults) -> StrategyView:
    """Per VM and point the amplifications and I/O figures, labelled by setting, and one
    colour per VM (:func:`cowbench.plots.entity_colours`) for every figure."""
    amp = amplification(res.records, by=["point"])
    knobs = label_knobs(res.points, res.knobs)
    labels = point_labels(res.points, knobs) if knobs else pd.Series(
        "all", index=res.points["point"].to_numpy(), dtype=object)
    amp[SETTING] = amp["point"].map(labels)
    if not knobs and amp["backend"].nunique() > 1:
        amp[SETTING] = amp["backend"].map({"sim": "predicted", "real": "measured"})
    _io_columns(amp)
    _no_io_in_ceph(amp)
    order = label_order(res.points, knobs) if knobs else sorted(amp[SETTING].unique())
    disk = host_disk(res.records, res.points)
    disk[SETTING] = disk["point"].map(labels) if knobs else "all"
    vms = vm_labels(res.points)
    if vms is not None:  # the VMs' own strategies are the categories
        amp, order = _by_vm_strategy(amp, vms, labels if knobs else None)
    return StrategyView(amp, [o for o in order if o in set(amp[SETTING])], disk,
                        entity_colours(amp["entity"]), per_vm=vms is not None)


def _by_vm_strategy(amp: pd.DataFrame, vms: pd.DataFrame, points: pd.Series | None
                    ) -> tuple[pd.DataFrame, list[str]]:
    """Each VM in the category of its own strategy (``vms[].strategy``: the VMs of one run
    compare strategies), after the point's label where knobs vary (``full_copy (ratio 2)``),
    and with ``[predicted]``/``[measured]`` where both backends ran, so a backend's figures
    never pool with the other's, nor a model-only VM (an RBD clone) with measured ones."""
    # an RBD clone has no measured figure (the real backend skips it): no measured row of it
    ceph = amp[amp["in_ceph"]][["point", "entity"]].drop_duplicates()
    skipped = amp.merge(ceph.assign(skip=True), on=["point", "entity"], how="left")["skip"]
    amp = amp[~(skipped.fillna(False).to_numpy(bool) & (amp["backend"] == "real").to_numpy())]
    label = amp.merge(vms, on=["point", "entity"], how="left")["label"].fillna("?")
    label.index = amp.index
    order: list[str] = list(vms.attrs["order"])
    if points is not None:
        label = label + " (" + amp["point"].map(points).astype(str) + ")"
        order = [f"{o} ({p})" for p in dict.fromkeys(points.tolist()) for o in order]
    if amp["backend"].nunique() > 1:
        word = {"sim": "predicted", "real": "measured"}
        label = label + " [" + amp["backend"].map(word) + "]"
        order = [f"{o} [{w}]" for o in order for w in word.values()]
    return amp.assign(**{SETTING: label}), order


def _ceph_vms(records: pd.DataFrame) -> pd.DataFrame:
    """``point, backend, entity`` of each VM whose disk is in Ceph (an RBD clone: its
    ``model_only`` flag set)."""
    keys = ["point", "backend", "entity"]
    flags = records[records["metric"] == "model_only"]
    return flags[flags["value"] > 0][keys].drop_duplicates()


def _no_io_in_ceph(amp: pd.DataFrame) -> None:
    """An RBD clone's I/O figures are the local device model's (Ceph's network and OSDs are
    not modelled): none is drawn or tabulated as if they were RBD's; ``in_ceph`` marks such
    VMs (their ``model_only`` flag)."""
    amp["in_ceph"] = _col(amp, "model_only").fillna(0) > 0
    timed = [c for c in ("iops", "lat_mean_s", "lat_p99_s", *_DIRECTED) if c in amp.columns]
    amp.loc[amp["in_ceph"], timed] = np.nan


def _last(records: pd.DataFrame, prefix: str, metric: str) -> pd.Series:
    """Per point, backend and entity named ``prefix...``, ``metric`` at the end (the row
    without ``t_s``, else the last sample)."""
    ent = records["entity"].astype(str)
    d = records[ent.str.startswith(prefix) & (records["metric"] == metric)]
    if d.empty:
        return pd.Series(dtype=float)
    d = d.sort_values("t_s", na_position="last", kind="stable")
    d = d.groupby(["point", "backend", "entity"], observed=True).tail(1)
    return d.set_index(["point", "backend", "entity"])["value"].astype(float)


def _summed(per_entity: pd.Series) -> pd.Series:
    """Per point and backend, the sum over entities."""
    if per_entity.empty:
        return per_entity
    return per_entity.groupby(level=["point", "backend"], observed=True).sum()


def host_disk(records: pd.DataFrame, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """What a setting costs in bytes, per point and backend: ``host_bytes`` (the hosts' disks
    at the end, physical: ``used_bytes``, where extents a reflink copy shares with its base
    count once), ``base_bytes`` (the image caches, ``_base``) and ``instance_bytes`` (the
    rest: the instances' disks and their files), ``ceph_bytes`` (disks that live in Ceph,
    not on a host: RBD clones, whose ``model_only`` flag is set) and ``ceph_base_bytes``
    (their parent images in the pool, once each: the points' ``ceph_parent_bytes``,
    :func:`cowbench.capacity.ceph_parent_bytes`), the base of an RBD clone as ``_base`` is
    of an overlay, so an RBD clone is not drawn cheaper by its base."""
    cols = ["point", "backend", "host_bytes", "base_bytes", "instance_bytes", "ceph_bytes",
            "ceph_base_bytes"]
    if records.empty or "point" not in records.columns:
        return pd.DataFrame(columns=cols)
    # each host's physical bytes where known, else what it allocates
    host = _summed(_last(records, "host:", "used_bytes").combine_first(
        _last(records, "host:", "allocated_bytes")))
    out = pd.DataFrame({"host_bytes": host})
    out["base_bytes"] = _summed(_last(records, "cache:", "allocated_bytes")).reindex(out.index)
    out["base_bytes"] = out["base_bytes"].fillna(0.0)
    out["instance_bytes"] = out["host_bytes"] - out["base_bytes"]
    # a VM the real backend skips (its metric model_only = 1) is an RBD clone, in Ceph
    keys = ["point", "backend", "entity"]
    flagged = _ceph_vms(records)
    ceph = _summed(_last(records.merge(flagged, on=keys), "vm:", "allocated_bytes")) \
        if not flagged.empty else pd.Series(dtype=float)
    out["ceph_bytes"] = ceph.reindex(out.index).fillna(0.0)
    out = out.reset_index()
    parents = points.set_index("point")["ceph_parent_bytes"] \
        if points is not None and "ceph_parent_bytes" in points.columns else pd.Series()
    # the real backend skips RBD clones: only the model's figures have a parent in Ceph
    out["ceph_base_bytes"] = out["point"].map(parents).astype(float).fillna(0.0).where(
        out["ceph_bytes"] > 0, 0.0)
    return out[cols]


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


def _vm_colours(view: StrategyView) -> dict[str, str]:
    """The view's VM colours: every VM of the sweep, so a VM keeps its colour in a figure
    that draws only some VMs (read amplification: the VMs that read)."""
    return view.colours if view.colours is not None else entity_colours(view.amp["entity"])


def _dots(ax: Axes, amp: pd.DataFrame, column: str, order: Sequence[str],
          colours: Mapping[str, str], scale: float = 1.0) -> None:
    """One dot per VM in each category, in the VM's colour (a legend entry per VM); a VM's
    height in its category is fixed by its place among all the view's VMs."""
    many = len(colours) > MAX_SERIES
    place = {v: i for i, v in enumerate(sorted(colours))}
    pos = {name: i for i, name in enumerate(order)}
    for j, (vm, g) in enumerate(sorted(amp.groupby(amp["entity"].astype(str)))):
        spread = (place[vm] / (len(colours) - 1) - 0.5) * 0.4 if len(colours) > 1 else 0.0
        y = g[SETTING].map(pos).to_numpy(float) + spread  # a VM at one height everywhere
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
        _dots(ax, d, column, order, _vm_colours(view))
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
    if len(set(rows)) < len(rows):  # a setting of several points (seeds): each its own row
        rows = [f"{r} ({str(p).rsplit('/', 1)[-1]})" for r, p in zip(rows, d["point"],
                                                                     strict=True)]
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
            _dots(ax, d[d[SETTING].isin(order)], column, order, _vm_colours(view), scale)
            ax.set_xlabel({"iops": "IOPS (reads + writes)", "lat_mean_s": "mean latency (ms)",
                           "lat_p99_s": "p99 latency (ms)"}[column])
            seen = _col(d, column).to_numpy(float) / scale
            seen = seen[np.isfinite(seen) & (seen > 0)]
            if seen.size and seen.max() / seen.min() > 50:  # a few slow VMs would squash the rest
                ax.set_xscale("log")
                ax.set_xlabel(ax.get_xlabel().replace(")", ", log)"))
            else:
                ax.set_xlim(0, float(seen.max()) * 1.05 if seen.size else None)
        category_axis(axes[0], order)
        fig.suptitle(f"{title} (latency: writes for a VM that wrote, else reads)")
        legend_below(fig, axes[0], ncols=4)
    return fig


def strategy_table(view: StrategyView) -> pd.DataFrame:
    """Per setting that ran, in display units: the host disk, the amplifications' medians over
    VMs, and the I/O per direction: read IOPS and latency the median over the VMs that read
    (``read_ios`` > 0), write the median over those that wrote.

    A median of IOPS over a reader and three writers (what one column "IOPS" gave: the mean
    of a write and a read figure where the VMs were even) describes no workload; split by
    direction each column is one kind of VM's figure, and "-" where no VM did that I/O."""
    amp_cols = ["space_amplification", "write_amplification", "read_amplification"]
    a = view.amp
    if a.empty:
        return pd.DataFrame(columns=[SETTING])
    med = a.groupby(SETTING)[[c for c in amp_cols if c in a.columns]].median()
    med = med.reindex([o for o in view.order if o in med.index])
    disk = _disk_by_setting(view).reindex(med.index) if not view.per_vm else \
        pd.DataFrame(index=med.index, columns=["points"])
    io = _io_by_direction(a).reindex(med.index)

    def x(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.3g}×"

    def ms(v: float) -> str:
        return "-" if math.isnan(v) else f"{v * 1e3:.3g} ms"

    def n(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:,.0f}"

    out = pd.DataFrame({
        "strategy and knobs": med.index,
        "host disk at the end": [_bytes_range(r) for r in disk.to_dict("records")]
        if not view.per_vm else [_shared_cell(a, o) for o in med.index],
        "space amp.": [x(v) for v in _get(med, "space_amplification")],
        "write amp.": [x(v) for v in _get(med, "write_amplification")],
        "read amp.": [x(v) for v in _get(med, "read_amplification")]})
    for d in ("read", "write"):
        out[f"{d} IOPS"] = [n(v) for v in io[f"{d}_iops"]]
        out[f"{d} mean latency"] = [ms(v) for v in io[f"{d}_lat_mean_s"]]
        out[f"{d} p99 latency"] = [ms(v) for v in io[f"{d}_lat_p99_s"]]
    return out


def _get(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)


def _io_by_direction(amp: pd.DataFrame) -> pd.DataFrame:
    """Per setting, each of :data:`_DIRECTED`: the median over the VMs that did I/O in that
    direction (its ``*_ios`` above 0; NaN where none did)."""
    cols = {}
    for d in ("read", "write"):
        did = _col(amp, f"{d}_ios").fillna(0) > 0
        for stat in ("iops", "lat_mean_s", "lat_p99_s"):
            cols[f"{d}_{stat}"] = _col(amp, f"{d}_{stat}").where(did)
    return pd.DataFrame(cols).groupby(amp[SETTING]).median()


def _disk_by_setting(view: StrategyView) -> pd.DataFrame:
    """Per setting (the model's figures where both backends ran): the median over its points
    (seeds) of each of host_disk's columns, the least and most host bytes, and how many."""
    d = view.disk
    if d is None or d.empty:
        return pd.DataFrame(columns=["host_bytes", "base_bytes", "instance_bytes",
                                     "ceph_bytes", "ceph_base_bytes", "total", "low", "high",
                                     "points"])
    if (d["backend"] == "sim").any():
        d = d[d["backend"] == "sim"]
    if "ceph_base_bytes" not in d.columns:
        d = d.assign(ceph_base_bytes=0.0)
    g = d.groupby(SETTING)
    out = g[["host_bytes", "base_bytes", "instance_bytes", "ceph_bytes",
             "ceph_base_bytes"]].median()
    total = d["host_bytes"] + d["ceph_bytes"] + d["ceph_base_bytes"]
    out["total"] = total.groupby(d[SETTING]).median()
    out["low"] = total.groupby(d[SETTING]).min()
    out["high"] = total.groupby(d[SETTING]).max()
    out["points"] = g.size()
    return out


def _shared_hosts(view: StrategyView) -> str:
    """Why a run whose VMs have strategies of their own draws no bytes per strategy, and what
    its hosts hold all together (the model's figures where both backends ran)."""
    from .units import format_bytes

    d = view.disk
    text = ("one host holds several strategies here (the VMs' own strategies): its disk\n"
            "cannot be split per strategy")
    if d is None or d.empty:
        return text
    held = d.groupby("backend")["host_bytes"].sum()
    words = {"sim": "predicted", "real": "measured"}
    return text + "; the hosts hold " + ", ".join(
        f"{format_bytes(held[b])} ({w})" for b, w in words.items() if b in held.index) \
        + " at the end"


def _shared_cell(amp: pd.DataFrame, setting: str) -> str:
    """A category of VMs' own strategies: its bytes are on hosts shared with the others
    (the figure says what they hold), or in Ceph for RBD clones."""
    ceph = amp.loc[amp[SETTING] == setting, "in_ceph"].any()
    return "in Ceph, not on a host" if ceph else "on hosts shared with the other strategies"


def _bytes_range(row: Mapping[Hashable, Any]) -> str:
    from .units import format_bytes

    if not row or row.get("points") != row.get("points"):  # a setting without a host figure
        return "-"
    text = format_bytes(row["host_bytes"])
    if row["ceph_bytes"] > 0:
        parent = row.get("ceph_base_bytes") or 0.0
        text += (f" (+ {format_bytes(parent + row['ceph_bytes'])} in Ceph: "
                 f"{format_bytes(parent)} parent image, {format_bytes(row['ceph_bytes'])} "
                 "clones' objects)" if parent > 0 else
                 f" (+ {format_bytes(row['ceph_bytes'])} in Ceph)")
    if row["points"] > 1:
        what = "all told, " if row["ceph_bytes"] > 0 else ""
        text += (f"; {what}{format_bytes(row['low'])} to {format_bytes(row['high'])} over "
                 f"{row['points']:.0f} seeds")
    return text


def disk_by_strategy(view: StrategyView) -> Figure:
    """What each setting's hosts hold at the end, in bytes: the bases in ``_base`` and the
    instances' disks stacked (and disks in Ceph apart), a median over its seeds with their
    range (least to most) as a whisker where there are several."""
    d = _disk_by_setting(view)
    order = [o for o in view.order if o in d.index]
    d = d.reindex(order)
    title = "disk each strategy takes at the end (physical bytes)"
    with style():
        fig, (ax,) = new_figure(category_height(order, 2.2))
        if view.per_vm:
            return empty(fig, ax, title, _shared_hosts(view))
        if not order:
            return empty(fig, ax, title, "no host disk figures in these runs")
        values = np.concatenate([d["high"].to_numpy(float), d["total"].to_numpy(float)])
        label, div = display_unit("B", values)
        y = np.arange(len(order))
        base, inst = d["base_bytes"].to_numpy(float), d["instance_bytes"].to_numpy(float)
        ceph = d["ceph_bytes"].to_numpy(float)
        parent = d["ceph_base_bytes"].to_numpy(float)
        ax.barh(y, base / div, color="tab:grey", alpha=0.6, label="bases in _base (shared)")
        if (parent > 0).any():  # an RBD clone's base: its parent image, in the Ceph pool
            ax.barh(y, parent / div, left=base / div, color="tab:grey", alpha=0.6,
                    hatch="//", edgecolor="tab:purple",
                    label="RBD parent images, in Ceph (shared)")
        ax.barh(y, inst / div, left=(base + parent) / div, color="tab:blue",
                label="instances' disks (their own bytes)")
        if (ceph > 0).any():
            ax.barh(y, ceph / div, left=(base + parent + inst) / div, color="tab:purple",
                    alpha=0.6, label="RBD clones' own objects, in Ceph")
        several = d["points"].to_numpy(float) > 1
        if several.any():
            mid = d["total"].to_numpy(float)[several] / div
            lo = d["low"].to_numpy(float)[several] / div
            hi = d["high"].to_numpy(float)[several] / div
            ax.errorbar(mid, y[several], xerr=[mid - lo, hi - mid], fmt="none", ecolor="black",
                        capsize=3, lw=1, label="range over the seeds")
        category_axis(ax, order)
        ax.set_xlim(0, float(np.nanmax(values)) / div * 1.05 if np.nanmax(values) > 0 else 1)
        ax.set_title(title)
        ax.set_xlabel(f"bytes ({label}); median over seeds")
        legend_below(fig, ax, ncols=2)
    return fig
