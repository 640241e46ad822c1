"""Speed of the exact allocation engine: 4 KiB guest write offsets applied per second, one core.

Target (issue #3): at least 10 million offsets per second on one core. The engine is one
thread (numpy), so besides wall time the figure is also given per CPU-second of this process,
which a machine shared with other work does not distort. The workload is uniform random
4 KiB writes (``rw=randwrite bs=4k``) over a 64 GiB, 64 KiB-cluster overlay of a raw base that
holds 32 GiB of data, applied in batches of ``--batch`` offsets with
``sim.storage.engine.apply_writes`` (COW reads, metadata flushes and the allocation map all
included). Offsets are generated before the clock starts. Each repeat uses a fresh image; the
figure is offsets / wall time, with the spread over repeats. For contrast it also times the per-I/O
path on a small sample.

    .venv/bin/python benchmarks/engine_speed.py [--offsets 10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from sim.storage.disk import BaseData, Qcow2Image
from sim.storage.engine import apply_writes

GiB = 1 << 30


def make_image(cluster: int) -> Qcow2Image:
    return Qcow2Image(64 * GiB, cluster, backing=BaseData(64 * GiB, [(0, 32 * GiB)]))


def run_once(offsets: np.ndarray, lengths: np.ndarray, batch: int,
             cluster: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to apply every offset."""
    img = make_image(cluster)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, offsets.shape[0], batch):
        apply_writes(img, offsets[i:i + batch], lengths[i:i + batch])
    img.flush()
    return time.perf_counter() - t0, time.process_time() - c0


def per_io_rate(offsets: np.ndarray, cluster: int, n: int = 200_000) -> float:
    img = make_image(cluster)
    t0 = time.perf_counter()
    for off in offsets[:n].tolist():
        img.write(off, 4096)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offsets", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cluster", type=int, default=65536)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    offsets = rng.integers(0, 64 * GiB // 4096, size=args.offsets, dtype=np.int64) * 4096
    lengths = np.full(args.offsets, 4096, dtype=np.int64)
    run_once(offsets[: args.batch], lengths[: args.batch], args.batch, args.cluster)  # warm-up
    runs = [run_once(offsets, lengths, args.batch, args.cluster) for _ in range(args.repeat)]
    rates = [args.offsets / wall for wall, _ in runs]
    cpu_rates = [args.offsets / cpu for _, cpu in runs]
    print(f"vectorised engine: {statistics.median(rates) / 1e6:.2f} M offsets/s median wall "
          f"(min {min(rates) / 1e6:.2f}, max {max(rates) / 1e6:.2f}); "
          f"{statistics.median(cpu_rates) / 1e6:.2f} M offsets per CPU-second median "
          f"(min {min(cpu_rates) / 1e6:.2f}, max {max(cpu_rates) / 1e6:.2f}); {args.repeat} "
          f"repeats of {args.offsets:,} 4 KiB writes, cluster {args.cluster} B, "
          f"batch {args.batch:,}; load average {os.getloadavg()[0]:.1f}")
    slow = per_io_rate(offsets, args.cluster)
    print(f"per-I/O path:      {slow / 1e6:.3f} M offsets/s "
          f"(vectorised / per-I/O = {statistics.median(rates) / slow:.0f}x)")


if __name__ == "__main__":
    main()
