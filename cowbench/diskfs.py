"""Which filesystem the VMs' disk files are on, as the real backend decides it.

A run with a ``reflink_copy`` VM that this machine builds (not a model-only RBD clone) puts
every host's tree on the XFS the real backend loop-mounts (``real.storage.reflink``): every
VM's files are on it, whatever their strategy. Any other run builds its trees on the storage
under the run directory (or a host's ``storage_dir``), which the model takes for ext4. The real
backend mounts by this answer, the model allocates by it (``sim.storage.xfs``) and run.json
records it (``host.disks_fs``), so the three cannot disagree.
"""

from __future__ import annotations

from typing import Literal

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
