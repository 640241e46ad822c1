"""Peak memory and time of ``validate`` and ``run --backend sim`` on the largest exact-mode
scenario the caps admit (issue 20): 100,000 VMs (the VM cap), each a qcow2 overlay just small
enough that the model's expected memory stays under the 8 GiB budget (``cowbench.bounds``),
beside the next size up, which ``validate`` refuses naming fleet mode.

Each command runs under ``/usr/bin/time -v``; the figures printed are its maximum resident set
size, wall time and CPU time. It needs about 8 GiB of free memory and a few minutes; nothing is
asserted (a shared machine's wall time varies, CPU time much less).

    .venv/bin/python benchmarks/largest_scenario.py [--size 416MiB] [--count 100000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def scenario(size: str, count: int) -> dict[str, object]:
    return {"name": "largest",
            "images": [{"name": "img", "virtual_size": size,
                        "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
            "vms": [{"name": "v", "image": "img", "count": count}]}


def timed(argv: list[str]) -> tuple[int, dict[str, str], str]:
    proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True,
                          check=False)
    keys = {"Maximum resident set size (kbytes)": "peak_kib", "User time (seconds)": "user_s",
            "System time (seconds)": "sys_s",
            "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall"}
    found = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"\s*(.+?): (.+)$", line)
        if m and m.group(1) in keys:
            found[keys[m.group(1)]] = m.group(2)
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
