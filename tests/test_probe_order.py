"""The calibration's probes measure what their names say, measured with the machine alone.

A ``quiet`` test in a module of its own: the session runs the quiet modules last
(tests/conftest.py, ``session_order``), where the other worker finishes a short test before
this one takes the machine; first, it waited 98 s for the README's calibration, which the
other worker had started at the same moment (the whole suite, 2026-12-04).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from .conftest import needs_tools

#: (probe, probe it is slower than): a first write than a rewrite, an L2 miss than a hit
SLOWER_THAN = (("cow-write-4k-qd1-x1", "qcow2-randwrite-4k-qd1-x1"),
               ("l2miss-randread-4k-qd1-x1", "qcow2-randread-4k-qd1-x1"))
#: rounds of the pairs measured alone, each pair's two probes back to back in every round
PAIR_ROUNDS = 5


@needs_tools
@pytest.mark.real
@pytest.mark.quiet
@pytest.mark.slow
def test_first_writes_and_l2_misses_are_slower_measured_alone(tmp_path: Path,
                                                              no_leaks: None) -> None:
    """The calibration's probes measure what their names say: a first write (copy-on-write
    from the backing file) is slower than a rewrite of an allocated cluster, a read that
    misses QEMU's L2 cache slower than one that hits it. The pairs of :data:`SLOWER_THAN`,
    as the README's calibration makes them (its runtime, the short matrix's ramp), measured
    :data:`PAIR_ROUNDS` rounds with the machine alone (``quiet``), the two probes of a pair
    back to back in each round: the first's median IOPS below the second's.

    ``quiet``: a pair differs by about 2x on a quiet machine (a profile of the short matrix
    made at load 0.8 on 2026-12-03: an L2 miss 1,716 IOPS, its rounds 1,072-2,750, a hit
    3,509, 2,051-4,242; a first write 1,742, a rewrite 3,174, 1,212-5,404), and beside other
    tests one round can fall ten-fold: measured side by side after the README's calibration,
    beside the other worker (CI, load 2.6 on 2026-12-03), an L2 miss ran 2,847 IOPS (rounds
    219-4,113) against a hit's 2,723 (664-6,113)."""
    from real.measure import calibrate as cal

    s = replace(cal.settings("short", 2), runtime_s=0.3, rounds=PAIR_ROUNDS, unsteady_rounds=0)
    matrix = {spec.name: spec for spec in cal.probe_matrix(s)}
    names = [name for pair in SLOWER_THAN for name in pair]
    measured = {p.name: p for p in cal.measure(tmp_path, s, [matrix[n] for n in names])}
    assert list(tmp_path.iterdir()) == []  # the probe images are gone
    for slow, fast in SLOWER_THAN:
        a, b = measured[slow], measured[fast]
        assert a.rounds == b.rounds == PAIR_ROUNDS
        assert a.iops < b.iops, (
            f"{slow} {a.iops:,.0f} ({a.iops_min:,.0f}-{a.iops_max:,.0f}) IOPS against {fast} "
            f"{b.iops:,.0f} ({b.iops_min:,.0f}-{b.iops_max:,.0f}), load {os.getloadavg()}")


