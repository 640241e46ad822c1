"""SIGINT and SIGTERM during a run: one clean stop, and cleanup that a second signal cannot cut.

A run that is interrupted must still stop every qemu-nbd and fio it started and remove every
file it half-built. Two things make that hard in Python: a signal raises at *any* bytecode, so
it can land inside the very ``finally`` that stops a process; and an impatient user presses
Ctrl-C twice. So:

- :func:`interrupts_raise` turns the *first* SIGINT or SIGTERM into :class:`Interrupted` (every
  ``with`` and ``finally`` then unwinds) and ignores later ones while the run cleans up;
- :func:`shielded` blocks both signals around a cleanup step (stopping a process, removing a
  tree); a signal that arrives meanwhile is delivered, and raises, when the step is done.

Nothing spawned inside :func:`shielded` would see SIGTERM (the blocked mask survives exec), so
cleanup steps never start processes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interrupts_raise() -> Iterator[list[str]]:
    """Within the block, the first SIGINT/SIGTERM raises :class:`Interrupted`; later ones are
    ignored (the cleanup of the first is running). Yields the list of signals received."""
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if len(received) == 1:
            raise Interrupted(f"interrupted by signal {name}")

    if not _main_thread():  # signals are only delivered to the main thread's handlers
        yield received
        return
    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (then they are delivered and may raise)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
