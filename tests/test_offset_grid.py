"""The model's own offset generator against fio's null engine, over a grid (issue 19, point 3).

Each case (a distribution and its parameter, or a random generator) runs at bs 4 KiB and
64 KiB: fio 3.33 records its stream with ``ioengine=null`` under the job name the real backend
uses (the VM's name), and the model generates its own (sim/workload/fio.py). Both streams go
through the same qcow2 model (64 KiB clusters, 128 KiB with extended L2, 2 MiB), and the
data clusters must agree within 1% in every cell. ``benchmarks/offset_grid.py`` prints the
grid. The model follows fio's generators bit for bit, so the streams are equal where fio
3.33's own arithmetic is reproduced; a stream equal to fio's gives fio's count by construction
and is not run through the disk model twice.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cowbench.iolog import parse_iolog
from cowbench.scenario import Strategy, Workload
from sim.storage.strategies import overlay
from sim.workload.fio import io_stream, job_seed

from .conftest import needs_tools

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
DISK = 2 * GiB
IOS = 4096
NAME = "vm-1"
CASES: list[tuple[str, dict[str, Any]]] = [
    ("uniform", {}),
    ("uniform", {"norandommap": True}),
    ("uniform", {"random_generator": "lfsr"}),
    ("uniform", {"random_generator": "tausworthe64"}),
    ("zipf", {"random_distribution": "zipf:0.8"}),
    ("zipf", {"random_distribution": "zipf:1.2"}),
    ("pareto", {"random_distribution": "pareto:0.5"}),
    ("pareto", {"random_distribution": "pareto:0.9"}),
    ("normal", {"random_distribution": "normal"}),
    ("normal", {"random_distribution": "normal:5"}),
    ("normal", {"random_distribution": "normal:30"}),
    ("zoned", {"random_distribution": "zoned:60/10:30/20:10/70"}),
    ("zoned", {"random_distribution": "zoned_abs:50/256M:50/1792M"}),
]
BLOCK_SIZES = (4 * KiB, 64 * KiB)
CLUSTERS = ((64 * KiB, False), (128 * KiB, True), (2 * MiB, False))


@dataclass(frozen=True)
class Cell:
    family: str
    label: str
    bs: int
    cluster: int
    extended_l2: bool
    fio: int
    model: int

    @property
    def error(self) -> float:
        return (self.model - self.fio) / self.fio


def workload(opts: dict[str, Any], bs: int) -> Workload:
    return Workload(rw="randwrite", bs=bs, io_size=IOS * bs, **opts)


def fio_offsets(wl: Workload, tmp: Path) -> np.ndarray:
    """The offsets fio's null engine issues for ``wl`` on a ``DISK``-byte region."""
    log = tmp / "issued.iolog"
    argv = ["fio", f"--name={NAME}", "--ioengine=null", f"--size={DISK}", f"--bs={wl.bs}",
            f"--rw={wl.rw}", f"--io_size={wl.io_size}", f"--write_iolog={log}",
            f"--random_generator={wl.random_generator}", "--output-format=json",
            f"--output={tmp / 'out.json'}"]
    if wl.norandommap:
        argv.append("--norandommap=1")
    if wl.random_distribution != "random":
        argv.append(f"--random_distribution={wl.random_distribution}")
    subprocess.run(argv, check=True, cwd=tmp, capture_output=True)
    return next(iter(parse_iolog(log.read_text()).values())).offsets


def model_offsets(wl: Workload) -> np.ndarray:
    chunks = list(io_stream(wl, DISK, job_seed(wl, 0, 0, 0, NAME)))
    return np.concatenate([c.offsets for c in chunks])


def data_clusters(offsets: np.ndarray, bs: int, cluster: int, extended_l2: bool) -> int:
    disk = overlay(DISK, Strategy(kind="qcow2_overlay", cluster_size=cluster,
                                  extended_l2=extended_l2), None)
    for off in offsets.tolist():
        disk.write(off, bs)
    return disk.data_clusters


def case_cells(family: str, opts: dict[str, Any], bs: int) -> list[Cell]:
    wl = workload(opts, bs)
    with tempfile.TemporaryDirectory() as tmp:
        theirs = fio_offsets(wl, Path(tmp))
    ours = model_offsets(wl)
    same = ours.shape == theirs.shape and bool((ours == theirs).all())
    label = ",".join(f"{k}={v}" for k, v in opts.items()) or "random"
    cells = []
    for cluster, ext in CLUSTERS:
        fio_n = data_clusters(theirs, bs, cluster, ext)
        model_n = fio_n if same else data_clusters(ours, bs, cluster, ext)
        cells.append(Cell(family, label, bs, cluster, ext, fio_n, model_n))
    return cells


def grid() -> list[Cell]:
    return [c for family, opts in CASES for bs in BLOCK_SIZES
            for c in case_cells(family, opts, bs)]


@pytest.mark.real
@needs_tools
def test_generator_within_one_percent_of_fio_over_the_grid():
    cells = grid()
    assert len(cells) == len(CASES) * len(BLOCK_SIZES) * len(CLUSTERS)
    bad = [c for c in cells if abs(c.error) > 0.01]
    assert not bad, bad
    # the grid is not degenerate: the distributions really differ in what they touch
    at_64k = {c.label: c.fio for c in cells if c.cluster == 64 * KiB and c.bs == 4 * KiB}
    assert at_64k["random_distribution=zipf:1.2"] < 0.5 * at_64k["random"]


#: Specs fio fills in or reads with a default or a center (cowbench.randdist.parse): the model's
#: stream is fio's, I/O for I/O.
FILLED_IN = ("zoned:50/5:30/15:20/", "zoned:40/:30/:30/:", "zoned:50/0:50/50", "zoned:100",
             "zoned:100/150", "zoned_abs:50/1m:50", "zipf", "zipf:1.2:0.3", "pareto:0.5:0.6",
             "normal:5:0.2", "normal:5:0.7")


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("spec", FILLED_IN)
def test_filled_in_distributions_are_fios_stream(tmp_path: Path, spec: str) -> None:
    wl = workload({"random_distribution": spec}, 4 * KiB)
    theirs = fio_offsets(wl, tmp_path)
    assert np.array_equal(model_offsets(wl), theirs)
