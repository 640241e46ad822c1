"""Peak memory and time of ``validate`` and ``run --backend sim`` on the largest exact-mode
scenario the caps admit (issue 20): 100,000 VMs (the VM cap), each a qcow2 overlay just small
enough that the model's expected memory stays under the 8 GiB budget (``cowbench.bounds``),
beside the next size up, which ``validate`` refuses naming fleet mode.

Each command runs as a child of this script; the figures printed are its maximum resident set
size (getrusage of the children, one command at a time), wall time and CPU time. It needs
about 8 GiB of free memory and a few minutes; nothing is asserted (a shared machine's wall
time varies, CPU time much less).

    .venv/bin/python benchmarks/largest_scenario.py [--size 416MiB] [--count 100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def scenario(size: str, count: int) -> dict[str, object]:
    return {"name": "largest",
            "images": [{"name": "img", "virtual_size": size,
                        "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
            "vms": [{"name": "v", "image": "img", "count": count}]}


def timed(argv: list[str]) -> tuple[int, dict[str, str], str]:
    """Run ``argv``; its peak resident memory and CPU times from the kernel's accounting of
    this process's children (getrusage), its wall time from the clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = {"peak_kib": str(after.ru_maxrss),  # the largest child so far: run one at a time
             "user_s": f"{after.ru_utime - before.ru_utime:.2f}",
             "sys_s": f"{after.ru_stime - before.ru_stime:.2f}", "wall": f"{wall:.2f} s"}
    lines = [x for x in proc.stderr.splitlines() if x.startswith(("error:", "expected:"))]
    return proc.returncode, found, (proc.stdout + "\n".join(lines)).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="416MiB", help="each VM's disk (the base image's size)")
    ap.add_argument("--count", type=int, default=100_000)
    args = ap.parse_args()
    cowbench = [sys.executable, "-m", "cowbench"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "largest.yaml"
        path.write_text(yaml.safe_dump(scenario(args.size, args.count)))
        for label, argv in (("validate", [*cowbench, "validate", str(path)]),
                            ("run --backend sim", [*cowbench, "run", str(path), "--backend",
                                                   "sim", "--out", str(Path(tmp) / "run")])):
            code, f, said = timed(argv)
            peak = int(f.get("peak_kib", 0)) / 2**20
            print(f"{label}: exit {code}, peak {peak:.2f} GiB, wall {f.get('wall')}, "
                  f"CPU {float(f.get('user_s', 0)) + float(f.get('sys_s', 0)):.1f} s")
            print("  " + said.replace("\n", "\n  "))
            if code:
                break


if __name__ == "__main__":
    main()
