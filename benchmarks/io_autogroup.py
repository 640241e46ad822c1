"""What the kernel's grouping of sessions does to each VM of a scenario, measured and modelled.

The kernel's autogroup (``kernel.sched_autogroup_enabled``) schedules each session as one task
group: each qemu-nbd, its main thread and its pool together, gets one share of a crowded core,
as each fio job does. The model can do the same (``SchedParams.groups: session``,
``sim.perf.eevdf.Group``); whether it should is a question of what grouping does to each VM,
and this measures it directly. SCENARIO's real backend (``cowbench run --backend real``) runs
``--runs`` times with autogroup on and as many with it off, alternately (on, off, on, off, so
that the machine's drift falls on both alike); the model runs it with PROFILE twice, its
groups on and off. Printed per VM: its IOPS and its qemu-nbd's CPU seconds, on and off, real
(the mean of the runs) and modelled, grouping's effect on the IOPS (on over off) on each side,
and the model's error on each side. A run directory per run lands in ``--out``.

Root: it writes ``/proc/sys/kernel/sched_autogroup_enabled``. The value it found is written
back when it ends, however it ends: a process of its own session holds a pipe from this one and
writes the value back once the pipe closes, when this script exits or is killed (SIGKILL
included). The machine must be quiet; PROFILE is best measured on it shortly before.

    .venv/bin/python benchmarks/io_autogroup.py SCENARIO --profile PROFILE [--runs 2] \\
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from cowbench.atomic import atomic_write_text

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from io_holdout import cowbench  # noqa: E402  (benchmarks/, beside this script)

SYSCTL = Path("/proc/sys/kernel/sched_autogroup_enabled")
#: the guard: waits for its stdin to close (its parent has ended), then writes the value back
GUARD = ("import sys\nsys.stdin.buffer.read()\n"
         "with open(sys.argv[1], 'w') as f:\n    f.write(sys.argv[2])\n")


def guard(path: Path, value: str) -> subprocess.Popen[bytes]:
    """A process of its own session that writes ``value`` to ``path`` once this process has
    ended (its pipe from this one closes), however it ends; closing its stdin makes it write
    at once."""
    return subprocess.Popen([sys.executable, "-c", GUARD, str(path), value],
                            stdin=subprocess.PIPE, start_new_session=True)


def sysctl_found() -> str:
    """The autogroup switch's value, 0 or 1, once it is known to be writable; exits with the
    reason otherwise (not root, a kernel without autogroup)."""
    try:
        found = SYSCTL.read_text().strip()
    except OSError as e:
        sys.exit(f"{SYSCTL}: {e.strerror} (a kernel without autogroup?)")
    if found not in ("0", "1") or not os.access(SYSCTL, os.W_OK):
        sys.exit(f"{SYSCTL}: needs root, and a value of 0 or 1 (found {found!r})")
    return found


@contextmanager
def restored(found: str) -> Iterator[None]:
    """Inside, the switch may be written; ``found`` is written back at the end, and by a
    guard (:func:`guard`) if this process is killed first."""
    back = guard(SYSCTL, found)
    try:
        yield
    finally:
        SYSCTL.write_text(found)
        assert back.stdin is not None
        back.stdin.close()
        back.wait()


def load(profile: Path) -> dict[str, Any]:
    """The profile's JSON; ValueError if it is not a profile with a host scheduler to group
    (``params.sched``), OSError if it cannot be read."""
    try:
        data = json.loads(profile.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON ({e})") from None
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict) or not isinstance(params.get("sched"), dict):
        raise ValueError("params.sched: no host scheduler to group (a calibration profile "
                         "made with the CPU figures has one)")
    out: dict[str, Any] = data
    return out


def with_groups(data: dict[str, Any], groups: str, dst: Path) -> None:
    """The profile ``data`` (:func:`load`) with its host scheduler's groups set to
    ``groups``, written to ``dst``."""
    sched = dict(data["params"]["sched"], groups=groups)
    atomic_write_text(dst, json.dumps({**data, "params": {**data["params"], "sched": sched}},
                                      indent=1))


def figures(csv: Path) -> pd.DataFrame:
    """Each VM's IOPS (reads and writes together) and qemu-nbd's CPU at the run's end."""
    df = pd.read_csv(csv)
    df = df[df.t_s.isna() & df.entity.str.startswith("vm:")]
    wide = df.pivot_table(index="entity", columns="metric", values="value", aggfunc="first")
    iops = sum((wide[c].fillna(0) for c in ("read_iops", "write_iops") if c in wide),
               start=pd.Series(0.0, index=wide.index))
    cpu = wide["server_cpu_s"] if "server_cpu_s" in wide else pd.Series(float("nan"),
                                                                        index=wide.index)
    return pd.DataFrame({"iops": iops, "cpu": cpu}).rename(index=lambda e: e[3:])


def mean_of(runs: list[pd.DataFrame]) -> pd.DataFrame:
    return sum(runs[1:], start=runs[0]) / len(runs)


def print_table(real_on: pd.DataFrame, real_off: pd.DataFrame, model_on: pd.DataFrame,
                model_off: pd.DataFrame) -> None:
    print(f"{'VM':<16}{'IOPS on / off, real':>24}{'model':>18}{'on/off real':>13}"
          f"{'model':>8}{'error on':>10}{'off':>8}{'qemu-nbd CPU s on / off, real':>32}"
          f"{'model':>13}")
    for vm in real_on.index:
        ron, roff = real_on.loc[vm], real_off.loc[vm]
        mon, moff = model_on.loc[vm], model_off.loc[vm]
        print(f"{vm:<16}{ron.iops:>12,.0f} /{roff.iops:>9,.0f}{mon.iops:>9,.0f} /"
              f"{moff.iops:>7,.0f}{ron.iops / roff.iops - 1:>+13.0%}"
              f"{mon.iops / moff.iops - 1:>+8.0%}{mon.iops / ron.iops - 1:>+10.0%}"
              f"{moff.iops / roff.iops - 1:>+8.0%}{ron.cpu:>25.2f} /{roff.cpu:>5.2f}"
              f"{mon.cpu:>7.2f} /{moff.cpu:>5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--profile", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=2, help="real runs with each setting (2)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the run directories land (default: a new one in /var/tmp)")
    a = ap.parse_args()
    if not 1 <= a.runs <= 10:
        ap.error("--runs: from 1 to 10")
    if not a.scenario.is_file():
        ap.error(f"SCENARIO: no such file: {a.scenario}")
    try:
        profile = load(a.profile)
    except (OSError, ValueError) as e:
        ap.error(f"--profile {a.profile}: {(e.strerror or e) if isinstance(e, OSError) else e}")
    found = sysctl_found()
    out = a.out or Path(tempfile.mkdtemp(prefix="cowbench-autogroup-", dir="/var/tmp"))
    out.mkdir(parents=True, exist_ok=True)

    # the model first: it checks the scenario and the profile before the machine is touched
    model = {}
    for groups, name in (("session", "on"), ("none", "off")):
        prof = out / f"profile-groups-{name}.json"
        with_groups(profile, groups, prof)
        cowbench("run", str(a.scenario), "--backend", "sim", "--profile", str(prof),
                 "--out", str(out / f"model-{name}"))
        model[name] = figures(out / f"model-{name}" / "predicted.csv")

    real: dict[str, list[pd.DataFrame]] = {"on": [], "off": []}
    with restored(found):
        for i in range(1, a.runs + 1):
            for value, name in (("1", "on"), ("0", "off")):
                SYSCTL.write_text(value)  # applies to the sessions begun from now on
                run = out / f"real-{name}-{i}"
                print(f"{time.strftime('%H:%M:%S')} real run {i}, autogroup {name}: {run}",
                      flush=True)
                cowbench("run", str(a.scenario), "--backend", "real", "--out", str(run))
                real[name].append(figures(run / "measured.csv"))
    print(f"\n{a.scenario}: {a.runs} real runs each with autogroup on and off (the mean), "
          f"the model with {a.profile}, its groups on and off:")
    print_table(mean_of(real["on"]), mean_of(real["off"]), model["on"], model["off"])
    print(f"\nautogroup back to {found}; run directories in {out}")


if __name__ == "__main__":
    main()
