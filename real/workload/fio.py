"""fio, run against a qemu-nbd export with fio's ``nbd`` engine, and its JSON read back.

The workload's options go to fio under their own names (a scenario speaks fio), with sizes in
bytes. Each VM gets one fio process (with several jobs, ``Workload.jobs``, all of them). fio
reports each clone of each job (``json+``: with its latency histogram) and cowbench folds them
into fio's reporting groups as ``group_reporting`` would (:mod:`real.workload.fiogroups`), so
each clone's own count of I/Os stays on record (``cowbench.iocount``).
fio is stopped with SIGTERM, never SIGKILL first, so it cleans up (fio's t/fiotestlib.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cowbench.atomic import ToolOutput, atomic_write_text
from cowbench.errors import ToolError
from cowbench.fiojob import fio_options, job_args, log_options
from cowbench.scenario import Workload
from cowbench.signals import shielded
from cowbench.tools import (
    PID_NAMESPACE,
    RawLog,
    dies_with_us,
    own_pid_namespace,
    proc_tree_cpu_s,
    which,
)

from . import fiogroups
from .fioclock import clock_args


@dataclass
class FioResult:
    """The figures cowbench reads from fio's JSON: one job (a model's file, or one clone), or
    a clone per entry folded into fio's reporting groups (:func:`fiogroups.groups`)."""

    raw: dict[str, Any]

    def figures(self, kind: str) -> dict[str, float]:
        groups = fiogroups.groups(self.raw["jobs"])
        if len(groups) > 1:
            return self._in_turn([g[kind] for g in groups], kind)
        d = groups[0][kind]
        clat = d.get("clat_ns", {})
        pct = clat.get("percentile", {})
        p99 = pct.get("99.000000")
        out = {
            f"{kind}_ios": float(d["total_ios"]),
            f"{kind}_iops": float(d["iops"]),
            f"{kind}_bw_bytes_per_s": float(d["bw_bytes"]),
        }
        if d["total_ios"]:
            out[f"{kind}_lat_mean_s"] = float(clat["mean"]) * 1e-9
            if p99 is not None:
                out[f"{kind}_lat_p99_s"] = float(p99) * 1e-9
        return out

    def clone_ios(self) -> list[int]:
        """Each clone's reads, writes and trims, in fio's job order (a job's clones after it)."""
        return [sum(int(j[k]["total_ios"]) for k in ("read", "write", "trim") if k in j)
                for j in self.raw["jobs"]]

    @staticmethod
    def _in_turn(ds: list[dict[str, Any]], kind: str) -> dict[str, float]:
        """Several reporting groups (jobs of one VM run in turn, ``stonewall``): their sums
        over their summed runtimes, the latency mean weighted by I/Os, and the p99 of all their
        I/Os from their summed latency histograms (``json+``'s bins, fio's own percentile
        rule: :func:`fiogroups.latency`), as the model's p99 is over all the VM's I/Os; none
        where a group has no histogram (a model's file)."""
        ios = sum(float(d["total_ios"]) for d in ds)
        seconds = sum(float(d["runtime"]) for d in ds) / 1e3
        out = {f"{kind}_ios": ios}
        if seconds > 0:
            out[f"{kind}_iops"] = ios / seconds
            out[f"{kind}_bw_bytes_per_s"] = sum(float(d["io_bytes"]) for d in ds) / seconds
        if ios:
            out[f"{kind}_lat_mean_s"] = sum(float(d["clat_ns"]["mean"]) * float(d["total_ios"])
                                            for d in ds if d["total_ios"]) / ios * 1e-9
            lats = [d["clat_ns"] for d in ds if d["total_ios"]]
            if all("bins" in lat for lat in lats):
                p99 = fiogroups.latency(lats).get("percentile", {}).get("99.000000")
                if p99 is not None:
                    out[f"{kind}_lat_p99_s"] = float(p99) * 1e-9
        return out


class FioRun:
    """One fio process writing JSON to ``out``; ``wait()`` returns its :class:`FioResult`."""

    def __init__(self, name: str, uri: str, wl: Workload, out_dir: Path, *,
                 runtime_cap: float | None = None, log: RawLog | None = None) -> None:
        self.name = name
        self.dir = log.new_dir(f"fio-{name}") if log else out_dir
        # fio writes its JSON as it likes; it becomes output.json only once fio exited 0
        self.output = ToolOutput(self.dir / "output.json", log.lease if log else None)
        self.json_path, self.partial_path = self.output.path, self.output.partial
        # global options first, then the VM's jobs (several: one fio process); each clone
        # reported with its latency histogram (json+), folded into groups by FioResult; a job
        # file's log options too: fio writes the logs in its cwd, this directory (bounded
        # before the run, cowbench.space.log_bytes)
        def options(job: Workload) -> list[str]:
            label = f"{name}.{job.section}" if wl.jobs else name
            return [*fio_options(job, runtime_cap), *log_options(job, label)]

        self.argv = [which("fio"), *clock_args(), "--ioengine=nbd", f"--uri={uri}",
                     "--output-format=json+", f"--output={self.partial_path}",
                     *job_args(wl, name, options,
                               self.dir if wl.write_iolog else None)]  # for repredict
        self.proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        #: the CPU seconds fio used, all its processes, read once it exited (before it is
        #: reaped: :func:`cowbench.tools.proc_tree_cpu_s`); None until then, or if unread
        self.cpu_s: float | None = None

    def start(self) -> FioRun:
        atomic_write_text(self.dir / "argv.json", json.dumps(self.argv, indent=1) + "\n",
                          fsync=False)
        self._stdout = open(self.dir / "stdout", "wb")  # noqa: SIM115 (closed in wait/stop)
        self._stderr = open(self.dir / "stderr", "wb")  # noqa: SIM115
        # its own process group: stop() signals it (a terminal's Ctrl-C reaches cowbench, which
        # stops fio itself); its own PID namespace where allowed, for fio's job processes
        isolated = own_pid_namespace()
        argv, death = ([*PID_NAMESPACE, *self.argv], signal.SIGKILL) if isolated else \
            (self.argv, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM is fio's clean stop
        with shielded():  # no interrupt between the fork and ``self.proc`` (stop() needs it)
            self.output.hold()
            # cwd: fio writes side files (verify state, local-<job>-<n>-verify.state) in its
            # working directory; keep them in the run's raw/ (real/world/containment.py)
            self.proc = subprocess.Popen(argv, stdout=self._stdout, stderr=self._stderr,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=self.dir, preexec_fn=dies_with_us(death))
            if not isolated:
                self._watchdog = _watch_group(self.proc.pid)
        return self

    def _exited(self, block: bool) -> bool:
        """Has fio exited? Asked without reaping it (``WNOWAIT``): while it is unreaped its
        process group id cannot be reused, so the watchdog can still be trusted with it."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
        try:
            if os.waitid(os.P_PID, self.proc.pid, flags) is None:
                return False
        except ChildProcessError:
            return True
        if self.cpu_s is None:  # exited, not reaped: its figure is still there
            try:
                self.cpu_s = proc_tree_cpu_s(self.proc.pid)
            except (OSError, ValueError, IndexError):
                pass
        return True

    def _drop_watchdog(self) -> None:
        """fio has exited or is being stopped by us: its watchdog goes (SIGKILL: no trap)."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> int | None:
        assert self.proc is not None
        if not self._exited(block=False):
            return None
        self._drop_watchdog()
        return self.proc.poll()

    def wait(self) -> FioResult:
        assert self.proc is not None
        self._exited(block=True)
        self._drop_watchdog()
        rc = self.proc.wait()
        self._close(rc)
        stderr = (self.dir / "stderr").read_text(errors="replace")
        stdout = (self.dir / "stdout").read_text(errors="replace")
        if rc != 0:
            raise ToolError(self.argv, rc, stdout, stderr)
        try:
            data = json.loads(self.partial_path.read_text())
        except (OSError, ValueError):
            raise ToolError(self.argv, rc, stdout, "fio wrote no JSON result") from None
        self.output.commit()
        return FioResult(data)

    def _close(self, rc: int | None) -> None:
        """fio's exit code left in its raw/ directory and its output files closed, once (a
        stop() after wait() or after fio ended on its own changes nothing)."""
        if self._stdout.closed:
            return
        try:  # written whole or not at all: a record with a returncode is complete
            atomic_write_text(self.dir / "returncode", f"{rc}\n", fsync=False)
        finally:
            for f in (self._stdout, self._stderr):
                f.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate a running fio and its job processes (SIGTERM to its process group, sent
        again every :data:`TERM_AGAIN_S` until fio exits, then SIGKILL after ``timeout``),
        shielded from SIGINT/SIGTERM so an interrupt cannot leave it half-stopped; drop its
        partial JSON. Again, because fio ignores a SIGTERM that lands before its jobs are set
        up (fio 3.33's handler acts only once its job table exists): stopped at its start, it
        ran its jobs on until the SIGKILL 15 s later."""
        with shielded():
            self._drop_watchdog()
            if self.proc is not None and self.proc.poll() is None:
                deadline = time.monotonic() + timeout
                while self.proc.poll() is None and time.monotonic() < deadline:
                    _signal_group(self.proc.pid, signal.SIGTERM)
                    again = min(deadline, time.monotonic() + TERM_AGAIN_S)
                    while self.proc.poll() is None and time.monotonic() < again:
                        time.sleep(0.05)
                if self.proc.poll() is None:
                    self.proc.kill()
            try:
                if self.proc is not None:
                    self._close(self.proc.wait())  # also when fio had ended before the stop
            finally:  # the record may fail (a full disk): fio's jobs and its partial JSON go
                if self.proc is not None:
                    _signal_group(self.proc.pid, signal.SIGKILL)  # a job fio left behind
                    _reap_group(self.proc.pid)
                self.output.discard()


#: how often :meth:`FioRun.stop` sends fio its SIGTERM again while it runs on
TERM_AGAIN_S = 0.5

#: Without a PID namespace (an unprivileged user), a watchdog per fio, a child that dies with
#: cowbench (SIGTERM) and then stops fio's process group: SIGTERM, SIGKILL a second later. It
#: cannot reach a job that fio left behind (the job's own session), which only the namespace
#: can; the README says so.
_WATCHDOG = """
import os, signal, sys, time
group = int(sys.argv[1])
def stop(*_):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except OSError:
            break
        time.sleep(1)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
# SIGTERM was blocked from before exec: one sent while Python started is delivered now
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
while True:
    signal.pause()
"""


def _watch_group(pgid: int) -> subprocess.Popen[bytes]:
    """The watchdog of fio's process group. Its SIGTERM is blocked before the death signal is
    armed and until its handler is in place: a cowbench killed while the watchdog's Python
    starts (tens of ms; seen in the suite: the second VM's fio outlived a kill -9) leaves the
    signal pending, not the watchdog dead with fio's group alive."""
    arm = dies_with_us(signal.SIGTERM)

    def setup() -> None:  # in the child, before exec: the mask survives exec
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        arm()

    return subprocess.Popen([sys.executable, "-S", "-c", _WATCHDOG, str(pgid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=setup)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_group(pgid: int) -> None:
    """Reap exited job processes of the group re-parented to us (we may be a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
