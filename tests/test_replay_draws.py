"""A probe's replay draws its exponentials a block at a time (``sim.perf.host.Exponentials``):
the same numbers, so the same figures, as drawing them one by one from numpy."""

from __future__ import annotations

import numpy as np
import pytest

from cowbench.profile import PerfParams
from sim.perf import replay as replay_mod
from sim.perf.host import Exponentials
from sim.perf.replay import replay

from .test_perf import TRUE, shells
from .test_perf_sched import SCHED


def test_a_block_of_draws_is_the_draws_one_by_one() -> None:
    scales = [0.3, 0.0, 1e-5, 2.5, 85e-6] * 500  # across blocks (Exponentials.BLOCK)
    one_by_one = np.random.default_rng(7)
    drawn = Exponentials(np.random.default_rng(7))
    assert [drawn(s) for s in scales] == [one_by_one.exponential(s) for s in scales]


@pytest.mark.parametrize("params", [TRUE, TRUE.model_copy(update={"sched": SCHED, "path": "vm"})],
                         ids=["shared path", "scheduler, a path per VM"])
def test_a_replay_gives_the_figures_it_gave_drawing_one_by_one(
        params: PerfParams, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe of each kind of the short matrix (first writes, holes, chains, L2 misses, the
    storage alone, several exports, the contention probe), sixty I/Os each."""
    kinds = {(p.target, p.rw, p.exports > 1, p.beside is not None): p for p in shells()}
    probes = list(kinds.values())
    blocks = [replay(params, p, ios=60, seed=k) for k, p in enumerate(probes)]
    monkeypatch.setattr(replay_mod, "Exponentials", lambda rng: rng.exponential)
    assert [replay(params, p, ios=60, seed=k) for k, p in enumerate(probes)] == blocks
