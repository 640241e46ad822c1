"""How a ``snapshot_chain`` is built and how deep it may be.

The real backend makes each layer above the lowest with ``qemu-img create -u``: without it,
qemu-img opens the whole chain below the new layer, and building a chain of n layers costs
O(n^2) opens (2.47 s per create at depth 674, the strategies user test, F11). A timeline's
external snapshot puts its new top on the chain the same way (one helper,
``real.storage.strategies.create_layer``). The images must stay byte for byte those of the
opening form. The depth is bounded (``MAX_CHAIN_DEPTH``) with
its reason in the refusal.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from cowbench.nova.instructions import SnapshotExternal
from cowbench.records import Recorder
from cowbench.scenario import Strategy, parse_scenario
from cowbench.storage_schema import MAX_CHAIN_DEPTH
from cowbench.tools import RawLog
from real.storage.strategies import chain_layers, create_chain, create_layer, create_overlay
from real.world.layout import HostLayout
from real.world.lifecycle import RealInstance, RealWorld

from .clikit import assert_one_line, cli
from .conftest import needs_tools

SIZE = 64 << 20
STRATEGIES = [
    Strategy(kind="snapshot_chain", chain_depth=4),
    Strategy(kind="snapshot_chain", chain_depth=3, cluster_size=131072, extended_l2=True,
             preallocation="metadata", refcount_bits=8),
]


def opening_chain(st: Strategy, base: Path, disk: Path) -> None:
    """The chain as the real backend made it before: each layer opens everything below."""
    below, fmt = base, "raw"
    opts = [f"cluster_size={st.cluster_size}"]
    opts += [f"refcount_bits={st.refcount_bits}"] if st.refcount_bits != 16 else []
    opts += ["extended_l2=on"] if st.extended_l2 else []
    opts += [f"preallocation={st.preallocation}"] if st.preallocation != "off" else []
    for layer in chain_layers(disk, st.chain_depth):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                        ",".join([f"backing_file={below.name}", f"backing_fmt={fmt}", *opts]),
                        str(layer), str(SIZE)], check=True)
        below, fmt = layer, "qcow2"


def chain_info(disk: Path) -> list[dict[str, object]]:
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                          disk.name], cwd=disk.parent, check=True, capture_output=True,
                         text=True).stdout
    info: list[dict[str, object]] = json.loads(out)
    for layer in info:  # the only fields that may differ: when the file was looked at
        layer.pop("dirty-flag", None)
    return info


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("st", STRATEGIES, ids=["depth4", "depth3-extl2-prealloc"])
def test_chain_is_byte_identical_to_the_opening_form(tmp_path: Path, st: Strategy) -> None:
    """``-u -F qcow2 -b`` plus the size writes the very header the ``-o backing_file`` form
    writes: every layer's bytes and ``qemu-img info --backing-chain`` are the same."""
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        d.mkdir()
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(d / "base"), str(SIZE)],
                       check=True)
    opening_chain(st, old / "base", old / "disk")
    create_chain(st, new / "base", new / "disk", SIZE, None, "t")
    for a, b in zip(chain_layers(old / "disk", st.chain_depth),
                    chain_layers(new / "disk", st.chain_depth), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert chain_info(old / "disk") == chain_info(new / "disk")


@needs_tools
@pytest.mark.real
def test_layers_above_the_lowest_do_not_open_the_chain_below(tmp_path: Path) -> None:
    """Each layer above the lowest is made with ``-u`` (so qemu-img opens nothing below it),
    named by its relative name and given the size; the lowest still opens the base, so a
    missing base fails at once."""
    st = Strategy(kind="snapshot_chain", chain_depth=4)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "base"), str(SIZE)],
                   check=True)
    log = RawLog(tmp_path / "raw")
    create_chain(st, tmp_path / "base", tmp_path / "disk", SIZE, log, "t")
    argvs = [json.loads(p.read_text()) for p in sorted((tmp_path / "raw").glob("*/argv.json"))]
    assert len(argvs) == 4
    assert "-u" not in argvs[0]
    for k, argv in enumerate(argvs[1:], start=1):
        assert argv[argv.index("-b") + 1] == f"disk.chain-{k}"
        assert argv[argv.index("-F") + 1] == "qcow2" and "-u" in argv
        assert argv[-1] == str(SIZE)
    # the behaviour -u buys: a layer is made though nothing below it can be opened
    create_layer(tmp_path / "gone", tmp_path / "top", SIZE, "cluster_size=65536", None, "t")
    assert (tmp_path / "top").stat().st_size > 0


#: a VM whose strategy has more than a cluster size: an external snapshot's new top takes
#: only that (as the model's layer, sim.world.timeline)
SNAPSHOTTED = {"kind": "qcow2_overlay", "cluster_size": "128KiB", "extended_l2": True}


def snapshot_world(root: Path) -> tuple[RealWorld, Path]:
    """A real world of one VM ``v`` whose disk is an overlay on a raw base, as a boot left it,
    and that disk's path."""
    d = scenario(1)
    d["vms"][0]["strategy"] = SNAPSHOTTED  # type: ignore[index]
    s = parse_scenario(d)
    layout = HostLayout(root / "h")
    vm = s.vms[0]
    base = layout.cache_file(s.images[0])
    disk = layout.disk(vm)
    for d_ in (base.parent, disk.parent):
        d_.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), str(SIZE)], check=True)
    create_overlay(s.strategy_of(vm), base, disk, SIZE, None, "t")
    world = RealWorld(s, root, {"h": layout}, RawLog(root / "raw"), Recorder("real", 0),
                      None, root, lambda _: None)  # type: ignore[arg-type]
    world.instances["v"] = RealInstance(vm, "h", "b", ["disk"], "qcow2", SIZE)
    return world, disk


def opening_snapshot(disk: Path, name: str) -> None:
    """An external snapshot as the real backend made it before: the old top renamed, the new
    one made by ``qemu-img create`` naming its backing file, which qemu-img opens (and all
    below it)."""
    older = disk.with_name(f"disk.{name}")
    disk.rename(older)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"backing_file={older.name},backing_fmt=qcow2,cluster_size=131072",
                    str(disk), str(SIZE)], check=True)


@needs_tools
@pytest.mark.real
def test_an_external_snapshot_is_the_opening_form_without_opening_the_chain(
        tmp_path: Path) -> None:
    """A timeline's external snapshots (``SnapshotExternal``, three on one disk) make the very
    files ``qemu-img create`` makes when it opens the chain below; and the new top is made
    though nothing below it can be opened (the base gone), where the opening form fails."""
    world, disk = snapshot_world(tmp_path / "new")
    _, old = snapshot_world(tmp_path / "old")
    names = ["e1", "e2", "e3"]
    for name in names:
        world.execute(SnapshotExternal("v", "h", name))
        opening_snapshot(old, name)
    assert world.instances["v"].layers == ["disk.e1", "disk.e2", "disk.e3", "disk"]
    for name in ["disk", *(f"disk.{n}" for n in names)]:
        assert disk.with_name(name).read_bytes() == old.with_name(name).read_bytes(), name
    assert chain_info(disk) == chain_info(old)
    for d in (disk, old):  # the base below the chain, gone: nothing below the top opens
        next((d.parent.parent / "_base").iterdir()).unlink()
    world.execute(SnapshotExternal("v", "h", "e4"))
    assert disk.with_name("disk.e4").exists() and disk.stat().st_size > 0
    with pytest.raises(subprocess.CalledProcessError):
        opening_snapshot(old, "e4")


def scenario(depth: int) -> dict[str, object]:
    return {"name": "deep", "hosts": [{"name": "h"}],
            "images": [{"name": "b", "virtual_size": "64MiB",
                        "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
            "workloads": {"w": {"rw": "randwrite", "bs": "4k", "io_size": "64k"}},
            "vms": [{"name": "v", "image": "b", "root_size": "64MiB", "workload": "w",
                     "strategy": {"kind": "snapshot_chain", "chain_depth": depth}}]}


def test_chain_depth_above_the_bound_is_refused_with_its_reason(tmp_path: Path) -> None:
    """One layer more than ``MAX_CHAIN_DEPTH`` is refused at its key path (exit 2, one line)
    with the reason; the bound itself validates."""
    deep = tmp_path / "deep.yaml"
    deep.write_text(yaml.safe_dump(scenario(MAX_CHAIN_DEPTH + 1)))
    assert_one_line(cli("validate", str(deep)), 2, "vms[0].strategy.chain_depth",
                    f"at most {MAX_CHAIN_DEPTH}", "one file open per layer")
    deep.write_text(yaml.safe_dump(scenario(MAX_CHAIN_DEPTH)))
    assert cli("validate", str(deep)).code == 0
