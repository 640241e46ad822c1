"""fio's verify through the chain: what is read back through qemu-nbd, the overlay and the base
is what was written; and the model accounts for the read-back I/O."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import Workload, parse_scenario
from real.workload.fio import FioRun
from real.workload.nbd import NbdExport
from sim import simulate

from .conftest import needs_tools, small_dict


def _verifying(**extra: Any) -> dict[str, Any]:
    d = small_dict()
    d["workloads"]["w"].update(verify="crc32c", **extra)  # random writes, random map
    d["workloads"]["s"].update(verify="crc32c", **extra)  # sequential writes
    return d


def _value(df: pd.DataFrame, entity: str, metric: str) -> float:
    return float(df[(df.entity == entity) & (df.metric == metric)].value.iloc[0])


def test_the_model_reads_back_every_block_and_allocates_nothing_more() -> None:
    plain = simulate(parse_scenario(small_dict()))
    checked = simulate(parse_scenario(_verifying()))
    for vm, n in (("vm:a", 1024), ("vm:c", 384)):  # io_size / bs
        assert _value(checked, vm, "write_ios") == n == _value(checked, vm, "read_ios")
        assert _value(checked, vm, "allocated_bytes") == _value(plain, vm, "allocated_bytes")
        assert _value(checked, vm, "host_read_bytes") > _value(plain, vm, "host_read_bytes")
    no_verify = simulate(parse_scenario(_verifying(do_verify=False)))
    assert no_verify[(no_verify.entity == "vm:c") & (no_verify.metric == "read_ios")].empty


def test_the_model_skips_the_read_back_when_the_runtime_ends_the_writes() -> None:
    d = _verifying()
    d["workloads"]["s"].update(rate_iops=100, runtime="1s")  # 384 writes need 3.8 s
    df = simulate(parse_scenario(d))
    assert _value(df, "vm:c", "write_ios") <= 101 and _value(df, "vm:c", "read_ios") == 0


@pytest.mark.parametrize("bad,reason", [
    ({"rw": "randread", "verify": "crc32c"}, "write jobs"),
    ({"rw": "write", "verify": "crc32c", "time_based": True, "runtime": "5s"}, "time_based"),
    ({"rw": "write", "verify": "crc99"}, "verify"),
])
def test_verify_options_are_checked(bad: dict[str, Any], reason: str) -> None:
    from cowbench.errors import ScenarioError

    d = small_dict()
    d["workloads"]["w"] = bad
    with pytest.raises(ScenarioError, match=reason) as err:
        parse_scenario(d)
    assert err.value.problems[0][0].startswith("workloads.w")


@pytest.mark.real
@needs_tools
def test_verified_writes_read_back_through_the_chain(tmp_path: Path, no_leaks: None) -> None:
    """fio exits 0 only if every block read back matches its crc32c; the model predicts the
    read-back exactly (one read per written block)."""
    out = run_scenario(parse_scenario(_verifying()), tmp_path / "run", "both")
    assert out.comparison is not None and out.measured is not None
    by = out.comparison.set_index(["entity", "metric"])
    for vm in ("vm:a", "vm:c"):
        assert by.loc[(vm, "read_ios"), "measured"] == by.loc[(vm, "write_ios"), "measured"]
        assert by.loc[(vm, "read_ios"), "rel_error"] == 0
    assert by.loc[("vm:c", "data_clusters"), "measured"] == 96  # verify allocates nothing


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("damage", [False, True])
def test_verify_catches_data_that_changed_under_the_chain(tmp_path: Path, private_tmp: Path,
                                                          damage: bool) -> None:
    """Write with checksums, change one cluster in the overlay behind fio's back, and read back
    (fio's verify_only): the change is found; without it, everything matches."""
    base, overlay = tmp_path / "base.raw", tmp_path / "disk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), "16M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
                    str(overlay)], check=True)
    wl = Workload(rw="write", bs=4096, size=1 << 20, verify="crc32c", do_verify=False)

    def fio(*extra: str) -> int:
        with NbdExport(overlay, "qcow2", private_tmp, "vm") as nbd:
            run = FioRun("vm", nbd.uri, wl, tmp_path)
            run.argv += list(extra)
            run.start()
            try:
                return run.proc.wait() if run.proc else -1
            finally:
                run.stop()

    assert fio() == 0
    if damage:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 0x5a 65536 4096",
                        str(overlay)], check=True)
    rc = fio("--verify_only=1", "--do_verify=1")
    stderr = (tmp_path / "stderr").read_text()
    if damage:
        assert rc != 0 and "verify" in stderr, stderr
    else:
        assert rc == 0, stderr
