"""The command line as a user meets it: one-line errors, exit code 2, nothing created.

In-process (``cli.main`` as the console script runs it, tests/clirun.py), except the end-to-end
run, which is a process of its own as a user's would be."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .clirun import Ran
from .clirun import cowbench as cowbench_here
from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]


def cowbench(*args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> Ran:
    """``cowbench ARGS`` in this process; with ``cwd`` (where a run starts is what the test is
    about: relative paths), from there: this process's working directory is ``cwd`` while it
    runs, as a shell's would be for the command it starts (about 1.8 s less than starting
    Python for it)."""
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        return cowbench_here(*args, env=dict(env) if env is not None else None)


def write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def assert_clean_error(proc: Ran | subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_validate_prints_a_summary():
    proc = cowbench("validate", str(ROOT / "scenarios" / "quickstart.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "quickstart" in proc.stdout and "4 VM(s)" in proc.stdout
    assert "strategy qcow2_overlay, cluster 64 KiB; workloads: randread-qd8, " in proc.stdout


def test_validate_names_the_strategies_and_workloads_the_vms_use(tmp_path):
    """Each VM's own strategy, most used first, and the workloads of later ``run`` events:
    the summary showed the scenario's strategy when every VM had its own, and left out the
    workloads named only by events (a user's s2 and s3 scenarios, 2026-12-05)."""
    d = small_dict()
    d["vms"][1]["strategy"] = {"kind": "full_copy", "sparse": False}
    d["vms"][2]["strategy"] = {"kind": "qcow2_overlay", "cluster_size": "2MiB"}
    d["timeline"] = {"events": [{"t": 10, "op": "run", "vm": "a", "workload": "s"}]}
    d["vms"][2].pop("workload")
    proc = cowbench("validate", str(write(tmp_path, d)))
    assert proc.returncode == 0, proc.stderr
    assert ("strategies qcow2_overlay, cluster 64 KiB; full_copy, sparse off; qcow2_overlay, "
            "cluster 2 MiB; workloads: r, s, w") in " ".join(proc.stdout.split())


def test_validate_names_every_strategy_knob_a_vm_has(tmp_path):
    """A chain's depth and an RBD clone's object size are what those strategies are: the
    summary said "snapshot_chain cluster 64.0 KiB" for a chain 1000 deep and "rbd_clone" for
    64 KiB objects. It names them as summary.csv and the reports do (``knobs.strategy_label``)."""
    d = small_dict()
    d["vms"][0]["strategy"] = {"kind": "snapshot_chain", "chain_depth": 1000,
                               "extended_l2": True, "cluster_size": "128KiB"}
    d["vms"][1]["strategy"] = {"kind": "rbd_clone", "object_size": "64KiB"}
    proc = cowbench("validate", str(write(tmp_path, d)))
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())
    assert "snapshot_chain, chain depth 1000, cluster 128 KiB, extended L2 on" in said
    assert "rbd_clone, object 64 KiB, clone depth 1, max clone depth 5" in said


def test_fio_options_inline_under_a_vm_are_refused_with_what_to_write(tmp_path):
    d = small_dict()
    d["vms"][0]["workload"] = {"rw": "randwrite", "bs": "4k"}
    assert_clean_error(cowbench("validate", str(write(tmp_path, d))), "vms[0].workload",
                       "the name of a workload under `workloads`", "{job_file: FILE}")


@pytest.mark.parametrize("mutate,needles", [
    (lambda d: d.update(colour="red"), ["colour", "unknown key"]),
    (lambda d: d["images"][0].update(virtual_size="-2GiB"), ["images[0].virtual_size",
                                                             "negative"]),
    (lambda d: d["images"][0].update(virtual_size="lots"), ["images[0].virtual_size"]),
    (lambda d: d.update(strategy={"cluster_size": "96KiB"}), ["strategy.cluster_size",
                                                             "power of two"]),
    (lambda d: d["vms"][0].update(image="ghost"), ["vms[0].image", "ghost"]),
])
def test_bad_scenarios_exit_2_with_the_key_path(tmp_path, mutate, needles):
    d = small_dict()
    mutate(d)
    proc = cowbench("validate", str(write(tmp_path, d)))
    assert_clean_error(proc, *needles)
    out = tmp_path / "run"
    proc = cowbench("run", str(write(tmp_path, d)), "--backend", "sim", "--out", str(out))
    assert_clean_error(proc, *needles)
    assert not out.exists(), "nothing is created for a bad scenario"


def test_every_problem_is_listed(tmp_path):
    d = small_dict(colour="red")
    d["vms"][0]["image"] = "ghost"
    d["workloads"]["w"]["bs"] = "-4k"
    proc = cowbench("validate", str(write(tmp_path, d)))
    assert_clean_error(proc, "colour", "workloads.w.bs")


def test_missing_scenario_file(tmp_path):
    assert_clean_error(cowbench("validate", str(tmp_path / "nope.yaml")), "no such file")


def test_broken_yaml(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: [unclosed\n")
    assert_clean_error(cowbench("validate", str(p)), "not valid YAML")


def test_missing_image_file(tmp_path):
    d = small_dict()
    d["images"][0] = {"name": "img", "format": "qcow2", "path": str(tmp_path / "gone.qcow2")}
    assert_clean_error(cowbench("validate", str(write(tmp_path, d))), "images[0].path",
                       "no such file")


def test_missing_tools_exit_2_and_create_nothing(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    env = {**os.environ, "PATH": str(bindir)}
    out = tmp_path / "run"
    proc = cowbench("run", str(write(tmp_path, small_dict())), "--backend", "real", "--out",
                    str(out), env=env)
    assert_clean_error(proc, "qemu-img not found")
    assert not out.exists()


def test_unknown_backend(tmp_path):
    proc = cowbench("run", str(write(tmp_path, small_dict())), "--backend", "vmware")
    assert_clean_error(proc, "--backend")


def test_existing_run_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    s = str(write(tmp_path, small_dict()))
    assert cowbench("run", s, "--backend", "sim", "--out", str(out)).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    assert_clean_error(cowbench("run", s, "--backend", "sim", "--out", str(out)), "already")
    assert sorted(p.name for p in out.iterdir()) == before


def test_sim_run_then_show(tmp_path):
    out = tmp_path / "run"
    proc = cowbench("run", str(write(tmp_path, small_dict())), "--backend", "sim", "--out",
                    str(out), "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert (out / "predicted.parquet").exists() and not (out / "measured.parquet").exists()
    shown = cowbench("show", str(out))
    assert shown.returncode == 0 and "status ok" in shown.stdout


@pytest.mark.parametrize("terminal", [True, False])
def test_a_transient_progress_is_drawn_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                          terminal: bool) -> None:
    """Where stderr is no terminal a transient display would show nothing: it is not drawn
    (no refresh thread rendering it for no one); on a terminal it is, and a lasting one is
    drawn anywhere."""
    from cowbench.cli_app import err, progress_bar

    monkeypatch.setattr(err, "_force_terminal", terminal)
    with progress_bar(transient=True) as bar:
        bar.add_task("step")
        assert (bar.live._refresh_thread is not None) == terminal
    with progress_bar(bar=True) as bar:
        assert bar.live._refresh_thread is not None
