"""The fleet's ephemeral base against mkfs: Nova makes ``_base/ephemeral_<GiB>_<fs>`` with
``qemu-img create -f raw`` and ``mkfs -t ext4 -F -L ephemeral0`` (nova/privsep/fs.py), and the
model counts what mke2fs writes (sim/storage/fs.py). Until 2026-12-05 it scaled the 1 GiB base
(34,230,272 bytes, FACTS.md E16) with the size: a 20 GiB base was counted 684 MB where mkfs
leaves 139 MB (+393%), since the journal, most of what is written, grows by steps (32 MiB at
1 GiB, 64 MiB from 2 to 15 GiB, 128 MiB at 20 GiB, 512 MiB at 80 GiB).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sim.storage.fs import FS_BLOCK, ext4_journal_blocks, ext4_mkfs_allocated_bytes

from .conftest import needs_tools

GiB = 1 << 30


def test_the_journal_grows_by_mke2fs_steps() -> None:
    assert [ext4_journal_blocks(g * GiB // FS_BLOCK) * FS_BLOCK >> 20
            for g in (1, 2, 15, 16, 20, 40, 80, 200)] == [32, 64, 64, 128, 128, 256, 512, 1024]


def test_a_base_under_mke2fs_small_type_is_refused() -> None:
    with pytest.raises(ValueError, match="512 MiB"):
        ext4_mkfs_allocated_bytes(256 << 20)


def _on_ext4(path: Path) -> bool:
    found = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    return found == "ext4"


@pytest.mark.real
@pytest.mark.exact
@needs_tools
@pytest.mark.parametrize("gib", [1, 3, 10, 20, 80])
def test_the_model_counts_what_mkfs_leaves(tmp_path: Path, gib: int) -> None:
    """Within one extent-tree block and 0.005%: how many extents the file gets, and so whether
    it needs a second leaf, depends on the host's free space (tests/test_oracle.py)."""
    if not _on_ext4(tmp_path):
        pytest.skip("the model is of an ext4 host; the temporary directory is not on ext4")
    base = tmp_path / "ephemeral"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), str(gib * GiB)],
                   check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "ephemeral0", str(base)], check=True,
                   stdin=subprocess.DEVNULL)
    measured = os.stat(base).st_blocks * 512
    predicted = ext4_mkfs_allocated_bytes(gib * GiB)
    assert abs(predicted - measured) <= FS_BLOCK + measured * 5e-5, (predicted, measured)
