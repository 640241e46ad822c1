"""The quick space bound of a real run (``cowbench.spacebound``): never below what QEMU says a
fully written qcow2 takes, never below the model's prediction, and a real run alone that fits
it starts without the model (or pandas) while one that does not is still checked by the
model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cowbench import runner, space, spacebound
from cowbench.errors import UsageError
from cowbench.scenario import parse_scenario
from cowbench.space import FsNeed, space_needs
from cowbench.spacebound import bound_needs, qcow2_max_bytes
from sim import simulate

from .conftest import needs_tools, small_dict

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("size,cluster,refbits,ext", [
    (2 << 30, 65536, 16, False), (64 << 20, 4096, 16, False), (96 << 20, 512, 64, False),
    (1 << 30, 2 << 20, 1, False), (3 << 30, 65536, 16, True), (100 << 20 | 4096, 16384, 8, True),
])
def test_the_qcow2_bound_holds_what_qemu_img_measure_says_a_full_image_takes(
        size: int, cluster: int, refbits: int, ext: bool) -> None:
    opts = f"cluster_size={cluster},refcount_bits={refbits},extended_l2={'on' if ext else 'off'}"
    out = subprocess.run(["qemu-img", "measure", "--output=json", "-O", "qcow2", "-o", opts,
                          "--size", str(size)], capture_output=True, text=True, check=True)
    full = json.loads(out.stdout)["fully-allocated"]
    bound = qcow2_max_bytes(size, cluster, refbits, ext)
    assert full <= bound <= full + 16 * cluster


def _scenarios() -> list[dict[str, Any]]:
    two_hosts = small_dict(hosts=[{"name": "h1"}, {"name": "h2"}])
    two_hosts["vms"][1]["host"] = "h2"
    ext = small_dict(strategy={"kind": "qcow2_overlay", "cluster_size": "16KiB",
                               "extended_l2": True, "preallocation": "full"})
    raw = small_dict()
    raw["images"][0]["format"] = "raw"
    # a flavor's disk.local and disk.swap, and their bases (ext4 of 80 GiB: its 512 MiB journal)
    local = small_dict(flavors=[{"name": "l", "root": "96MiB", "ephemeral": "80GiB",
                                 "swap": "64MiB"}])
    for vm in local["vms"]:
        vm["flavor"] = "l"
    return [small_dict(), small_dict(strategy={"kind": "full_copy", "sparse": False}), ext,
            raw, two_hosts, local]


@pytest.mark.parametrize("d", _scenarios(), ids=["overlay", "full-copy", "extended-l2", "raw",
                                                 "two-hosts", "local-disks"])
def test_the_bound_is_never_below_the_models_prediction(tmp_path: Path,
                                                         d: dict[str, Any]) -> None:
    s = parse_scenario(d)
    bound = bound_needs(s, tmp_path / "run")
    assert bound is not None
    model = space_needs(s, simulate(s), tmp_path / "run")
    assert [n.directory for n in bound] == [n.directory for n in model]
    for b, m in zip(bound, model, strict=True):
        assert b.predicted >= m.predicted > 0 and b.fixed == m.fixed


def test_what_the_bound_does_not_cover_goes_to_the_model(tmp_path: Path) -> None:
    for strategy in ("reflink_copy", "snapshot_chain", "resized_base"):
        s = parse_scenario(small_dict(strategy={"kind": strategy}))
        assert bound_needs(s, tmp_path) is None, strategy


def test_the_bound_charges_each_host_the_vms_the_scheduler_put_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hosts with storage directories of their own (each counted as a filesystem of its
    own here), three VMs naming no host: the scheduler spreads them (``b`` on h2), and the
    bound charges h2's directory for ``b``. Before, the bound put every VM without a host on
    the first host, and charged h2's nothing of what the model (and the run) put there."""
    def by_directory(charges: Any) -> list[FsNeed]:
        needs: dict[Path, FsNeed] = {}
        for directory, key, nbytes, fixed in charges:
            need = needs.setdefault(directory, FsNeed(len(needs), directory))
            need.predicted += nbytes
            need.fixed += fixed
            need.keys += [key] if key not in need.keys else []
        return list(needs.values())

    monkeypatch.setattr(spacebound, "needs_by_filesystem", by_directory)
    monkeypatch.setattr(space, "needs_by_filesystem", by_directory)
    s = parse_scenario(small_dict(hosts=[{"name": "h1", "storage_dir": str(tmp_path / "h1")},
                                         {"name": "h2", "storage_dir": str(tmp_path / "h2")}]))
    bound = bound_needs(s, tmp_path / "run")
    model = space_needs(s, simulate(s), tmp_path / "run")
    assert bound is not None
    assert [n.keys for n in bound] == [n.keys for n in model] == \
        [["--out"], ["hosts[0].storage_dir"], ["hosts[1].storage_dir"]]
    for b, m in zip(bound[1:], model[1:], strict=True):
        assert b.predicted >= m.predicted > 0


def _refuse_the_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    class NoModel:
        def predict_space(self, *_: Any) -> Any:
            asked.append("predict_space")
            raise UsageError("the model was asked")

    monkeypatch.setattr(runner, "get_backend", lambda name: NoModel())
    return asked


def test_a_run_that_fits_the_bound_does_not_ask_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _refuse_the_model(monkeypatch)
    s = parse_scenario(small_dict())
    assert runner._check_space(s, s.seed, tmp_path / "run", False, lambda _: None) is None
    assert asked == []


def test_a_run_over_the_bound_is_checked_by_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_scenario(small_dict())
    bound = bound_needs(s, tmp_path / "run")
    model = space_needs(s, simulate(s), tmp_path / "run")
    assert bound is not None
    between = (bound[0].needed + model[0].needed) // 2  # the model's need fits, the bound's not
    monkeypatch.setattr("cowbench.space.free_bytes", lambda _: between)
    assert runner._check_space(s, s.seed, tmp_path / "run", False, lambda _: None) is None
    asked = _refuse_the_model(monkeypatch)
    with pytest.raises(UsageError, match="the model was asked"):
        runner._check_space(s, s.seed, tmp_path / "run", False, lambda _: None)
    assert asked == ["predict_space"]


def test_a_real_run_starts_without_pandas_or_the_model() -> None:
    """What a real run needs up to its first tool (the space check included) imports neither
    pandas nor numpy nor the model: they would cost about a second before anything starts."""
    code = ("import sys\n"
            "from cowbench import runner, store, spacebound, cli\n"
            "import real.driver\n"
            "from cowbench.scenario import load_scenario\n"
            f"s = load_scenario({str(QUICKSTART)!r})\n"
            "assert spacebound.bound_needs(s, __import__('pathlib').Path('/tmp/x')) is not None\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'sim', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]"]
