"""Where the real backend puts things: Nova's layout, one tree per host (FACTS.md 1.1-1.3).

::

    <work>/glance/<image>.<fmt>                      the image as uploaded to Glance (a copy
                                                     of a ``path`` image)
    <host dir>/instances/_base/<sha1 of image id>    the cached base (raw)
    <host dir>/instances/_base/ephemeral_<GiB>_ext4  a flavor's ephemeral base (raw, mkfs'd)
    <host dir>/instances/_base/swap_<MiB>            a flavor's swap base (raw, mkswap'd)
    <host dir>/instances/<vm uuid>/disk              the VM's root disk
    <host dir>/instances/<vm uuid>/disk.local        its ephemeral disk (a qcow2 overlay)
    <host dir>/instances/<vm uuid>/disk.swap         its swap disk (a qcow2 overlay)
    <host dir>/instances/<vm uuid>/disk.info         {"<path of disk>": "<format>"}

Image ids and VM uuids are derived from their names (uuid5), so a scenario always lays out the
same paths and an operator recognises them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cowbench.scenario import VM, Host, Image

_NS = uuid.UUID("6b1f7c33-0d0e-4d8a-9a57-6f0c0b0f4c11")


def image_id(image: Image) -> str:
    return str(uuid.uuid5(_NS, f"image:{image.name}"))


def vm_uuid(vm: VM) -> str:
    return str(uuid.uuid5(_NS, f"vm:{vm.name}"))


def cache_name(image: Image) -> str:
    """Nova's ``get_cache_fname``: the SHA-1 hex digest of the image id."""
    return hashlib.sha1(image_id(image).encode()).hexdigest()


@dataclass(frozen=True)
class HostLayout:
    root: Path

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    @property
    def base_dir(self) -> Path:
        return self.instances / "_base"

    def cache_file(self, image: Image) -> Path:
        return self.base_dir / cache_name(image)

    def instance_dir(self, vm: VM) -> Path:
        return self.instances / vm_uuid(vm)

    def disk(self, vm: VM) -> Path:
        return self.instance_dir(vm) / "disk"


def host_root(work: Path, host: Host, run_id: str) -> Path:
    if host.storage_dir:
        return Path(host.storage_dir) / f"cowbench-{run_id}" / host.name
    return work / "hosts" / host.name


def glance_path(work: Path, image: Image) -> Path:
    """The image as uploaded: written here (synthetic), or the user's file copied here
    (``path``: ``real.world.backend.take_copy``), never the user's file itself."""
    return work / "glance" / f"{image.name}.{image.format}"
