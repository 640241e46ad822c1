"""Which filesystem the VMs' disk files are on, as the real backend decides it.

A run with a ``reflink_copy`` VM that this machine builds (not a model-only RBD clone) puts
every host's tree on the XFS the real backend loop-mounts (``real.storage.reflink``): every
VM's files are on it, whatever their strategy. Any other run builds its trees on the storage
under the run directory (or a host's ``storage_dir``), which the model takes for ext4. The real
backend mounts by this answer, the model allocates by it (``sim.storage.xfs``) and run.json
records it beside the run directory's own filesystem (``host.disks_fs``, ``model_disks_fs``),
so the three cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from cowbench.fsinfo import filesystem_of
from cowbench.scenario import Scenario

#: the filesystem the model takes a run's storage for, when no reflink XFS is made
MODEL_FS = "ext4"


def on_reflink_xfs(scenario: Scenario) -> bool:
    """Does the real backend build this run's hosts on its loop-mounted reflink XFS?"""
    return any(scenario.strategy_of(vm).kind == "reflink_copy"
               for vm in scenario.vms if not scenario.model_only(vm))


def disks_fs(scenario: Scenario) -> Literal["ext4", "xfs"]:
    """The filesystem the model allocates the run's disk files as: ``xfs`` on the reflink XFS,
    else :data:`MODEL_FS`."""
    return "xfs" if on_reflink_xfs(scenario) else "ext4"


def disk_facts(scenario: Scenario, real: bool, work_dir_fs: str | None) -> dict[str, Any]:
    """run.json's ``host`` facts on the disks' filesystem, beside ``work_dir_fs`` (the run
    directory's): ``disks_fs``, the filesystem the real backend's disk files were on (``xfs``,
    its loop-mounted reflink image, in a run with a reflink copy; else the run directory's,
    and per host the filesystem of each ``storage_dir`` that holds a host's tree instead;
    absent without the real backend), and ``model_disks_fs``, the one the model allocated them
    as (:func:`disks_fs`)."""
    facts: dict[str, Any] = {"model_disks_fs": disks_fs(scenario)}
    if not real:
        return facts
    if on_reflink_xfs(scenario):
        facts["disks_fs"] = "xfs"
        return facts
    facts["disks_fs"] = work_dir_fs
    dirs = {h.name: h.storage_dir for h in scenario.hosts if h.storage_dir is not None}
    if dirs:
        facts["storage_dirs_fs"] = {name: filesystem_of(Path(d))[0] for name, d in dirs.items()}
    return facts
