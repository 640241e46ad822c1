"""One sweep point, as a Dask task runs it, and the figures a sweep summary keeps of it.

:func:`run_point` is what a worker executes: plain data in (the resolved scenario as JSON,
the seed, the run directory), a normal run directory out, ``(status, reason)`` back. It lives
apart from ``cowbench.sweep`` so a worker imports only what a run needs.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import sweep_files
from .capacity import host_space
from .errors import CowbenchError
from .fdtree import PrivateDir
from .lease import Lease
from .results import end_of_run
from .runner import run_scenario
from .scenario import Scenario, parse_scenario
from .sweep_files import PointFiles, PointTooLarge, mark_failed, read_point
from .vmdist import has_vm_figures, vm_quantiles

PointResult = tuple[str, str | None, PointFiles]


def run_point(scenario: dict[str, Any], seed: int, backend: str, meta: dict[str, Any],
              csv: bool = False, owner: dict[str, Any] | None = None,
              max_bytes: int | None = None) -> PointResult:
    """Run one point in a private directory here and return its files (at most
    ``max_bytes``, default ``sweep_files.MAX_POINT_BYTES``); a failure is reported, not
    raised (run.json says why). The directory is removed whatever happens.

    The directory is in the lease the point's run holds (``cowbench.lease``), from when it is
    made until it is removed: a worker killed outright leaves it, with the run's trees and
    mounts, to ``cowbench gc`` (it is in Dask's scratch, where nothing else would find it).
    ``owner``: the sweep's client (``cowbench.lease.this_process``), which collects the lease
    itself once it has stopped its workers."""
    max_bytes = sweep_files.MAX_POINT_BYTES if max_bytes is None else max_bytes
    point = str(meta.get("point", "point"))
    token = secrets.token_hex(4)
    stage = PrivateDir.create(_scratch(), f"cowbench-{point}-{token}")
    try:
        lease = Lease.take(Path(stage.where), None, f"point-{point}-{token}", owner=owner)
        lease.add_tree(stage)
    except BaseException:
        stage.remove()
        raise
    try:
        return _run_in(stage, lease, scenario, seed, backend, meta, csv, max_bytes)
    finally:
        stage.remove()
        lease.release()  # not reached if the directory could not be removed: gc's then


def _run_in(stage: PrivateDir, lease: Lease, scenario: dict[str, Any], seed: int,
            backend: str, meta: dict[str, Any], csv: bool, max_bytes: int) -> PointResult:
    point = str(meta.get("point", "point"))
    # by its name, as `cowbench run --out`: its lease and messages name it so (RunDir checks
    # it and then holds it by its descriptor, as every run directory)
    where = Path(stage.where)
    try:
        s = parse_scenario(scenario, point)
        if "profile" not in meta:  # the client left the choice to the storage measured here
            s, meta = _choose_here(s, point, backend, where, meta)
        run_scenario(s, where, backend, seed, meta=meta, csv=csv, lease=lease)
        status, reason = "ok", None
    except CowbenchError as err:
        # "details in <scratch>/run.json": the scratch is removed once the point is sent
        # back; the client names the point's directory in the sweep there
        status, reason = "failed", str(err).replace(str(where), sweep_files.POINT_DIR)
    try:
        return status, reason, read_point(stage.fd, max_bytes)
    except PointTooLarge as err:
        reason = (f"its run directory holds {err}: a point sends back at most "
                  f"{max_bytes} bytes to the sweep's client")
        return "failed", reason, mark_failed(stage.fd, reason)


def _choose_here(s: Scenario, point: str, backend: str, where: Path,
                 meta: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    """The profile of a point that measures this worker's storage, as ``cowbench run
    --out WHERE`` would choose it here (``cowbench.autoprofile``: the cached profile of this
    machine's storage, checked first, or a quick calibration made and kept), and the point's
    run.json ``profile`` (saying it was chosen on this worker) and ``profile_check``."""
    from .autoprofile import profiles_for_run
    from .profile_use import run_profile

    s, checked = profiles_for_run(s, point, backend, where)
    backends = ["sim", "real"] if backend == "both" else [backend]
    block = {**run_profile(s, backends),
             "chosen_on": {"side": "worker", "hostname": socket.gethostname()}}
    return s, {**meta, "profile": block, "profile_check": checked}


def _scratch() -> Path:
    """Where this worker keeps scratch files: its Dask local directory (``dask worker
    --local-directory``; Dask clears it when the worker stops), or the temporary directory."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir())


def _last(rec: pd.DataFrame, prefix: str, metric: str) -> pd.Series:
    """Each ``prefix*`` entity's last value of ``metric`` (end-of-run rows count as last)."""
    r = rec[rec.entity.str.startswith(prefix) & (rec.metric == metric)]
    r = r.assign(order=r.t_s.fillna(np.inf)).sort_values("order")
    return r.groupby("entity").value.last()


def point_figures(rec: pd.DataFrame) -> dict[str, float]:
    """The figures of one run a sweep compares: totals at the end (``hosts_allocated_bytes``;
    ``hosts_used_bytes``: the hosts' physical space, extents shared by reflink copies counted
    once, ``cowbench.capacity.host_space``), peaks over the run (``host_allocated_bytes_max``,
    ``host_used_bytes_max``: the highest any host held, sampled or at the end;
    ``fleet_allocated_bytes_peak``), spreads, time to full."""
    out: dict[str, float] = {}
    hosts = _last(rec, "host:", "allocated_bytes")
    if len(hosts):
        out["hosts_allocated_bytes"] = float(hosts.sum())
        # the fullest host's peak over the run, as a run's show and the report say it (a
        # fleet's host may end below its peak: VMs deleted, bases aged out)
        host = rec[rec.entity.str.startswith("host:") & (rec.metric == "allocated_bytes")]
        out["host_allocated_bytes_max"] = float(host.value.max())
        space = host_space(rec).assign(metric="space")  # one metric per host
        out["hosts_used_bytes"] = float(_last(space, "host:", "space").sum())
        out["host_used_bytes_max"] = float(space.value.max())
    if has_vm_figures(rec):  # per VM, or a fleet's quantile grid (cowbench.vmdist)
        levels = (50, 95, 99)
        # each VM once, at the end (a lifecycle samples them over time; a deleted one is gone)
        end = end_of_run(rec, present_only=True)
        for q, v in zip(levels, vm_quantiles(end, "allocated_bytes", levels), strict=True):
            out[f"vm_allocated_bytes_p{q}"] = float(v)
    fleet = rec[rec.entity == "fleet:all"]
    if len(fleet):
        _fleet_figures(fleet, rec, out)
    return out



def fullest_host(rec: pd.DataFrame, capacity: dict[str, float]) -> dict[str, Any]:
    """The fullest host as a run's ``show`` names it: the highest peak against its own disk
    (``capacity``: bytes by host name, ``*`` for any other, as
    ``cowbench.capacity.host_capacities``; hosts may differ in size), its name, its peak and that
    share (``host_peak_share_max``); empty without hosts or capacities."""
    host = host_space(rec)
    peaks = {str(e).removeprefix("host:"): float(v)
             for e, v in host.groupby("entity").value.max().items()}
    caps = {h: capacity.get(h, capacity.get("*", np.nan)) for h in peaks}
    shares = {h: v / caps[h] for h, v in peaks.items() if caps[h] > 0}
    if not shares:
        return {}
    top = max(shares, key=lambda h: (shares[h], peaks[h]))
    return {"fullest_host": top, "fullest_host_peak_bytes": peaks[top],
            "host_peak_share_max": shares[top]}

def _fleet_figures(fleet: pd.DataFrame, rec: pd.DataFrame, out: dict[str, float]) -> None:
    end = fleet[fleet.t_s.isna()].set_index("metric").value
    for metric in ("time_to_full_s", "arrived_vms", "rejected_vms"):
        out[metric] = float(end.get(metric, np.nan))
    series = fleet[fleet.t_s.notna()]
    peak = series[series.metric == "allocated_bytes"].value
    out["fleet_allocated_bytes_peak"] = float(peak.max()) if len(peak) else np.nan
    for metric in ("snapshot_transfer_bytes", "migration_transfer_bytes", "image_fetch_bytes"):
        out[f"{metric}_total"] = float(series[series.metric == metric].value.sum())
    ttf = rec[rec.entity.str.startswith("host:") & (rec.metric == "time_to_full_s")].value
    out["hosts_full"] = float(len(ttf))
    out["host_time_to_full_s_p50"] = float(ttf.median()) if len(ttf) else np.nan
