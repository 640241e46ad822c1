"""Will a real run fit? The model's prediction of the bytes it will allocate, per filesystem.

Before a real run writes anything, the model (``sim.simulate``) predicts what each host's tree
will hold at the end (``host:<name>`` ``allocated_bytes``: the raw bases in ``_base``, every
overlay or copy, every ``disk.info``) and what the generated Glance images take
(``image:<name>``), and the snapshots uploaded (``snapshot:<name>``). Without a timeline space
only grows during a run (overlays never shrink, a base is converted into ``<sha1>.converted``
and renamed, never copied twice), so the end state is the peak; with one, each entity's peak
over its time series is charged (a sum of peaks: never less than the true peak).

Each figure is charged to the filesystem its directory lives on (a host's ``storage_dir``, else
the run directory); directories on one filesystem share its free space (``statvfs``
``f_bavail``, what an unprivileged writer may use). The margin, per filesystem:

- ``MARGIN_FRACTION`` (10%) of the prediction: the model's allocation error is under 1% on the
  quickstart and within the oracle tests' bounds (tests/test_oracle.py), and a filesystem spends
  a little more on extent trees and directories for heavily fragmented overlays (ext4: one 4 KiB
  block per ~340 extents); 10% covers both with room to spare;
- ``MARGIN_BYTES`` (4 MiB): directories, journal commits, files too small for 10% to cover;
- ``RUN_DIR_BYTES`` (32 MiB) on the run directory's filesystem: ``raw/`` (every command's
  output, fio's JSON with percentiles), the records as Parquet and CSV.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import UsageError
from .scenario import Scenario
from .units import format_bytes

MARGIN_FRACTION = 0.10
MARGIN_BYTES = 4 << 20
RUN_DIR_BYTES = 32 << 20


@dataclass
class FsNeed:
    """What one filesystem must hold: the model's bytes, and who asked for them."""

    device: int
    directory: Path
    predicted: int = 0
    fixed: int = MARGIN_BYTES
    keys: list[str] = field(default_factory=list)

    @property
    def needed(self) -> int:
        return math.ceil(self.predicted * (1 + MARGIN_FRACTION)) + self.fixed


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (a run directory does not exist yet)."""
    p = path.absolute()
    while not p.exists():
        p = p.parent
    return p


def free_bytes(path: Path) -> int:
    st = os.statvfs(existing_ancestor(path))
    return st.f_bavail * st.f_frsize


def _predicted(predicted: pd.DataFrame, entity: str) -> int:
    """The entity's peak predicted allocation: over its time series when it has one (a
    lifecycle timeline deletes as well as creates), else its end-of-run figure."""
    rows = predicted[(predicted.entity == entity) & (predicted.metric == "allocated_bytes")]
    return int(rows.value.max()) if len(rows) else 0


def space_needs(scenario: Scenario, predicted: pd.DataFrame, out: Path) -> list[FsNeed]:
    """The bytes each filesystem must have free for the real run, from the model's records."""
    needs: dict[int, FsNeed] = {}

    def charge(directory: Path, key: str, nbytes: int, fixed: int = 0) -> None:
        where = existing_ancestor(directory)
        dev = where.stat().st_dev
        need = needs.setdefault(dev, FsNeed(dev, where))
        need.predicted += nbytes
        need.fixed += fixed
        if key not in need.keys:
            need.keys.append(key)

    charge(out, "--out", 0, RUN_DIR_BYTES)
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            charge(out, "--out", _predicted(predicted, f"image:{image.name}"))
    for entity in sorted(set(predicted.entity[predicted.entity.str.startswith("snapshot:")])):
        charge(out, "--out", _predicted(predicted, entity))  # uploaded to work/glance
    for i, host in enumerate(scenario.hosts):
        directory = Path(host.storage_dir) if host.storage_dir else out
        key = f"hosts[{i}].storage_dir" if host.storage_dir else "--out"
        charge(directory, key, _predicted(predicted, f"host:{host.name}"))
    return list(needs.values())


def check_free_space(scenario: Scenario, predicted: pd.DataFrame, out: Path) -> list[FsNeed]:
    """Raise :class:`UsageError` if some filesystem lacks the space the run will need."""
    needs = space_needs(scenario, predicted, out)
    short = []
    for need in needs:
        free = free_bytes(need.directory)
        if need.needed > free:
            short.append(f"{' and '.join(need.keys)}: the real run needs "
                         f"{format_bytes(need.needed)} on the filesystem of {need.directory} "
                         f"(model: {format_bytes(need.predicted)}, plus "
                         f"{MARGIN_FRACTION:.0%} and {format_bytes(need.fixed)}) but only "
                         f"{format_bytes(free)} is free; refused before writing anything")
    if short:
        raise UsageError("\n".join(short))
    return needs
