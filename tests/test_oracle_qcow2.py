"""Oracle for the qcow2 knobs: extended_l2, preallocation and refcount_bits against QEMU.

Same method as tests/test_oracle.py (Hypothesis traces, qemu-io -t none, extent-tree blocks
taken out of both sides): ``data_clusters`` and ``file_bytes`` exact, allocated data blocks
exact.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from cowbench.scenario import Strategy
from cowbench.tools import qemu_img_check
from real.storage.strategies import overlay_options
from sim.storage.disk import BaseData
from sim.storage.strategies import overlay

from .conftest import needs_tools
from .test_oracle import (  # noqa: F401 (base is a fixture)
    BASE_DATA,
    SIZE,
    base,
    model_tree_bytes,
    settled_stat,
    tree_bytes_of,
    writes_st,
)

pytestmark = [pytest.mark.real, pytest.mark.exact, needs_tools]  # exact: qemu-io, qemu-img, stat
KiB, MiB = 1 << 10, 1 << 20


def apply_real(st: Strategy, base_path: Path, path: Path, writes: list[tuple[int, int]]) -> None:
    if path.exists():
        path.unlink()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    overlay_options(st, base_path), str(path), str(SIZE)], check=True)
    if writes:
        cmds = []
        for off, n in writes:
            cmds += ["-c", f"write -q -P 0x11 {off} {n}"]
        subprocess.run(["qemu-io", "-t", "none", "-f", "qcow2", *cmds, str(path)], check=True)


def check_equal(st: Strategy, base_path: Path, path: Path, raw: list[tuple[int, int]]) -> None:
    writes = [(s * 512, min(n, SIZE - s * 512)) for s, n in raw]
    apply_real(st, base_path, path, writes)
    model = overlay(SIZE, st, BaseData(SIZE, BASE_DATA))
    for off, n in writes:
        model.write(off, n)
    real = settled_stat(path)
    assert model.data_clusters == qemu_img_check(path).get("allocated-clusters", 0)
    assert model.file_bytes == real.st_size
    real_data = real.st_blocks * 512 - tree_bytes_of(path)
    assert model.allocated_bytes - model_tree_bytes(model) == real_data


EXT_CASES = [(16 * KiB, "off"), (64 * KiB, "off"), (128 * KiB, "off"), (2 * MiB, "off"),
             (64 * KiB, "metadata"), (128 * KiB, "falloc"), (256 * KiB, "full")]


@pytest.mark.parametrize("cluster,prealloc", EXT_CASES)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=writes_st)
def test_extended_l2_equals_qemu(base: Path, tmp_path: Path, cluster: int,  # noqa: F811
                                 prealloc: str, raw: list[tuple[int, int]]) -> None:
    st = Strategy(cluster_size=cluster, extended_l2=True, preallocation=prealloc)  # type: ignore[arg-type]
    check_equal(st, base, tmp_path / "ov.qcow2", raw)


@pytest.mark.parametrize("cluster,bits", [(512, 1), (512, 64), (4 * KiB, 2), (64 * KiB, 64)])
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=writes_st)
def test_refcount_bits_equal_qemu(base: Path, tmp_path: Path, cluster: int,  # noqa: F811
                                  bits: int, raw: list[tuple[int, int]]) -> None:
    check_equal(Strategy(cluster_size=cluster, refcount_bits=bits), base,
                tmp_path / "ov.qcow2", raw)
