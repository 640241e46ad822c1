"""The model's event loop: ``simpy.Environment`` with its ``run`` in one loop.

SimPy's ``run`` calls ``step()`` once per event, and ``step`` guards each event's callbacks
with a ``try``; a calibrated run of scenarios/io-holdout.yaml processes some 4.5 million
events, most of them zero-delay hand-offs whose callbacks are a few lines, so the call and
its set-up are a fair part of each. :class:`EventLoop` processes the same events in the same
order (the heap of ``(time, priority, event id, event)``, popped one at a time), with the
same behaviour at its ends: ``until`` a time or an event, a ``StopSimulation`` that keeps
the event's remaining callbacks for the next run, a failed event that was not defused
raised again. Everything else is SimPy's own (SimPy 4.1's ``core.py``).
"""

from __future__ import annotations

from heapq import heappop
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT, Event, EventPriority


class EventLoop(simpy.Environment):
    """A ``simpy.Environment`` whose :meth:`run` processes the events in one loop."""

    def run(self, until: Any = None) -> Any:
        """As ``simpy.Environment.run``: until no event is left, until the time ``until``,
        or until the event ``until`` is processed (its value returned)."""
        if until is not None:
            if not isinstance(until, Event):
                at = until if isinstance(until, int) else float(until)
                if at <= self.now:
                    raise ValueError(
                        f"until ({at}) must be greater than the current simulation time")
                until = Event(self)
                until._ok = True
                until._value = None
                self.schedule(until, URGENT, at - self.now)
            elif until.callbacks is None:
                return until.value
            until.callbacks.append(StopSimulation.callback)
        try:
            self._events()
        except StopSimulation as exc:
            return exc.args[0]
        if until is not None:
            assert not until.triggered
            raise RuntimeError(f'No scheduled events left but "until" event was not '
                               f"triggered: {until}")
        return None

    def _events(self) -> None:
        """``step()`` until the heap is empty (SimPy's ``EmptySchedule``)."""
        queue = self._queue
        while queue:
            self._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            try:
                for callback in callbacks:
                    callback(event)
            except StopSimulation:
                # SimPy's step: the rest of the callbacks wait for the next run
                event.callbacks = callbacks[callbacks.index(callback) + 1:]
                self.schedule(event, EventPriority(-1))
                raise
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
