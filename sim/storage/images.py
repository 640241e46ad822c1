"""The files a scenario's images become on a host, and the one every instance directory holds.

``glance_file`` is the image as uploaded (synthetic images are written with qemu-io, extent by
extent, into the file ``qemu-img create`` made), ``cache_file`` the base Nova makes of it in
``_base`` (FACTS.md 1.1), ``fetch_bytes`` what that costs the network, and ``DISK_INFO_BYTES``
the ``disk.info`` beside each root disk. Shared by the plain-VM model, the timeline and the
fleet (``sim.world``, ``sim.fleet``): one rule for all three.

How Nova fills ``_base`` (nova/virt/images.py ``fetch_to_raw``, nova/image/glance.py
``download``/``_verify_and_write``, current master; no Nova release has a sparse download):
the Glance file is streamed into ``<base>.part`` chunk by chunk, every byte written, so the
``.part`` is dense and the whole file crosses the network. A raw image is then renamed into
place as it is: the base is allocated to its virtual size, zeros included. A qcow2 image is
converted (``qemu-img convert -O raw``, which leaves zero runs as holes) under
``force_raw_images``, or renamed as it is (dense: allocated to its file size) without it.
"""

from __future__ import annotations

import numpy as np

from cowbench.scenario import Image

from .disk import BaseData, Qcow2Image, RawImage
from .fs import FS_BLOCK
from .xfs import XFS_EXTSIZE_HINT, HostFs

CONVERT_CHUNK = 2 << 20  # qemu-img convert copies in requests of up to 2 MiB
#: qemu-io writes a synthetic image's data extents in pieces of up to 64 MiB, one ``write``
#: command each (``real.world.backend.WRITE_CHUNK``)
QEMU_IO_CHUNK = 64 << 20
#: what creating a raw file writes: its first block (file-posix.c ``allocate_first_block``)
RAW_CREATE_WRITES = FS_BLOCK

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
    writes): qemu-nbd wrote 114696704 bytes, where copying every new cluster is 838713856.

    A raw image's base is its dense download (module docstring): it holds every byte on disk
    (``dense_size``), so reading its zeros costs what reading data does; a qcow2 image
    converted to raw keeps its holes."""
    if image.format == "raw":
        assert image.virtual_size is not None
        return BaseData(image.virtual_size, image.data_extents(),
                        dense_size=image.virtual_size)
    if raw_base:
        return base_data(image)
    g = glance_file(image)
    assert isinstance(g, Qcow2Image) and image.virtual_size is not None
    c = g.cluster_size
    runs = np.flatnonzero(np.diff(np.concatenate(([0], g.allocated.astype(np.int8), [0]))))
    return BaseData(image.virtual_size,
                    [(int(s) * c, int(e - s) * c) for s, e in zip(runs[::2], runs[1::2],
                                                                  strict=True)], raw_size=0)


def cache_file(image: Image, force_raw: bool, host_fs: HostFs = "ext4") -> RawImage:
    """The base in ``_base`` (``force_raw``: Nova's ``force_raw_images``; module docstring),
    on a host whose files are on ``host_fs``: a qcow2 image converted to raw keeps its zero
    runs as holes (``qemu-img convert -O raw``: :func:`converted_raw`); anything renamed from
    the download as it is -- a raw image, or a qcow2 one kept without ``force_raw`` -- is a
    file written byte for byte, allocated to its size (plus the filesystem's extent-tree
    blocks, ``fs.extent_tree_bytes``), on XFS too: plain writes give it no extent size hint
    (measured, tests/test_oracle_xfs_files.py)."""
    assert image.virtual_size is not None
    if image.format != "raw" and force_raw:
        return converted_raw(base_data(image), host_fs)
    size = glance_file(image).file_bytes
    dense = RawImage(size, host_fs=host_fs)  # the bytes' layout, not their meaning: only its
    # allocation counts
    dense.blocks[:] = True
    return dense


def converted_raw(data: BaseData, host_fs: HostFs, chunk: int = CONVERT_CHUNK) -> RawImage:
    """What ``qemu-img convert -O raw`` of an image holding ``data`` writes into a new file:
    each data run in requests of up to ``chunk`` bytes, in order, zero runs left holes (a
    synthetic raw image is the same file: ``qemu-img create -f raw``, then qemu-io's writes of
    up to :data:`QEMU_IO_CHUNK`).
    On XFS the file has QEMU's 1 MiB extent size hint (convert creates it as ``create``
    does, block/file-posix.c ``raw_co_create``; strace: ``FS_IOC_FSSETXATTR``,
    ``fsx_extsize=1048576``), so each data run under 1 MiB takes a whole 1 MiB piece: a
    64 MiB base with 72 KiB of data in three places holds 3 MiB (measured, -t none and -t
    writeback alike), where ext4 holds 72 KiB. Creating the file writes its first 4 KiB
    (zeros: ``raw_co_create``'s ``allocate_first_block``, strace), allocated on any
    filesystem, whatever the image holds there: on XFS a whole piece at 0 (measured: 256 KiB
    of data at the end of a 5.5 MiB base, 1.5 MiB allocated)."""
    img = RawImage(data.size, host_fs=host_fs,
                   xfs_hint=XFS_EXTSIZE_HINT if host_fs == "xfs" else 0)
    img.write(0, min(RAW_CREATE_WRITES, data.size))
    for s, e in zip(data._starts.tolist(), data._ends.tolist(), strict=True):
        for off in range(s, e, chunk):
            img.write(off, min(chunk, e - off))
    img.data = data
    return img


def fetch_bytes(image: Image) -> int:
    """Bytes fetched from Glance to make the image's base: the whole Glance file (its size,
    holes and a qcow2 file's unwritten table tails included), whatever ``_base`` keeps."""
    return glance_file(image).file_bytes


def glance_file(image: Image, fs: HostFs = "ext4") -> Qcow2Image | RawImage:
    """The image as uploaded into a Glance store on ``fs`` (``cowbench.diskfs``: the run
    directory's): ``qemu-img create`` makes the file (on XFS with QEMU's 1 MiB extent size
    hint), then qemu-io writes each data extent in increasing order, in pieces of up to
    :data:`QEMU_IO_CHUNK`, allocated as the model allocates qemu-nbd's (qemu-io's default
    cache, writeback, left the same file as ``-t none``, measured on XFS). Measured: a 1 GiB
    qcow2 image holding 64 KiB, 32 KiB and 4 KiB in three places, 1,249,280 bytes on XFS,
    where ext4's allocation is 528,384 and an extent-tree block. A run of data over several
    clusters, partial at an end, is zeroed by ``fallocate`` first (no backing file), which XFS
    allocates in other pieces than the model's: within 1% (tests/test_oracle_xfs_files.py).
    A raw one is :func:`converted_raw`'s file, its first 4 KiB allocated by create on any
    filesystem (measured on ext4: 4 KiB before 64 KiB of data at 1 MiB)."""
    assert image.virtual_size is not None
    if image.format == "raw":
        return converted_raw(base_data(image), fs, QEMU_IO_CHUNK)
    img = Qcow2Image(image.virtual_size, host_fs=fs)
    for off, length in image.data_extents():
        for start in range(off, off + length, QEMU_IO_CHUNK):
            img.write(start, min(QEMU_IO_CHUNK, off + length - start))
    return img
