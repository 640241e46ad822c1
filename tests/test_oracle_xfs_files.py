"""Oracle for the files other than overlays that the real backend makes on a host's XFS: each
as the real backend makes it, on a loop-mounted XFS (``test_oracle_xfs``'s), against the model.

``qemu-img convert`` gives the raw base it makes in ``_base`` QEMU's 1 MiB extent size hint
as ``create`` gives an overlay (strace: ``FS_IOC_FSSETXATTR`` with ``fsx_extsize=1048576``,
``-t none`` and ``-t writeback`` alike), so a base whose data is scattered in pieces under
1 MiB holds a whole piece for each (measured: 72 KiB in three places of a 64 MiB base,
3,145,728 bytes, where the model said 73,728 as ext4). A file written by plain writes (the
download of a raw image, or of a qcow2 one kept without ``force_raw_images``) has no hint:
allocated to its size, as on ext4."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowbench.fsinfo import filesystem_of
from cowbench.storage_schema import Image
from cowbench.tools import RawLog
from real.world.backend import download, fetch_to_cache, write_synthetic
from sim.storage.images import cache_file

from .test_oracle_xfs import pytestmark as xfs_marks
from .test_oracle_xfs import xfs

KiB, MiB = 1 << 10, 1 << 20
pytestmark = xfs_marks
__all__ = ["xfs"]  # the module's loop-mounted XFS, a fixture here too

#: name -> (virtual size, data extents): the user's scattered base; pieces crossing 1 MiB
#: boundaries; a run longer than convert's 2 MiB requests, unaligned; 1 MiB-aligned runs
#: (exact as ext4 before); data at the very end of a size that is not whole MiB
BASES = {
    "scattered": (64 * MiB, [(0, 8 * KiB), (20 * MiB, 32 * KiB), (50 * MiB, 32 * KiB)]),
    "crossing": (16 * MiB, [(MiB - 4 * KiB, 8 * KiB), (3 * MiB - 64 * KiB, 2 * MiB + 128 * KiB),
                            (9 * MiB + 4 * KiB, 4 * KiB), (9 * MiB + 512 * KiB, 4 * KiB)]),
    "long": (32 * MiB, [(300 * KiB, 7 * MiB + 12 * KiB), (20 * MiB, 5 * MiB)]),
    "tail": (5 * MiB + 512 * KiB, [(5 * MiB + 256 * KiB, 256 * KiB)]),
}


def image(name: str, fmt: str = "qcow2") -> Image:
    size, data = BASES[name]
    return Image.model_validate({
        "name": name, "virtual_size": size, "format": fmt,
        "synthetic": {"data": [{"offset": o, "length": n} for o, n in data]}})


def made_base(where: Path, img: Image, force_raw: bool) -> Path:
    """The image written into Glance as the real backend writes it, then fetched into
    ``_base`` on ``where`` as it fetches it: converted (``force_raw``) or downloaded."""
    log = RawLog(where / "raw")
    glance = where / f"{img.name}.{img.format}"
    write_synthetic(img, glance, log)
    dest = where / "_base" / img.name
    if force_raw:
        fetch_to_cache(glance, img.format, dest, log)
    else:
        download(glance, dest)
    return dest


@pytest.mark.parametrize("name", list(BASES))
def test_a_raw_base_converted_on_xfs_is_allocated_in_hinted_pieces(xfs: Path,
                                                                   name: str) -> None:
    """Each base the convert makes on XFS is predicted byte for byte (before: its data's
    blocks, as on ext4: 73,728 where 3,145,728 was measured for the scattered one)."""
    where = xfs / f"base-{name}"
    path = made_base(where, image(name), True)
    real = path.stat().st_blocks * 512
    assert cache_file(image(name), True, "xfs").allocated_bytes == real
    if name == "scattered":  # the measured figures
        assert real == 3 * MiB
        assert cache_file(image(name), True, "ext4").allocated_bytes == 72 * KiB


def test_a_raw_base_converted_on_ext4_holds_its_first_block(tmp_path: Path) -> None:
    """Creating the raw file writes its first 4 KiB, allocated on ext4 too: 256 KiB of data
    at the end of a 5.5 MiB base is 266,240 bytes (before: 262,144 predicted)."""
    assert filesystem_of(tmp_path)[0] == "ext4"
    path = made_base(tmp_path, image("tail"), True)
    assert path.stat().st_blocks * 512 == 266_240
    assert cache_file(image("tail"), True, "ext4").allocated_bytes == 266_240


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_a_downloaded_base_on_xfs_has_no_hint_and_is_dense(xfs: Path, fmt: str) -> None:
    """A base downloaded as it is (a raw image; a qcow2 one without force_raw_images) is
    written by plain writes: no hint, every block of its size, as the model says for ext4."""
    where = xfs / f"dl-{fmt}"
    path = made_base(where, image("scattered", fmt), False)
    assert path.stat().st_blocks * 512 == cache_file(image("scattered", fmt), False,
                                                     "xfs").allocated_bytes
