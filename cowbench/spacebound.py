"""Will a real run fit? A quick upper bound of its space, without the model.

``cowbench.space`` charges each filesystem the model's prediction of what the run allocates;
the model writes every guest write of every VM to get it (0.4 s for the quickstart, plus
importing the model). Before that, :func:`bound_needs` charges the same filesystems, under the
same margins, what the run could allocate at most: every file written in full. A run that fits
that bound fits the prediction too (the model never predicts more than a file can hold), so it
is let through without the model; one that does not is left to the model's finer figure. The
bound covers the common case, VMs booted from synthetic images with qcow2 overlays or full
copies and no timeline, on hosts the model allocates as ext4; anything else (``None``) goes to
the model.

Per file, at most:

- a raw file (a ``_base`` base, a flavor's ephemeral or swap base, a full copy): its size,
  the larger of the base's and the root's;
- a qcow2 file of virtual size ``V`` and cluster ``c`` (a generated Glance image, an overlay,
  a flavor's ``disk.local`` or ``disk.swap``):
  every data cluster allocated, plus its metadata at the widest (QEMU's ``qcow2_calc_size``,
  ``block/qcow2.c``): the header cluster, the L1 table, one L2 entry per cluster (8 bytes, 16
  with ``extended_l2``), one refcount entry per cluster (``refcount_bits``) for the data and
  the metadata, the refcount table, rounded up to whole clusters, and a few clusters spare.
"""

from __future__ import annotations

import math
from pathlib import Path

from .diskfs import glance_filesystem, host_filesystems
from .lifecycle import boot_hosts
from .scenario import Image, Scenario, Strategy
from .space import RUN_DIR_BYTES, FsNeed, iolog_bytes, log_bytes, needs_by_filesystem

#: strategies whose files are bounded here (others are left to the model)
BOUNDED = ("qcow2_overlay", "full_copy")
#: QEMU's default cluster size: ``qemu-img create -f qcow2`` of a generated Glance image
GLANCE_CLUSTER = 65536
SPARE_CLUSTERS = 8


def qcow2_max_bytes(virtual_size: int, cluster: int, refcount_bits: int = 16,
                    extended_l2: bool = False) -> int:
    """The most a qcow2 file of ``virtual_size`` can allocate: every cluster written."""
    data = math.ceil(virtual_size / cluster)
    l2 = math.ceil(data * (16 if extended_l2 else 8) / cluster)
    l1 = math.ceil(l2 * 8 / cluster)
    counted = data + 1 + l1 + l2
    refblocks = reftable = 0
    while True:  # refcount blocks and their table count themselves too: grow to the fixpoint
        total = counted + refblocks + reftable
        need = math.ceil(total * refcount_bits / 8 / cluster)
        table = math.ceil(need * 8 / cluster)
        if (need, table) == (refblocks, reftable):
            return (total + SPARE_CLUSTERS) * cluster
        refblocks, reftable = need, table


def _image_bytes(image: Image) -> int:
    assert image.virtual_size is not None
    if image.format == "raw":
        return image.virtual_size
    return qcow2_max_bytes(image.virtual_size, GLANCE_CLUSTER)


def _disk_bytes(strategy: Strategy, root_size: int, base_size: int) -> int:
    if strategy.kind == "full_copy":
        return max(root_size, base_size)
    return qcow2_max_bytes(root_size, strategy.cluster_size, strategy.refcount_bits,
                           strategy.extended_l2)


def bounded(scenario: Scenario) -> bool:
    """Is the scenario one :func:`bound_needs` covers? Its disks and its Glance store's
    images allocated as ext4 allocates them: on XFS, QEMU's 1 MiB extent size hint can give
    a file more than its clusters (a whole piece past its end, ``sim.storage.xfs``), which
    only the model counts."""
    return (scenario.timeline is None and scenario.fleet is None
            and set(host_filesystems(scenario).values()) == {"ext4"}
            and glance_filesystem(scenario) == "ext4"
            and all(scenario.strategy_of(vm).kind in BOUNDED for vm in scenario.vms)
            and all(scenario.image(vm.image).synthetic is not None for vm in scenario.vms))


def bound_needs(scenario: Scenario, out: Path) -> list[FsNeed] | None:
    """The most each filesystem must have free for the real run (with ``cowbench.space``'s
    margins), or ``None`` where the bound does not apply."""
    if not bounded(scenario):
        return None
    charges: list[tuple[Path, str, int, int]] = [(out, "--out", 0, RUN_DIR_BYTES)]
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used:
            charges.append((out, "--out", _image_bytes(image), 0))
    booted = boot_hosts(scenario)  # the scheduler's hosts for VMs that name none
    for i, host in enumerate(scenario.hosts):
        directory = Path(host.storage_dir) if host.storage_dir else out
        key = f"hosts[{i}].storage_dir" if host.storage_dir else "--out"
        charges.append((directory, key, _host_bytes(scenario, host.name, booted), 0))
    ios = sum(iolog_bytes(scenario, vm, None, streams=False) + log_bytes(scenario, vm, None)
              for vm in scenario.vms)
    charges.append((out, "--out", ios, 0))
    return needs_by_filesystem(charges)


def _host_bytes(scenario: Scenario, host: str, booted: dict[str, str]) -> int:
    """The most the files of the VMs that boot on ``host`` (``booted``: each VM's host,
    :func:`cowbench.lifecycle.boot_hosts`) and their bases can allocate there."""
    vms = [vm for vm in scenario.vms if booted.get(vm.name) == host]
    bases = {vm.image: scenario.image(vm.image).virtual_size or 0 for vm in vms}
    disks = sum(_disk_bytes(scenario.strategy_of(vm), scenario.root_size(vm), bases[vm.image])
                for vm in vms)
    # a flavor's disk.local and disk.swap: a qcow2 overlay each, over a raw base in _base of
    # its size, one per size and kind on the host (cowbench.nova.machine)
    local: set[tuple[str, int]] = set()
    for vm in vms:
        fl = next((f for f in scenario.flavors if f.name == vm.flavor), None)
        for kind, size in (("ephemeral", fl.ephemeral), ("swap", fl.swap)) if fl else ():
            if size:
                st = scenario.strategy_of(vm)
                local.add((kind, size))
                disks += qcow2_max_bytes(size, st.cluster_size, st.refcount_bits,
                                         st.extended_l2)
    return sum(bases.values()) + disks + sum(size for _, size in local)
