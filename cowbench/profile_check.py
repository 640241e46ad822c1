"""Before a run: does the profile its I/O figures rest on still describe this machine?

A cached profile is used silently by every later run on the same storage, and a machine
shared with others moves: the quick profile this machine cached at 08:14 under load said
``cow-write-4k-qd8-x1`` ran 4,500 IOPS and ``chain-d1-randread-4k-qd1-x1`` 3,526; three hours
later, quiet, they ran 6,269 and 9,511, and every time-bounded job's count of I/Os (and every
I/O figure) was predicted for a machine half as fast. So before ``cowbench run --backend both``
predicts with a profile file, the drift probes (``cowbench.drift``: the profile's probes the
run's VMs resemble most, its own settings) are measured again where the run's disks will be,
:data:`CHECK_ROUNDS` rounds each, a few seconds.

A probe has *moved* when every round of it now lies beyond the range of the profile's own
rounds by more than :data:`MOVED_FACTOR` (faster: its slowest round now is above the profile's
fastest times the factor; slower: its fastest round is below the profile's slowest over the
factor). The profile no longer describes the machine when at least half of the probes checked
(and at least one) moved the same way. Noise on this 2-core machine shared by four sessions:
checks a few minutes after a quick calibration moved the probes by 1% to 12% at load 3 to 7;
bursts of load move a probe by 3x to 10x for seconds (at load 6 a check found both of
web-cache's probes 3.3x and 3.8x slower than a profile that the drift after the run found
1.5x and 1.7x too slow), so a profile found *slower* is measured once more and must be found
slower again (``measured_again``); faster is never a neighbour's burst.

What follows (``cowbench.autoprofile``): a cached profile is made again with the quick
calibration, at most once per run, and the run uses the new one; a profile the run was told to
use (``--profile FILE``, ``device.profile``, ``hosts[].profile``) is never replaced: the run
warns and goes on with it. A profile whose calibration ended less than
:data:`RECHECK_AFTER_S` ago is not checked (a run right after the calibration that made it, as
the quickstart's second run), nor a cached one a run checked and kept that recently (a note
beside it in the cache, ``cowbench.profile_cache.mark_checked``: a table of 27 jobs checks once,
not 27 times): this bounds what a shared machine's bursts can cost, a quick calibration (about
two minutes here) at most once per run and not again for that long, and a check (5 to 10 s)
at most once per that long.

run.json's ``profile_check``, per profile (``{"checked": "per profile", "profiles": [...]}``
for several)::

    {"checked": true, "profile": PATH, "source": "cache" | "file", "hosts": [...],
     "threshold": {"factor": 1.5, "rounds": 2, "rule": ...},
     "measured": {the drift block of the check (cowbench.drift)},
     "measured_again": {the same, when the first found the machine slower},
     "moved": "faster" | "slower" | null, "probes_moved": n,
     "action": "kept" | "remade" | "kept (named by the run; never replaced)",
     "remade": {"path", "created", "duration_s", "probes": [{"probe", "iops", "iops_min",
                "iops_max", "lat_mean_s", "check_iops"}]}}

or ``{"checked": false, "profile": PATH, "reason": ...}``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .drift import Progress, choose_probes, measure_drift, vm_needs
from .drift import blocks as drift_blocks
from .errors import CowbenchError, Interrupted
from .profile import Profile
from .scenario import Scenario

#: a probe moved when all its rounds now lie beyond the profile rounds' range by this factor
MOVED_FACTOR = 1.5
#: rounds of each probe in the check
CHECK_ROUNDS = 2
#: a profile younger than this is not checked
RECHECK_AFTER_S = 600.0
RULE = (f"a probe moved when every one of its {CHECK_ROUNDS} rounds lies beyond the range of "
        f"the profile's rounds by more than x{MOVED_FACTOR}; the profile no longer describes "
        "the machine when at least half of the probes (and at least one) moved the same way")


def probe_moved(row: dict[str, Any]) -> int:
    """+1 when the probe of a drift row is faster now beyond the threshold, -1 slower, else 0."""
    lo = row.get("profile_iops_min") or row["profile_iops"]
    hi = row.get("profile_iops_max") or row["profile_iops"]
    now_lo = row.get("iops_min") or row["iops"]
    now_hi = row.get("iops_max") or row["iops"]
    if now_lo > hi * MOVED_FACTOR:
        return 1
    if now_hi * MOVED_FACTOR < lo:
        return -1
    return 0


def verdict(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(direction, probes that moved that way): +1 faster, -1 slower, 0 the profile holds."""
    moves = [probe_moved(r) for r in rows]
    for way in (1, -1):
        n = moves.count(way)
        if n and 2 * n >= len(moves):
            return way, n
    return 0, 0


def age_s(profile: Profile, now: datetime | None = None) -> float | None:
    """Seconds since the calibration that made ``profile`` ended; None if unknown."""
    try:
        made = datetime.fromisoformat(profile.created)
    except ValueError:
        return None
    if made.tzinfo is None:
        return None
    return ((now or datetime.now(UTC)) - made).total_seconds() - profile.duration_s


def _since(when: str | None) -> float | None:
    try:
        return None if when is None else \
            (datetime.now(UTC) - datetime.fromisoformat(when)).total_seconds()
    except (ValueError, TypeError):
        return None


def _recent(profile: Profile, checked: str | None) -> str | None:
    """Why ``profile`` is not checked now (made, or checked and kept, within
    :data:`RECHECK_AFTER_S`), or None."""
    limit = f"{RECHECK_AFTER_S / 60:.0f} min"
    made, kept = age_s(profile), _since(checked)
    if made is not None and made < RECHECK_AFTER_S:
        return (f"made {max(made, 0.0) / 60:.0f} min ago: a profile younger than {limit} is "
                "not checked")
    if kept is not None and 0 <= kept < RECHECK_AFTER_S:
        return (f"checked and kept {kept / 60:.0f} min ago: a profile is checked at most "
                f"every {limit}")
    return None


def check(path: Path, profile: Profile, scenario: Scenario, hosts: list[str], where: Path,
          progress: Progress | None = None, checked: str | None = None) -> dict[str, Any]:
    """The check of ``profile`` (at ``path``), the profile of ``hosts``, on ``where`` (an
    existing directory on their storage): the block of the module docstring, without
    ``action`` (the caller's). ``checked``: when a run last checked it and kept it."""
    head: dict[str, Any] = {"profile": str(path), "hosts": hosts}
    recent = _recent(profile, checked)
    if recent is not None:
        return {"checked": False, **head, "reason": recent}
    chosen = choose_probes([n for n in vm_needs(scenario) if n.host in hosts], profile.probes)
    if not chosen:
        return {"checked": False, **head,
                "reason": "no VM does I/O that a probe of the profile resembles"}
    try:
        measured = measure_drift(path, profile, chosen, where, progress, rounds=CHECK_ROUNDS)
        way, n = verdict(measured["probes"])
        again = None
        if way < 0:  # slower: a neighbour's burst lasts seconds; it must still be there
            again = measure_drift(path, profile, chosen, where, progress, rounds=CHECK_ROUNDS)
            way2, n2 = verdict(again["probes"])
            way, n = (way, min(n, n2)) if way2 == way else (0, 0)
    except Interrupted:
        raise
    except (CowbenchError, KeyError, ValueError) as err:  # a failed probe, or a hand-made
        # profile without the settings its probes ran with: the run goes on with the profile
        return {"checked": False, **head, "reason": f"the probes failed: {err!s}"}
    return {"checked": True, **head,
            "threshold": {"factor": MOVED_FACTOR, "rounds": CHECK_ROUNDS, "rule": RULE},
            "measured": measured, **({"measured_again": again} if again else {}),
            "moved": {1: "faster", -1: "slower"}.get(way), "probes_moved": n}


def remade_block(path: Path, new: Profile, checked: dict[str, Any]) -> dict[str, Any]:
    """run.json's ``remade``: the new profile's figures of the probes the check measured."""
    by_name = {p.name: p for p in new.probes}
    rows = []
    for row in checked["measured"]["probes"]:
        p = by_name.get(row["probe"])
        if p is not None:
            rows.append({"probe": p.name, "iops": p.iops, "iops_min": p.iops_min,
                         "iops_max": p.iops_max, "lat_mean_s": p.lat_mean_s,
                         "check_iops": row["iops"]})
    return {"path": str(path), "created": new.created, "duration_s": new.duration_s,
            "probes": rows}


def _x(row: dict[str, Any]) -> str:
    then, now = row["profile_iops"], row["iops"]
    ratio = now / then if then > 0 else math.inf
    return f"{row['probe']} {then:,.0f} -> {now:,.0f} IOPS (x{ratio:.3g})"


def moved_text(block: dict[str, Any]) -> str:
    """Why a check found the profile moved, in one clause."""
    rows = block["measured"]["probes"]
    return (f"{block['probes_moved']} of {len(rows)} probe(s) ran {block['moved']} than the "
            f"profile's rounds by more than x{MOVED_FACTOR} ({'; '.join(_x(r) for r in rows)})")


def blocks(check_block: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-profile blocks of a ``profile_check`` block (one, or those of ``per profile``)."""
    return drift_blocks(check_block, "checked")


def describe(check_block: dict[str, Any] | None) -> str | None:
    """One sentence (no final stop) on the checks that measured, or None if none did."""
    parts = []
    for b in blocks(check_block):
        if b.get("checked") is not True:
            continue
        n = len(b["measured"]["probes"])
        if b.get("action") == "remade":
            parts.append(f"{moved_text(b)}: re-made with the quick calibration")
        elif b.get("moved"):
            parts.append(f"{moved_text(b)}: kept, as the run was told to use it")
        else:
            parts.append(f"{n} probe(s) measured again within the profile's rounds and "
                         f"x{MOVED_FACTOR}: kept")
    if not parts:
        return None
    return "profile checked before the run: " + "; ".join(parts)
