"""Does this machine's kernel schedule each session's processes as one group (autogroup)?

The model schedules each qemu-nbd, its main thread and its pool of threads, as one task group
when the calibration's machine does (``SchedParams.groups``; ``cowbench.store.sched_groups``
reads it from ``kernel.sched_autogroup_enabled`` and the CPU cgroup). This measures it: four
busy processes in one session and one busy process in another, all pinned to one core, for
``--seconds``; printed, the CPU each session got. With the sessions grouped, about half each;
without, four fifths and one fifth. Every process it starts ends within ``--seconds``
(``timeout``), if this script is killed too.

    .venv/bin/python benchmarks/autogroup.py [--seconds 3] [--core 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess

from cowbench.store import sched_groups
from cowbench.tools import dies_with_us

#: a session of ``n`` busy processes (each under ``timeout``), printing its children's CPU
#: ticks (utime + stime of the reaped, ``/proc/PID/stat`` fields 16 and 17) once all ended
SESSION = ('for i in $(seq "$1"); do timeout "$2" sh -c "while :; do :; done" & done; wait; '
           'read -r line < /proc/$$/stat; set -- ${line##*) }; echo $(( ${14} + ${15} ))')


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--core", type=int, default=0)
    a = ap.parse_args()
    if not 0.5 <= a.seconds <= 30:
        ap.error("--seconds: from 0.5 to 30")
    if a.core not in os.sched_getaffinity(0):
        ap.error(f"--core {a.core}: not one this process may run on")

    def pinned() -> None:
        os.sched_setaffinity(0, {a.core})

    procs = [subprocess.Popen(["sh", "-c", SESSION, "session", str(n), str(a.seconds)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=dies_with_us(then=pinned))
             for n in (4, 1)]
    ticks = [int(p.communicate(timeout=a.seconds + 30)[0].split()[-1]) for p in procs]
    total = sum(ticks) or 1
    print(f"core {a.core}, {a.seconds:g} s: four busy processes of one session got "
          f"{ticks[0]} ticks ({ticks[0] / total:.0%}), one busy process of another "
          f"{ticks[1]} ({ticks[1] / total:.0%})")
    print("grouped as sessions (about half each)" if ticks[1] > 0.35 * total else
          "not grouped (about four fifths and one fifth)")
    print(f"cowbench reads this machine as: sched_groups = {sched_groups()}")


if __name__ == "__main__":
    main()
