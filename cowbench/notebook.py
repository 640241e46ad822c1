"""What the notebooks call besides loaders and plots: show a figure, show a formatted table.

Notebooks read and plot, they never model (STYLE.md point 17). ``Figures.show`` renders a
figure once, writes it as PNG (print resolution) and SVG into the report's figure folder when
one is given, and displays the PNG at 1000 px wide, so the HTML report embeds exactly the file
written beside it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from .compare import UNCALIBRATED, nth, summary, uncalibrated_note
from .drift import blocks as drift_blocks
from .plots import PRINT_DPI, SCREEN_DPI, WIDTH_IN, save_figure
from .spread import FLOOR, one_run_note, spread_summary
from .units import format_bytes


def _display(obj: Any) -> None:
    from IPython.display import display  # the kernel has IPython; the package does not need it

    display(obj)  # type: ignore[no-untyped-call]


def slug(text: str) -> str:
    """A file name for a figure: lower case, ``[a-z0-9._-]`` only."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "figure"


@dataclass
class Figures:
    """The figures of one report, in the order shown; written to ``directory`` if given."""

    directory: Path | None = None
    names: list[str] = field(default_factory=list)

    def show(self, fig: Figure, name: str) -> None:
        from IPython.display import Image

        name = slug(name)
        if name in self.names:
            name = f"{name}-{len(self.names) + 1}"
        self.names.append(name)
        if self.directory is not None:
            png = save_figure(fig, self.directory, name)[0]
            data = png.read_bytes()
        else:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=PRINT_DPI)
            data = buf.getvalue()
        alt = next((ax.get_title() for ax in fig.axes if ax.get_title()), name)
        _display(Image(data=data, format="png",  # type: ignore[no-untyped-call]
                       width=int(WIDTH_IN * SCREEN_DPI), alt=alt))


def show_markdown(text: str) -> None:
    from IPython.display import Markdown

    _display(Markdown(text))  # type: ignore[no-untyped-call]


def show_table(df: pd.DataFrame) -> None:
    from IPython.display import HTML

    _display(HTML(df.to_html(index=False, na_rep="-",  # type: ignore[no-untyped-call]
                             escape=True)))


def show_details(summary: str, df: pd.DataFrame, most: int = 2000) -> None:
    """A table folded away under ``summary`` (HTML ``<details>``): detail after the headline.
    At most ``most`` rows are shown; the count says when more exist."""
    import html

    from IPython.display import HTML

    more = f" (first {most} of {len(df)} rows)" if len(df) > most else f" ({len(df)} rows)"
    body = df.head(most).to_html(index=False, na_rep="-", escape=True)
    _display(HTML(f"<details><summary>{html.escape(summary)}{more}</summary>"  # type: ignore[no-untyped-call]
                  f"{body}</details>"))


def pct(x: float) -> str:
    if x is None or math.isnan(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:+.2%}"


def value_text(value: float, unit: str) -> str:
    """A value in the unit a reader expects: bytes as KiB/MiB/GiB, seconds as ms below 1 s."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "B":
        return format_bytes(int(round(value)))
    if unit == "B/s":
        return f"{format_bytes(int(round(value)))}/s"
    if unit == "s":
        return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "1/s":
        return f"{value:,.0f} IOPS"
    return f"{value:,.6g} {unit}"


def error_summary(comparison: pd.DataFrame, spread: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """Per metric: how many figures, median |rel_error|, worst rel_error, as text, the
    uncalibrated metrics last and marked so (``compare.UNCALIBRATED``); with the
    spread of two or more real runs (``cowbench.spread``), their median spread and how many
    figures are within it."""
    s = summary(comparison)
    out = pd.DataFrame({"metric": [m if c else f"{m} (uncalibrated)"
                                   for m, c in zip(s["metric"], s["calibrated"], strict=True)],
                        "figures": s["n"],
                        "median |rel error|": [pct(x).lstrip("+")
                                               for x in s["median_abs_rel_error"]],
                        "worst rel error": [pct(x) for x in s["worst_rel_error"]]})
    if spread is None or spread.empty:
        return out
    per = spread_summary(spread).set_index("metric")
    out["real spread (median)"] = [pct(float(per["median_spread"].get(m, math.nan)))
                                   .lstrip("+") for m in s["metric"]]
    out[WITHIN] = [f"{per['within_spread'][m]} of {per['known'][m]}"
                   if m in per.index else "-" for m in s["metric"]]
    return out


def uncalibrated_text(comparison: pd.DataFrame) -> str:
    """A note (Markdown) for each uncalibrated metric the comparison holds, or ``""``."""
    return "\n\n".join(f"*{uncalibrated_note(m)}.*"
                        for m in sorted(set(comparison["metric"].dropna()) & set(UNCALIBRATED)))


#: The error tables' column of the verdict, its rule in its header (cowbench.spread).
WITHIN = f"within spread (or {FLOOR:.1%})"


def error_table(comparison: pd.DataFrame, spread: pd.DataFrame | None = None
                ) -> pd.DataFrame:
    """Every compared figure, values in display units, worst error first; with ``spread``,
    the real runs' spread and whether the error is within it."""
    d = comparison.copy()
    if spread is not None and not spread.empty:
        keys = ["entity", "metric", "t_s"]
        sp = spread[[*keys, "spread", "within_spread"]].copy()
        d, sp = d.assign(t_s=d["t_s"].fillna(-1.0)), sp.assign(t_s=sp["t_s"].fillna(-1.0))
        # a figure sampled twice at one instant has a row per sample in both, in one order
        d, sp = d.assign(_nth=nth(d, keys)), sp.assign(_nth=nth(sp, keys))
        d = d.merge(sp, on=[*keys, "_nth"], how="left")
        d["t_s"] = d["t_s"].where(d["t_s"] >= 0, math.nan)
    d["_abs"] = d["rel_error"].abs()
    d = d.sort_values("_abs", ascending=False, kind="stable")
    out = pd.DataFrame({
        "entity": d["entity"], "metric": d["metric"],
        "t": ["end" if math.isnan(t) else f"{t:g} s" for t in d["t_s"].astype(float)],
        "predicted": [value_text(v, u) for v, u in zip(d["predicted"], d["unit"], strict=True)],
        "measured": [value_text(v, u) for v, u in zip(d["measured"], d["unit"], strict=True)],
        "rel error": [pct(x) for x in d["rel_error"]]})
    if "spread" in d.columns:
        out["real spread"] = [pct(float(x)).lstrip("+") for x in d["spread"]]
        out[WITHIN] = [_yes_no(x) for x in d["within_spread"]]
    return out


def _yes_no(x: Any) -> str:
    if isinstance(x, str):
        x = {"True": True, "False": False}.get(x)
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else \
        ("yes" if x else "no")


def runs_text(runs: int) -> str:
    """What the measured side of a comparison rests on, in words (Markdown)."""
    if runs >= 2:
        return (f"Measured: the mean of **{runs} real runs**, each on fresh disks; a figure "
                "is *within spread* when the prediction is no further from the runs' mean "
                "than the runs are from each other (max - min), or than "
                f"{FLOOR:.1%} of the mean, the least error told apart from none (a byte "
                "figure every run measured alike, missed by a cluster of metadata).")
    note = one_run_note(runs) or ""
    return f"Measured: **one real run**: the comparison is {note}."


def drift_frame(drift: dict[str, Any] | None) -> pd.DataFrame:
    """The probes a run measured again after its real run (``cowbench.drift``), as text."""
    rows = []
    for block in drift_blocks(drift):
        for r in block.get("probes") or [] if block.get("measured") is True else []:
            rows.append({"probe": r.get("probe"),
                         "stands for": ", ".join(r.get("stands_for") or []) or "-",
                         "IOPS at calibration": _num(r.get("profile_iops")),
                         "IOPS now": _num(r.get("iops")),
                         "IOPS change": _change(r.get("iops_change")),
                         "within the profile's rounds": _yes_no(r.get("within_profile_rounds")),
                         "mean latency change": _change(r.get("lat_mean_change")),
                         "hypervisor's share of the cores (calibration / now)":
                             f"{_share(r.get('profile_steal_share'))} / "
                             f"{_share(r.get('steal_share'))}"})
    return pd.DataFrame(rows, columns=["probe", "stands for", "IOPS at calibration",
                                       "IOPS now", "IOPS change", "within the profile's rounds",
                                       "mean latency change",
                                       "hypervisor's share of the cores (calibration / now)"])


def _share(x: Any) -> str:
    return f"{x:.0%}" if isinstance(x, int | float) else "-"


def _num(x: Any) -> str:
    return f"{x:,.0f}" if isinstance(x, int | float) else "-"


def _change(x: Any) -> str:
    return pct(float(x)) if isinstance(x, int | float) else "-"


def error_by_point(comparison: pd.DataFrame, label: str = "point") -> pd.DataFrame:
    """Median |rel_error| of each metric (rows) at each sweep point (columns), as text."""
    if comparison.empty or "rel_error" not in comparison.columns:
        return pd.DataFrame(columns=["metric"])
    d = comparison.assign(abs_err=comparison["rel_error"].abs())
    table = d.pivot_table(index="metric", columns=label, values="abs_err", aggfunc="median")
    out = table.map(lambda x: pct(float(x)).lstrip("+"))
    out.columns = [str(c) for c in out.columns]
    return out.reset_index()


def worst_entities(comparison: pd.DataFrame, metric: str, n: int | None = 8) -> list[str]:
    """The ``n`` entities whose ``metric`` is worst predicted (largest |rel_error| at any time),
    worst first; every entity, ranked, when ``n`` is None or there are no more than ``n``."""
    d = comparison[comparison["metric"] == metric]
    worst = d.assign(a=d["rel_error"].abs()).groupby("entity")["a"].max()
    return [str(e) for e in worst.sort_values(ascending=False, kind="stable").index[:n]]


def facts_table(meta: dict[str, Any]) -> pd.DataFrame:
    """A run's identity and provenance (run.json) as two columns."""
    sc = meta.get("scenario") or {}
    host = meta.get("host") or {}
    tools = meta.get("tools") or {}
    rows = [("scenario", sc.get("name")), ("scenario id", sc.get("hash")),
            ("seed", meta.get("seed")), ("backends", ", ".join(meta.get("backends") or [])),
            ("status", meta.get("status")), ("start", meta.get("start")),
            ("end", meta.get("end")), ("host", host.get("hostname")),
            ("kernel", host.get("kernel")), ("cpus", host.get("cpu_count")),
            ("run directory's filesystem", host.get("work_dir_fs")),
            *_disk_fs_facts(host),
            *(_tool_fact(k, v) for k, v in tools.items())]
    return pd.DataFrame(rows, columns=["fact", "value"])


def _disk_fs_facts(host: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where the disks were (``cowbench.diskfs``): the real backend's files' filesystem, each
    ``storage_dir``'s, and the one the model allocated them as (each host's when they
    differ), named when it differs, the one it allocated the Glance store's files as, with
    the notes on hosts predicted as ext4 on another."""
    rows: list[tuple[str, Any]] = []
    if host.get("disks_fs") is not None:
        how = " (the run's loop-mounted reflink XFS)" if host["disks_fs"] == "xfs" \
            and host.get("work_dir_fs") != "xfs" else ""
        rows.append(("disks' filesystem (real)", f"{host['disks_fs']}{how}"))
    for name, fs in (host.get("storage_dirs_fs") or {}).items():
        rows.append((f"host {name}'s storage_dir filesystem", fs))
    model = host.get("model_disks_fs")
    per_host = host.get("model_disks_fs_per_host") or {}
    if model == "per host" and per_host:
        rows.append(("disks' filesystem (model)", "per host: " + ", ".join(
            f"{name} {fs}" for name, fs in per_host.items())))
    elif model is not None:
        real = {host.get("disks_fs"), *(host.get("storage_dirs_fs") or {}).values()} - {None}
        odd = real - {model}
        rows.append(("disks' filesystem (model)", model + (
            f"; measured on {', '.join(sorted(odd))}: the model's allocation is {model}'s"
            if odd else "")))
    if host.get("model_glance_fs") is not None:
        rows.append(("Glance store's filesystem (model)", host["model_glance_fs"]))
    for note in host.get("model_disks_fs_notes") or []:
        rows.append(("disks' filesystem (model), note", note))
    return rows


#: run.json ``tools`` entries that are not a tool's version: cowbench's own source tree.
_SOURCE_FACTS = {"git_commit": "cowbench git commit",
                 "git_dirty": "cowbench source changed since that commit"}


def _tool_fact(key: str, value: Any) -> tuple[str, Any]:
    """A ``tools`` entry of run.json as a row: a version, or what the source tree was."""
    if key in _SOURCE_FACTS:
        return _SOURCE_FACTS[key], _yes_no(value) if isinstance(value, bool) else value
    return f"{key} version", value


def duration_text(seconds: float) -> str:
    """``93600`` -> ``1.08 days``: the largest unit that keeps the number above 1."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "never"
    for name, size in (("years", 365 * 86400.0), ("days", 86400.0), ("h", 3600.0),
                       ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {name}"
    return f"{seconds:.3g} s"


def formatted(df: pd.DataFrame, byte_cols: tuple[str, ...] = (),
              time_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """A copy with byte columns as KiB/MiB/GiB text and time columns as durations."""
    out = df.copy()
    for col in byte_cols:
        if col in out.columns:
            out[col] = [value_text(float(v), "B") for v in out[col]]
    for col in time_cols:
        if col in out.columns:
            out[col] = [duration_text(float(v)) for v in out[col]]
    return out
