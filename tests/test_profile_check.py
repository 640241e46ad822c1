"""Before a run with both backends: the profile its I/O figures rest on is checked against this
machine, and a cached one the machine moved away from is made again (cowbench.profile_check,
cowbench.autoprofile.profiles_for_run).

The rule and what follows from it are tested with the check's measurement replaced
(``measured_at``); the tests marked ``real`` measure the probes for real, with profiles this
machine cannot match (ten million IOPS: any load only makes it slower) or cannot leave (rounds
from 1 to 10^9 IOPS), so that what they assert does not depend on the load. The quick
calibration itself is replaced (``fake_quick``): tests/test_calibrate.py runs it for real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cowbench import autoprofile, profile_check
from cowbench.autoprofile import profiles_for_run
from cowbench.drift import probe_row
from cowbench.profile import Probe, Profile, load_profile, profile_json
from cowbench.profile_cache import fingerprint, last_checked, lookup, store
from cowbench.profile_check import MOVED_FACTOR, describe, probe_moved, verdict

from .clirun import cowbench
from .conftest import needs_tools, small_dict
from .test_cli import write
from .test_perf import TRUE
from .test_profile_cache import OTHER, scenario_at
from .test_repeat_real import SETTINGS, a_profile

HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")


def row(then: float, now: float, spread: float = 0.05, now_spread: float = 0.05
        ) -> dict[str, Any]:
    return {"probe": "p", "profile_iops": then, "profile_iops_min": then * (1 - spread),
            "profile_iops_max": then * (1 + spread), "iops": now,
            "iops_min": now * (1 - now_spread), "iops_max": now * (1 + now_spread)}


def test_a_probe_moved_when_all_its_rounds_are_beyond_the_profiles_by_the_factor() -> None:
    assert MOVED_FACTOR == 1.5
    assert probe_moved(row(1000, 1000)) == 0
    assert probe_moved(row(1000, 1500)) == 0  # x1.5 of the median, not beyond its rounds
    assert probe_moved(row(1000, 1800)) == 1
    assert probe_moved(row(1000, 1800, now_spread=0.5)) == 0  # its slowest round is not
    assert probe_moved(row(1000, 1800, spread=0.3)) == 0  # the profile's rounds allow it
    assert probe_moved(row(1000, 650)) == 0
    assert probe_moved(row(1000, 500)) == -1
    assert probe_moved(row(4500, 6269, 0.006)) == 0  # the 08:14 profile, quiet at 11:11
    assert probe_moved(row(3526, 9511, 0.007)) == 1
    # without the rounds' ranges (a profile of one round): the medians
    bare = {"probe": "p", "profile_iops": 1000.0, "profile_iops_min": None,
            "profile_iops_max": None, "iops": 1600.0}
    assert probe_moved(bare) == 1


def test_the_profile_moved_when_half_the_probes_moved_the_same_way() -> None:
    up, same, down = row(1000, 3000), row(1000, 1000), row(1000, 300)
    assert verdict([up]) == (1, 1)
    assert verdict([same, up]) == (1, 1)  # web-cache's two probes at 11:11
    assert verdict([same, same, up]) == (0, 0)
    assert verdict([up, down]) == (1, 1)  # half each way: the first way that has half
    assert verdict([up, down, same]) == (0, 0)
    assert verdict([down, down, up, same]) == (-1, 2)
    assert verdict([]) == (0, 0)


def measured_at(monkeypatch: pytest.MonkeyPatch, *factors: float) -> list[Path]:
    """The check's k-th measurement finds every probe at ``factors[k]`` (the last one for
    later ones) times the profile's IOPS; returns where it was asked to measure."""
    where: list[Path] = []

    def fake(path: Path, profile: Profile, chosen: list[tuple[Probe, list[str]]],
             directory: Path, progress: object = None, lease: object = None,
             rounds: int = 1) -> dict[str, Any]:
        assert rounds == 2
        factor = factors[min(len(where), len(factors) - 1)]
        where.append(directory)
        rows = [probe_row(p, p.model_copy(update={
            "iops": p.iops * factor, "iops_min": p.iops * factor * 0.98,
            "iops_max": p.iops * factor * 1.02}), vms) for p, vms in chosen]
        return {"measured": True, "profile": str(path), "dir": str(directory), "probes": rows}

    monkeypatch.setattr(profile_check, "measure_drift", fake)
    return where


@pytest.fixture
def fake_quick(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The quick calibration replaced: a profile of OTHER parameters, made now."""
    calls: list[Path] = []

    def quick(where: Path, progress: object, aio: str = "threads") -> Profile:
        calls.append(where)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return a_profile(where).model_copy(update={"params": OTHER, "created": now,
                                                   "settings": {**SETTINGS, "aio": aio}})

    monkeypatch.setattr(autoprofile, "_quick", quick)
    return calls


def cached_old(tmp_path: Path, **update: Any) -> Path:
    prof = a_profile(tmp_path, fingerprint(tmp_path)).model_copy(
        update={"created": HOUR_AGO, **update})
    return store(prof)


def test_a_cached_profile_the_machine_moved_away_from_is_remade_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    path = cached_old(tmp_path)
    checked_on = measured_at(monkeypatch, 3.0)
    s, src = scenario_at(tmp_path)
    said: list[str] = []
    got, block = profiles_for_run(s, src, "both", tmp_path / "run", say=said.append)
    assert checked_on == [tmp_path] and fake_quick == [tmp_path]  # once each, where it runs
    assert block["checked"] is True and block["source"] == "cache"
    assert block["moved"] == "faster" and block["action"] == "remade"
    assert block["hosts"] == ["host1"] and block["threshold"]["factor"] == MOVED_FACTOR
    # both measurements: the check's (against the old profile) and the new profile's
    rows = block["measured"]["probes"]
    assert rows and all(r["iops"] == pytest.approx(3 * r["profile_iops"]) for r in rows)
    remade = block["remade"]
    assert remade["path"] == str(path)
    assert [r["probe"] for r in remade["probes"]] == [r["probe"] for r in rows]
    assert all(r["check_iops"] == pytest.approx(6000.0) for r in remade["probes"])
    # the run predicts with the new profile, which replaced the old one in the cache
    assert got.hosts[0].profile == str(path) and got.hosts[0].calibrated == OTHER
    assert load_profile(path).params == OTHER
    assert len(said) == 1 and "no longer describes this machine" in said[0]
    assert "re-making it with the quick calibration" in said[0]
    assert "(x3)" in said[0] and "2,000 -> 6,000 IOPS" in said[0]
    line = describe(block)
    assert line is not None and line.startswith("profile checked before the run: ")
    assert line.endswith("re-made with the quick calibration")
    # the next run: the profile is minutes old, not checked again
    got, block = profiles_for_run(s, src, "both", tmp_path / "run2")
    assert block["checked"] is False and "is not checked" in block["reason"]
    assert len(checked_on) == 1 and len(fake_quick) == 1


def test_a_cached_native_profile_is_remade_native(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """A moved profile of exports with qemu-nbd --aio=native is made again with the same
    --aio, under the same key, for the scenario of that kind that used it."""
    prof = a_profile(tmp_path, fingerprint(tmp_path, "native")).model_copy(
        update={"created": HOUR_AGO, "settings": {**SETTINGS, "aio": "native"}})
    path = store(prof)
    measured_at(monkeypatch, 3.0)
    s, src = scenario_at(tmp_path, real={"aio": "native"})
    got, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["action"] == "remade" and fake_quick == [tmp_path]
    assert got.hosts[0].profile == str(path)
    assert load_profile(path).settings["aio"] == "native"


def test_a_profile_that_still_describes_the_machine_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    path = cached_old(tmp_path)
    before = path.read_bytes()
    checked_on = measured_at(monkeypatch, 1.4)
    s, src = scenario_at(tmp_path)
    said: list[str] = []
    got, block = profiles_for_run(s, src, "both", tmp_path / "run", say=said.append)
    assert len(checked_on) == 1 and fake_quick == [] and said == []
    assert block["checked"] is True and block["moved"] is None and block["action"] == "kept"
    assert got.hosts[0].calibrated == TRUE and path.read_bytes() == before
    assert describe(block) == ("profile checked before the run: 3 probe(s) measured again, "
                               f"none beyond x{MOVED_FACTOR} of the profile's rounds: kept")
    # checked and kept: the next runs do not check it again for a while
    _, block = profiles_for_run(s, src, "both", tmp_path / "run2")
    assert len(checked_on) == 1 and block["checked"] is False
    assert block["reason"].startswith("checked and kept 0 min ago")
    assert last_checked(load_profile(path)) is not None
    # the note is of that profile: one made again (here by hand) is checked
    two_hours = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    store(load_profile(path).model_copy(update={"created": two_hours}))
    _, block = profiles_for_run(s, src, "both", tmp_path / "run3")
    assert len(checked_on) == 2 and block["checked"] is True


def measured_per_probe(monkeypatch: pytest.MonkeyPatch, factors: dict[str, float]
                       ) -> list[list[str]]:
    """The check finds each probe at ``factors[name]`` (1 if not named) times the profile's
    IOPS; returns the probes each measurement was asked for."""
    asked: list[list[str]] = []

    def fake(path: Path, profile: Profile, chosen: list[tuple[Probe, list[str]]],
             directory: Path, progress: object = None, lease: object = None,
             rounds: int = 1) -> dict[str, Any]:
        asked.append([p.name for p, _ in chosen])
        rows = [probe_row(p, at(p, factors.get(p.name, 1.0)), vms) for p, vms in chosen]
        return {"measured": True, "profile": str(path), "dir": str(directory), "probes": rows}

    def at(p: Probe, factor: float) -> Probe:
        return p.model_copy(update={"iops": p.iops * factor, "iops_min": p.iops * factor * 0.98,
                                    "iops_max": p.iops * factor * 1.02})

    monkeypatch.setattr(profile_check, "measure_drift", fake)
    return asked


#: the small scenario's VMs, one at a time, and the probe each one resembles most
ONLY_A = {"vms": [{"name": "a", "image": "img", "root_size": "96MiB", "workload": "w"}]}
ONLY_B = {"vms": [{"name": "b", "image": "img", "workload": "r"}]}
A_AND_B = {"vms": ONLY_A["vms"] + ONLY_B["vms"]}
COW, CHAIN, COW1 = "cow-write-4k-qd8-x1", "chain-d1-randread-4k-qd1-x1", "cow-write-4k-qd1-x1"


def test_a_run_is_checked_on_the_probes_no_recent_check_covered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """A check kept the profile for the probes of the run that made it, not for others: a
    table's first job (reads) must not spare a later one (first writes) its check."""
    path = cached_old(tmp_path)
    asked = measured_per_probe(monkeypatch, {})
    runs = iter(range(10))

    def run(**over: Any) -> dict[str, Any]:
        s, src = scenario_at(tmp_path, **over)
        return profiles_for_run(s, src, "both", tmp_path / f"run{next(runs)}")[1]

    block = run(**ONLY_B)
    assert asked == [[CHAIN]] and block["action"] == "kept" and not block.get("checked_before")
    block = run(**ONLY_A)  # another probe: checked (the old note spared it)
    assert asked[1:] == [[COW]] and block["checked"] is True and block["action"] == "kept"
    block = run(**ONLY_B)  # the same probe as the first run's: not checked again
    assert len(asked) == 2 and block["checked"] is False
    assert block["reason"].startswith("checked and kept 0 min ago: the 1 probe(s) ")
    assert [r["probe"] for r in block["checked_before"]] == [CHAIN]
    block = run(**A_AND_B)  # both held at their checks
    assert len(asked) == 2 and block["checked"] is False
    assert {r["probe"] for r in block["checked_before"]} == {COW, CHAIN}
    line = describe(block)
    assert line is not None and line.startswith(
        "profile not measured again before the run: its 2 probe(s) (")
    assert line.endswith(") held at a check in the last 10 min: kept")
    block = run()  # a, b and c: only c's probe is measured; the others count as held
    assert asked[2:] == [[COW1]] and block["action"] == "kept"
    assert {r["probe"] for r in block["checked_before"]} == {COW, CHAIN}
    assert describe(block) == (
        f"profile checked before the run: 1 probe(s) measured again, none beyond x{MOVED_FACTOR} "
        "of the profile's rounds (2 more held at a check in the last 10 min): kept")
    assert fake_quick == [] and load_profile(path).params == TRUE


def test_a_probe_that_moved_is_not_spared_by_the_check_that_kept_the_profile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """The note keeps each probe's own verdict: one that moved while the others held (the
    profile kept) is measured again by the next run that rests on it, and a profile that
    moved on that run's probes is made again, the line saying which probes and why."""
    path = cached_old(tmp_path)
    asked = measured_per_probe(monkeypatch, {COW: 3.0})
    s, src = scenario_at(tmp_path)
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert asked == [[COW1, COW, CHAIN]] and block["action"] == "kept"  # 1 of 3 moved
    assert block["probes_moved"] == 1  # the one that moved; before: 0
    s, src = scenario_at(tmp_path, **A_AND_B)
    said: list[str] = []
    got, block = profiles_for_run(s, src, "both", tmp_path / "run2", say=said.append)
    assert asked[1:] == [[COW]]  # the chain probe held a minute ago; the cow one moved
    assert block["moved"] == "faster" and block["probes_moved"] == 1
    assert block["action"] == "remade" and fake_quick == [tmp_path]
    assert [r["probe"] for r in block["checked_before"]] == [CHAIN]
    assert got.hosts[0].calibrated == OTHER and load_profile(path).params == OTHER
    assert len(said) == 1 and "1 of 2 probe(s) ran faster" in said[0]
    assert f"{COW} 2,000 -> 6,000 IOPS (x3); {CHAIN} held at a check in the last 10 min" \
        in said[0]
    line = describe(block)
    assert line is not None and line.endswith("re-made with the quick calibration")


def test_the_note_of_checked_probes_is_written_atomically_and_never_through_a_symlink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    path = cached_old(tmp_path)
    asked = measured_per_probe(monkeypatch, {})
    note = path.parent / f".{path.name}.checked"
    victim = tmp_path / "victim"
    victim.write_text("mine")
    note.symlink_to(victim)  # planted: not read (the probes are checked), not written through
    s, src = scenario_at(tmp_path, **ONLY_B)
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["action"] == "kept" and asked == [[CHAIN]]
    assert victim.read_text() == "mine" and not note.is_symlink()
    assert oct(note.stat().st_mode & 0o777) == "0o600"
    recorded = json.loads(note.read_text())
    assert recorded["created"] == HOUR_AGO and list(recorded["probes"]) == [CHAIN]
    assert recorded["probes"][CHAIN]["moved"] is None
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    # a note of the version that recorded no probes spares nothing
    note.write_text(json.dumps({"checked": datetime.now(UTC).isoformat(), "created": HOUR_AGO}))
    _, block = profiles_for_run(s, src, "both", tmp_path / "run2")
    assert block["checked"] is True and asked[1:] == [[CHAIN]]


def test_a_named_profile_is_never_replaced_but_the_run_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    cached = cached_old(tmp_path)
    mine = tmp_path / "mine.json"
    mine.write_text(profile_json(a_profile(tmp_path).model_copy(update={"created": HOUR_AGO})))
    before = mine.read_bytes(), cached.read_bytes()
    measured_at(monkeypatch, 0.2)
    s, src = scenario_at(tmp_path)
    for how in ({"profile": mine}, {"profile": cached}):  # a cached file named is named too
        said: list[str] = []
        got, block = profiles_for_run(s, src, "both", tmp_path / "run", say=said.append, **how)
        assert block["moved"] == "slower" and block["source"] == "file"
        assert block["action"] == "kept (named by the run; never replaced)"
        assert "remade" not in block and got.device.profile == str(how["profile"])
        assert len(said) == 1 and said[0].startswith(
            f"warning: the calibration profile {how['profile']} no longer describes")
    # a host's own profile in the scenario: the same
    s, src = scenario_at(tmp_path, hosts=[{"name": "a", "profile": "mine.json"}])
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["action"].startswith("kept (named")
    assert fake_quick == [] and (mine.read_bytes(), cached.read_bytes()) == before


def test_a_named_profiles_probes_that_held_are_not_checked_again_for_a_while(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """A profile named by the run was checked before every run (6 to 10 s each); now its
    probes' verdicts are noted in the cache by its content and the storage: those that held
    are spared, those that moved are measured and warned of again."""
    mine = tmp_path / "mine.json"
    mine.write_text(profile_json(a_profile(tmp_path).model_copy(update={"created": HOUR_AGO})))
    asked = measured_per_probe(monkeypatch, {})
    s, src = scenario_at(tmp_path, **ONLY_B)
    _, block = profiles_for_run(s, src, "both", tmp_path / "run", profile=mine)
    assert asked == [[CHAIN]] and block["source"] == "file" and block["action"] == "kept"
    _, block = profiles_for_run(s, src, "both", tmp_path / "run2", profile=mine)
    assert len(asked) == 1 and block["checked"] is False
    assert block["reason"].startswith("checked and kept 0 min ago")
    s2, src2 = scenario_at(tmp_path, **A_AND_B)  # another probe besides: that one only
    _, block = profiles_for_run(s2, src2, "both", tmp_path / "run3", profile=mine)
    assert asked[1:] == [[COW]] and [r["probe"] for r in block["checked_before"]] == [CHAIN]
    # on other storage, the note is another's
    prof = load_profile(mine)
    block = autoprofile._named(mine, prof, s, ["host1"], Path("/dev/shm"), None, None)
    assert asked[2:] == [[CHAIN]] and block["checked"] is True
    # another profile in the same file: checked; one whose probes moved: warned every run
    mine.write_text(profile_json(prof.model_copy(update={"duration_s": 2.0})))
    asked = measured_per_probe(monkeypatch, {CHAIN: 0.2})
    for k in range(2):
        said: list[str] = []
        _, block = profiles_for_run(s, src, "both", tmp_path / f"run{4 + k}", say=said.append,
                                    profile=mine)
        assert len(asked) == 2 * (k + 1) and block["moved"] == "slower"  # measured twice
        assert block["action"] == "kept (named by the run; never replaced)"
        assert len(said) == 1 and said[0].startswith("warning: ")
    assert fake_quick == []


def test_a_machine_found_slower_is_measured_again_before_the_profile_is_remade(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """A neighbour's burst slows the probes for seconds: slower must be found twice."""
    cached_old(tmp_path)
    s, src = scenario_at(tmp_path)
    checked_on = measured_at(monkeypatch, 0.3, 0.9)  # a burst, then the machine as it was
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert len(checked_on) == 2 and block["action"] == "kept" and block["moved"] is None
    assert block["measured_again"]["probes"][0]["iops"] == pytest.approx(1800.0)
    assert fake_quick == []
    cached_old(tmp_path, created=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
    checked_on = measured_at(monkeypatch, 3.0)  # faster is never a burst: measured once
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert len(checked_on) == 1 and "measured_again" not in block
    assert block["action"] == "remade" and len(fake_quick) == 1


def test_only_both_backends_check_and_uncalibrated_checks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    cached_old(tmp_path)
    checked_on = measured_at(monkeypatch, 3.0)
    s, src = scenario_at(tmp_path)
    for backend in ("sim", "real"):
        _, block = profiles_for_run(s, src, backend, tmp_path / "run")
        assert block["checked"] is False and f"--backend {backend}" in block["reason"]
    got, block = profiles_for_run(s, src, "both", tmp_path / "run", uncalibrated=True)
    assert block["checked"] is False and got.hosts[0].calibrated is None
    assert checked_on == [] and fake_quick == []
    # a profile whose age is unknown is checked
    cached_old(tmp_path, created="now")
    _, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["checked"] is True and len(checked_on) == 1


def test_a_profile_without_its_probes_settings_is_not_checked_and_the_run_goes_on(
        tmp_path: Path, fake_quick: list[Path]) -> None:
    cached_old(tmp_path, settings={})
    s, src = scenario_at(tmp_path)
    got, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["checked"] is False and block["reason"].startswith("the probes failed: ")
    assert "runtime_s" in block["reason"] and "action" not in block
    assert got.hosts[0].calibrated == TRUE and fake_quick == []


def test_a_run_that_remade_it_meanwhile_is_not_repeated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_quick: list[Path]) -> None:
    """Two runs chose the same stale profile; the second, once it holds the profile's lock,
    finds the first one's new profile and predicts with it, without checking or calibrating."""
    path = cached_old(tmp_path)
    s, src = scenario_at(tmp_path)
    chose = autoprofile.choose_profiles(s, src, "both", tmp_path / "run")
    assert chose.hosts[0].calibrated == TRUE
    now = datetime.now(UTC).isoformat(timespec="seconds")
    store(load_profile(path).model_copy(update={"created": now, "params": OTHER}))
    checked_on = measured_at(monkeypatch, 3.0)
    got, block = autoprofile._check_one(chose, src, path, tmp_path, ["host1"], True, None, None)
    assert block["checked"] is False and block["reason"].startswith("made 0 min ago")
    assert got.hosts[0].calibrated == OTHER and checked_on == [] and fake_quick == []


# -- for real: the probes measured on this machine ---------------------------------------------

def impossible(tmp_path: Path, iops: float, lo: float, hi: float) -> Profile:
    prof = a_profile(tmp_path, fingerprint(tmp_path))
    probes = [p.model_copy(update={"iops": iops, "iops_min": lo, "iops_max": hi})
              for p in prof.probes]
    return prof.model_copy(update={"created": HOUR_AGO, "probes": probes})


@needs_tools
@pytest.mark.real
def test_a_profile_ten_million_iops_fast_is_remade_and_the_run_says_so(
        tmp_path: Path, fake_quick: list[Path], no_leaks: None) -> None:
    path = store(impossible(tmp_path, 1e7, 0.99e7, 1.01e7))
    scenario = write(tmp_path, small_dict())
    out = tmp_path / "run"
    ran = cowbench("run", str(scenario), "--backend", "both", "--out", str(out))
    assert ran.code == 0, ran.stderr
    assert fake_quick == [tmp_path]
    assert f"the cached calibration profile {path} no longer describes this machine" in \
        " ".join(ran.stderr.split())
    meta = json.loads((out / "run.json").read_text())
    block = meta["profile_check"]
    assert block["checked"] is True and block["moved"] == "slower"
    assert block["action"] == "remade" and block["measured"]["dir"] == str(tmp_path)
    assert all(r["iops_max"] < 1e7 / MOVED_FACTOR for r in block["measured"]["probes"])
    assert block["remade"]["path"] == str(path) and block["remade"]["probes"]
    assert meta["profile"]["path"] == str(path)
    assert meta["profile"]["created"] == block["remade"]["created"]
    assert meta["drift"]["profile"] == str(path)  # measured after against the new one
    assert "profile checked before the run: " in ran.stdout
    shown = cowbench("show", str(out))
    assert shown.code == 0 and "re-made with the quick calibration" in shown.stdout
    found = lookup(fingerprint(tmp_path))
    assert found is not None and found[1].params == OTHER
    assert not list(tmp_path.glob(".cowbench-*"))  # the check's probe images are gone


@needs_tools
@pytest.mark.real
def test_a_profile_whose_rounds_cover_any_machine_is_kept(
        tmp_path: Path, fake_quick: list[Path], no_leaks: None) -> None:
    path = store(impossible(tmp_path, 2000.0, 1.0, 1e9))
    s, src = scenario_at(tmp_path)
    got, block = profiles_for_run(s, src, "both", tmp_path / "run")
    assert block["checked"] is True and block["action"] == "kept", block
    assert {r["probe"] for r in block["measured"]["probes"]} == {  # the small VMs' nearest
        "cow-write-4k-qd8-x1", "chain-d1-randread-4k-qd1-x1", "cow-write-4k-qd1-x1"}
    assert all(r["iops"] > 0 for r in block["measured"]["probes"])
    assert fake_quick == [] and got.hosts[0].profile == str(path)


#: run.json's profile_check of `cowbench run fleet-life-small.yaml --backend both` at load 7
#: (the SRE's runs/small-both): the three probes measured, each's profile rounds and its own
SMALL_BOTH = [
    ("cow-write-4k-qd8-x1", 4957.605985, 3937.65586, 5977.55611,
     3914.136228, 3847.880299, 3980.392157),
    ("raw-randread-4k-qd32-x1", 12365.0482005, 10231.343284, 14498.753117,
     15801.6370765, 15087.064677, 16516.209476),
    ("raw-randwrite-1m-qd8-x1", 780.7463295, 672.330097, 889.162562,
     266.687697, 208.920188, 324.455206)]


def test_a_probe_beyond_the_factor_is_counted_and_said_though_the_profile_is_kept() -> None:
    """One probe of three ran 209 and 324 IOPS against the profile's 672 to 889 (both rounds
    below 672 / 1.5 = 448): it moved, slower, by the rule. Fewer than half of the probes moved,
    so the profile is kept, but the line said "3 probe(s) measured again within the profile's
    rounds and x1.5" and run.json ``probes_moved: 0``."""
    rows = [{"probe": name, "profile_iops": p, "profile_iops_min": plo,
             "profile_iops_max": phi, "iops": now, "iops_min": lo, "iops_max": hi}
            for name, p, plo, phi, now, lo, hi in SMALL_BOTH]
    assert [probe_moved(r) for r in rows] == [0, 0, -1]
    way, n = verdict(rows)
    assert (way, n) == (0, 0)  # one of three: the profile still describes the machine
    block = {"checked": True, "measured": {"probes": rows}, "checked_before": [],
             "action": "kept", **profile_check.decision(way, n, {"probes": rows}, None)}
    assert block["moved"] is None and block["probes_moved"] == 1
    line = describe(block)
    assert line is not None and "within the profile's rounds" not in line
    assert line == (
        "profile checked before the run: 1 of 3 probe(s) measured again moved beyond "
        f"x{MOVED_FACTOR} of the profile's rounds (raw-randwrite-1m-qd8-x1 781 -> 267 IOPS "
        "(x0.342) slower); fewer than half of the probes moved the same way: kept, and the "
        "next run measures the moved one(s) again")
    # a probe found slower once but not by the second measurement has not moved
    again = [dict(r, iops_min=700.0, iops_max=800.0) for r in rows]
    assert profile_check.moved_probes(rows, again) == []
