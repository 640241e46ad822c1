"""The model's own offset generator against fio's null engine, as a grid (issue 19, point 3;
tests/test_offset_grid.py asserts within 1%).

Per case (distribution and parameter, or random generator), block size and qcow2 cluster
layout: data clusters from fio 3.33's null-engine stream and from the model's stream, both
through the same qcow2 model, and the error; then the worst |error| per distribution.

    .venv/bin/python benchmarks/offset_grid.py
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_offset_grid import BLOCK_SIZES, CASES, DISK, IOS, case_cells  # noqa: E402


def main() -> None:
    t0 = time.perf_counter()
    print(f"{IOS} random writes per case over {DISK >> 30} GiB; data clusters fio / model")
    print(f"{'case':44s} {'bs':>4s} {'cluster':>13s} {'fio':>6s} {'model':>6s} {'error':>7s}")
    worst: dict[str, float] = defaultdict(float)
    for family, opts in CASES:
        for bs in BLOCK_SIZES:
            for c in case_cells(family, opts, bs):
                layout = f"{c.cluster >> 10}K" + ("+ext_l2" if c.extended_l2 else "")
                print(f"{c.label:44s} {bs >> 10:>3d}K {layout:>13s} {c.fio:6d} {c.model:6d} "
                      f"{c.error:+7.2%}")
                worst[family] = max(worst[family], abs(c.error))
    print("worst |error| per distribution:")
    for family, err in worst.items():
        print(f"  {family:10s} {err:.2%}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
