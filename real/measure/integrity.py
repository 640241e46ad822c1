"""Is what the real backend measured sound? ``qemu-img check`` and checksums of the bases.

After every real run each qcow2 image (the VMs' overlays and the uploaded qcow2 images) is
checked with ``qemu-img check`` (exit 0 clean, 3 leaked clusters, 2 corruption: QEMU's
``docs/tools/qemu-img.rst``); a corruption, a leak or a check error fails the run, because a
figure measured on a damaged image means nothing. Leaks are harmless to data but they are
allocated bytes no model predicts, so they fail the run too, visibly, rather than skew it.

Bases are shared read-only by every VM on a host: the image as uploaded and the raw file in
``_base`` must never change (Nova relies on it; a changed base silently changes every VM's
disk). Each is hashed (SHA-256 of its content, what ``sha256sum`` prints) when it is complete and
again at the end of the run; any difference fails the run.

The report (``Integrity.report()``) goes into run.json under ``integrity``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cowbench.errors import RunFailed
from cowbench.tools import RawLog, run_json, untrusted_limits

HASH_CHUNK = 4 << 20
#: qemu-img check's exit codes (qemu-img.rst): 0 clean, 2 corruptions, 3 leaks only.
CHECK_CODES = (0, 2, 3)


class IntegrityError(RunFailed):
    """The run finished but an image is damaged or a base changed; details in run.json."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's content, streamed (holes read as zeros, as ``sha256sum`` does)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def qemu_img_check_any(path: Path, fmt: str, log: RawLog | None,
                       untrusted: bool = False) -> dict[str, Any]:
    """``qemu-img check`` whose JSON is returned for corrupt images too (exit 2)."""
    out: dict[str, Any] = run_json(
        ["qemu-img", "check", "--output=json", "-f", fmt, str(path)], log=log,
        label="qemu-img-check", ok_codes=CHECK_CODES, timeout=3600,
        preexec_fn=untrusted_limits if untrusted else None)
    return out


@dataclass
class Integrity:
    """Collects the checks and checksums of one real run."""

    log: RawLog | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, key: str, path: Path, fmt: str = "qcow2",
              untrusted: bool = False) -> dict[str, Any]:
        """Check one qcow2 image; remember what was wrong. Returns qemu-img's JSON."""
        out = qemu_img_check_any(path, fmt, self.log, untrusted)
        found = {k: int(out.get(k, 0) or 0) for k in ("corruptions", "leaks", "check-errors")}
        self.checks[key] = {"path": str(path), **found,
                            "allocated_clusters": out.get("allocated-clusters")}
        bad = [f"{n} {k}" for k, n in found.items() if n]
        if bad:
            self.problems.append(f"{key}: qemu-img check found {', '.join(bad)} in {path}")
        return out

    def hash_before(self, key: str, path: Path) -> None:
        """Hash a base once it is complete; :meth:`hash_after` compares at the end."""
        self.checksums[key] = {"path": str(path), "sha256_before": sha256_file(path),
                               "sha256_after": None}

    def hash_after(self) -> None:
        for key, entry in self.checksums.items():
            path = Path(entry["path"])
            after = sha256_file(path) if path.exists() else None
            entry["sha256_after"] = after
            if after != entry["sha256_before"]:
                self.problems.append(f"{key}: base changed during the run ({path}): sha256 "
                                     f"{entry['sha256_before'][:12]}.. became "
                                     f"{(after or 'missing')[:12]}..")

    def report(self) -> dict[str, Any]:
        return {"ok": not self.problems, "problems": list(self.problems),
                "checks": self.checks, "checksums": self.checksums}

    def raise_if_bad(self) -> None:
        if self.problems:
            raise IntegrityError("integrity: " + "; ".join(self.problems))
