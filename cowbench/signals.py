"""SIGINT and SIGTERM during a run: one clean stop, and cleanup that a second signal cannot cut.

A run that is interrupted must still stop every qemu-nbd and fio it started and remove every
file it half-built. Two things make that hard in Python: a signal's handler raises at *any*
bytecode of the main thread, so it can land inside the very ``finally`` that stops a process,
or between the fork of a child and the line that keeps its ``Popen``; and an impatient user
presses Ctrl-C twice. So:

- :func:`interrupts_raise` turns the *first* SIGINT or SIGTERM into :class:`Interrupted` (every
  ``with`` and ``finally`` then unwinds) and ignores later ones while the run cleans up;
- :func:`shielded` defers that exception around a step that must not be cut (starting a process
  and keeping its handle, stopping one, removing a tree): a signal that arrives meanwhile
  raises when the outermost shielded block ends.

The deferral lives in the handler, not in the signal mask: Python runs handlers in the main
thread whichever thread the kernel picked (rich's refresh thread, for one), so blocking the
signal in the main thread alone would not hold it. Hence one piece of module state, as the
process has one set of handlers.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from .errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Shield:
    depth: int = 0
    pending: str | None = None


_SHIELD = _Shield()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interrupts_raise() -> Iterator[list[str]]:
    """Within the block, the first SIGINT/SIGTERM raises :class:`Interrupted` (at once, or when
    the current :func:`shielded` step ends); later ones are ignored while the run cleans up.
    Yields the names of the signals received."""
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if len(received) > 1:
            return
        if _SHIELD.depth:
            _SHIELD.pending = name
            return
        raise Interrupted(f"interrupted by signal {name}")

    if not _main_thread():  # only the main thread may install handlers
        yield received
        return
    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _SHIELD.pending = None


@contextmanager
def shielded() -> Iterator[None]:
    """Hold an interrupt until the block ends (then it raises :class:`Interrupted`)."""
    if not _main_thread():
        yield
        return
    _SHIELD.depth += 1
    try:
        yield
    finally:
        _SHIELD.depth -= 1
        if _SHIELD.depth == 0 and _SHIELD.pending is not None:
            name, _SHIELD.pending = _SHIELD.pending, None
            raise Interrupted(f"interrupted by signal {name}")


def signal_name(received: list[str], reason: str) -> str:
    """The name of the signal that interrupted a run (run.json's ``signal``): the first
    :func:`interrupts_raise` received, else the one its :class:`Interrupted` names (raised
    within another such block), else ``SIGINT`` (Python's ``KeyboardInterrupt``, where no
    handler was installed)."""
    if received:
        return received[0]
    named = re.search(r"interrupted by signal (SIG[A-Z0-9]+)", reason)
    return named.group(1) if named else "SIGINT"
