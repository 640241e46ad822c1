"""fio, run against a qemu-nbd export with fio's ``nbd`` engine, and its JSON read back.

The workload's options go to fio under their own names (a scenario speaks fio), with sizes in
bytes. Each VM gets one fio process; ``group_reporting`` folds its clones into one result.
fio is stopped with SIGTERM, never SIGKILL first, so it cleans up (fio's t/fiotestlib.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cowbench.errors import ToolError
from cowbench.fiojob import fio_options, record_options
from cowbench.scenario import Workload
from cowbench.tools import RawLog, which


@dataclass
class FioResult:
    """The figures cowbench reads from fio's JSON (one group-reported job)."""

    raw: dict[str, Any]

    def direction(self, kind: str) -> dict[str, Any]:
        job: dict[str, Any] = self.raw["jobs"][0][kind]
        return job

    def figures(self, kind: str) -> dict[str, float]:
        d = self.direction(kind)
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


class FioRun:
    """One fio process writing JSON to ``out``; ``wait()`` returns its :class:`FioResult`."""

    def __init__(self, name: str, uri: str, wl: Workload, out_dir: Path, *,
                 runtime_cap: float | None = None, log: RawLog | None = None) -> None:
        self.name = name
        self.dir = log.new_dir(f"fio-{name}") if log else out_dir
        self.json_path = self.dir / "output.json"
        self.argv = [which("fio"), f"--name={name}", "--ioengine=nbd", f"--uri={uri}",
                     "--group_reporting=1", "--output-format=json",
                     f"--output={self.json_path}", *fio_options(wl, runtime_cap)]
        if wl.write_iolog:  # what fio issued, for `cowbench repredict`
            self.argv += record_options(wl, self.dir)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FioRun:
        (self.dir / "argv.json").write_text(json.dumps(self.argv, indent=1) + "\n")
        self._stdout = open(self.dir / "stdout", "wb")  # noqa: SIM115 (closed in wait/stop)
        self._stderr = open(self.dir / "stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, stdout=self._stdout, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL)
        return self

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def wait(self) -> FioResult:
        assert self.proc is not None
        rc = self.proc.wait()
        self._close(rc)
        stderr = (self.dir / "stderr").read_text(errors="replace")
        stdout = (self.dir / "stdout").read_text(errors="replace")
        if rc != 0:
            raise ToolError(self.argv, rc, stdout, stderr)
        try:
            data = json.loads(self.json_path.read_text())
        except (OSError, ValueError):
            raise ToolError(self.argv, rc, stdout, "fio wrote no JSON result") from None
        return FioResult(data)

    def _close(self, rc: int | None) -> None:
        (self.dir / "returncode").write_text(f"{rc}\n")
        for f in (self._stdout, self._stderr):
            f.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate a running fio (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        self._close(self.proc.wait())
