"""Which calibration profile ``cowbench run`` predicts each host's I/O with.

In order, the first that applies:

1. ``--uncalibrated``: none (the uncalibrated device model), whatever the scenario names;
2. ``--profile FILE``: that profile, for every host;
3. a host's own ``hosts[].profile``, else the scenario's ``device.profile``;
4. this machine's cached profile of the host's storage (``cowbench.profile_cache``), for a
   host whose storage is on this machine: with the real backend, every host (the real
   backend builds each host's tree here); with ``--backend sim``, a host without
   ``storage_dir`` (its storage would be the run directory's ``work/``) or whose
   ``storage_dir`` exists on this machine. A fleet has no I/O figures and gets none;
5. with ``--backend both`` and no cached profile: a quick calibration of that storage, now,
   kept in the cache for the next runs (``--backend sim`` never calibrates);
6. otherwise none: the uncalibrated device model, and the run says so.

The storage a host's profile is keyed by is its ``storage_dir``, or the run directory's
``work/`` (its nearest existing parent before the run exists).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError
from .profile import Profile
from .profile_cache import (
    calibration_lock,
    existing_ancestor,
    fingerprint,
    fingerprint_key,
    lookup,
    store,
)
from .resolve import with_host_profiles, with_profile, without_profiles
from .scenario import Host, Scenario
from .tools import require_tools

Progress = Callable[[int, int, str], None]
Say = Callable[[str], None]


def storage_of(host: Host, out: Path) -> Path:
    """Where a host's disks live: its ``storage_dir``, or the run directory's ``work/``."""
    return Path(host.storage_dir) if host.storage_dir else Path(os.path.abspath(out)) / "work"


def on_this_machine(host: Host) -> bool:
    """A ``--backend sim`` host whose storage is here: no storage_dir, or one that exists."""
    return host.storage_dir is None or Path(host.storage_dir).is_dir()


def choose_profiles(scenario: Scenario, source: str, backend: str, out: Path, *,
                    profile: Path | None = None, uncalibrated: bool = False,
                    progress: Progress | None = None, say: Say | None = None) -> Scenario:
    """``scenario`` with the profile of every host set by the rules of the module docstring."""
    if profile is not None and uncalibrated:
        raise UsageError("--profile and --uncalibrated contradict each other; give one")
    if uncalibrated:
        return without_profiles(scenario, source)
    if profile is not None:
        return with_profile(scenario, profile, source)
    if backend == "real" or scenario.fleet is not None or scenario.device.calibrated is not None:
        return scenario
    wanted = [h for h in scenario.hosts if h.calibrated is None
              and (backend == "both" or on_this_machine(h))]
    paths: dict[str, Path] = {}
    for host in wanted:
        found = cached_or_calibrated(storage_of(host, out), calibrate=backend == "both",
                                     progress=progress, say=say)
        if found is not None:
            paths[host.name] = found
    return with_host_profiles(scenario, paths, source) if paths else scenario


def cached_or_calibrated(storage: Path, *, calibrate: bool, progress: Progress | None,
                         say: Say | None) -> Path | None:
    """The cached profile of ``storage`` on this machine; with ``calibrate``, one made now
    (quick matrix) when none is cached. None when there is none and ``calibrate`` is off."""
    fp = fingerprint(storage)
    hit = lookup(fp)
    if hit is not None or not calibrate:
        return None if hit is None else hit[0]
    with calibration_lock(fp):  # a run calibrating the same storage: wait, then use its one
        hit = lookup(fp)
        if hit is not None:
            return hit[0]
        where = existing_ancestor(storage)
        if say is not None:
            say(f"no calibration profile of this machine's storage under {where} "
                f"({fp['fs_type']} on {fp['device']}, key {fingerprint_key(fp)}): running "
                "the quick calibration first, kept for the next runs (--uncalibrated skips it)")
        require_tools(("qemu-img", "qemu-nbd", "fio"))  # a missing tool, named as such
        prof = _quick(where, progress)
        return store(prof.model_copy(update={"fingerprint": fp}))


def _quick(where: Path, progress: Progress | None) -> Profile:
    from .calibration import measure_profile

    try:
        return measure_profile(where, "quick", progress=progress)
    except UsageError as err:  # no room for the probe images, not writable, ...
        raise UsageError(f"calibrating this machine's storage: {err}; pass --uncalibrated "
                         "or --profile FILE to run without calibrating") from None
