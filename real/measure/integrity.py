"""Is what the real backend measured sound? ``qemu-img check`` and checksums of the bases.

After every real run each qcow2 image (the VMs' overlays and the uploaded qcow2 images) is
checked with ``qemu-img check`` (exit 0 clean, 3 leaked clusters, 2 corruption: QEMU's
``docs/tools/qemu-img.rst``); a corruption, a leak or a check error fails the run, because a
figure measured on a damaged image means nothing. Leaks are harmless to data but they are
allocated bytes no model predicts, so they fail the run too, visibly, rather than skew it.

Bases are shared read-only by every VM on a host: the image as uploaded and the raw file in
``_base`` must never change (Nova relies on it; a changed base silently changes every VM's
disk). Each is hashed when it is complete and again at the end of the run; any difference fails
the run. The second read is spared where the kernel proves the file unwritten since the first
(``real.measure.guard``: an inotify watch and a read-lease probe, set before the first read;
``after_from`` in the report says so). The digest (``real.measure.digest``: XXH3-128 over 1 MiB
blocks, holes not read) depends on the content only. The raw base of a synthetic image is held
to the content the scenario gives it: its first digest is computed from the image's extents
and fill bytes (``expect``), without reading anything, so a generation or conversion that went
wrong fails the run too. Hashing runs in the background, beside the tools (the upload while
``qemu-img convert`` makes the base), every digest is settled before the workloads start, so
that no hashing competes with fio, and the final digests run beside the measuring and the last
``qemu-img check`` calls.

The report (``Integrity.report()``) goes into run.json under ``integrity``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cowbench.errors import RunFailed
from cowbench.tools import RawLog, run_json, untrusted_limits

from .digest import DIGEST, Cancelled, file_digest
from .guard import WriteGuard

#: an image to check: key in the report, path, format, untrusted (a user's file)
CheckItem = tuple[str, Path, str, bool]
#: ``qemu-img check`` processes at once (:meth:`Integrity.check_all`)
CHECKS_AT_ONCE = 8
#: ``after_from`` of a file not read again at the end (``real.measure.guard``)
UNWRITTEN = ("unwritten since its first digest: no write or writer seen by the kernel "
             "(inotify, read lease)")
#: qemu-img check's exit codes (qemu-img.rst): 0 clean, 2 corruptions, 3 leaks only.
CHECK_CODES = (0, 2, 3)


class IntegrityError(RunFailed):
    """The run finished but an image is damaged or a base changed; details in run.json."""


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
    #: the end of the run's checks was reached (:meth:`compare`): ``ok`` means something
    compared: bool = False
    _pending: dict[tuple[str, str], Future[str | None]] = field(default_factory=dict,
                                                              repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _after_started: set[str] = field(default_factory=set, repr=False)
    #: the path each base is read by (``/proc/<pid>/fd/<fd>/...``: the run's private tree);
    #: the report shows the name the kernel knew it by (``os.path.realpath``)
    _access: dict[str, Path] = field(default_factory=dict, repr=False)
    #: the kernel's watch on each file hashed when complete (``real.measure.guard``)
    _guards: dict[str, WriteGuard] = field(default_factory=dict, repr=False)

    def check(self, key: str, path: Path, fmt: str = "qcow2",
              untrusted: bool = False) -> dict[str, Any]:
        """Check one qcow2 image; remember what was wrong. Returns qemu-img's JSON."""
        return self._checked(key, path, qemu_img_check_any(path, fmt, self.log, untrusted))

    def check_all(self, images: list[CheckItem]) -> list[dict[str, Any]]:
        """:meth:`check` each ``(key, path, fmt, untrusted)``, every ``qemu-img check`` at once
        (each reads its own image's metadata); recorded in the order given. Returns the JSONs."""
        if len(images) < 2:
            return [self.check(*item) for item in images]
        with ThreadPoolExecutor(min(len(images), CHECKS_AT_ONCE),
                                thread_name_prefix="check") as pool:
            futs = [pool.submit(qemu_img_check_any, path, fmt, self.log, untrusted)
                    for _, path, fmt, untrusted in images]
            outs = [f.result() for f in futs]
        return [self._checked(key, path, out)
                for (key, path, _, _), out in zip(images, outs, strict=True)]

    def _checked(self, key: str, path: Path, out: dict[str, Any]) -> dict[str, Any]:
        found = {k: int(out.get(k, 0) or 0) for k in ("corruptions", "leaks", "check-errors")}
        self.checks[key] = {"path": os.path.realpath(path), **found,
                            "allocated_clusters": out.get("allocated-clusters")}
        bad = [f"{n} {k}" for k, n in found.items() if n]
        if bad:
            self.problems.append(f"{key}: qemu-img check found {', '.join(bad)} in {path}")
        return out

    def hash_before(self, key: str, path: Path) -> None:
        """Start hashing a base once it is complete (in the background: :meth:`settle`
        waits for it); :meth:`hash_after` hashes it again at the end, unless the kernel
        proves it unwritten since (``real.measure.guard``: watched before it is read)."""
        self.checksums[key] = {"path": os.path.realpath(path), "digest": DIGEST,
                               "before": None, "after": None}
        self._access[key] = path
        guard = WriteGuard.start(path)
        if guard is not None:
            self._guards[key] = guard
        self._start(key, "before", guard.path if guard is not None else path)

    def expect(self, key: str, path: Path, digest: str, source: str) -> None:
        """A base about to be made whose content is known ahead (``digest``, of what
        ``source`` says it holds): it is not read before the workloads, only at the end, and
        must then hash to ``digest``."""
        self.checksums[key] = {"path": os.path.realpath(path), "digest": DIGEST,
                               "before": digest, "after": None, "before_from": source}
        self._access[key] = path

    def retire(self, key: str, as_key: str) -> None:
        """A base about to be removed (Nova's cache manager): hashed a last time now and
        kept in the report as ``as_key``, where :meth:`compare` judges it with the others; a
        base fetched again later under ``key`` starts afresh."""
        self.settle()
        entry = self.checksums.pop(key, None)
        if entry is None:
            return
        path = self._access.pop(key, Path(entry["path"]))
        self._unguard(key)
        self._after_started.discard(key)
        self.checksums[as_key] = entry
        self._access[as_key] = path
        self._after_started.add(as_key)
        self._start(as_key, "after", path)
        self.settle()

    def settle(self) -> set[str]:
        """Wait for every digest started; one that failed is a problem of the run. Returns the
        keys whose digest failed."""
        failed = set()
        for (key, when), fut in list(self._pending.items()):
            entry = self.checksums[key]
            try:
                entry[when] = fut.result()
            except OSError as e:
                failed.add(key)
                self.problems.append(f"{key}: could not hash {entry['path']} "
                                     f"({when} the run): {e.strerror or e}")
        self._pending.clear()
        return failed

    def hash_after(self) -> None:
        """Start hashing every base again (once; in the background): :meth:`compare` waits.
        A file the kernel saw unwritten since its first digest is not read again: its digest
        is still that one (``after_from`` says why)."""
        for key, entry in self.checksums.items():
            if key in self._after_started:
                continue
            self._after_started.add(key)
            path = self._access.get(key, Path(entry["path"]))
            if self._unwritten(key, path):
                entry["after"] = entry["before"]
                entry["after_from"] = UNWRITTEN
            else:
                self._start(key, "after", path)

    def _unwritten(self, key: str, path: Path) -> bool:
        """The file's first digest is settled and the kernel saw no write to it since."""
        guard = self._guards.get(key)
        if guard is None or (key, "before") in self._pending:
            self._unguard(key)
            return False
        proven = self.checksums[key]["before"] is not None and guard.unchanged(path)
        self._unguard(key)
        return proven

    def _unguard(self, key: str) -> None:
        guard = self._guards.pop(key, None)
        if guard is not None:
            guard.close()

    def hashed_files(self) -> list[tuple[Path, Callable[[], object]]]:
        """Every file checksummed, each with a wait for its last digest (:meth:`hash_after`
        started it): once that returns, the run needs nothing more of the file."""
        files: list[tuple[Path, Callable[[], object]]] = []
        for key, entry in self.checksums.items():
            fut = self._pending.get((key, "after"))
            files.append((self._access.get(key, Path(entry["path"])),
                          fut.exception if fut is not None else _nothing))
        return files

    def compare(self) -> None:
        """Wait for the final digests; a base that changed (or vanished) is a problem."""
        self.hash_after()
        failed = self.settle()
        self.compared = True
        for key, entry in self.checksums.items():
            before, after = entry["before"], entry["after"]
            if key in failed or (before is not None and after == before):
                continue
            was = (f"the content of {entry['before_from']}" if "before_from" in entry
                   else "its content when complete")
            self.problems.append(f"{key}: base changed during the run ({entry['path']}): "
                                 f"{DIGEST} {(after or 'missing')[:12]}.., not {was} "
                                 f"({(before or 'missing')[:12]}..)")

    def close(self) -> None:
        """Abandon the digests still running and wait for their threads (at most a chunk)."""
        self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
        for key in list(self._guards):
            self._unguard(key)

    def _start(self, key: str, when: str, path: Path) -> None:
        self._pending[(key, when)] = self._submit(_digest_or_none, path, self._cancel)

    def _submit(self, fn: Callable[..., str | None], *args: Any) -> Future[str | None]:
        if self._pool is None:
            self._cancel.clear()
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="integrity")
        return self._pool.submit(fn, *args)

    def report(self) -> dict[str, Any]:
        """run.json's ``integrity``. ``ok``: ``false`` with a problem, ``true`` once the run's
        checks are done (:meth:`compare`, after every ``qemu-img check``) and found none,
        ``null`` before: a run interrupted or failed earlier checked nothing, and said
        ``ok: true`` over ``checks: {}``."""
        ok = False if self.problems else True if self.compared else None
        return {"ok": ok, "problems": list(self.problems),
                "checks": self.checks, "checksums": self.checksums}

    def raise_if_bad(self) -> None:
        if self.problems:
            raise IntegrityError("integrity: " + "; ".join(self.problems))


def _nothing() -> None:
    pass


def _digest_or_none(path: Path, cancel: threading.Event) -> str | None:
    """The file's digest; None if it is gone (a missing base is a changed base)."""
    try:
        return file_digest(path, cancel)
    except (FileNotFoundError, Cancelled):
        return None

