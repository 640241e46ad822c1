"""What the harness costs beside the bare tools (issue 15): the quickstart's real backend run
by cowbench, and the same steps done by hand with the bare tools, side by side.

``benchmarks/bare-quickstart.sh`` does what ``cowbench run scenarios/quickstart.yaml --backend
real`` does with qemu-img, qemu-io, qemu-nbd, fio and ``qemu-img check``, minus the bookkeeping
(raw/ logs, records, integrity checksums, the model's space prediction). Each round runs the bare
script, then cowbench (``--uncalibrated`` where the flag exists), each in a fresh directory, and
times both by wall clock and by CPU time (user + system of every process each side started,
the bare script's daemonised qemu-nbd servers included: this process is their subreaper and
reaps them); alternating keeps slow drifts of a shared machine out of the ratio. CPU time is
the less load-sensitive figure on a busy machine. Prints every wall and CPU time, the medians,
and the ratio cowbench/bare: the ratio of the medians and the spread (min/max) of the
per-round ratios, with the load average before and after; and the CPU time of cowbench's own
process (its Python alone, the tools it starts excluded: the harness's cost by itself, steadier
still, as the tools' CPU on both sides rises with the machine's load).

``--baseline TREE`` runs another checkout's cowbench too, in the same rounds (its position
beside this tree's alternating), for a before/after comparison in one sitting. Each tree's
modules are compiled to bytecode first, as an installed cowbench is (pip compiles at install,
a checkout writes ``__pycache__`` on its first run): with ``PYTHONDONTWRITEBYTECODE`` set and no
``__pycache__``, every run compiled every module again (0.1 s of CPU more in 3 alternating pairs).

    .venv/bin/python benchmarks/harness_overhead.py [--rounds 3] [--dir /var/tmp] [--baseline TREE]

Target (issue 15): a median ratio of at most 1.15 with integrity checks on.
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT / "benchmarks" / "bare-quickstart.sh"
SCENARIO = ROOT / "scenarios" / "quickstart.yaml"


def cowbench_argv() -> list[str]:
    """This tree's cowbench (the venv's console script beside this Python, else ``-m``)."""
    script = Path(sys.executable).parent / "cowbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cowbench"]


def env(root: Path = ROOT) -> dict[str, str]:
    """The environment with ``root``'s cowbench first on the path (another checkout's: not
    this one's after it)."""
    e = dict(os.environ)
    paths = [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p) != ROOT]
    e["PYTHONPATH"] = os.pathsep.join([str(root), *paths])
    return e


def compile_tree(root: Path) -> None:
    """Bytecode for ``root``'s packages, as an installed cowbench has it."""
    for pkg in ("cowbench", "sim", "real"):
        if (root / pkg).is_dir() and not compileall.compile_dir(root / pkg, quiet=1):
            sys.exit(f"{root / pkg} does not compile")


#: runs cowbench's CLI as its console script does, and writes the CPU time of this process
#: alone (its threads, not its tools) to the file named by the first argument as it exits
OWN_CPU = """
import atexit, resource, sys
own = sys.argv.pop(1)
def _own():
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open(own, "w") as f:
        f.write(str(r.ru_utime + r.ru_stime))
atexit.register(_own)
sys.argv[0] = "cowbench"
from cowbench.cli import main
sys.exit(main())
"""


def has_uncalibrated() -> bool:
    out = subprocess.run([*cowbench_argv(), "run", "--help"], capture_output=True, text=True,
                         env=env(), check=True, cwd=ROOT)
    return "--uncalibrated" in out.stdout


def become_subreaper() -> None:
    """Orphans (``qemu-nbd --fork``'s servers) are re-parented here, so their CPU time counts."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans(grace: float = 5.0) -> None:
    """Wait for every re-parented descendant still exiting (at most ``grace`` seconds)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv: list[str], root: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU time of ``argv`` run to completion (``root``'s cowbench first on the
    path), with every process it started; a failure stops the benchmark with its output."""
    c0, t0 = cpu_children(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env(root), cwd=ROOT)
    dt = time.perf_counter() - t0
    reap_orphans()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return dt, cpu_children() - c0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


Times = tuple[float, float]  # wall, CPU


def one_round(i: int, top: Path, extra: list[str], keep: bool,
              trees: list[Path]) -> tuple[Times, list[tuple[Times, float]]]:
    """The bare script's times, then each tree's cowbench's (in turn: the trees' order
    rotates by round) with the CPU of its own process; returned in the order of ``trees``."""
    bare = timed(["bash", str(BARE), str(top / f"bare-{i}")])
    runs: dict[int, tuple[Times, float]] = {}
    for k in [(i + j) % len(trees) for j in range(len(trees))]:
        out, own = top / f"run-{i}-{k}", top / f"own-{i}-{k}"
        cow = timed([sys.executable, "-c", OWN_CPU, str(own), "run", str(SCENARIO),
                     "--backend", "real", *extra, "--out", str(out)], trees[k])
        if not keep:
            shutil.rmtree(out)
        runs[k] = (cow, float(own.read_text()))
    return bare, [runs[k] for k in range(len(trees))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (bare, cowbench); 3")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the work directories go (the storage measured)")
    ap.add_argument("--keep", action="store_true", help="keep cowbench's run directories")
    ap.add_argument("--baseline", type=Path, help="another checkout of cowbench, run in the "
                    "same rounds (before/after in one sitting)")
    args = ap.parse_args()
    become_subreaper()
    trees = [ROOT, *([args.baseline.resolve()] if args.baseline else [])]
    for tree in trees:
        compile_tree(tree)
    extra = ["--uncalibrated"] if has_uncalibrated() else []
    top = Path(tempfile.mkdtemp(prefix="cowbench-overhead-", dir=args.dir))
    print(f"cowbench run {SCENARIO.relative_to(ROOT)} --backend real {' '.join(extra)} "
          f"against {BARE.relative_to(ROOT)}, {args.rounds} rounds, in {top}")
    for k, tree in enumerate(trees):
        print(f"tree {k}: {tree} at {revision(tree)}")
    print(f"load average before: {load()}")
    rows: list[tuple[Times, list[tuple[Times, float]]]] = []
    try:
        for i in range(args.rounds):
            rows.append(one_round(i, top, extra, args.keep, trees))
            print_round(i, *rows[-1])
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    for k in range(len(trees)):
        if len(trees) > 1:
            print(f"tree {k} ({trees[k]}):")
        for j, what in ((0, "wall"), (1, "CPU ")):
            summary(what, [b[j] for b, _ in rows], [runs[k][0][j] for _, runs in rows])
        print(f"median CPU of cowbench's own process (its tools' excluded): "
              f"{statistics.median(runs[k][1] for _, runs in rows):.2f} s")
    print(f"load average after: {load()}")


def revision(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "(not a git checkout)"


def print_round(i: int, bare: Times, runs: list[tuple[Times, float]]) -> None:
    for k, (cow, own) in enumerate(runs):
        tree = f" tree {k}" if len(runs) > 1 else ""
        print(f"round {i + 1}{tree}: bare {bare[0]:6.2f} s  cowbench {cow[0]:6.2f} s  "
              f"ratio {cow[0] / bare[0]:.3f} | CPU bare {bare[1]:6.2f} s  cowbench "
              f"{cow[1]:6.2f} s  ratio {cow[1] / bare[1]:.3f}, cowbench's own process "
              f"{own:.2f} s  (load {load()})", flush=True)


def summary(what: str, bares: list[float], cows: list[float]) -> None:
    ratios = [c / b for b, c in zip(bares, cows, strict=True)]
    mb, mc = statistics.median(bares), statistics.median(cows)
    print(f"median {what}: bare {mb:.2f} s  cowbench {mc:.2f} s  ratio {mc / mb:.3f} "
          f"(per-round ratios {min(ratios):.3f}..{max(ratios):.3f}, median "
          f"{statistics.median(ratios):.3f})")


if __name__ == "__main__":
    main()
