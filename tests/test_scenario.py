from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cowbench.errors import ScenarioError
from cowbench.scenario import dump_scenario, load_scenario, parse_scenario, scenario_hash

from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]


def problems(data):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return info.value.problems


def test_quickstart_loads_with_units_resolved():
    s = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert s.images[0].virtual_size == 2 << 30
    assert s.images[0].data_extents() == [(0, 1 << 30)]
    assert s.strategy.cluster_size == 65536
    assert [vm.name for vm in s.vms] == ["web-1", "web-2", "db-1", "ro-1"]
    assert s.workloads["randwrite-qd16"].io_size == 64 << 20
    assert s.workloads["randwrite-qd16"].iodepth == 16


def test_every_scenario_file_validates():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        load_scenario(path)


def test_resolved_scenario_round_trips_with_the_same_id():
    s = parse_scenario(small_dict())
    again = parse_scenario(yaml.safe_load(dump_scenario(s)))
    assert again == s
    assert scenario_hash(again) == scenario_hash(s)


def test_count_expands_vms():
    d = small_dict()
    d["vms"] = [{"name": "web", "image": "img", "count": 3, "workload": "w"}]
    s = parse_scenario(d)
    assert [vm.name for vm in s.vms] == ["web-1", "web-2", "web-3"]


def test_unknown_key_names_its_path():
    d = small_dict()
    d["workloads"]["w"]["bogus"] = 1
    assert problems(d) == [("workloads.w.bogus", "unknown key")]


def test_unknown_top_level_key():
    assert problems(small_dict(colour="blue")) == [("colour", "unknown key")]


def test_no_vms_and_no_fleet_names_vms():
    """Found by tests/test_fault_fuzz.py: an empty vms list was refused without its key."""
    assert problems(small_dict(vms=[])) == [("", "vms: give at least one VM, or a 'fleet' section")]


def test_negative_size():
    d = small_dict()
    d["images"][0]["virtual_size"] = "-1GiB"
    [(path, reason)] = problems(d)
    assert path == "images[0].virtual_size" and "negative" in reason


def test_unparsable_size():
    d = small_dict()
    d["workloads"]["w"]["bs"] = "four k"
    [(path, reason)] = problems(d)
    assert path == "workloads.w.bs" and "cannot read" in reason


@pytest.mark.parametrize("cluster", ["3000", "256", "4MiB", "96KiB"])
def test_cluster_size_must_be_power_of_two_in_range(cluster):
    d = small_dict(strategy={"cluster_size": cluster})
    [(path, reason)] = problems(d)
    assert path == "strategy.cluster_size" and "power of two" in reason


def test_vm_referencing_missing_image_host_and_workload():
    d = small_dict()
    d["vms"][0].update(image="nope", host="h9", workload="zz")
    assert sorted(problems(d)) == [
        ("vms[0].host", "no host named 'h9'"),
        ("vms[0].image", "no image named 'nope'"),
        ("vms[0].workload", "no workload named 'zz'"),
    ]


def test_root_smaller_than_image_is_refused_as_nova_does():
    d = small_dict()
    d["vms"][0]["root_size"] = "32MiB"
    [(path, reason)] = problems(d)
    assert path == "vms[0].root_size" and "FlavorDiskSmallerThanImage" in reason


def test_workload_outside_the_disk():
    d = small_dict()
    d["workloads"]["w"].update(offset="60MiB", size="8MiB")
    d["vms"][0]["root_size"] = "64MiB"
    [(path, reason)] = problems(d)
    assert path == "vms[0].workload"


def test_time_based_needs_runtime():
    d = small_dict()
    d["workloads"]["w"]["time_based"] = True
    [(path, reason)] = problems(d)
    assert path == "workloads.w" and "runtime" in reason


def test_image_needs_exactly_one_source():
    d = small_dict()
    d["images"][0]["path"] = "/tmp/x.qcow2"
    [(path, reason)] = problems(d)
    assert path == "images[0]" and "exactly one" in reason


def test_overlapping_synthetic_extents():
    d = small_dict()
    d["images"][0]["synthetic"]["data"].append({"offset": "20MiB", "length": "8MiB"})
    [(path, reason)] = problems(d)
    assert "overlap" in reason


def test_duplicate_names():
    d = small_dict()
    d["vms"][1]["name"] = "a"
    assert ("vms[1].name", "duplicate name 'a'") in problems(d)


def test_unsafe_names_are_refused():
    d = small_dict()
    d["vms"][0]["name"] = "../../etc"
    [(path, _)] = problems(d)
    assert path == "vms[0].name"


def test_broken_yaml_names_the_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nvms: [\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert "not valid YAML" in str(info.value) and "line" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "absent.yaml")


def test_not_a_mapping(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(p)


def test_scenario_is_frozen():
    s = parse_scenario(small_dict())
    with pytest.raises(ValidationError):
        s.name = "other"  # type: ignore[misc]
