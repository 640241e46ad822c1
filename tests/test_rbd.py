"""Ceph RBD clones (sim/storage/rbd.py, model only): copy-up per object, flattening, marking."""

import json
import math

import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from sim.storage.disk import BaseData
from sim.storage.rbd import RbdClone

from .conftest import needs_tools, small_dict

MiB, KiB = 1 << 20, 1 << 10


def clone(**kw):
    return RbdClone(64 * MiB, BaseData(64 * MiB, [(0, 6 * MiB)]), **kw)


def test_first_write_copies_up_the_whole_parent_object():
    c = clone()
    io = c.write(4 * KiB, 4 * KiB)  # object 0 holds 4 MiB of parent data
    assert (io.read_bytes, io.write_bytes) == (4 * MiB, 4 * MiB + 4 * KiB)
    again = c.write(8 * KiB, 4 * KiB)
    assert (again.read_bytes, again.write_bytes) == (0, 4 * KiB)
    assert c.data_clusters == 1 and c.allocated_bytes == 4 * MiB


def test_object_beyond_the_parent_data_is_created_without_copy_up():
    c = clone()
    io = c.write(5 * MiB, 4 * KiB)  # object 1: 2 MiB of parent data
    assert io.read_bytes == 2 * MiB
    io = c.write(40 * MiB, 4 * KiB)  # object 10: no parent data
    # the 4 KiB at 5 MiB lies in copied-up data; the one at 40 MiB adds a unit
    assert io.read_bytes == 0 and c.allocated_bytes == 2 * MiB + 4 * KiB
    assert c.file_bytes == 2 * MiB + (40 * MiB + 4 * KiB - 40 * MiB)


def test_flattened_clone_holds_the_parent_data():
    c = clone(flattened=True)
    assert c.allocated_bytes == 6 * MiB and c.data_clusters == 2
    assert c.write(0, 4 * KiB).read_bytes == 0


@pytest.mark.real
@needs_tools
def test_rbd_vms_are_model_only_everywhere(tmp_path, no_leaks):
    d = small_dict(strategy={"kind": "rbd_clone"})
    d["vms"].append({"name": "q", "image": "img", "workload": "w",
                     "strategy": {"kind": "qcow2_overlay"}})
    s = parse_scenario(d)
    out = run_scenario(s, tmp_path / "run", "both")
    p = out.predicted
    assert set(out.comparison.entity) >= {"vm:q"}
    assert not set(out.comparison.entity) & {"vm:a", "vm:b", "vm:c"}
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["model_only"] == ["vm:a", "vm:b", "vm:c"]
    flagged = set(p[p.metric == "model_only"].entity)
    assert flagged == {"vm:a", "vm:b", "vm:c"}
    a = p[(p.entity == "vm:a") & (p.metric == "data_clusters")].value.iloc[0]
    assert a > 0 and not math.isnan(a)
    # the host holds only the qcow2 VM's disk and its base, not the clones
    host = p[(p.entity == "host:host1") & (p.metric == "allocated_bytes")].value.iloc[0]
    q = p[(p.entity == "vm:q") & (p.metric == "allocated_bytes")].value.iloc[0]
    cache = p[(p.entity == "cache:host1") & (p.metric == "allocated_bytes")].value.iloc[0]
    assert host == q + cache + 4096


def _two_images(d: dict) -> dict:
    """``d`` with a second image, ``rbd-img``, for the RBD clones alone."""
    d["images"].append({**d["images"][0], "name": "rbd-img"})
    return d


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("timeline", [False, True], ids=["plain", "timeline"])
def test_a_scenario_of_rbd_clones_only_runs_on_both_backends(tmp_path, no_leaks, timeline):
    """Every VM an RBD clone: the real backend builds none, so it uploads no image, checks
    none and measures no VM; the run ends ok with the model's figures (it failed, exit 1,
    checking an uploaded image that was never made)."""
    d = small_dict(strategy={"kind": "rbd_clone"})
    if timeline:
        d["timeline"] = {"sample_interval_s": 30, "end_s": 120, "events": [
            {"t": 20, "op": "run", "vm": "a"}, {"t": 40, "op": "delete", "vm": "b"}]}
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "ok" and meta["model_only"] == ["vm:a", "vm:b", "vm:c"]
    assert meta["integrity"]["checks"] == {} and meta["integrity"]["ok"] is True
    assert not out.comparison.entity.str.startswith("vm:").any()
    p = out.predicted
    # flagged at the end: b, deleted on the timeline, is not there any more
    flagged = {"vm:a", "vm:c"} if timeline else {"vm:a", "vm:b", "vm:c"}
    assert set(p[p.metric == "model_only"].entity) == flagged
    # the model's figures are all there; the hosts hold nothing of the clones in both
    host = out.comparison[out.comparison.entity == "host:host1"]
    assert len(host) and (host.predicted == host.measured).all()


@pytest.mark.real
@needs_tools
def test_an_image_only_rbd_clones_use_is_skipped_beside_a_real_vm(tmp_path, no_leaks):
    """A qcow2 VM on one image, the RBD clones on another: the real backend uploads, checks
    and measures only the first; the run is ok and compares the qcow2 VM."""
    d = _two_images(small_dict())
    for vm in d["vms"][1:]:
        vm.update(image="rbd-img", strategy={"kind": "rbd_clone"})
    d["timeline"] = {"sample_interval_s": 30, "end_s": 90, "events": [
        {"t": 20, "op": "run", "vm": "b"}, {"t": 40, "op": "delete", "vm": "c"}]}
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "ok" and meta["model_only"] == ["vm:b", "vm:c"]
    assert set(meta["integrity"]["checks"]) == {"image:img", "vm:a"}
    compared = set(out.comparison.entity)
    assert "vm:a" in compared and not compared & {"vm:b", "vm:c", "image:rbd-img"}
