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

import random
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from cowbench.fsinfo import filesystem_of
from cowbench.storage_schema import Image
from cowbench.tools import RawLog
from real.storage.reflink import xfs_mount
from real.world.backend import download, fetch_to_cache, write_synthetic
from sim.storage.hostfile import block_intervals
from sim.storage.images import cache_file
from sim.storage.xfs import bmbt_blocks, local_base_bytes, xfs_buffered_unwritten

from .test_oracle_xfs import extent_bytes, xfs
from .test_oracle_xfs import pytestmark as xfs_marks

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
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


#: a Glance image whose data qemu-io writes in several of its 64 MiB pieces, one not aligned
GLANCE_CHUNKED = (256 * MiB, [(MiB + 4 * KiB, 130 * MiB), (200 * MiB, 4 * KiB)])


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
@pytest.mark.parametrize("fs", ["xfs", "ext4"])
def test_a_glance_image_is_allocated_as_its_stores_filesystem(
        tmp_path: Path, fs: str, fmt: str) -> None:
    """A synthetic image as the real backend writes it into its Glance store
    (``write_synthetic``: ``qemu-img create``, then qemu-io), in a run directory on a fresh
    XFS or on ext4, against the model's file (``glance_file``). On XFS, create's hint makes
    each data piece under 1 MiB a whole piece (before, as ext4's: the scattered raw image
    73,728 bytes predicted where 3,145,728 were measured, the qcow2 one 462,848 where
    1,249,280); on
    ext4 a raw image holds its first block whatever its data (the tail image: 266,240 bytes,
    262,144 predicted before).

    On XFS a raw image is exact, and a qcow2 one where its data is in pieces under 1 MiB;
    where a run of data spans several clusters with a partial one at either end,
    QEMU zeroes the new clusters first (``fallocate`` ZERO_RANGE: no backing file to copy
    from), which XFS allocates otherwise than a write (measured: 13,959,168 bytes where the
    model says 13,832,192, -0.91%), and a file of more than 12 extent records can take an
    extent-btree block where the model counts 21 records in the inode (crossing: -4,096).
    On ext4, within an extent-tree block: a qcow2 image's zeroed clusters split its extents,
    and a busy filesystem can split a long run, so its extent tree can take a block the
    model does not count (as the run tests allow ext4's files)."""
    from sim.storage.images import glance_file

    log = RawLog(tmp_path / "raw")  # not on the XFS: its files would take its free space
    with ExitStack() as stack:
        where = stack.enter_context(xfs_mount(tmp_path / "xfs-fs", 2 * GiB, None)) \
            if fs == "xfs" else tmp_path / "glance"
        where.mkdir(exist_ok=True)
        assert filesystem_of(where)[0] == fs
        wrong = {}
        for name, (size, data) in [*BASES.items(), ("chunked", GLANCE_CHUNKED)]:
            img = Image.model_validate({
                "name": name, "virtual_size": size, "format": fmt,
                "synthetic": {"data": [{"offset": o, "length": n} for o, n in data]}})
            path = where / f"{name}.{fmt}"
            write_synthetic(img, path, log)
            real = path.stat().st_blocks * 512
            model = glance_file(img, fs).allocated_bytes  # type: ignore[arg-type]
            exact = fs == "xfs" and (fmt == "raw" or name in ("scattered", "tail"))
            if exact and model != real or abs(model - real) > (
                    4 * KiB if fs == "ext4" else 0.01 * real):
                wrong[name] = (model, real)
            path.unlink()
    assert not wrong, wrong


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_a_downloaded_base_on_xfs_has_no_hint_and_is_dense(xfs: Path, fmt: str) -> None:
    """A base downloaded as it is (a raw image; a qcow2 one without force_raw_images) is
    written by plain writes: no hint, every block of its size, as the model says for ext4."""
    where = xfs / f"dl-{fmt}"
    path = made_base(where, image("scattered", fmt), False)
    assert path.stat().st_blocks * 512 == cache_file(image("scattered", fmt), False,
                                                     "xfs").allocated_bytes


def copied_by_rsync(src_dir: Path, mnt: Path, name: str, size_blocks: int,
                    blocks: list[int]) -> Path:
    """A file of ``size_blocks`` whose ``blocks`` are non-zero (made on ``src_dir``), copied
    onto the XFS as a cold migration copies it (``rsync --sparse``)."""
    src = src_dir / name
    with open(src, "wb") as f:
        f.truncate(size_blocks * 4096)
        for b in blocks:
            f.seek(b * 4096)
            f.write(b"\x07" * 4096)
    dest = mnt / f"rsync-{name}"
    subprocess.run(["rsync", "--sparse", str(src), str(dest)], check=True)
    return dest


def model_copy(size_blocks: int, blocks: list[int]) -> tuple[int, int]:
    """(allocated bytes, of them in extents) the model gives such a copy."""
    unwritten = xfs_buffered_unwritten(sorted(blocks), size_blocks)
    records = len(block_intervals([(b * 4096, (b + 1) * 4096) for b in blocks])) + \
        len(unwritten)
    data = (len(set(blocks)) + sum(e - s for s, e in unwritten)) * 4096
    return data + bmbt_blocks(records) * 4096, data


#: name -> (file size in blocks, its non-zero blocks): the overlay a cold migration copied
#: in tests/test_diskfs_placed.py (two 4 KiB writes); a dense run, then scattered blocks (the
#: preallocation doubling over the run); a base's scattered data (raw, 64 MiB: a run of 8
#: blocks begun under 64 KiB reserves nothing past itself, written at once); a file under
#: 64 KiB
COPIES = {
    "overlay": (128, [0, 16, 32, 48, 64, *range(80, 97), 112]),
    "dense-then-scattered": (4096, [*range(0, 700), 900, 1500, 1501, 2600, 4000]),
    "scattered-raw": (16384, [0, 1, 5120, *range(5121, 5128), 12800, 12801, 16383]),
    "small": (12, [0, 3, 11]),
}


@pytest.mark.parametrize("name", list(COPIES))
def test_an_rsync_copy_onto_xfs_keeps_its_speculative_preallocation_inside(
        tmp_path: Path, xfs: Path, name: str) -> None:
    """rsync --sparse writes only the non-zero blocks, but each write past the file's end
    reserves XFS's speculative preallocation beyond it, and what the file's end does not
    trim stays allocated unwritten (before: the non-zero blocks alone predicted, 98,304
    bytes of the overlay where 401,408 were measured)."""
    size, blocks = COPIES[name]
    real = copied_by_rsync(tmp_path, xfs, name, size, blocks).stat().st_blocks * 512
    assert model_copy(size, blocks)[0] == real
    if name == "overlay":
        assert real == 401_408


@pytest.mark.parametrize("seed", range(12))
def test_rsync_copies_of_random_layouts_onto_xfs(tmp_path: Path, xfs: Path, seed: int) -> None:
    """Random layouts of non-zero blocks (runs of 1 to 3,000 blocks in files of 64 to
    100,000): the blocks in extents exact, and the extent btree within one block of the
    model's count (measured: 40 of 40 exact in their extents; 36 exact in all, four a leaf
    apart, either way)."""
    rng = random.Random(seed)
    size = rng.choice([64, 300, 2000, 20000, 100000])
    chosen: set[int] = set()
    for _ in range(rng.randint(1, 40)):
        s, n = rng.randrange(size), rng.choice([1, 1, 2, 7, 16, 100, 600, 3000])
        chosen.update(range(s, min(size, s + n)))
    blocks = sorted(chosen)
    dest = copied_by_rsync(tmp_path, xfs, f"random-{seed}", size, blocks)
    alloc, data = model_copy(size, blocks)
    assert extent_bytes(dest) == data
    assert abs(dest.stat().st_blocks * 512 - alloc) <= 4096


@pytest.mark.parametrize("size", [512 * KiB, 64 * MiB, 1 << 30])
def test_a_swap_base_on_xfs_takes_the_hinted_piece_mkswap_writes_into(
        tmp_path: Path, xfs: Path, size: int) -> None:
    """Nova's swap base (``qemu-img create -f raw``, then mkswap, as the real backend makes
    it): mkswap's one page is a 1 MiB piece on XFS, within the file's size (before: 4,096
    predicted, as on ext4, where it is measured so too)."""
    for where, fs in ((xfs, "xfs"), (tmp_path, "ext4")):
        path = where / f"swap-{size}"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)],
                       check=True)
        subprocess.run(["mkswap", str(path)], check=True, capture_output=True)
        assert path.stat().st_blocks * 512 == local_base_bytes("swap", size, fs)
    assert local_base_bytes("swap", size, "xfs") == min(size, MiB)



@pytest.mark.parametrize("size", [1 << 30, 2 << 30, 20 << 30, 100 << 30])
def test_an_ephemeral_base_on_xfs_takes_the_pieces_mkfs_writes_into(
        xfs: Path, size: int) -> None:
    """Nova's ephemeral base as the real backend makes it (``qemu-img create -f raw``, then
    ``mkfs.ext4 -F -L ephemeral0``) on XFS: each of mkfs's scattered writes and its
    fallocated journal take the 1 MiB pieces they fall in (before: ext4's figure, 1 GiB
    34,230,272 bytes where 40,898,560 are measured; 100 GiB 542,240,768 where 610,275,328)."""
    path = xfs / f"ephemeral-{size}"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), str(size)], check=True)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "ephemeral0", str(path)], check=True)
        real = path.stat().st_blocks * 512
    finally:
        path.unlink()
    assert local_base_bytes("ephemeral", size, "xfs") == real
    if size == 1 << 30:
        assert real == 40_898_560
