"""The files a scenario's images become on a host, and the one every instance directory holds.

``glance_file`` is the image as uploaded (synthetic images are written with qemu-io, extent by
extent), ``cache_file`` the raw base Nova converts it into in ``_base`` (FACTS.md 1.1), and
``DISK_INFO_BYTES`` the ``disk.info`` beside each root disk. Shared by the plain-VM model, the
timeline and the fleet (``sim.world``, ``sim.fleet``).
"""

from __future__ import annotations

from cowbench.scenario import Image

from .disk import BaseData, Qcow2Image, RawImage
from .fs import FS_BLOCK

DISK_INFO_BYTES = FS_BLOCK  # instances/<uuid>/disk.info: a tiny JSON file, one block


def base_data(image: Image) -> BaseData:
    assert image.virtual_size is not None
    return BaseData(image.virtual_size, image.data_extents())


def cache_file(image: Image) -> RawImage:
    """The raw base in ``_base``: ``qemu-img convert -O raw`` keeps zero runs as holes."""
    assert image.virtual_size is not None
    return RawImage(image.virtual_size, base_data(image))


def glance_file(image: Image) -> Qcow2Image | RawImage:
    """The image as uploaded (synthetic images are written with qemu-io, extent by extent)."""
    assert image.virtual_size is not None
    if image.format == "raw":
        return RawImage(image.virtual_size, base_data(image))
    img = Qcow2Image(image.virtual_size)
    for off, length in image.data_extents():
        img.write(off, length)
    return img
