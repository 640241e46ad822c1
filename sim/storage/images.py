"""The files a scenario's images become on a host, and the one every instance directory holds.

``glance_file`` is the image as uploaded (synthetic images are written with qemu-io, extent by
extent), ``cache_file`` the raw base Nova converts it into in ``_base`` (FACTS.md 1.1), and
``DISK_INFO_BYTES`` the ``disk.info`` beside each root disk. Shared by the plain-VM model, the
timeline and the fleet (``sim.world``, ``sim.fleet``).
"""

from __future__ import annotations

import numpy as np

from cowbench.scenario import Image

from .disk import BaseData, Qcow2Image, RawImage
from .fs import FS_BLOCK

DISK_INFO_BYTES = FS_BLOCK  # instances/<uuid>/disk.info: a tiny JSON file, one block


def base_data(image: Image) -> BaseData:
    assert image.virtual_size is not None
    return BaseData(image.virtual_size, image.data_extents())


def backing_data(image: Image, raw_base: bool) -> BaseData:
    """What an overlay finds in the base in ``_base``: a raw base (``raw_base``: Nova's
    ``force_raw_images``, or a raw image) is allocated everywhere, holes included; a qcow2
    base only in its own clusters (``glance_file``'s), so a first write over the rest zeroes
    its new cluster rather than copying it (``BaseData.allocated``). Measured (s8-qcow2base,
    2 MiB clusters over a 1 GiB qcow2 base with 108 MiB of data, 12 MiB of random 16 KiB
    writes): qemu-nbd wrote 114696704 bytes, where copying every new cluster is 838713856."""
    if raw_base or image.format == "raw":
        return base_data(image)
    g = glance_file(image)
    assert isinstance(g, Qcow2Image) and image.virtual_size is not None
    c = g.cluster_size
    runs = np.flatnonzero(np.diff(np.concatenate(([0], g.allocated.astype(np.int8), [0]))))
    return BaseData(image.virtual_size,
                    [(int(s) * c, int(e - s) * c) for s, e in zip(runs[::2], runs[1::2],
                                                                  strict=True)], raw_size=0)


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
