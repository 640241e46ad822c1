"""What ``cowbench show`` and ``cowbench run`` print: a run's or a sweep's figures as tables.

A **run**: its status, then per host and VM the end-of-run disk use (``allocated_bytes``,
``file_bytes``) and per VM the I/O (IOPS, mean and p99 latency), predicted and measured side by
side where both backends ran, then the comparison summary. A **fleet** run has too many VMs for
a table: its hosts are summed up instead, the fullest host's peak against its capacity and when
it fills. A **sweep**: how many points ended how, and per point its knobs and headline figures
(from ``summary.csv``, or from each point's records when the sweep left none).

Sizes print in binary units (``format_bytes``), durations in human units (``format_duration``).
Everything here reads files through :mod:`cowbench.results`; it never runs anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .capacity import host_capacities, host_space, time_to_full
from .ceiling import demand_ceiling
from .compare import summary, uncalibrated_note
from .drift import describe as drift_line
from .drift import describe_machine
from .errors import ScenarioError, UsageError
from .knobs import applies, scenario_knobs, sweep_label_knobs
from .profile_check import describe as check_line
from .profile_use import describe
from .results import (
    RunResults,
    _knob_value,
    end_of_run,
    find_points,
    flatten,
    is_run_dir,
    is_sweep_dir,
    load_run,
    point_knobs,
    sweep_set_knobs,
)
from .safeload import load_json_file
from .spread import one_run_note, spread_summary
from .store import read_run
from .units import format_bytes, format_duration, format_sizes

#: Most VMs (or fleet hosts) a table lists; the records files hold them all.
MAX_ROWS = 40
FLEET_HOSTS_SHOWN = 10
BACKEND_NAMES = {"sim": "model", "real": "real"}
BACKEND_WHAT = {"sim": "the model", "real": "qemu + fio on this machine",
                "both": "the model and qemu + fio on this machine, compared"}
IO_COLUMNS = [("read_iops", "read\nIOPS"), ("write_iops", "write\nIOPS"),
              ("read_lat_mean_s", "read lat\nmean"), ("read_lat_p99_s", "read lat\np99"),
              ("write_lat_mean_s", "write lat\nmean"), ("write_lat_p99_s", "write lat\np99")]


def show(path: Path, out: Console, shown: Path | None = None) -> None:
    """Print a run directory's or a sweep directory's figures; ``shown``: the directory as
    the user named it, when ``path`` is the descriptor ``cowbench show`` holds it by."""
    if is_run_dir(path):
        show_run(path, out, shown)
    elif is_sweep_dir(path):
        show_sweep(path, out, shown)
    elif not path.is_dir():
        raise UsageError(f"{path}: no such directory")
    else:
        raise UsageError(f"{path}: neither a run directory (no run.json) nor a sweep "
                         "directory (no sweep.json, no run directory below it)")


# -- a run ---------------------------------------------------------------------------------

def show_run(path: Path, out: Console, shown: Path | None = None) -> None:
    run = load_run(path)
    for line in _run_header(run, shown or path):
        out.print(line, soft_wrap=True, highlight=False)
    fleet = run.scenario.get("fleet")
    if isinstance(fleet, dict):
        print_fleet(run.predicted, host_capacities(run.scenario),
                    _host_count(run.scenario), _float(run.scenario.get("duration")), out,
                    demand_ceiling(run.scenario), host_reserves(run.scenario))
    else:
        print_space(run, out)
        print_timeline_capacity(run, out)
        print_io(run, out)
    if not run.comparison.empty:
        print_comparison(run.comparison, out, run.spread, run.real_runs)


def _host_count(scenario: dict[str, Any]) -> int:
    """A fleet run's hosts: its ``hosts``, or an older run's ``fleet.hosts.count``."""
    pool = scenario.get("fleet", {}).get("hosts")
    if isinstance(pool, dict):
        return int(pool.get("count") or 0)
    hosts = scenario.get("hosts")
    return len(hosts) if isinstance(hosts, list) else 0


def _float(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


def _run_header(run: RunResults, shown: Path) -> list[str]:
    meta = run.meta
    sc = meta.get("scenario") or {}
    status = str(meta.get("status"))
    if status == "running":  # or is it? its lease knows (cowbench.lease)
        from .lease import run_state

        status = run_state(run.path, meta)
    reason = f" ({meta['reason']})" if meta.get("reason") else ""
    # paths, names and reasons are the user's text, never markup: "[/srv]" is no closing tag
    lines = [f"{escape(str(shown))}: {escape(run.name)} (id {escape(str(sc.get('hash', '-')))}"
             f"), status [bold]{escape(status)}[/]{escape(reason)}"]
    backends = [b for b in meta.get("backends") or [] if isinstance(b, str)]
    what = ", ".join(f"{b} ({BACKEND_WHAT.get(b, b)})" for b in backends) or "-"
    took = _took(meta)
    lines.append(escape(f"backend: {what}; seed {meta.get('seed', '-')}"
                        + (f"; {took}" if took else "")))
    if "sim" in backends and isinstance(meta.get("profile"), dict) and \
            not isinstance(run.scenario.get("fleet"), dict):
        lines.append(escape(describe(meta["profile"])))  # what the I/O figures rest on
    checked = check_line(meta.get("profile_check"))
    if checked is not None:
        lines.append(escape(checked))
    if "drift" in meta:
        lines.append(escape(drift_line(meta["drift"])))
    machine = describe_machine(meta.get("real_runs"))
    if machine is not None:
        lines.append(escape(machine))
    refused = refused_line(meta.get("refused_arrivals"))
    if refused is not None:
        lines.append(escape(refused))
    return lines


#: refused arrivals a line names before it counts the rest
REFUSED_NAMED = 5


def refused_line(refused: Any) -> str | None:
    """run.json's ``refused_arrivals`` in a line: how many arrivals no host had room for and
    the first few of them (None: none refused)."""
    if not isinstance(refused, list) or not refused:
        return None
    named = [f"{r.get('vm')} at t={format_duration(_float(r.get('t_s')))}"
             for r in refused[:REFUSED_NAMED] if isinstance(r, dict)]
    more = f" and {len(refused) - len(named)} more" if len(refused) > len(named) else ""
    return (f"arrivals refused (NoValidHost, no host had room): {len(refused)}: "
            f"{', '.join(named)}{more}; none of their operations happen")


def _took(meta: dict[str, Any]) -> str | None:
    """How long the run took, saying what that is: run.json's ``start`` to ``end`` spans the
    runner (model, real run, comparison, drift), not the profile check the command made
    before it, which is named beside it with its own time, nor the command's start-up."""
    took = _elapsed(meta.get("start"), meta.get("end"))
    if took is None:
        return None
    check = meta.get("profile_check")
    measured = check.get("measured") if isinstance(check, dict) else None
    before = measured.get("duration_s") if isinstance(measured, dict) else None
    if isinstance(before, int | float) and not isinstance(before, bool) and before > 0:
        return (f"took {took} from start to end in run.json, not counting the profile check "
                f"before it ({format_duration(float(before))})")
    return f"took {took} from start to end in run.json"


def _elapsed(start: Any, end: Any) -> str | None:
    try:
        t0, t1 = datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end))
        return format_duration((t1 - t0).total_seconds())
    except (ValueError, TypeError):  # missing, or one with a time zone and one without
        return None


def _end_figures(run: RunResults, prefixes: tuple[str, ...],
                 present_only: bool = False) -> pd.DataFrame:
    """End-of-run value per (entity, backend, metric) for entities of the given kinds
    (``present_only``: :func:`~cowbench.results.end_of_run`'s)."""
    rec = end_of_run(run.records, present_only)
    if rec.empty:
        return pd.DataFrame(columns=["entity", "backend", "metric", "value"])
    rec = rec[rec["entity"].astype(str).str.startswith(prefixes)]
    return (rec.groupby(["entity", "backend", "metric"], sort=False, observed=True)["value"]
            .mean().reset_index())


def _entities(fig: pd.DataFrame) -> list[str]:
    """Hosts, then caches, then VMs, each in the order the records list them."""
    order = {"host": 0, "cache": 1, "vm": 2}
    names = list(dict.fromkeys(fig["entity"].astype(str)))
    return sorted(names, key=lambda e: order.get(e.split(":", 1)[0], 3))


def _backends(run: RunResults) -> list[str]:
    return [b for b in ("sim", "real") if b in set(run.records["backend"].astype(str))]


def _lookup(fig: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    return {(str(e), str(b), str(m)): float(v) for e, b, m, v in
            fig[["entity", "backend", "metric", "value"]].itertuples(index=False)}


def _truncated(rows: list[str], what: str, out: Console) -> list[str]:
    if len(rows) > MAX_ROWS:
        out.print(f"(the first {MAX_ROWS} of {len(rows)} {what}; all are in predicted.parquet "
                  "and measured.parquet)", highlight=False)
    return rows[:MAX_ROWS]


def print_space(run: RunResults, out: Console) -> None:
    """Per host, cache and VM: allocated and file size at the end, per backend; a host's
    physical space (``used_bytes``: extents shared by reflink copies counted once) beside
    them where it differs from its allocated bytes, and a note on RBD clones, which live in
    Ceph and in no host's figures."""
    # a VM deleted on the way holds nothing at the end, whatever it held when last sampled
    fig = _end_figures(run, ("host:", "cache:", "vm:"), present_only=True)
    fig = fig[fig["metric"].isin(["allocated_bytes", "file_bytes", "used_bytes"])]
    backends = _backends(run)
    if fig.empty or not backends:
        return
    val = _lookup(fig)
    used = _shared_once(val)
    metrics = [("used", "used_bytes")] if used else []
    metrics += [("allocated", "allocated_bytes"), ("file size", "file_bytes")]
    two = len(backends) > 1
    table = Table(title="disk space at the end of the run", title_justify="left")
    table.add_column("entity")
    for label, _ in metrics:
        for b in backends:
            table.add_column(f"{label}\n{BACKEND_NAMES[b]}" if two else label, justify="right")
    for entity in _truncated(_entities(fig), "hosts, caches and VMs", out):
        table.add_row(escape(entity), *(format_bytes(val.get((entity, b, m), math.nan))
                                        for _, m in metrics for b in backends))
    out.print(table)
    if used:
        out.print("used: the host's physical space, extents its reflink copies share with "
                  "their base counted once (allocated counts them in every file: "
                  f"{', '.join(used)}); capacity figures use it",
                  soft_wrap=True, markup=False, highlight=False)
    for note in (reflink_note(run), rbd_note(run.records)):
        if note:
            out.print(note, soft_wrap=True, markup=False, highlight=False)


def reflink_note(run: RunResults) -> str | None:
    """What a reflink copy's allocated bytes hold: its whole file, the extents it shares with
    its base included (``st_blocks``, as ``du`` says), so it reads like a full copy; what it
    holds alone is its ``exclusive_bytes``, given here per VM (the model's where it has it)."""
    end = _end_figures(run, ("vm:",), present_only=True)
    own = end[end["metric"] == "exclusive_bytes"]
    if own.empty:
        return None
    val = _lookup(end)
    parts = []
    for entity in sorted(set(own["entity"].astype(str))):
        b = "sim" if (entity, "sim", "exclusive_bytes") in val else "real"
        parts.append(f"{entity.removeprefix('vm:')} "
                     f"{format_bytes(val.get((entity, b, 'allocated_bytes'), math.nan))} "
                     f"allocated, {format_bytes(val[(entity, b, 'exclusive_bytes')])} its own")
    return ("reflink copies: a VM's allocated counts the extents it shares with its base, so "
            "it reads like a full copy; what it holds alone is its exclusive_bytes ("
            f"{', '.join(parts)}); the base's extents are counted once in the host's used")


def _shared_once(val: dict[tuple[str, str, str], float]) -> list[str]:
    """The hosts whose physical space differs from their allocated bytes, as
    ``h1 2.1 GiB allocated, 640.3 MiB used`` (the model's figure when it has one)."""
    out = []
    for (entity, backend, metric), used in val.items():
        alloc = val.get((entity, backend, "allocated_bytes"), math.nan)
        if metric != "used_bytes" or not used < alloc or \
                (backend == "real" and (entity, "sim", "used_bytes") in val):
            continue
        out.append(f"{entity.removeprefix('host:')} {format_bytes(alloc)} allocated, "
                   f"{format_bytes(used)} used")
    return out


def rbd_note(records: pd.DataFrame) -> str | None:
    """What a run's host figures leave out of its Ceph RBD clones (``model_only`` VMs): they
    live in the Ceph pool, not on a host; the model knows each clone's objects, not the pool's
    copy of the parent image."""
    rec = records[records["backend"].astype(str) == "sim"] if len(records) else records
    if rec.empty:
        return None
    remote = rec[(rec["metric"] == "model_only") & (rec["value"] > 0)]["entity"]
    if remote.empty:
        return None
    names = set(remote.astype(str))
    end = end_of_run(rec, True)
    held = end[end["entity"].astype(str).isin(names) & (end["metric"] == "allocated_bytes")]
    return (f"{len(names)} RBD clone(s) (model only) live in the Ceph pool, not on a host: "
            "the host figures leave them out; the pool holds "
            f"{format_bytes(float(held['value'].sum()))} of their own objects (the clones' "
            "allocated bytes), besides the parent image")


def print_io(run: RunResults, out: Console) -> None:
    """Per VM that did I/O: IOPS and latency, one row per backend. A timeline records each
    workload run at its start (``t_s``): a VM that ran more than once gets a row per run,
    labelled by its start and workload (``t=70 s w8``), in time order, not only its last run
    (which the table showed alone, nothing saying which one it was: a VM's three random-write
    runs hid behind its last sequential one)."""
    metrics = [m for m, _ in IO_COLUMNS]
    rec = run.records
    if rec.empty:
        return
    rec = rec[rec["entity"].astype(str).str.startswith("vm:") & rec["metric"].isin(metrics)]
    backends = _backends(run)
    if rec.empty:
        return
    # each run's figures (the mean over seeds and replications, as the end figures')
    fig = (rec.assign(t_s=rec["t_s"].fillna(-1.0))  # -1: an end-of-run figure (no timeline)
           .groupby(["entity", "t_s", "backend", "metric"], sort=False, observed=True)["value"]
           .mean().reset_index())
    val = {(str(e), float(t), str(b), str(m)): float(v) for e, t, b, m, v in
           fig[["entity", "t_s", "backend", "metric", "value"]].itertuples(index=False)}
    runs = {e: sorted(set(g["t_s"].astype(float))) for e, g in fig.groupby("entity", sort=False)}
    several = any(len(ts) > 1 for ts in runs.values())
    labels = _run_labels(run) if several else {}
    two = len(backends) > 1
    title = ("I/O per VM run (its start and workload; latency: completion, mean and p99)"
             if several else "I/O per VM (latency: completion, mean and 99th percentile)")
    table = Table(title=title, title_justify="left")
    table.add_column("vm")
    if several:
        table.add_column("run")
    if two:
        table.add_column("")
    for _, label in IO_COLUMNS:
        table.add_column(label, justify="right")
    rows = [(e, t) for e in _entities(fig) for t in runs[e]]
    shown = _truncated([f"{e}@{t}" for e, t in rows], "VM workload runs", out)
    for entity, t in rows[:len(shown)]:
        name = entity.removeprefix("vm:")
        when = labels.get((name, t), "end" if t < 0 else f"t={format_duration(t)}")
        for i, b in enumerate(backends):
            cells = [_io_cell(m, val.get((entity, t, b, m), math.nan)) for m in metrics]
            first = i == 0
            table.add_row(escape(name) if first else "",
                          *([escape(when) if first else ""] if several else []),
                          *([BACKEND_NAMES[b]] if two else []), *cells)
    out.print(table)


def _run_labels(run: RunResults) -> dict[tuple[str, float], str]:
    """``(VM, start)`` -> ``t=70 s w8``: each workload run of the run's timeline, from its
    resolved scenario (:func:`cowbench.lifecycle.run_ops`); none where it cannot be read."""
    from .lifecycle import run_ops
    from .scenario import parse_scenario

    try:
        s = parse_scenario(run.scenario, str(run.path / "scenario.yaml"))
        return {(r.vm, float(op.t)): f"t={format_duration(op.t)} {r.workload}"
                for op, r in run_ops(s)}
    except (ScenarioError, ValueError, KeyError):
        return {}


def _io_cell(metric: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if metric.endswith("_iops") else format_duration(value)


def _fmt_rel(x: float) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:+.2%}"


def print_comparison(comp: pd.DataFrame, out: Console, spread: pd.DataFrame | None = None,
                     runs: int = 1) -> None:
    """Per metric: how many figures both backends know, median |rel_error| and the worst;
    with two or more real runs (``spread``, ``cowbench.spread``) the runs' median spread and
    how many figures are within it; from one run, a line that says so."""
    many = spread is not None and runs >= 2
    what = f"the mean of {runs} real runs" if many else "measured"
    table = Table(title=f"predicted vs {what} (rel_error = (predicted - measured) / measured)")
    cols = ["metric", "n", "median |rel_error|", "worst rel_error"]
    if many:
        cols += ["real spread\n(median)", "within\nspread\n(or 0.1%)"]
    rows = summary(comp).to_dict("records")
    longest = max((len(_metric_label(str(r["metric"]), bool(r["calibrated"]))) for r in rows),
                  default=6)
    for col in cols:  # a metric's name is never cut, whatever the console's width
        if col == "metric":
            table.add_column(col, justify="left", no_wrap=True, min_width=longest)
        else:
            table.add_column(col, justify="right")
    per_metric = {} if spread is None else \
        {str(r["metric"]): r for r in spread_summary(spread).to_dict("records")}
    for i, row in enumerate(rows):
        if not row["calibrated"] and (i == 0 or rows[i - 1]["calibrated"]):
            table.add_section()  # the uncalibrated figures: a group of their own, below
        cells = [escape(_metric_label(str(row["metric"]), bool(row["calibrated"]))),
                 str(row["n"]),
                 _fmt_rel(float(row["median_abs_rel_error"])).lstrip("+"),
                 _fmt_rel(float(row["worst_rel_error"]))]
        if many:
            sp = per_metric.get(str(row["metric"]))
            cells += ["-", "-"] if sp is None else [
                _fmt_rel(float(sp["median_spread"])).lstrip("+"),
                f"{sp['within_spread']} of {sp['known']}"]
        table.add_row(*cells)
    out.print(table)
    for metric in (str(r["metric"]) for r in rows if not r["calibrated"]):
        out.print(uncalibrated_note(metric), soft_wrap=True, highlight=False)
    note = one_run_note(runs) if not comp.empty else None
    if note is not None and runs == 1:
        out.print("comparison " + note, soft_wrap=True, highlight=False)


def _metric_label(metric: str, calibrated: bool) -> str:
    return metric if calibrated else f"{metric} (uncalibrated)"


# -- a fleet -------------------------------------------------------------------------------

def _cap(capacity: dict[str, float], host: str) -> float:
    return capacity.get(host, capacity.get("*", math.nan))


def _known(capacity: dict[str, float]) -> list[float]:
    return [c for h, c in capacity.items() if h != "*"] or [capacity.get("*", math.nan)]


def host_reserves(scenario: dict[str, Any]) -> list[float]:
    """Each host's ``reserved_host_disk_bytes`` as a resolved scenario states it (none for a
    run written before hosts were described once)."""
    return [float(h.get("reserved_host_disk_bytes") or 0) for h in scenario.get("hosts") or []
            if isinstance(h, dict)]


def hosts_text(hosts: int, sizes: list[float], reserves: Sequence[float] = ()) -> str:
    """``3 host(s) of 8.0 GiB``, and where a host keeps a reserve for itself (Nova's
    ``reserved_host_disk_mb``), that the sizes are what is left for instances and how much was
    held back: ``3 host(s) of 8.0 GiB for instances (2.0 GiB reserved on each)``."""
    text = f"{hosts} host(s) of {format_sizes(sizes)}"
    if any(r > 0 for r in reserves):
        text += f" for instances ({format_sizes(list(reserves))} reserved on each)"
    return text


def print_fleet(records: pd.DataFrame, capacity: dict[str, float], hosts: int,
                duration: float, out: Console, ceiling: dict[str, float] | None = None,
                reserves: Sequence[float] = ()) -> None:
    """A fleet run: arrivals, the fullest host's peak against its ``capacity`` (by host name,
    :func:`host_capacities`: each host's disk less its reserve, ``reserves``) and when it fills
    (never, under its ``ceiling``: :func:`demand_ceiling`), the hosts that fill first, and the
    spread of the VMs' disks."""
    from .sweep_points import point_figures

    f = point_figures(records)
    out.print(f"fleet: {f.get('arrived_vms', math.nan):.0f} VMs arrived, "
              f"{f.get('rejected_vms', math.nan):.0f} rejected (NoValidHost) on "
              f"{hosts_text(hosts, _known(capacity), reserves)}; peak demand of all hosts "
              f"{format_bytes(f.get('fleet_allocated_bytes_peak', math.nan))}",
              soft_wrap=True, markup=False, highlight=False)
    table = host_table(records, capacity, duration, ceiling)
    if not table.empty:
        for line in _fullest_lines(table, _cap(capacity, table["host"].iloc[0]), duration,
                                   hosts):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
        out.print(_host_rich_table(table.head(FLEET_HOSTS_SHOWN), capacity, hosts))
    if math.isfinite(f.get("vm_allocated_bytes_p50", math.nan)):
        out.print(f"per VM allocated: P50 {format_bytes(f['vm_allocated_bytes_p50'])}, "
                  f"P95 {format_bytes(f['vm_allocated_bytes_p95'])}, "
                  f"P99 {format_bytes(f['vm_allocated_bytes_p99'])}", highlight=False)


def print_timeline_capacity(run: RunResults, out: Console) -> None:
    """A timeline whose hosts have a capacity: its fullest host's peak against its own disk
    for instances and when the first host fills, as for a fleet (:func:`print_fleet`'s
    lines), from the model's records (the real run's without them)."""
    timeline = run.scenario.get("timeline")
    caps = host_capacities(run.scenario)
    if not isinstance(timeline, dict) or not any(math.isfinite(c) and c > 0
                                                 for c in caps.values()):
        return
    rec = run.predicted if len(run.predicted) else run.measured
    table = host_table(rec, caps, _float(timeline.get("end_s")))
    if table.empty:
        return
    for line in _fullest_lines(table, _cap(caps, table["host"].iloc[0]),
                               _float(timeline.get("end_s")), len(table)):
        out.print(line, soft_wrap=True, markup=False, highlight=False)


def host_table(records: pd.DataFrame, capacity: dict[str, float], duration: float,
               ceiling: dict[str, float] | None = None) -> pd.DataFrame:
    """Per host: peak demand and when, demand at the end, VMs at the end, and when it is
    full (``full_s``, recorded by the model) or would be at its recent growth
    (``extrapolated_s``; inf when it does not grow or ``never_fills``: the most its VMs'
    disks and bases can hold, ``ceiling_bytes`` from ``ceiling`` by host name, is under its
    capacity); the highest peak against the host's own disk first (``peak_share``; hosts may
    differ in size)."""
    rec = records[records["entity"].astype(str).str.startswith("host:")]
    space = host_space(records)  # extents shared by reflink copies counted once
    demand = space[space["t_s"].notna()]
    ttf = rec[(rec["metric"] == "time_to_full_s")].groupby("entity")["value"].min()
    vms = rec[(rec["metric"] == "vm_count") & rec["t_s"].notna()]
    vms_end = (vms.sort_values("t_s", kind="stable").groupby("entity", sort=False).tail(1)
               .set_index("entity")["value"])
    rows = []
    for entity, g in demand.groupby("entity", sort=False):
        g = g.sort_values("t_s")
        peak_at = int(np.argmax(g["value"].to_numpy()))
        full = float(ttf.get(entity, math.inf))
        name = str(entity).removeprefix("host:")
        extra, how, cap = math.nan, "", _cap(capacity, name)
        most = (ceiling or {}).get(name, math.inf)
        if not math.isfinite(full) and math.isfinite(cap):
            extra, how = time_to_full(g["t_s"].to_numpy(float), g["value"].to_numpy(float),
                                      cap, most)
        rows.append({"host": str(entity).removeprefix("host:"),
                     "peak_bytes": float(g["value"].iloc[peak_at]),
                     "peak_t_s": float(g["t_s"].iloc[peak_at]),
                     "end_bytes": float(g["value"].iloc[-1]),
                     "vms_end": float(vms_end.get(entity, math.nan)),
                     "full_s": full, "extrapolated_s": extra, "ceiling_bytes": most,
                     "never_fills": how == "bounded",
                     "peak_share": float(g["value"].iloc[peak_at]) / cap})
    cols = ["host", "peak_bytes", "peak_t_s", "end_bytes", "vms_end", "full_s", "extrapolated_s",
            "ceiling_bytes", "never_fills", "peak_share"]
    table = pd.DataFrame(rows, columns=cols)
    return table.sort_values(["peak_share", "peak_bytes"], ascending=False, kind="stable",
                             na_position="last").reset_index(drop=True)


def _share(x: float, capacity: float) -> str:
    return f"{x / capacity:.1%}" if math.isfinite(capacity) and capacity > 0 else "-"


def _fullest_lines(table: pd.DataFrame, capacity: float, duration: float,
                   hosts: int) -> list[str]:
    """The fullest host (``table``'s first: the highest peak against its own disk), then when
    the first host fills: a planner's "time to full" is the first host's, which need not be
    the fullest's at the end when hosts differ in size (each host's own is in the table)."""
    row = table.iloc[0]
    head = (f"fullest host: {row['host']}, peak {format_bytes(row['peak_bytes'])} of "
            f"{format_bytes(capacity)} ({_share(row['peak_bytes'], capacity)}) after "
            f"{format_duration(row['peak_t_s'])}")
    full = table[np.isfinite(table["full_s"])].sort_values("full_s", kind="stable")
    if len(full):
        return [head, f"time to full: the first host ({full['host'].iloc[0]}) after "
                      f"{format_duration(full['full_s'].iloc[0])}; {len(full)} of {hosts} "
                      f"host(s) full by the end"]
    return [head, "time to full: " + _not_full_text(row, duration, capacity)]


#: how far past the run's end a linear extrapolation is still shown (in run lengths): a
#: 2-day fleet said "full after about 6110 days"
EXTRAPOLATE_MAX = 20


def _not_full_text(row: pd.Series, duration: float, capacity: float) -> str:
    within = f"not full within {format_duration(duration)}" if math.isfinite(duration) \
        else "not full by the end"
    if row["never_fills"]:  # no growth carries it past what its VMs' disks can hold
        return within + (f"; never fills: its VMs' disks hold at most "
                         f"{format_bytes(row['ceiling_bytes'])} of {format_bytes(capacity)} "
                         f"(the most VMs placement admits there, every disk and base "
                         f"written in full)")
    extra = row["extrapolated_s"]
    if math.isinf(extra):
        return within + " (the fullest host's demand stopped growing)"
    if math.isfinite(extra) and math.isfinite(duration) and extra > EXTRAPOLATE_MAX * duration:
        return within + (f"; the fullest host, at its growth over the second half of the run, "
                         f"not within {EXTRAPOLATE_MAX} times the run's length (no forecast "
                         f"reaches that far)")
    if math.isfinite(extra):
        return within + (f"; the fullest host at its growth over the second half of the run, "
                         f"after about {format_duration(extra)} (extrapolated)")
    return within


def _host_rich_table(table: pd.DataFrame, capacity: dict[str, float], hosts: int) -> Table:
    title = ("hosts" if hosts <= len(table) else
             f"the {len(table)} fullest of {hosts} hosts") + " (demand: allocated bytes)"
    t = Table(title=title, title_justify="left")
    for col in ("host", "peak", "of capacity", "at end", "VMs at end", "full after"):
        t.add_column(col, justify="left" if col == "host" else "right")
    for row in table.to_dict("records"):
        full = row["full_s"]
        t.add_row(escape(row["host"]), format_bytes(row["peak_bytes"]),
                  _share(row["peak_bytes"], _cap(capacity, row["host"])),
                  format_bytes(row["end_bytes"]),
                  "-" if math.isnan(row["vms_end"]) else f"{row['vms_end']:.0f}",
                  format_duration(full) if math.isfinite(full) else
                  "never fills" if row["never_fills"] else "not full")
    return t


# -- a sweep -------------------------------------------------------------------------------

#: Headline figures of a sweep point (``summary.csv`` columns) with their labels: for fleets,
#: else for single VMs.
FLEET_FIGURES = [("host_allocated_bytes_max", "fullest host"),
                 ("fleet_allocated_bytes_peak", "fleet peak"),
                 ("time_to_full_s", "first full"), ("rejected_vms", "rejected")]
VM_FIGURES = [("hosts_used_bytes", "all hosts"), ("vm_allocated_bytes_p50", "VM P50"),
              ("vm_allocated_bytes_p95", "VM P95")]
#: A figure of a summary written before its physical counterpart existed, shown in its place
#: (the same for disks that share no extents).
OLDER_FIGURES = {"hosts_used_bytes": "hosts_allocated_bytes",
                 "host_used_bytes_max": "host_allocated_bytes_max"}


#: The order a sweep's points are counted in (any other status after these).
STATUS_ORDER = ("ok", "failed", "interrupted", "pending", "running")


def show_sweep(path: Path, out: Console, shown: Path | None = None) -> None:
    name, status, reason = _sweep_meta(path)
    points, knobs = sweep_points(path)
    counts = points["status"].astype(str).value_counts() if len(points) else pd.Series()
    order = sorted(counts.index, key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER
                                                 else len(STATUS_ORDER), s))
    tally = ", ".join(f"{counts[s]} {s}" for s in order)
    out.print(f"{escape(str(shown or path))}: sweep {escape(name)}"
              + (f", status [bold]{escape(status)}[/]" if status else "")
              + (f" ({escape(reason)})" if reason and status != "ok" else "")
              + f"; {len(points)} point(s)" + (f": {tally}" if tally else ""),
              soft_wrap=True, highlight=False)
    if len(points):
        out.print(_sweep_table(points, knobs))
        for line in _sweep_notes(points):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
    for row in points[points["status"] != "ok"].to_dict("records") if len(points) else []:
        if isinstance(row.get("reason"), str) and row["reason"]:
            where = row.get("where")  # its run directory in the sweep, what it sent back
            if isinstance(where, str) and shown is not None:  # as the user named the sweep,
                where = where.replace(str(path), str(shown), 1)  # not its held descriptor's
            details = f"; details in {where}/" if isinstance(where, str) else ""
            out.print(f"{row['point']} {row['status']}: {row['reason']}{details}",
                      soft_wrap=True, markup=False, highlight=False)


def _sweep_json(path: Path) -> dict[str, Any] | None:
    """The sweep's sweep.json, or None where there is none (a folder of run directories)."""
    if not (path / "sweep.json").exists():
        return None
    try:
        meta = load_json_file(path / "sweep.json", "sweep.json", for_user=False)
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    return meta if isinstance(meta, dict) else None


def _sweep_meta(path: Path) -> tuple[str, str | None, str | None]:
    """The sweep's name, status and the reason it stopped (None where sweep.json lacks it)."""
    meta = _sweep_json(path)
    if meta is None:
        return path.resolve().name, None, None
    status, reason = meta.get("status"), meta.get("reason")  # a damaged file: anything there
    who = meta.get("process")
    if status == "running" and isinstance(who, dict) and "pid" in who:
        from .lease import alive

        if not alive(who):
            status, reason = "abandoned", (f"pid {who['pid']} is gone: killed outright; run "
                                           "the sweep again to finish its points")
    return (str(meta.get("name") or path.resolve().name),
            None if status is None else str(status), None if reason is None else str(reason))


def sweep_points(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per point (``point``, ``seed``, ``status``, ``reason``, its knobs, its
    figures) and the knob columns. The points are sweep.json's, finished or not; a point's
    status is its run.json's where it has a run directory, else sweep.json's; the figures of
    a finished point come from ``summary.csv`` where it says ``ok`` too, else from the
    point's records. A folder of run directories without sweep.json: its runs."""
    meta = _sweep_json(path)
    entries = meta.get("points") if meta is not None else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return _points_of_runs(path)
    summary = _summary_figures(path)
    base = meta.get("scenario") if meta is not None else None
    kind = _base_kind(base if isinstance(base, dict) else {})
    rows: list[dict[str, Any]] = []
    knob_keys: dict[str, None] = {}
    never: dict[str, bool] = {}  # by the point's overrides: the seed changes no ceiling
    resolved: dict[str, dict[str, Any]] = {}  # by the point's overrides: its knobs
    set_keys: dict[str, None] = {}  # what the sweep file sets: named though of one value
    for entry in entries:
        overrides = entry.get("overrides")
        knobs = flatten(overrides) if isinstance(overrides, dict) else {}
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in resolved:
            resolved[key] = _resolved_knobs(base if isinstance(base, dict) else {},
                                            overrides if isinstance(overrides, dict) else {})
        knob_keys.update(dict.fromkeys(resolved[key]))
        set_keys.update(dict.fromkeys(knobs))
        point_kind = resolved[key].get("strategy.kind", knobs.get("strategy.kind", kind))
        row: dict[str, Any] = {"point": str(entry.get("id")), "seed": entry.get("seed"),
                               "status": str(entry.get("status")),
                               "reason": entry.get("reason"), "kind": str(point_kind),
                               **resolved[key]}
        given = PurePosixPath(str(entry.get("dir") or f"points/{row['point']}"))
        if given.is_absolute() or ".." in given.parts:  # sweep.json leads out of the sweep
            raise UsageError(f"{path}/sweep.json: point {row['point']}: dir {str(given)!r} "
                             "leads out of the sweep directory; refused")
        run_dir = path / given
        if is_run_dir(run_dir):
            run_meta = read_run(run_dir)
            row.update(status=str(run_meta.get("status")), reason=run_meta.get("reason"),
                       where=str(run_dir))
        if row["status"] == "ok":
            row.update(summary.get(row["point"]) or _figures(run_dir))
            if not math.isfinite(_float(row.get("time_to_full_s"))):
                key = repr(sorted(knobs.items()))
                if key not in never:
                    never[key] = _never_fills(run_dir)
                row["never_fills"] = never[key]
        rows.append(row)
    table = _points_frame(rows, list(knob_keys))
    return table, sweep_label_knobs(table, list(knob_keys), set_keys)


def _resolved_knobs(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A point's knobs as summary.csv and the reports have them (``cowbench.knobs``:
    every strategy field that applies to its kind, as resolved), from the sweep's base
    scenario and the point's overrides; its overrides as written where its strategy does
    not validate (the sweep refused such a point anyway)."""
    from pydantic import ValidationError

    from .storage_schema import Strategy
    from .sweep_spec import apply_override

    data = json.loads(json.dumps(base))
    try:
        for path, value in overrides.items():
            apply_override(data, path, value)
        strategy = Strategy.model_validate(data.get("strategy") or {}).model_dump(mode="json")
    except (ValidationError, TypeError, ValueError):
        kind = flatten(overrides).get("strategy.kind", "qcow2_overlay")
        return {k: v for k, v in flatten(overrides).items() if applies(k, kind)}
    return scenario_knobs({"strategy": strategy}, overrides)


def _never_fills(run_dir: Path) -> bool:
    """Whether no host of the point can ever fill: each one's ceiling (the most its VMs'
    disks and bases can hold, :func:`demand_ceiling`) under its own capacity."""
    try:
        scenario = load_run(run_dir).scenario
    except UsageError:
        return False
    caps, ceiling = host_capacities(scenario), demand_ceiling(scenario)
    return bool(ceiling) and all(math.isfinite(_cap(caps, h)) and most < _cap(caps, h)
                                 for h, most in ceiling.items())


def _base_kind(scenario: dict[str, Any]) -> str:
    strategy = scenario.get("strategy")
    kind = strategy.get("kind") if isinstance(strategy, dict) else None
    return str(kind) if kind is not None else "qcow2_overlay"


def _figures(run_dir: Path) -> dict[str, float]:
    from .sweep_points import fullest_host, point_figures

    run = load_run(run_dir)
    rec = run.predicted if len(run.predicted) else run.measured
    return {**point_figures(rec), **fullest_host(rec, host_capacities(run.scenario))}


def _summary_figures(path: Path) -> dict[str, dict[str, Any]]:
    """The figures of every point summary.csv says is ``ok``, by point id."""
    summary_csv = path / "summary.csv"
    if not summary_csv.is_file():
        return {}
    table = _read_summary(summary_csv)
    drop = [c for c in table.columns if c.startswith("override.") or c in
            ("point", "cell", "seed", "status", "run_dir", "label", "reason")]
    ok = table[table["status"] == "ok"]
    records = ok.drop(columns=drop).to_dict("records")
    return {str(p): {str(k): v for k, v in row.items()}
            for p, row in zip(ok["point"], records, strict=True)}


def _points_of_runs(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A folder of run directories: each run a point, its knobs those that vary."""
    rows: list[dict[str, Any]] = []
    knob_keys: dict[str, None] = {}
    set_keys: dict[str, None] = {}
    for point in find_points(path):
        run = load_run(point)
        point_knob = point_knobs(run)
        knob_keys.update(dict.fromkeys(point_knob))
        set_keys.update(dict.fromkeys(sweep_set_knobs(run)))
        row: dict[str, Any] = {"point": str(point.relative_to(path)).removeprefix("points/"),
                               "seed": run.meta.get("seed"),
                               "status": str(run.meta.get("status")),
                               "reason": run.meta.get("reason"), "where": str(point),
                               **point_knob}
        if row["status"] == "ok":
            row.update(_figures(point))
        rows.append(row)
    table = _points_frame(rows, list(knob_keys))
    return table, sweep_label_knobs(table, list(knob_keys), set_keys)


def _points_frame(rows: list[dict[str, Any]], knobs: Sequence[str]) -> pd.DataFrame:
    """The points' rows as a frame, each knob's values as the points have them: an integer
    stays one (a knob some points do not set made its column floats: ``chain_depth`` 3.0),
    a float one (``disk_allocation_ratio`` 1.0)."""
    table = pd.DataFrame(rows)
    for k in knobs:
        if k in table.columns:
            table[k] = pd.Series([r.get(k) for r in rows], index=table.index, dtype=object)
    return table


def _read_summary(path: Path) -> pd.DataFrame:
    """A sweep's summary.csv, or a one-line error if it is damaged."""
    from .store import open_own_file

    try:
        with open_own_file(path) as f:  # never through a symlink planted at its name
            table = pd.read_csv(f)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # pandas' parse errors included
        raise UsageError(f"{path}: not a readable sweep summary ({type(err).__name__}); run "
                         "the sweep again to rewrite it") from None
    missing = {"point", "status"} - set(table.columns)
    if missing:
        raise UsageError(f"{path}: not a sweep summary (no {', '.join(sorted(missing))} "
                         "column); run the sweep again to rewrite it")
    return table


def _sweep_notes(points: pd.DataFrame) -> list[str]:
    """What the table's host figures are: physical space (extents reflink copies share with
    their base counted once), and none of an RBD clone's (it lives in Ceph)."""
    lines = []
    if "all hosts" in (label for _, label in _sweep_figures(points)):  # a column it explains
        lines.append("all hosts: the hosts' physical space at the end, extents that reflink "
                     "copies share with their base counted once (summary.csv "
                     "hosts_used_bytes; hosts_allocated_bytes counts them in every file)")
    kinds = points["kind"].astype(str) if "kind" in points.columns else pd.Series(dtype=str)
    vm_cols = [label for c, label in _sweep_figures(points) if c.startswith("vm_")]
    if (kinds == "reflink_copy").any() and vm_cols:
        lines.append(f"{', '.join(vm_cols)} in reflink_copy points: each VM's allocated bytes "
                     "count the extents its copy shares with the base, so a reflink copy reads "
                     "like a full copy there; what it holds alone is its exclusive_bytes "
                     "(cowbench show of the point), and all hosts counts the base once")
    if (kinds == "rbd_clone").any():
        lines.append("rbd_clone points: the disks are RBD clones in the Ceph pool, not on a "
                     "host (model only); the host figures leave them out")
    return lines


def _with_older_figures(points: pd.DataFrame) -> pd.DataFrame:
    for new, old in OLDER_FIGURES.items():
        if old in points.columns and (new not in points.columns
                                      or points[new].isna().all()):
            points = points.assign(**{new: points[old]})
    return points


def _sweep_figures(points: pd.DataFrame) -> list[tuple[str, str]]:
    """The figure columns of a sweep's table, ``(summary column, label)``: a fleet's, or the
    single VMs' when no point ran a fleet."""
    points = _with_older_figures(points)
    fleet = "fleet_allocated_bytes_peak" in points.columns and \
        points["fleet_allocated_bytes_peak"].notna().any()
    return [(c, label) for c, label in (FLEET_FIGURES if fleet else VM_FIGURES)
            if c in points.columns and (points[c].notna().any() or c == "time_to_full_s")]


def _sweep_table(points: pd.DataFrame, knobs: list[str]) -> Table:
    points = _with_older_figures(points)
    figures = _sweep_figures(points)
    table = Table(title="points (figures from the model's records)", title_justify="left")
    for col in ("point", *[k.rsplit(".", 1)[-1] for k in knobs], "seed", "status",
                *[label for _, label in figures]):
        table.add_column(col, justify="left" if col in ("point", "status") else "right")
    for row in points.to_dict("records"):
        cells = [escape(_knob_cell(k, row.get(k))) for k in knobs]  # 65536 -> 64KiB
        figs = [_fullest(row) if c == "host_allocated_bytes_max" and row.get("status") == "ok"
                else "never fills" if c == "time_to_full_s" and row.get("never_fills") is True
                else _figure(c, row.get(c, math.nan), row.get("status") == "ok")
                for c, _ in figures]
        table.add_row(escape(str(row["point"])), *cells, _int_text(row.get("seed")),
                      escape(str(row["status"])), *figs)
    return table


def _knob_cell(key: str, value: Any) -> str:
    """A knob's value as the sweep file would say it; ``-`` where the point has none (a
    strategy knob its kind does not use, a knob only other points set)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return _knob_value(key, value)


def _int_text(x: Any) -> str:
    return str(int(x)) if isinstance(x, int | float) and math.isfinite(x) else str(x)


def _fullest(row: dict[Any, Any]) -> str:
    """The point's fullest host as its own ``show`` names it (the highest peak against its
    own disk) with that share; a summary without capacities: the most any host held."""
    peak, share = _float(row.get("fullest_host_peak_bytes")), _float(row.get("host_peak_share_max"))
    if math.isfinite(peak) and math.isfinite(share):
        return f"{format_bytes(peak)} ({share:.1%})"
    peak = _float(row.get("host_used_bytes_max"))
    if not math.isfinite(peak):  # a summary written before the figure existed
        peak = _float(row.get("host_allocated_bytes_max"))
    return _figure("host_used_bytes_max", peak, True)


def _figure(column: str, value: Any, ok: bool) -> str:
    x = _float(value)
    if not ok:
        return ""
    if column == "time_to_full_s":
        return format_duration(x) if math.isfinite(x) else "not full"
    if column.endswith("_bytes") or "_bytes_" in column:
        return format_bytes(x)
    return "-" if math.isnan(x) else f"{x:,.0f}"
