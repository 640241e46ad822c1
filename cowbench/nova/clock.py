"""When a lifecycle looks: the cache manager's passes and the samples of every figure.

Both are multiples of a step up to an end: ``k x step`` for ``k = 1 .. floor(end / step)`` (a
tolerance of 1e-9 steps keeps an end that falls on the grid despite rounding). A timeline takes
a last sample at its end besides; a fleet samples at 0 as well (``start=True``). At an instant
with both, the pass comes first (:func:`clock_ticks`), for timelines and fleets alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: what a tick of the clock does: the cache manager's pass, or a sample of every figure
PASS, SAMPLE = 0, 1


def tick_count(step: float | None, end: float) -> int:
    """How many multiples of ``step`` fall in (0, end] (0 without a step or a finite end)."""
    if step is None or not math.isfinite(end) or end <= 0:
        return 0
    return int(math.floor(end / step + 1e-9))


def sample_times(step: float | None, end: float, start: bool = False) -> np.ndarray:
    """``step, 2 step, ...`` up to ``end`` (and 0 first with ``start``)."""
    import numpy as np  # here: validation counts ticks without numpy

    k = np.arange(0 if start else 1, tick_count(step, end) + 1, dtype=np.float64)
    return np.asarray(k * (step or 0.0))


def clock_ticks(passes: Sequence[float], samples: Sequence[float]) -> list[tuple[float, int]]:
    """The passes and the samples in time order, each with its kind (:data:`PASS`,
    :data:`SAMPLE`); at one instant the pass first, so the sample sees what it removed."""
    return sorted([(t, PASS) for t in passes] + [(t, SAMPLE) for t in samples])
