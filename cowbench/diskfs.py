"""Which filesystem each host's disk files are on, and which the model allocates them as.

Where the real backend puts a host's tree: a run with a ``reflink_copy`` VM that this machine
builds (not a model-only RBD clone) puts every host's tree on the XFS it loop-mounts
(``real.storage.reflink``), whatever their strategy; any other run builds each host's tree in
its ``storage_dir``, else in the run directory's ``work/``, on whatever filesystem holds it.

The model allocates a file as ext4 does (``sim.storage.hostfile``) or as XFS does under QEMU's
1 MiB extent size hint (``sim.storage.xfs``). Per host, ``hosts[].filesystem`` says which:
``ext4`` or ``xfs`` as written (a planner predicting for a fleet elsewhere), or ``auto`` (the
default) as the real backend would place them, from here: the filesystem of the host's
storage when the run starts (:func:`place`). A filesystem the model has no allocator for
(tmpfs, btrfs, zfs, an overlay, NFS, ...) is predicted as ext4, never silently: each such
host is named in a warning and in run.json's ``host.model_disks_fs_notes``. With ``--backend
sim`` a host whose ``storage_dir`` is not on this machine cannot be looked at: ext4, said
alike (its ``filesystem`` says otherwise). A run with the real backend refuses a ``filesystem``
its disks are not on (the comparison would set one filesystem's allocation against another's).
A fleet is predicted as ext4 (its model has no XFS allocation: ``cowbench.fleet`` refuses
``filesystem: xfs``).

The Glance store (the images as uploaded, ``image:NAME``, and the snapshots a timeline
uploads, ``snapshot:NAME``) is the run directory's ``work/glance/`` in every real run, a
reflink one's too (its XFS holds only the hosts' trees): the model allocates its files as
the run directory's filesystem, looked at once with the hosts' (``glance`` of
:class:`Placement`; ext4, said, for one it has no allocator for). A synthetic image is
made by ``qemu-img create`` and a snapshot by ``qemu-img convert``, so on XFS both have
QEMU's extent size hint.

The run writes the answer into its scenario (``hosts[].model_disks_fs`` and
``nova.model_glance_fs``, so its scenario.yaml re-predicts the same: ``cowbench repredict``) and
run.json records it beside where the real backend's files were (``host.disks_fs``,
``storage_dirs_fs``), so the three cannot disagree unsaid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import UsageError
from .fsinfo import filesystem_of
from .scenario import Host, Scenario

HostFs = Literal["ext4", "xfs"]
#: the filesystem the model takes a host's storage for when it has no allocator for it
MODEL_FS: HostFs = "ext4"
#: the filesystems the model allocates files as
MODELLED: tuple[HostFs, ...] = ("ext4", "xfs")
#: hosts a note names before "and N more"
NAMED = 5


def on_reflink_xfs(scenario: Scenario) -> bool:
    """Does the real backend build this run's hosts on its loop-mounted reflink XFS?"""
    return any(scenario.strategy_of(vm).kind == "reflink_copy"
               for vm in scenario.vms if not scenario.model_only(vm))


def host_filesystems(scenario: Scenario) -> dict[str, HostFs]:
    """Host name -> the filesystem the model allocates its disk files as: what the run
    decided (``hosts[].model_disks_fs``, :func:`place`), else ``hosts[].filesystem`` when it
    names one, else xfs on the reflink XFS and ext4 otherwise (the model run outside ``cowbench
    run``, which looked at no filesystem)."""
    reflink = on_reflink_xfs(scenario)
    return {h.name: h.model_disks_fs or (h.filesystem if h.filesystem != "auto" else
                                         "xfs" if reflink else MODEL_FS)
            for h in scenario.hosts}


def glance_filesystem(scenario: Scenario) -> HostFs:
    """The filesystem the model allocates the Glance store's files as: what the run decided
    (``nova.model_glance_fs``, :func:`place`), else ext4 (the model run outside ``cowbench
    run``, which looked at no filesystem)."""
    return scenario.nova.model_glance_fs or MODEL_FS


@dataclass
class Placement:
    """A run's answer (:func:`place`): what the model allocates each host's disks as, and
    the notes on those predicted as ext4 without being known to be on ext4."""

    model: dict[str, HostFs]
    notes: list[str] = field(default_factory=list)
    #: what the model allocates the Glance store's files as (the run directory's filesystem)
    glance: HostFs = MODEL_FS


def place(scenario: Scenario, backend: str, out: Path) -> Placement:
    """What the model allocates each host's disks as in a run of ``backend`` (``sim``,
    ``real``, ``both``) into the run directory ``out`` (which need not exist yet: the
    filesystem of its nearest existing parent, where it will be made), by the rules of the
    module docstring. A ``filesystem`` the real backend's disks are not on is a
    :class:`UsageError` naming its key path."""
    if scenario.fleet is not None:  # nothing of it is on any filesystem here
        return Placement({h.name: MODEL_FS for h in scenario.hosts})
    real = backend in ("real", "both")
    reflink = on_reflink_xfs(scenario)
    looked: dict[Path, str] = {}
    model: dict[str, HostFs] = {}
    unmodelled: dict[str, list[str]] = {}
    for i, h in enumerate(scenario.hosts):
        found = _where(h, out, reflink, looked)
        fs = found[0] if found else None
        auto: HostFs = "xfs" if fs == "xfs" else MODEL_FS  # ext4, or one not modelled
        if h.filesystem != "auto" and real and found is not None and h.filesystem != auto:
            raise UsageError(
                f"hosts[{i}].filesystem: {h.filesystem}, but host {h.name}'s disks are on "
                f"{found[0]} ({found[1]}), which the model allocates as {auto}: the real "
                f"backend's files would be measured there; leave it auto (or {auto}), or "
                "predict on its own with --backend sim")
        model[h.name] = auto if h.filesystem == "auto" else h.filesystem
        if model[h.name] == MODEL_FS and fs != MODEL_FS and (h.filesystem == "auto" or real):
            what = (f"on {fs} ({found[1]}), which the model has no allocator for" if found
                    else f"in storage_dir {h.storage_dir}, not on this machine")
            unmodelled.setdefault(what, []).append(h.name)
    notes = [f"{_names(hosts)}: the disks are {what}; predicted as {MODEL_FS} (the model "
             f"allocates as {' or '.join(MODELLED)}: hosts[].filesystem)"
             for what, hosts in unmodelled.items()]
    glance = _look(_work(out), looked)  # work/glance, in a reflink run too
    if glance not in MODELLED:
        notes.append(f"Glance's store: the images are on {glance} (the run directory's "
                     "filesystem), which the model has no allocator for; predicted as "
                     f"{MODEL_FS}")
    return Placement(model, notes, "xfs" if glance == "xfs" else MODEL_FS)


def _where(h: Host, out: Path, reflink: bool,
           looked: dict[Path, str]) -> tuple[str, str] | None:
    """(filesystem, which) of the storage host ``h``'s disks go to; None for a
    ``storage_dir`` not on this machine (which the real backend's own check refuses).
    ``looked``: by directory, the filesystems already found (10,000 hosts in one run
    directory: one look)."""
    if reflink:
        return "xfs", "the run's loop-mounted reflink XFS"
    if h.storage_dir is None:
        return _look(_work(out), looked), "the run directory's filesystem"
    path = Path(h.storage_dir)
    if not path.is_dir():
        return None
    return _look(path, looked), f"storage_dir {h.storage_dir}"


def _work(out: Path) -> Path:
    """The run directory's ``work/``, where the real backend builds what is not elsewhere."""
    return Path(os.path.abspath(out)) / "work"


def _look(path: Path, looked: dict[Path, str]) -> str:
    """The filesystem of ``path`` (of its nearest existing parent: a run directory not made
    yet), from ``looked`` when that directory was looked at already."""
    while not path.exists() and path != path.parent:
        path = path.parent
    if path not in looked:
        looked[path] = filesystem_of(path)[0]
    return looked[path]


def _names(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:NAMED])
    return shown if len(hosts) <= NAMED else f"{shown} and {len(hosts) - NAMED} more hosts"


def placed(scenario: Scenario, placement: Placement) -> Scenario:
    """``scenario`` with each host's ``model_disks_fs`` and ``nova.model_glance_fs`` filled
    in from ``placement``."""
    hosts = [h.model_copy(update={"model_disks_fs": placement.model[h.name]})
             for h in scenario.hosts]
    nova = scenario.nova.model_copy(update={"model_glance_fs": placement.glance})
    return scenario.model_copy(update={"hosts": hosts, "nova": nova})


def disk_facts(scenario: Scenario, real: bool, work_dir_fs: str | None,
               notes: list[str] | None = None) -> dict[str, Any]:
    """run.json's ``host`` facts on the disks' filesystem, beside ``work_dir_fs`` (the run
    directory's): ``disks_fs``, the filesystem the real backend's disk files were on (``xfs``,
    its loop-mounted reflink image, in a run with a reflink copy; else the run directory's,
    and per host the filesystem of each ``storage_dir`` that holds a host's tree instead;
    absent without the real backend), and ``model_disks_fs``, the one the model allocated them
    as (:func:`host_filesystems`): one name, or ``per host`` when hosts differ, each then in
    ``model_disks_fs_per_host``; ``model_glance_fs``, the one it allocated the Glance
    store's files as (:func:`glance_filesystem`; the real backend's are in the run directory,
    on ``work_dir_fs``); ``model_disks_fs_notes``: the :class:`Placement`'s notes, when there
    are any."""
    model = host_filesystems(scenario)
    kinds = set(model.values())
    facts: dict[str, Any] = {"model_disks_fs": kinds.pop() if len(kinds) == 1 else "per host"}
    if facts["model_disks_fs"] == "per host":
        facts["model_disks_fs_per_host"] = model
    if scenario.fleet is None:
        facts["model_glance_fs"] = glance_filesystem(scenario)
    if notes:
        facts["model_disks_fs_notes"] = notes
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


def describe(scenario: Scenario) -> str:
    """What the model will allocate the disks as, for ``cowbench validate`` (before any run
    directory is chosen): each host's ``filesystem``, ``auto`` said in words."""
    if scenario.fleet is not None:
        return f"{MODEL_FS} (the fleet model)"
    if on_reflink_xfs(scenario):
        auto = "xfs: the run's loop-mounted reflink XFS"
    else:
        auto = ("auto: the one the disks are on when the run starts (the host's storage_dir's, "
                f"else the run directory's; {MODEL_FS}, said, if the model has no allocator "
                "for it)")
    kinds = {h.filesystem for h in scenario.hosts}
    if len(kinds) == 1:
        kind = kinds.pop()
        return auto if kind == "auto" else kind
    by: dict[str, list[str]] = {}
    for h in scenario.hosts:
        by.setdefault(h.filesystem, []).append(h.name)
    return "; ".join(f"{_names(names)}: {auto if k == 'auto' else k}" for k, names in by.items())
