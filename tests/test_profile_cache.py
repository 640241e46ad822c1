"""Calibrated by default: the fingerprint, the profile cache, and which profile a run's I/O
figures rest on (cowbench.profile_cache, cowbench.autoprofile, cowbench.profile_use).

The quick calibration itself is replaced by a fake probe set here (``fake_quick``): these
tests are about the lookup and the precedence; tests/test_calibrate.py runs it for real.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench import autoprofile
from cowbench.autoprofile import choose_profiles
from cowbench.errors import UsageError
from cowbench.profile import FitRow, PerfParams, Profile
from cowbench.profile_cache import (
    cache_dir,
    fingerprint,
    fingerprint_key,
    lookup,
    profile_name,
    store,
)
from cowbench.profile_use import describe, run_profile
from cowbench.resolve import resolve
from cowbench.runner import run_scenario
from cowbench.scenario import Scenario, parse_scenario
from sim.perf.perf import FIT_VERSION

from .conftest import small_dict
from .test_cli import cowbench, write
from .test_perf import TRUE, probe

OTHER = TRUE.model_copy(update={"stages": 1.5, "client_s": 40e-6})


def fake_profile(fp: dict[str, Any] | None, params: PerfParams = TRUE) -> Profile:
    rows = [FitRow(probe=f"p{i}", metric="iops", measured=100.0, model=100.0 * (1 + e),
                   rel_error=e) for i, e in enumerate((0.02, -0.05, 0.1))]
    return Profile(created="2026-12-01T00:00:00+00:00", duration_s=60.0, matrix="quick",
                   dir="/x", host={}, tools={}, settings={}, fingerprint=fp,
                   probes=[probe().model_copy(update={"iops": 1000.0})], params=params,
                   fit=rows, fit_version=FIT_VERSION)


@pytest.fixture
def fake_quick(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replaces the quick calibration: records where it was asked to calibrate."""
    calls: list[Path] = []

    def quick(where: Path, progress: object, aio: str = "threads") -> Profile:
        calls.append(where)
        return fake_profile(fingerprint(where, aio)).model_copy(
            update={"settings": {"aio": aio}})

    monkeypatch.setattr(autoprofile, "_quick", quick)
    return calls


def scenario_at(tmp_path: Path, **over: Any) -> tuple[Scenario, str]:
    path = write(tmp_path, small_dict(**over))
    return resolve(parse_scenario(yaml.safe_load(path.read_text())), str(path)), str(path)


# -- the fingerprint --------------------------------------------------------------------------

def test_the_fingerprint_names_the_machine_and_the_storage_under_the_directory(
        tmp_path: Path) -> None:
    fp = fingerprint(tmp_path)
    assert fp["hostname"] == os.uname().nodename and fp["kernel"] == os.uname().release
    assert fp["cpu_count"] == os.cpu_count() and fp["qemu-img"] and fp["fio"]
    mnt = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert fp["fs_type"] == mnt[0] and fp["device"].startswith(mnt[1] + " (")
    st = os.stat(tmp_path)
    assert fp["device"].endswith(f"({os.major(st.st_dev)}:{os.minor(st.st_dev)})")
    # a directory not made yet (a run's work/) is its nearest existing parent's storage
    assert fingerprint(tmp_path / "run" / "work") == fp
    # a tmpfs is other storage
    assert fingerprint(Path("/dev/shm"))["fs_type"] == "tmpfs"
    assert fingerprint_key(fingerprint(Path("/dev/shm"))) != fingerprint_key(fp)


def test_every_field_of_the_fingerprint_changes_its_key_and_nothing_else_does() -> None:
    fp = {"hostname": "h", "kernel": "6.1", "cpu_count": 2, "fs_type": "ext4",
          "device": "/dev/vda (254:0)", "qemu-img": "7.2", "fio": "3.33"}
    key = fingerprint_key(fp)
    assert len(key) == 16 and fingerprint_key(dict(fp)) == key
    for field in fp:
        assert fingerprint_key({**fp, field: "other"}) != key, field
    assert fingerprint_key({**fp, "load": 3.0}) == key
    assert profile_name(fp) == f"h-ext4-{key}.json"
    assert profile_name({**fp, "hostname": "a/../b c"}) == f"a_.._b_c-ext4-{fingerprint_key({**fp, 'hostname': 'a/../b c'})}.json"  # noqa: E501


def test_the_cache_is_under_xdg_cache_home_or_home(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "cowbench" / "profiles"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec: ignored
    assert cache_dir() == tmp_path / "home" / ".cache" / "cowbench" / "profiles"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "cowbench" / "profiles"


# -- the cache --------------------------------------------------------------------------------

def test_a_stored_profile_is_found_by_its_fingerprint_only(tmp_path: Path) -> None:
    fp = fingerprint(tmp_path)
    assert lookup(fp) is None  # nothing cached, nothing created
    assert not cache_dir().exists()
    path = store(fake_profile(fp))
    assert path == cache_dir() / profile_name(fp)
    found = lookup(fp)
    assert found is not None and found[0] == path and found[1].params == TRUE
    for d in (cache_dir(), cache_dir().parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in cache_dir().iterdir()) == [path.name]  # no temporary left
    assert lookup({**fp, "kernel": "0.0"}) is None
    # a file under the right name whose recorded fingerprint differs is no match
    other = {**fp, "fio": "fio-0"}
    (cache_dir() / profile_name(other)).write_text(path.read_text())
    assert lookup(other) is None
    # nor is a broken one
    path.write_text("{")
    assert lookup(fp) is None
    store(fake_profile(fp, OTHER))  # replaced
    assert lookup(fp)[1].params == OTHER  # type: ignore[index]


def test_the_cache_refuses_planted_symlinks_and_directories_of_others(tmp_path: Path) -> None:
    fp = fingerprint(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = cache_dir().parent
    base.parent.mkdir(parents=True, exist_ok=True)
    base.symlink_to(elsewhere)
    with pytest.raises(UsageError, match="cowbench: cannot open the profile cache"):
        store(fake_profile(fp))
    assert list(elsewhere.iterdir()) == []  # nothing made through the symlink
    (elsewhere / "profiles").mkdir()
    with pytest.raises(UsageError, match="a symlink is refused"):
        lookup(fp)
    (elsewhere / "profiles").rmdir()
    base.unlink()
    base.mkdir(mode=0o700)
    os.chmod(base, 0o777)
    with pytest.raises(UsageError, match="writable by others"):
        store(fake_profile(fp))
    os.chmod(base, 0o700)
    if os.geteuid() == 0:
        os.chown(base, 65534, 65534)
        with pytest.raises(UsageError, match="owned by uid 65534"):
            store(fake_profile(fp))
        os.chown(base, 0, 0)
    # a profile planted as a symlink is not read
    store(fake_profile(fp))
    target = tmp_path / "planted.json"
    path = cache_dir() / profile_name(fp)
    path.rename(target)
    path.symlink_to(target)
    assert lookup(fp) is None


# -- which profile a run uses -----------------------------------------------------------------

def test_both_calibrates_once_when_nothing_is_cached_then_uses_the_cache(
        tmp_path: Path, fake_quick: list[Path]) -> None:
    s, src = scenario_at(tmp_path)
    out = tmp_path / "results" / "run"
    said: list[str] = []
    got = choose_profiles(s, src, "both", out, say=said.append)
    assert fake_quick == [tmp_path]  # the run directory's nearest existing parent
    assert "quick calibration" in said[0] and "--uncalibrated" in said[0]
    host = got.hosts[0]
    assert host.calibrated == TRUE and Path(str(host.profile)).parent == cache_dir()
    again = choose_profiles(s, src, "both", tmp_path / "run2")
    assert len(fake_quick) == 1 and again.hosts[0].profile == host.profile
    # the model only: the cached profile of this machine, never a calibration
    assert choose_profiles(s, src, "sim", out).hosts[0].calibrated == TRUE
    assert len(fake_quick) == 1
    # the real backend alone predicts no I/O: no profile needed
    assert choose_profiles(s, src, "real", out).hosts[0].calibrated is None


def test_sim_never_calibrates_and_uses_the_cache_only_for_storage_on_this_machine(
        tmp_path: Path, fake_quick: list[Path]) -> None:
    here, gone = tmp_path / "store", tmp_path / "not-on-this-machine"
    here.mkdir()
    s, src = scenario_at(tmp_path, hosts=[{"name": "a"}, {"name": "b", "storage_dir": str(here)},
                                          {"name": "c", "storage_dir": str(gone)}])
    got = choose_profiles(s, src, "sim", tmp_path / "run")
    assert fake_quick == [] and all(h.calibrated is None for h in got.hosts)
    store(fake_profile(fingerprint(tmp_path)))
    got = choose_profiles(s, src, "sim", tmp_path / "run")
    assert [h.calibrated == TRUE for h in got.hosts] == [True, True, False]
    assert fake_quick == []
    block = run_profile(got, ["sim"])
    assert block["calibrated"] == "per host"
    assert block["hosts"]["c"] == {"calibrated": False, "reason": "no calibration profile"}
    assert block["hosts"]["a"]["source"] == "cache"
    assert "c's are uncalibrated" in describe(block)


def test_explicit_profiles_win_and_uncalibrated_opts_out(tmp_path: Path,
                                                         fake_quick: list[Path]) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(fake_profile(None, OTHER).model_dump(mode="json")))
    store(fake_profile(fingerprint(tmp_path)))  # this machine's, cached
    out = tmp_path / "run"
    # the scenario's device.profile wins over the cache
    s, src = scenario_at(tmp_path, device={"profile": "mine.json"})
    got = choose_profiles(s, src, "both", out)
    assert got.device.calibrated == OTHER and got.hosts[0].calibrated is None
    # a host's own profile (relative to the scenario) wins over the cache for that host
    s, src = scenario_at(tmp_path, hosts=[{"name": "a", "profile": "mine.json"}, {"name": "b"}])
    got = choose_profiles(s, src, "both", out)
    assert [h.calibrated for h in got.hosts] == [OTHER, TRUE]
    assert got.hosts[0].profile == str(mine)
    # --profile wins over everything, for every host
    cached = lookup(fingerprint(tmp_path))
    assert cached is not None
    got = choose_profiles(s, src, "both", out, profile=cached[0])
    assert got.device.calibrated == TRUE and all(h.profile is None for h in got.hosts)
    # --uncalibrated: no profile at all, and no calibration
    s, src = scenario_at(tmp_path, hosts=[{"name": "a", "profile": "mine.json"}],
                         device={"profile": "mine.json"})
    got = choose_profiles(s, src, "both", out, uncalibrated=True)
    assert got.device.calibrated is None and got.hosts[0].calibrated is None
    assert run_profile(got, ["sim", "real"]) == {"calibrated": False,
                                                 "reason": "no calibration profile"}
    with pytest.raises(UsageError, match="--profile and --uncalibrated"):
        choose_profiles(s, src, "both", out, profile=mine, uncalibrated=True)
    assert fake_quick == []


def test_a_fleet_gets_no_profile(tmp_path: Path, fake_quick: list[Path]) -> None:
    path = Path(__file__).resolve().parents[1] / "scenarios" / "fleet-small.yaml"
    s = resolve(parse_scenario(yaml.safe_load(path.read_text())), str(path))
    assert choose_profiles(s, str(path), "sim", tmp_path / "run") == s
    assert run_profile(s, ["sim"]) == {"calibrated": False,
                                       "reason": "a fleet has no I/O figures"}
    assert fake_quick == []


# -- what the run says ------------------------------------------------------------------------

def test_run_json_says_which_profile_the_io_figures_rest_on(tmp_path: Path) -> None:
    path = store(fake_profile(fingerprint(tmp_path)))
    s, src = scenario_at(tmp_path)
    s = choose_profiles(s, src, "sim", tmp_path / "run")
    run_scenario(s, tmp_path / "run", "sim")
    block = json.loads((tmp_path / "run" / "run.json").read_text())["profile"]
    assert block["calibrated"] is True and block["path"] == str(path)
    assert block["source"] == "cache" and block["matrix"] == "quick"
    assert block["fingerprint"] == fingerprint(tmp_path)
    assert block["aio"] == "threads"  # a profile that does not say: qemu's default
    assert block["created"] == "2026-12-01T00:00:00+00:00" and block["age_s"] > 0
    assert block["fit_median_abs_error"] == {"iops": 0.05, "lat_mean_s": None}
    text = describe(block)
    assert text.startswith(f"I/O figures rest on the quick calibration profile {path} "
                           "(cached, made ")
    assert "replays its probes' IOPS within 5.0% (median)" in text
    # the run's scenario.yaml keeps the parameters the host was predicted with
    kept = yaml.safe_load((tmp_path / "run" / "scenario.yaml").read_text())
    assert kept["hosts"][0]["calibrated"]["stages"] == TRUE.stages


@pytest.mark.slow
def test_a_hosts_own_profile_drives_its_prediction(tmp_path: Path) -> None:
    slow = TRUE.model_copy(update={
        "write_path_s": [(s, 10 * t) for s, t in TRUE.write_path_s],
        "read_path_s": [(s, 10 * t) for s, t in TRUE.read_path_s]})
    (tmp_path / "slow.json").write_text(json.dumps(fake_profile(None, slow)
                                                   .model_dump(mode="json")))
    (tmp_path / "fast.json").write_text(json.dumps(fake_profile(None).model_dump(mode="json")))

    def scenario(h2: str) -> Path:
        d = small_dict(hosts=[{"name": "h1", "profile": "fast.json"},
                              {"name": "h2", "profile": h2}])
        for vm, host in zip(d["vms"], ("h1", "h2", "h1"), strict=True):
            vm["host"] = host
        return write(tmp_path, d, f"{h2}.yaml")

    iops = {}
    for h2 in ("slow.json", "fast.json"):
        out = tmp_path / f"run-{h2}"
        proc = cowbench("run", str(scenario(h2)), "--backend", "sim", "--out", str(out))
        assert proc.code == 0, proc.stderr
        assert ("I/O figures, per host: h1's rest on the quick calibration profile" in
                proc.stdout) == (h2 == "slow.json")
        rec = pd.read_parquet(out / "predicted.parquet")
        iops[h2] = rec[rec.metric == "read_iops"].set_index("entity").value["vm:b"]
    assert iops["slow.json"] < 0.3 * iops["fast.json"]


@pytest.mark.slow
def test_the_cli_uses_the_cache_and_refuses_contradictions(tmp_path: Path) -> None:
    path = store(fake_profile(fingerprint(tmp_path)))
    scenario = write(tmp_path, small_dict())
    proc = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "a"))
    assert proc.code == 0, proc.stderr
    assert f"I/O figures rest on the quick calibration profile {path}" in proc.stdout
    shown = cowbench("show", str(tmp_path / "a"))
    assert f"I/O figures rest on the quick calibration profile {path}" in shown.stdout
    proc = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "b"),
                    "--uncalibrated")
    assert proc.code == 0 and "I/O figures are uncalibrated" in proc.stdout
    proc = cowbench("run", str(scenario), "--out", str(tmp_path / "c"), "--uncalibrated",
                    "--profile", str(path))
    assert proc.code == 2 and "--profile and --uncalibrated" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c").exists()
    bad = write(tmp_path, small_dict(hosts=[{"name": "h", "profile": "nope.json"}]))
    proc = cowbench("run", str(bad), "--backend", "sim", "--out", str(tmp_path / "d"))
    assert proc.code == 2 and "hosts[0].profile" in proc.stderr
    assert not (tmp_path / "d").exists()


# -- qemu-nbd's --aio: a profile predicts the kind of export its probes went through ----------

def test_the_fingerprint_keys_an_aio_other_than_threads_and_older_keys_stay(
        tmp_path: Path) -> None:
    """A profile's probes through qemu-nbd --aio=native are another profile of the storage;
    a fingerprint without the field (every profile made before it) keeps its key."""
    fp = fingerprint(tmp_path)
    assert "aio" not in fp and fingerprint(tmp_path, "threads") == fp
    native = fingerprint(tmp_path, "native")
    assert native == {**fp, "aio": "native"}
    assert fingerprint_key({**fp, "aio": "threads"}) == fingerprint_key(fp)
    assert fingerprint_key(native) != fingerprint_key(fp)
    assert fingerprint_key(fingerprint(tmp_path, "io_uring")) not in (
        fingerprint_key(fp), fingerprint_key(native))
    assert profile_name(native) != profile_name(fp)


def test_a_run_calibrates_and_caches_for_its_scenarios_aio(
        tmp_path: Path, fake_quick: list[Path]) -> None:
    """A scenario exported with --aio=native is not predicted with the cached profile of
    --aio=threads: its quick calibration is of its own kind, cached beside the other."""
    store(fake_profile(fingerprint(tmp_path)).model_copy(update={"settings": {"aio": "threads"}}))
    s, src = scenario_at(tmp_path, real={"aio": "native"})
    got = choose_profiles(s, src, "both", tmp_path / "run")
    assert fake_quick == [tmp_path]
    native = lookup(fingerprint(tmp_path, "native"))
    assert native is not None and native[1].settings["aio"] == "native"
    assert got.hosts[0].profile == str(native[0])
    assert lookup(fingerprint(tmp_path)) is not None  # the threads one is still there
    again = choose_profiles(s, src, "both", tmp_path / "run2")
    assert len(fake_quick) == 1 and again.hosts[0].profile == str(native[0])
    # a threads scenario still gets the threads profile, without calibrating
    t, tsrc = scenario_at(tmp_path)
    assert choose_profiles(t, tsrc, "both", tmp_path / "run3").hosts[0].profile != str(native[0])
    assert len(fake_quick) == 1


@pytest.mark.parametrize("scenario_aio, profile_settings, warned", [
    ("native", {"aio": "threads"}, "--aio=threads"),
    ("native", {}, "--aio=threads"),  # a profile made before the field: threads
    ("threads", {"aio": "native"}, "--aio=native"),
    ("native", {"aio": "native"}, None),
    ("threads", {}, None),
])
def test_a_run_warns_when_its_profile_went_through_another_aio(
        tmp_path: Path, scenario_aio: str, profile_settings: dict[str, Any],
        warned: str | None) -> None:
    prof = tmp_path / "prof.json"
    prof.write_text(fake_profile(None).model_copy(
        update={"settings": profile_settings}).model_dump_json())
    s, src = scenario_at(tmp_path, real={"aio": scenario_aio})
    said: list[str] = []
    autoprofile.profiles_for_run(s, src, "sim", tmp_path / "run", profile=prof,
                                 say=said.append)
    hits = [line for line in said if "qemu-nbd" in line]
    if warned is None:
        assert hits == []
    else:
        assert len(hits) == 1 and str(prof) in hits[0] and warned in hits[0]
        assert f"--aio={scenario_aio} (real.aio)" in hits[0]
        assert f"cowbench calibrate --aio {scenario_aio}" in hits[0]
    # the real backend alone predicts nothing: no warning
    said.clear()
    autoprofile.profiles_for_run(s, src, "real", tmp_path / "run", profile=prof,
                                 say=said.append)
    assert not [line for line in said if "qemu-nbd" in line]


# -- a profile fitted by an older model -------------------------------------------------------

@pytest.fixture
def counted_fit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The model's fit replaced by one that answers ``TRUE`` (these tests are about when a
    profile is fitted again, not the fit: tests/test_perf*.py); each call's probe count."""
    from sim.driver import SimBackend

    calls: list[int] = []

    def fit(self: SimBackend, probes: list[Any], cores: int | None = None) -> PerfParams:
        calls.append(len(probes))
        return TRUE

    monkeypatch.setattr(SimBackend, "fit", fit)
    monkeypatch.setattr(SimBackend, "fit_rows", lambda self, params, probes, ios=3000: [])
    return calls


@pytest.mark.parametrize("backend", ["sim", "both"])
def test_a_cached_profile_fitted_by_an_older_model_is_fitted_again_from_its_probes(
        tmp_path: Path, fake_quick: list[Path], counted_fit: list[int], backend: str) -> None:
    old = fake_profile(fingerprint(tmp_path), OTHER).model_copy(update={"fit_version": 0})
    path = store(old)
    s, src = scenario_at(tmp_path)
    said: list[str] = []
    got = choose_profiles(s, src, backend, tmp_path / "run", say=said.append)
    assert counted_fit == [1] and fake_quick == []  # its own probe, fitted; nothing measured
    assert got.hosts[0].calibrated == TRUE and got.hosts[0].profile == str(path)
    assert len(said) == 1 and str(path) in said[0] and "no I/O" in said[0]
    assert f"fit version 0; this one's is {FIT_VERSION}" in said[0]
    found = lookup(fingerprint(tmp_path))
    assert found is not None
    new = found[1]
    assert new.fit_version == FIT_VERSION and new.params == TRUE
    # the measurement is the same one: its probes and when it was made (the notes of the
    # probes a run checked are keyed by it) and where
    assert (new.probes, new.created, new.fingerprint) == (old.probes, old.created,
                                                         old.fingerprint)
    said.clear()
    again = choose_profiles(s, src, backend, tmp_path / "run2", say=said.append)
    assert counted_fit == [1] and said == [] and again.hosts[0].calibrated == TRUE


def test_a_cached_profile_of_this_models_fit_is_not_fitted_again(
        tmp_path: Path, fake_quick: list[Path], counted_fit: list[int]) -> None:
    store(fake_profile(fingerprint(tmp_path), OTHER))
    s, src = scenario_at(tmp_path)
    got = choose_profiles(s, src, "sim", tmp_path / "run")
    assert counted_fit == [] and got.hosts[0].calibrated == OTHER


def test_a_named_profile_fitted_by_an_older_model_is_used_as_it_is_with_a_warning(
        tmp_path: Path, counted_fit: list[int]) -> None:
    prof = tmp_path / "prof.json"
    text = fake_profile(None, OTHER).model_copy(update={"fit_version": 0}).model_dump_json()
    prof.write_text(text)
    s, src = scenario_at(tmp_path)
    said: list[str] = []
    got, _ = autoprofile.profiles_for_run(s, src, "sim", tmp_path / "run", profile=prof,
                                          say=said.append)
    assert got.device.calibrated == OTHER and counted_fit == []
    assert prof.read_text() == text  # a profile named by the run is never rewritten
    hits = [line for line in said if "older" in line]
    assert len(hits) == 1 and str(prof) in hits[0]
    assert f"cowbench calibrate --refit {prof} --out FILE" in hits[0]
    prof.write_text(fake_profile(None, OTHER).model_dump_json())  # this fit's: no warning
    said.clear()
    autoprofile.profiles_for_run(s, src, "sim", tmp_path / "run", profile=prof,
                                 say=said.append)
    assert not [line for line in said if "older" in line]


def test_calibrate_refit_refuses_what_it_cannot_do_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "old.json"
    src.write_text(fake_profile(None).model_copy(update={"fit_version": 0}).model_dump_json())
    before = src.read_text()
    cases = [
        (["--refit", str(src)], "--refit needs --out FILE"),
        (["--refit", str(src), "--out", str(tmp_path / "n.json"), "--dir", str(tmp_path)],
         "--dir does not apply"),
        (["--refit", str(src), "--check", str(src)], "contradict"),
        (["--refit", str(src), "--out", str(src)], "exists (use --force"),
        (["--refit", str(src), "--out", str(src), "--force"], "is the profile --refit reads"),
        (["--refit", str(tmp_path / "none.json"), "--out", str(tmp_path / "n.json")],
         "none.json"),
        (["--refit", str(src), "--out", str(tmp_path / "no" / "n.json")],
         "no such directory"),
    ]
    for args, said in cases:
        ran = cowbench("calibrate", *args)
        assert ran.code == 2 and said in ran.stderr, (args, ran.stderr)
        assert "Traceback" not in ran.stderr
    assert src.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


@pytest.mark.slow
def test_calibrate_refit_fits_the_probes_again_as_a_calibration_would(tmp_path: Path) -> None:
    """A profile of the model's own probes (``synthetic_probes``) whose parameters an older
    fit made (``OTHER``, version 0): --refit writes what a calibration of those probes fits
    now, on the profile's machine's cores, and keeps the rest of the profile."""
    from sim.perf import perf

    from .test_perf import synthetic_probes

    probes = synthetic_probes(TRUE, ios=1500, matrix="quick")
    old = fake_profile(None, OTHER).model_copy(update={
        "fit_version": 0, "probes": probes, "host": {"cpu_count": 2}})
    src, dst = tmp_path / "old.json", tmp_path / "new.json"
    src.write_text(old.model_dump_json())
    ran = cowbench("calibrate", "--refit", str(src), "--out", str(dst))
    assert ran.code == 0, ran.stderr
    assert f"fit version 0 -> {FIT_VERSION}" in ran.stdout and "no I/O" in ran.stdout
    new = Profile.model_validate_json(dst.read_text())
    assert new.params == perf.fit_with_alloc(probes, 2) != OTHER
    assert new.fit_version == FIT_VERSION
    assert new.fit and new.fit == perf.fit_rows(new.params, probes, 1500)  # replayed again
    assert new.model_copy(update={"params": OTHER, "fit": old.fit, "fit_version": 0}) == old
    assert Profile.model_validate_json(src.read_text()) == old


def test_probes_the_fit_cannot_use_are_a_clear_error_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.driver import SimBackend
    from sim.perf.fit import FitError

    def fit(self: SimBackend, probes: list[Any], cores: int | None = None) -> PerfParams:
        raise FitError("no 4 KiB raw read probe at iodepth 1")

    monkeypatch.setattr(SimBackend, "fit", fit)
    old = fake_profile(fingerprint(tmp_path), OTHER).model_copy(update={"fit_version": 0})
    path = store(old)
    before = path.read_bytes()
    s, src = scenario_at(tmp_path)
    with pytest.raises(UsageError, match="cannot be fitted by this cowbench's model "
                       r"\(no 4 KiB raw read probe at iodepth 1\).*delete it") as caught:
        choose_profiles(s, src, "sim", tmp_path / "run")
    assert str(path) in str(caught.value) and path.read_bytes() == before
    named = tmp_path / "old.json"
    named.write_bytes(before)
    ran = cowbench("calibrate", "--refit", str(named), "--out", str(tmp_path / "new.json"))
    assert ran.code == 2 and "cannot be fitted" in ran.stderr and str(named) in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "new.json").exists()
