"""Which calibration profile ``cowbench run`` predicts each host's I/O with.

In order, the first that applies:

1. ``--uncalibrated``: none (the uncalibrated device model), whatever the scenario names;
2. ``--profile FILE``: that profile, for every host;
3. a host's own ``hosts[].profile``, else the scenario's ``device.profile``;
4. this machine's cached profile of the host's storage (``cowbench.profile_cache``), for a
   host whose storage is on this machine: with the real backend, every host (the real
   backend builds each host's tree here); with ``--backend sim``, a host without
   ``storage_dir`` (its storage would be the run directory's ``work/``) or whose
   ``storage_dir`` exists on this machine. A fleet has no I/O figures and gets none. A
   cached profile fitted by an older cowbench's model (``Profile.fit_version``) is first
   fitted again from its own probes, in the cache (no I/O: its measurement stands);
5. with ``--backend both`` and no cached profile: a quick calibration of that storage, now,
   kept in the cache for the next runs (``--backend sim`` never calibrates);
6. otherwise none: the uncalibrated device model, and the run says so.

With ``--backend both``, :func:`profiles_for_run` then checks every profile file the run's
I/O figures rest on against this machine (``cowbench.profile_check``): a cached profile the
machine has moved away from is made again with the quick calibration (once per run), and a
profile the run was told to use (``--profile``, ``device.profile``, ``hosts[].profile``) is
kept with a warning; run.json's ``profile_check`` records the check, and the new profile.

The storage a host's profile is keyed by is its ``storage_dir``, or the run directory's
``work/`` (its nearest existing parent before the run exists).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backends import get_backend
from .errors import UsageError
from .profile import Profile, load_profile
from .profile_cache import (
    calibration_lock,
    checked_probes,
    existing_ancestor,
    fingerprint,
    fingerprint_key,
    lookup,
    mark_checked,
    store,
)
from .profile_check import check, moved_text, probe_records, remade_block
from .resolve import with_host_profiles, with_profile, without_profiles
from .scenario import Host, Scenario
from .store import now_iso
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
                    progress: Progress | None = None, say: Say | None = None,
                    memo: dict[str, Path | None] | None = None) -> Scenario:
    """``scenario`` with the profile of every host set by the rules of the module docstring.

    ``memo``: the cache lookups already made, by the storage's nearest existing directory
    (a sweep chooses for each of its cells, whose storage is mostly one directory: one
    fingerprint, not one per cell); only where nothing is calibrated."""
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
        storage = storage_of(host, out)
        key = str(existing_ancestor(storage))
        if memo is not None and backend != "both" and key in memo:
            found = memo[key]
        else:
            found = cached_or_calibrated(storage, calibrate=backend == "both",
                                         progress=progress, say=say, aio=scenario.real.aio)
            if memo is not None and backend != "both":
                memo[key] = found
        if found is not None:
            paths[host.name] = found
    return with_host_profiles(scenario, paths, source) if paths else scenario


def cached_or_calibrated(storage: Path, *, calibrate: bool, progress: Progress | None,
                         say: Say | None, aio: str = "threads") -> Path | None:
    """The cached profile of ``storage`` on this machine, its probes exported as the run's
    disks are (qemu-nbd's ``--aio``, the scenario's ``real.aio``); with ``calibrate``, one
    made now (quick matrix) when none is cached. None when there is none and ``calibrate``
    is off."""
    fp = fingerprint(storage, aio)
    hit = lookup(fp)
    if hit is not None and not older_fit(hit[1]):
        return hit[0]
    if hit is None and not calibrate:
        return None
    with calibration_lock(fp):  # a run calibrating the same storage: wait, then use its one
        hit = lookup(fp)
        if hit is not None:
            return hit[0] if not older_fit(hit[1]) else _refit_cached(*hit, say, progress)
        if not calibrate:
            return None
        where = existing_ancestor(storage)
        if say is not None:
            say(f"no calibration profile of this machine's storage under {where} "
                f"({fp['fs_type']} on {fp['device']}, key {fingerprint_key(fp)}): running "
                "the quick calibration first, kept for the next runs (--uncalibrated skips it)")
        require_tools(("qemu-img", "qemu-nbd", "fio"))  # a missing tool, named as such
        prof = _quick(where, progress, aio)
        return store(prof.model_copy(update={"fingerprint": fp}))


def older_fit(prof: Profile) -> bool:
    """Whether ``prof``'s parameters were fitted by an older version of the model's fit than
    this cowbench's (``Profile.fit_version``): its probes would fit other ones now."""
    return prof.fit_version < get_backend("sim").fit_version


def _refit_cached(path: Path, prof: Profile, say: Say | None,
                  progress: Progress | None) -> Path:
    """The cached profile ``prof`` (at ``path``) fitted again from its own probes by this
    cowbench's model, in place (under its calibration lock, held by the caller): its
    measurement is this machine's and still checked before a run; only the fit is new."""
    from .calibration import refit

    if say is not None:
        say(f"the cached calibration profile {path} was fitted by an older cowbench's model "
            f"(fit version {prof.fit_version}; this one's is "
            f"{get_backend('sim').fit_version}): fitting it again from its own probes (no "
            "I/O, seconds), kept for the next runs")
    if progress is not None:
        progress(0, 1, f"fitting the I/O model again to {len(prof.probes)} probes")
    try:
        new = refit(prof, str(path))
    except UsageError as err:
        raise UsageError(f"{err} (a cached profile: delete it, and the next run with both "
                         "backends calibrates again; or pass --uncalibrated or --profile "
                         "FILE)") from None
    return store(new)


def _labelled(progress: Progress | None, label: str) -> Progress | None:
    if progress is None:
        return None

    def step(i: int, n: int, msg: str, progress: Progress = progress) -> None:
        progress(i, n, f"{label}: {msg}")

    return step


def _quick(where: Path, progress: Progress | None, aio: str = "threads") -> Profile:
    from .calibration import measure_profile

    try:
        return measure_profile(where, "quick", progress=_labelled(progress, "quick calibration"),
                               aio=aio)
    except UsageError as err:  # no room for the probe images, not writable, ...
        raise UsageError(f"calibrating this machine's storage: {err}; pass --uncalibrated "
                         "or --profile FILE to run without calibrating") from None


def profiles_for_run(scenario: Scenario, source: str, backend: str, out: Path, *,
                     profile: Path | None = None, uncalibrated: bool = False,
                     progress: Progress | None = None,
                     say: Say | None = None) -> tuple[Scenario, dict[str, Any]]:
    """:func:`choose_profiles`, then with ``--backend both`` the check of every profile file
    chosen (``cowbench.profile_check``): the scenario to run and run.json's
    ``profile_check``."""
    chosen = choose_profiles(scenario, source, backend, out, profile=profile,
                             uncalibrated=uncalibrated, progress=progress, say=say)
    if say is not None and backend != "real":  # a real run alone predicts nothing
        for line in profile_warnings(chosen):
            say(line)
    if backend != "both" or chosen.fleet is not None:
        return chosen, {"checked": False, "reason": f"--backend {backend}: nothing measured "
                        "here is predicted with a profile"}
    cached = {h.name for h, was in zip(chosen.hosts, scenario.hosts, strict=True)
              if profile is None and h.profile and was.profile is None
              and scenario.device.profile is None}
    groups = _profile_files(chosen, out)
    if not groups:
        return chosen, {"checked": False, "reason": "no calibration profile file "
                        "(uncalibrated, or parameters given inline)"}
    found = []
    for path, (where, hosts) in groups.items():
        chosen, block = _check_one(chosen, source, path, where, hosts,
                                   cached.issuperset(hosts), progress, say)
        found.append(block)
    return chosen, found[0] if len(found) == 1 else {"checked": "per profile",
                                                     "profiles": found}


def profile_warnings(scenario: Scenario) -> list[str]:
    """A warning for each profile the scenario's I/O figures rest on that predicts other I/O
    than this cowbench would make of it:

    - its probes went through qemu-nbd with another ``--aio`` than the scenario's disks
      (``real.aio``): the model predicts the profile's kind of export. Measured here
      (benchmarks/io_turns.py --aio, io-holdout.yaml): a crowded host's p99 latency three to
      six times longer with qemu-nbd's pool of threads (``threads``) than without
      (``native``);
    - its parameters were fitted by an older version of the model's fit (a profile file the
      run was told to use: a cached one is fitted again before this, ``_refit_cached``)."""
    paths = {Path(src) for host in scenario.hosts if (src := _profile_of(scenario, host))}
    out = []
    for path in sorted(paths):
        try:
            prof = load_profile(path)
        except UsageError:  # read when the scenario was resolved; its check says what broke
            continue
        if prof.aio != scenario.real.aio:
            out.append(f"warning: the calibration profile {path} was measured through "
                       f"qemu-nbd --aio={prof.aio}, and this scenario exports its disks with "
                       f"--aio={scenario.real.aio} (real.aio): the predicted I/O is that of "
                       f"--aio={prof.aio}; `cowbench calibrate --aio {scenario.real.aio}` "
                       "makes a profile of the scenario's kind")
        if older_fit(prof):
            out.append(f"warning: the calibration profile {path} was fitted by an older "
                       f"cowbench's model (fit version {prof.fit_version}; this one's is "
                       f"{get_backend('sim').fit_version}): the run predicts with its "
                       f"parameters as they are; `cowbench calibrate --refit {path} --out "
                       "FILE` fits them again from its probes (no I/O)")
    return out


def _profile_of(scenario: Scenario, host: Host) -> str | None:
    """The profile file ``host``'s I/O is predicted with: its own, else the scenario's."""
    if host.calibrated is not None:
        return host.profile
    return scenario.device.profile if scenario.device.calibrated is not None else None


def _profile_files(scenario: Scenario, out: Path) -> dict[Path, tuple[Path, list[str]]]:
    """Profile file -> (an existing directory on its first host's storage, its hosts)."""
    groups: dict[Path, tuple[Path, list[str]]] = {}
    for host in scenario.hosts:
        src = _profile_of(scenario, host)
        if src:
            where = existing_ancestor(storage_of(host, out))
            groups.setdefault(Path(src), (where, []))[1].append(host.name)
    return groups


def _check_one(scenario: Scenario, source: str, path: Path, where: Path, hosts: list[str],
               cached: bool, progress: Progress | None,
               say: Say | None) -> tuple[Scenario, dict[str, Any]]:
    """Check one profile file; re-make it if it is this machine's cached one and moved. A
    cached one is checked under its calibration lock: a second run waits for the first's
    check (two checks at once would slow each other's probes), then finds it checked and
    kept, or made again (and uses the new one)."""
    try:
        prof = load_profile(path)
    except UsageError as err:  # read when the scenario was resolved; gone since
        return scenario, {"checked": False, "profile": str(path), "hosts": hosts,
                          "reason": str(err)}
    if not cached or prof.fingerprint is None:
        return scenario, _named(path, prof, scenario, hosts, where, progress, say)
    with calibration_lock(prof.fingerprint):
        hit = lookup(prof.fingerprint)
        if hit is not None:  # made again since the scenario was resolved with it: the new one
            prof = hit[1]
            if _params_of(scenario, hosts[0]) != prof.params:
                scenario = with_host_profiles(scenario, dict.fromkeys(hosts, hit[0]), source)
        block = check(path, prof, scenario, hosts, where,
                      _labelled(progress, "checking the profile"),
                      checked=checked_probes(prof))
        block["source"] = "cache"
        if block.get("checked") is not True:
            return scenario, block
        if block["moved"] is None:
            block["action"] = "kept"
            mark_checked(prof, probe_records(block, now_iso()))
            return scenario, block
        if say is not None:
            say(f"the cached calibration profile {path} no longer describes this machine: "
                f"{moved_text(block)}; re-making it with the quick calibration first, kept "
                "for the next runs (--uncalibrated skips it)")
        new_path, new = _remake(prof, where, progress)
    block["action"] = "remade"
    block["remade"] = remade_block(new_path, new, block)
    return with_host_profiles(scenario, dict.fromkeys(hosts, new_path), source), block


def _params_of(scenario: Scenario, host: str) -> object:
    return next(h.calibrated for h in scenario.hosts if h.name == host)


def _named(path: Path, prof: Profile, scenario: Scenario, hosts: list[str], where: Path,
           progress: Progress | None, say: Say | None) -> dict[str, Any]:
    """The check of a profile the run was told to use: never replaced, a warning if moved.
    Its probes' verdicts are noted in the cache (``cowbench.profile_cache.note_name``), moved
    or not: the next runs spare those that held, as for a cached profile."""
    try:
        noted = checked_probes(prof, where)
    except (UsageError, OSError):  # a cache this user cannot use: every probe is checked
        noted = {}
    block = check(path, prof, scenario, hosts, where, _labelled(progress, "checking the profile"),
                  checked=noted)
    block["source"] = "file"
    if block.get("checked") is True:
        block["action"] = "kept" if block["moved"] is None else \
            "kept (named by the run; never replaced)"
        with contextlib.suppress(UsageError, OSError):  # as above: the next run checks again
            mark_checked(prof, probe_records(block, now_iso()), where)
    if block.get("moved") and say is not None:
        say(f"warning: the calibration profile {path} no longer describes this machine: "
            f"{moved_text(block)}; the run uses it as told (a profile named by the run is "
            "never replaced; `cowbench calibrate` makes a new one)")
    return block


def _remake(stale: Profile, where: Path, progress: Progress | None) -> tuple[Path, Profile]:
    """The quick calibration of ``where`` in place of the ``stale`` cached profile (under its
    calibration lock, held by the caller)."""
    fp = stale.fingerprint
    assert fp is not None
    require_tools(("qemu-img", "qemu-nbd", "fio"))
    new = _quick(where, progress, stale.aio).model_copy(update={"fingerprint": fp})
    return store(new), new
