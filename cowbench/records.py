"""Tidy records: the one shape both backends emit (README.md, "Reading a run directory").

Long format, one row per figure: ``backend, t_s, entity, metric, value, unit, seed,
replication``. ``t_s`` is NaN for end-of-run figures. A figure a backend cannot know is absent,
never zero. Rows are collected in plain lists and turned into a DataFrame once (Ciw).
"""

from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


COLUMNS = ["backend", "t_s", "entity", "metric", "value", "unit", "seed", "replication"]

#: Every metric name of the contract and its unit. A metric may be added; none is renamed.
UNITS: dict[str, str] = {
    "allocated_bytes": "B",
    "file_bytes": "B",
    "data_clusters": "clusters",
    "host_read_bytes": "B",
    "host_write_bytes": "B",
    "read_iops": "1/s",
    "write_iops": "1/s",
    "read_bw_bytes_per_s": "B/s",
    "write_bw_bytes_per_s": "B/s",
    "read_lat_mean_s": "s",
    "write_lat_mean_s": "s",
    "read_lat_p99_s": "s",
    "write_lat_p99_s": "s",
    "duration_s": "s",
    "transfer_bytes": "B",
    # additions (not in the original contract, never renamed either)
    "read_ios": "ios",
    "write_ios": "ios",
    # fio's trims (rw=trim, randtrim, trimwrite): counted by both backends; their rate and
    # latency measured only (the model applies a trim to the disk's space, in no time)
    "trim_ios": "ios",
    "trim_iops": "1/s",
    "trim_bw_bytes_per_s": "B/s",
    "trim_lat_mean_s": "s",
    "trim_lat_p99_s": "s",
    # the model's I/Os in fio's ramps (ramp_time): they reach the disk, but fio's output
    # counts none of them, so only the model has this figure
    "ramp_ios": "ios",
    # 1 for an entity only the model knows (no real counterpart here, e.g. a Ceph RBD clone)
    "model_only": "flag",
    # reflink copies: bytes still shared with the base, and bytes the file has to itself
    "shared_bytes": "B",
    "exclusive_bytes": "B",
    # a host's files' physical space: allocated_bytes with the extents several files share
    # (reflink clones of a base) counted once (real: FIEMAP, real.measure.extents)
    "used_bytes": "B",
    # fleet figures (cowbench.fleet, sim.fleet)
    "provisioned_bytes": "B",
    "vm_count": "vms",
    "arrived_vms": "vms",
    "rejected_vms": "vms",
    "time_to_full_s": "s",
    "snapshot_transfer_bytes": "B",
    "migration_transfer_bytes": "B",
    "image_fetch_bytes": "B",
    # the CPU a VM's I/O took on its host over a workload run, its ramp included: its issuer's
    # (fio, every process; a vCPU in production) and its server's (qemu-nbd, every thread;
    # QEMU's iothread and pool in production); the model's only with a calibration's host
    # scheduler (its issuer and server; the host kernel's own CPU is neither)
    "issuer_cpu_s": "s",
    "server_cpu_s": "s",
    # a host's cores: the share of their time busy while its VMs ran a workload (real: this
    # machine's /proc/stat, recorded where the run's VMs are all on one host; the model: what
    # its scheduler gave every process and the host's kernel)
    "cpu_busy_share": "share",
}

#: the CPU figures of a VM's workload run, in the order ``sim.perf.host.Host.cpu_of`` gives them
CPU_METRICS = ("issuer_cpu_s", "server_cpu_s")


@dataclass
class Recorder:
    """Collects records for one backend; ``frame()`` turns them into the contract's DataFrame."""

    backend: str
    seed: int
    replication: int = 0
    rows: list[tuple[object, ...]] = field(default_factory=list)

    def add(self, entity: str, metric: str, value: float, t_s: float | None = None) -> None:
        if metric not in UNITS:
            raise KeyError(f"unknown metric {metric!r}: add it to cowbench.records.UNITS")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return  # absent, never zero
        self.rows.append((self.backend, math.nan if t_s is None else float(t_s), entity, metric,
                          float(value), UNITS[metric], self.seed, self.replication))

    def frame(self) -> pd.DataFrame:
        return records_frame(self.rows)


def records_frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    import pandas as pd  # not before the records are ready: a real run starts without it

    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"backend": "string", "t_s": "float64", "entity": "string",
                      "metric": "string", "value": "float64", "unit": "string",
                      "seed": "int64", "replication": "int64"})


def import_in_background() -> None:
    """Start importing pandas (and the Parquet writer) in a thread. A real run calls it as
    its first long tool starts: its records are framed and written only at the end, and the
    import (0.3 to 0.5 s of CPU) then runs while this process only waits for the tool."""
    threading.Thread(target=_import_frames, name="import-pandas", daemon=True).start()


def _import_frames() -> None:
    for name in ("pandas", "pyarrow.parquet"):
        try:
            importlib.import_module(name)
        except Exception:  # imported again where used, and failing there
            return

