"""Oracle for the strategies: the same write trace through the real disk (built by
real/storage/strategies.py, written with qemu-io) and the model's (sim/storage/strategies.py).

Exact: data_clusters of the top image, file_bytes of all the VM's files, and their allocated
data blocks (ext4's extent-tree blocks taken out of both sides, as in tests/test_oracle.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from cowbench.scenario import Strategy
from cowbench.tools import qemu_img_check
from real.storage.strategies import make_root_disk, vm_files
from sim.storage.disk import BaseData, RawImage
from sim.storage.strategies import ChainDisk, root_disk

from .conftest import needs_tools
from .test_oracle import (  # noqa: F401 (base is a fixture)
    BASE_DATA,
    SIZE,
    base,
    settled_stat,
    tree_bytes_of,
    writes_st,
)

pytestmark = [pytest.mark.real, pytest.mark.exact, needs_tools]  # exact: qemu-io, qemu-img, stat
ROOT = 2 * SIZE  # the flavor is larger than the image: the resize matters

STRATEGIES = [
    {"kind": "full_copy"},
    {"kind": "full_copy", "sparse": False},
    {"kind": "resized_base", "cluster_size": 4096},
    {"kind": "snapshot_chain", "chain_depth": 3},
    {"kind": "snapshot_chain", "chain_depth": 2, "cluster_size": 131072, "extended_l2": True},
    {"kind": "internal_snapshot"},
    {"kind": "internal_snapshot", "cluster_size": 4096},
]


def model_files(disk: object) -> list:
    return [*disk.lower, disk.top] if isinstance(disk, ChainDisk) else [disk]


@pytest.mark.parametrize("spec", STRATEGIES, ids=lambda s: "-".join(map(str, s.values())))
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=writes_st)
def test_strategy_equals_real(base: Path, tmp_path: Path, spec: dict,  # noqa: F811
                              raw: list[tuple[int, int]]) -> None:
    st = Strategy(**spec)
    writes = [(s * 1024, min(n, ROOT - s * 1024)) for s, n in raw]  # over the larger disk
    d = tmp_path / "vm"
    if d.exists():
        for f in d.iterdir():
            f.unlink()
    d.mkdir(exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    cached = cache / "base.raw"
    if not cached.exists():
        subprocess.run(["cp", "--sparse=always", str(base), str(cached)], check=True)
    for old in cache.glob("base.raw_*"):
        old.unlink()
    fmt = make_root_disk(st, cached, d / "disk", ROOT, None, "vm")
    if writes:
        cmds = []
        for off, n in writes:
            cmds += ["-c", f"write -q -P 0x11 {off} {n}"]
        subprocess.run(["qemu-io", "-t", "none", "-f", fmt, *cmds, str(d / "disk")], check=True)
    model = root_disk(ROOT, st, BaseData(SIZE, BASE_DATA))
    for off, n in writes:
        model.write(off, n)
    files = vm_files(d / "disk")
    stats = [settled_stat(f) for f in files]
    assert model.file_bytes == sum(s.st_size for s in stats)
    real_data = sum(s.st_blocks * 512 - tree_bytes_of(f) for s, f in zip(stats, files,
                                                                         strict=True))
    assert sum(m.allocated_data_bytes for m in model_files(model)) == real_data
    if not isinstance(model, RawImage):
        top = model.top if isinstance(model, ChainDisk) else model
        assert top.data_clusters == qemu_img_check(d / "disk").get("allocated-clusters", 0)
