"""Oracle for discard: mixed write/discard traces through qemu-io (``-d unmap`` and
``-d ignore``) against the model (whole clusters freed, punched and reused; zero clusters over
the backing file), for plain and extended-L2 overlays.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    extent_lengths,
    model_tree_bytes,
    settled_stat,
)

pytestmark = [pytest.mark.real, pytest.mark.exact, needs_tools]  # exact: qemu-io, qemu-img, stat
KiB, MiB = 1 << 10, 1 << 20

ops_st = st.lists(
    st.tuples(st.sampled_from(["write", "write", "discard"]),
              st.integers(0, SIZE // (4 * KiB) - 1),
              st.sampled_from([4 * KiB, 64 * KiB, 192 * KiB, MiB, 4 * MiB])),
    min_size=1, max_size=30)

CASES = [(4 * KiB, False, "unmap"), (64 * KiB, False, "unmap"), (64 * KiB, False, "ignore"),
         (2 * MiB, False, "unmap"), (128 * KiB, True, "unmap")]


@pytest.mark.parametrize("cluster,ext,mode", CASES)
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=ops_st)
def test_discard_equals_qemu(base: Path, tmp_path: Path, cluster: int, ext: bool,  # noqa: F811
                             mode: str, raw: list[tuple[str, int, int]]) -> None:
    ops = [(k, b * 4 * KiB, min(n, SIZE - b * 4 * KiB)) for k, b, n in raw]
    strat = Strategy(cluster_size=cluster, extended_l2=ext)
    path = tmp_path / "ov.qcow2"
    path.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    overlay_options(strat, base), str(path), str(SIZE)], check=True)
    cmds = []
    for k, off, n in ops:
        cmds += ["-c", f"{k} -q {off} {n}" if k == "discard" else f"write -q -P 7 {off} {n}"]
    subprocess.run(["qemu-io", "-d", mode, "-t", "none", "-f", "qcow2", *cmds, str(path)],
                   check=True)
    model = overlay(SIZE, strat, BaseData(SIZE, BASE_DATA))
    for k, off, n in ops:
        if k == "write":
            model.write(off, n)
        elif mode == "unmap":
            model.discard(off, n)
    real = settled_stat(path)
    assert model.data_clusters == qemu_img_check(path).get("allocated-clusters", 0)
    assert model.file_bytes == real.st_size
    # after a punch ext4 keeps its tree's depth, which FIEMAP does not show: compare the data
    # blocks (FIEMAP's extents) with the model's, without either side's tree
    real_data = sum(extent_lengths(path)) * 4096
    assert model.allocated_bytes - model_tree_bytes(model) == real_data


zops_st = st.lists(
    st.tuples(st.sampled_from(["data", "zero", "zero"]),
              st.integers(0, SIZE // (4 * KiB) - 1),
              st.sampled_from([4 * KiB, 64 * KiB, 192 * KiB, MiB])),
    min_size=1, max_size=30)


@pytest.mark.parametrize("cluster,mode", [(64 * KiB, "on"), (64 * KiB, "unmap"),
                                          (4 * KiB, "unmap"), (MiB, "on")])
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=zops_st)
def test_detect_zeroes_equals_qemu(base: Path, tmp_path: Path, cluster: int,  # noqa: F811
                                   mode: str, raw: list[tuple[str, int, int]]) -> None:
    """All-zero writes under detect-zeroes (qemu-io --image-opts ...,detect-zeroes=MODE)."""
    ops = [(k, b * 4 * KiB, min(n, SIZE - b * 4 * KiB)) for k, b, n in raw]
    strat = Strategy(cluster_size=cluster, discard="unmap", detect_zeroes=mode)  # type: ignore[arg-type]
    path = tmp_path / "ov.qcow2"
    path.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    overlay_options(strat, base), str(path), str(SIZE)], check=True)
    cmds = []
    for k, off, n in ops:
        cmds += ["-c", f"write -q -P {7 if k == 'data' else 0} {off} {n}"]
    opts = f"driver=qcow2,file.filename={path},detect-zeroes={mode},discard=unmap"
    subprocess.run(["qemu-io", "-t", "none", "--image-opts", opts, *cmds], check=True)
    model = overlay(SIZE, strat, BaseData(SIZE, BASE_DATA))
    for k, off, n in ops:
        if k == "data":
            model.write(off, n)
        else:
            model.write_zeroes(off, n, unmap=mode == "unmap")
    real = settled_stat(path)
    assert model.data_clusters == qemu_img_check(path).get("allocated-clusters", 0)
    assert model.file_bytes == real.st_size
    real_data = sum(extent_lengths(path)) * 4096  # punches: see test_discard_equals_qemu
    assert model.allocated_bytes - model_tree_bytes(model) == real_data
