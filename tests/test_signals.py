"""The signal discipline itself: the first signal raises, later ones are ignored, and a shielded
step finishes before the interrupt raises, even when another thread receives the signal."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from cowbench.errors import Interrupted
from cowbench.signals import interrupts_raise, shielded


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # let the interpreter run the handler


def test_first_signal_raises_later_ones_are_ignored() -> None:
    with interrupts_raise() as received:
        with pytest.raises(Interrupted, match="SIGTERM"):
            _deliver(signal.SIGTERM)
        _deliver(signal.SIGINT)  # cleanup is running: no second exception
    assert received == ["SIGTERM", "SIGINT"]


def test_a_shielded_step_finishes_before_the_interrupt() -> None:
    steps: list[str] = []
    with interrupts_raise(), pytest.raises(Interrupted, match="SIGINT"):
        with shielded():
            _deliver(signal.SIGINT)
            steps.append("still running")
            with shielded():  # nested: only the outermost end raises
                steps.append("inner")
            steps.append("after inner")
        steps.append("never")
    assert steps == ["still running", "inner", "after inner"]


def test_a_signal_taken_by_another_thread_is_still_held() -> None:
    """rich's progress bar runs a thread; the kernel may hand the signal to it."""
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    steps: list[str] = []
    try:
        with interrupts_raise(), pytest.raises(Interrupted):
            with shielded():
                signal.pthread_kill(worker.ident or 0, signal.SIGTERM)
                time.sleep(0.05)
                steps.append("finished")
    finally:
        stop.set()
        worker.join()
    assert steps == ["finished"]


def test_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with interrupts_raise():
        pass
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
