"""The real backend's answer to the open files its processes need (``cowbench.openfiles``
counts them from the scenario, and says what the figures are and how they were measured).

Within the soft ``RLIMIT_NOFILE``, nothing to do; within the hard limit, the run raises this
process's soft limit to the hard one while it runs (:func:`raised_limit`; every tool it
starts inherits it) and says so (run.json's ``open_files``); past the hard limit, which only
root may raise, the run is refused (exit code 2) before anything is made (:func:`plan`).
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cowbench.errors import UsageError
from cowbench.openfiles import NBD_FIXED as NBD_FIXED
from cowbench.openfiles import QEMU_IMG_FIXED as QEMU_IMG_FIXED
from cowbench.openfiles import SPARE_CONNECTIONS as SPARE_CONNECTIONS
from cowbench.openfiles import Need, largest_need, limits, remedy
from cowbench.scenario import Scenario

__all__ = ["NBD_FIXED", "QEMU_IMG_FIXED", "SPARE_CONNECTIONS", "Plan", "largest_need", "plan",
           "raised_limit"]


@dataclass(frozen=True)
class Plan:
    """What the run does about its need: ``raise_to`` is the soft limit it sets (None: the
    soft limit is enough)."""

    need: Need | None
    soft: int
    hard: int

    @property
    def raise_to(self) -> int | None:
        if self.need is None or self.need.descriptors <= self.soft:
            return None
        return self.hard

    def facts(self) -> dict[str, Any]:
        """run.json's ``open_files``."""
        need = self.need
        return {"needed": need.descriptors if need else 0,
                "by": f"{need.key}: {need.describe()}" if need else None,
                "soft_limit": self.soft, "hard_limit": self.hard, "raised_to": self.raise_to}


def plan(s: Scenario) -> Plan:
    """The run's largest need against this process's limits; refused (``UsageError``, exit
    code 2, before anything is made) when the hard limit is too low."""
    need = largest_need(s)
    soft, hard = limits()
    if need is not None and need.descriptors > hard:
        raise UsageError(
            f"{need.key}: {need.describe()}, past this machine's hard limit of open files "
            f"({hard}, RLIMIT_NOFILE: ulimit -Hn); raise it (as root: ulimit -Hn, "
            f"LimitNOFILE= of a systemd unit, docker run --ulimit nofile=), {remedy(need)}, "
            f"or --backend sim (refused before anything is made)")
    return Plan(need, soft, hard)


@contextmanager
def raised_limit(p: Plan) -> Iterator[None]:
    """Within the block, this process's soft limit raised to ``p.raise_to`` (if any), which
    every process it starts inherits; set back after, unless something else changed it
    meanwhile. Raising the soft limit up to the hard one needs no privilege."""
    if p.raise_to is None:
        yield
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (p.raise_to, p.hard))
    try:
        yield
    finally:
        if limits() == (p.raise_to, p.hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (p.soft, p.hard))


