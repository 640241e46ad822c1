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
the quickstart's second run). Nor is a probe of a cached profile that a run checked that
recently and found within the profile's rounds: a note beside the profile in the cache
(``cowbench.profile_cache.mark_checked``) keeps, per probe a check measured, when and whether
it moved by itself. A run whose probes all held that recently is not checked; one that needs
other probes measures only those, and the verdict counts the recent ones as held (the
job-file table's 27 jobs at 15:02 today, 11.5 min at load 8 to 9, made 8 checks, 72.5 s in
all: each of the 8 probes they rest on once, two of them spared at first by a check 6 min
before the table; a table whose first job checked
``raw-randread-4k-qd32-x1`` still checks web-cache's ``cow-write-4k-qd8-x1`` and
``chain-d1-randread-4k-qd1-x1``, which a profile made under load had 1.4x and 2.7x slow).
A profile file the run was told to use gets such a note too (in the cache, by the file's
content and the storage it is checked on): the probes that held are spared for as long, those
that moved are measured, and warned of, again by every run that rests on them.
This bounds what a shared machine's bursts can cost: a quick calibration (about two minutes
here) at most once per run and not again for that long, and a check (5 to 10 s) of any probe
at most once per that long.

run.json's ``profile_check``, per profile (``{"checked": "per profile", "profiles": [...]}``
for several)::

    {"checked": true, "profile": PATH, "source": "cache" | "file", "hosts": [...],
     "threshold": {"factor": 1.5, "rounds": 2, "rule": ...},
     "measured": {the drift block of the check (cowbench.drift): the probes measured now},
     "measured_again": {the same, when the first found the machine slower},
     "checked_before": [{"probe", "stands_for", "checked" (ISO time), "profile_iops",
                         "iops"}: the run's other probes, held when checked recently],
     "moved": "faster" | "slower" | null (the profile's verdict),
     "probes_moved": n (the probes that moved that way; with the profile kept, the probes
                        that moved either way, fewer than half of them the same way),
     "action": "kept" | "remade" | "kept (named by the run; never replaced)",
     "remade": {"path", "created", "duration_s", "probes": [{"probe", "iops", "iops_min",
                "iops_max", "lat_mean_s", "check_iops"}]}}

or ``{"checked": false, "profile": PATH, "reason": ...}`` (with ``checked_before`` when every
probe the run rests on held recently).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .drift import Progress, choose_probes, measure_drift, vm_needs
from .drift import blocks as drift_blocks
from .errors import CowbenchError, Interrupted
from .profile import Probe, Profile
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


def moved_probes(rows: list[dict[str, Any]], again: list[dict[str, Any]] | None = None
                 ) -> list[tuple[dict[str, Any], int]]:
    """The probes of drift ``rows`` that moved by :func:`probe_moved`, each with its way (+1
    faster, -1 slower). ``again``: the second measurement, when there was one (the first
    found the machine slower): a probe is then slower only if it is slower in both, as the
    profile is (a neighbour's burst lasts seconds). The run.json of a run at load 7 had
    ``raw-randwrite-1m-qd8-x1`` at 209 and 324 IOPS against the profile's 672 to 889: one of
    three probes moved slower, the profile kept (fewer than half), and this counts it."""
    later = {r["probe"]: probe_moved(r) for r in again or []}
    out = []
    for r in rows:
        way = probe_moved(r)
        if way < 0 and again is not None and later.get(r["probe"], 0) >= 0:
            way = 0
        if way:
            out.append((r, way))
    return out


def verdict(rows: list[dict[str, Any]], held: int = 0) -> tuple[int, int]:
    """(direction, probes that moved that way): +1 faster, -1 slower, 0 the profile holds;
    ``held``: more probes the run rests on, found within the profile's rounds by a check a
    few minutes ago."""
    moves = [probe_moved(r) for r in rows] + [0] * held
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


def _since(when: object) -> float | None:
    try:
        return None if not isinstance(when, str) else \
            (datetime.now(UTC) - datetime.fromisoformat(when)).total_seconds()
    except (ValueError, TypeError):
        return None


def _limit() -> str:
    return f"{RECHECK_AFTER_S / 60:.0f} min"


def _made_recently(profile: Profile) -> str | None:
    """Why ``profile`` is not checked now (its calibration ended within
    :data:`RECHECK_AFTER_S`), or None."""
    made = age_s(profile)
    if made is not None and made < RECHECK_AFTER_S:
        return (f"made {max(made, 0.0) / 60:.0f} min ago: a profile younger than {_limit()} "
                "is not checked")
    return None


def _fresh(record: dict[str, Any] | None) -> float | None:
    """Seconds since a probe's noted check, if it was within :data:`RECHECK_AFTER_S` and the
    probe held (did not move); else None."""
    if record is None or record.get("moved") is not None:
        return None
    since = _since(record.get("checked"))
    return since if since is not None and 0 <= since < RECHECK_AFTER_S else None


def kept_before(chosen: list[tuple[Probe, list[str]]],
                checked: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``chosen`` probes that a run checked within :data:`RECHECK_AFTER_S` and found
    within the profile's rounds (``checked``: the note's records,
    ``cowbench.profile_cache.checked_probes``), as run.json's ``checked_before`` rows."""
    rows = []
    for p, vms in chosen:
        rec = checked.get(p.name)
        if _fresh(rec) is not None:
            assert rec is not None
            rows.append({"probe": p.name, "stands_for": vms, "checked": rec["checked"],
                         "profile_iops": p.iops, "iops": rec.get("iops")})
    return rows


def _kept_reason(before: list[dict[str, Any]]) -> str:
    oldest = max(_since(r["checked"]) or 0.0 for r in before)
    names = ", ".join(r["probe"] for r in before)
    return (f"checked and kept {oldest / 60:.0f} min ago: the {len(before)} probe(s) this "
            f"run's VMs resemble ({names}) held at a check in the last {_limit()}; a probe "
            f"is checked at most every {_limit()}")


def check(path: Path, profile: Profile, scenario: Scenario, hosts: list[str], where: Path,
          progress: Progress | None = None,
          checked: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The check of ``profile`` (at ``path``), the profile of ``hosts``, on ``where`` (an
    existing directory on their storage): the block of the module docstring, without
    ``action`` (the caller's). ``checked``: the probes runs checked before, by name
    (``cowbench.profile_cache.checked_probes``); those that held within
    :data:`RECHECK_AFTER_S` are not measured again, and count as held in the verdict."""
    head: dict[str, Any] = {"profile": str(path), "hosts": hosts}
    recent = _made_recently(profile)
    if recent is not None:
        return {"checked": False, **head, "reason": recent}
    chosen = choose_probes([n for n in vm_needs(scenario) if n.host in hosts], profile.probes)
    if not chosen:
        return {"checked": False, **head,
                "reason": "no VM does I/O that a probe of the profile resembles"}
    before = kept_before(chosen, checked or {})
    held = {r["probe"] for r in before}
    todo = [(p, vms) for p, vms in chosen if p.name not in held]
    if not todo:
        return {"checked": False, **head, "reason": _kept_reason(before),
                "checked_before": before}
    try:
        measured = measure_drift(path, profile, todo, where, progress, rounds=CHECK_ROUNDS)
        way, n = verdict(measured["probes"], held=len(before))
        again = None
        if way < 0:  # slower: a neighbour's burst lasts seconds; it must still be there
            again = measure_drift(path, profile, todo, where, progress, rounds=CHECK_ROUNDS)
            way2, n2 = verdict(again["probes"], held=len(before))
            way, n = (way, min(n, n2)) if way2 == way else (0, 0)
    except Interrupted:
        raise
    except (CowbenchError, KeyError, ValueError) as err:  # a failed probe, or a hand-made
        # profile without the settings its probes ran with: the run goes on with the profile
        return {"checked": False, **head, "reason": f"the probes failed: {err!s}"}
    return {"checked": True, **head,
            "threshold": {"factor": MOVED_FACTOR, "rounds": CHECK_ROUNDS, "rule": RULE},
            "measured": measured, **({"measured_again": again} if again else {}),
            "checked_before": before, **decision(way, n, measured, again)}


def decision(way: int, n: int, measured: dict[str, Any], again: dict[str, Any] | None
             ) -> dict[str, Any]:
    """The check block's ``moved`` and ``probes_moved`` from the :func:`verdict` (``way``,
    ``n``) and the measurements: with the profile kept, ``probes_moved`` still counts the
    probes that moved by themselves (:func:`moved_probes`; before, 0 whenever fewer than half
    of them moved)."""
    moved = moved_probes(measured["probes"], again["probes"] if again else None)
    return {"moved": {1: "faster", -1: "slower"}.get(way),
            "probes_moved": n if way else len(moved)}


def probe_records(block: dict[str, Any], when: str) -> dict[str, dict[str, Any]]:
    """What the note beside a cached profile keeps of a check that measured
    (``cowbench.profile_cache.mark_checked``): per probe measured, when, and whether it
    moved by itself (:func:`probe_moved`, on its latest measurement) with its IOPS."""
    rows = (block.get("measured_again") or block["measured"])["probes"]
    return {r["probe"]: {"checked": when, "moved": {1: "faster", -1: "slower"}.get(
        probe_moved(r)), "iops": r["iops"], "iops_min": r.get("iops_min"),
        "iops_max": r.get("iops_max")} for r in rows}


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
    before = block.get("checked_before") or []
    held = "" if not before else (
        f"; {', '.join(r['probe'] for r in before)} held at a check in the last {_limit()}")
    return (f"{block['probes_moved']} of {len(rows) + len(before)} probe(s) ran "
            f"{block['moved']} than the profile's rounds by more than x{MOVED_FACTOR} "
            f"({'; '.join(_x(r) for r in rows)}{held})")


def held_text(block: dict[str, Any], n: int, more: str) -> str:
    """Why a check that measured ``n`` probes kept the profile, in one clause: none moved,
    or those that moved (named, with their way and IOPS) are fewer than half of the probes
    the run rests on, and the next run measures them again (the cache's note keeps them as
    moved, ``probe_records``)."""
    again = block.get("measured_again")
    moved = moved_probes(block["measured"]["probes"], again["probes"] if again else None)
    if not moved:
        return (f"{n} probe(s) measured again, none beyond x{MOVED_FACTOR} of the profile's "
                f"rounds{more}: kept")
    ways = "; ".join(f"{_x(r)} {'faster' if w > 0 else 'slower'}" for r, w in moved)
    return (f"{len(moved)} of {n} probe(s) measured again moved beyond x{MOVED_FACTOR} of "
            f"the profile's rounds ({ways}){more}; fewer than half of the probes moved the "
            "same way: kept, and the next run measures the moved one(s) again")


def blocks(check_block: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-profile blocks of a ``profile_check`` block (one, or those of ``per profile``)."""
    return drift_blocks(check_block, "checked")


def describe(check_block: dict[str, Any] | None) -> str | None:
    """One sentence (no final stop) on the checks that measured, or that found every probe
    held at a recent check; None if there is none."""
    parts: list[str] = []
    spared: list[str] = []
    for b in blocks(check_block):
        before = b.get("checked_before") or []
        if b.get("checked") is False and before:
            spared.append(f"its {len(before)} probe(s) "
                          f"({', '.join(r['probe'] for r in before)}) held at a check in "
                          f"the last {_limit()}: kept")
        if b.get("checked") is not True:
            continue
        n = len(b["measured"]["probes"])
        if b.get("action") == "remade":
            parts.append(f"{moved_text(b)}: re-made with the quick calibration")
        elif b.get("moved"):
            parts.append(f"{moved_text(b)}: kept, as the run was told to use it")
        else:
            k = len(b.get("checked_before") or [])
            more = f" ({k} more held at a check in the last {_limit()})" if k else ""
            parts.append(held_text(b, n, more))
    if not parts:
        return ("profile not measured again before the run: " + "; ".join(spared)
                if spared else None)
    if spared:
        parts.append("another profile not measured again: " + "; ".join(spared))
    return "profile checked before the run: " + "; ".join(parts)
