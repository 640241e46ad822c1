"""Jobs whose stream fio's null engine gets wrong (``cowbench.fiojob.engine_gap``): the model
takes them from the real run's own nbd engine on a null-co export, I/O for I/O the real run's
stream; without qemu-nbd it says so rather than give a wrong count quietly."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cowbench import fiojob
from cowbench.errors import InexactStream
from cowbench.fiojob import engine_gap, fio_null_traces, stream_engine
from cowbench.iolog import Trace
from cowbench.jobfile import Section
from cowbench.jobopts import workload_of
from cowbench.scenario import Workload
from cowbench.tools import RawLog

from .conftest import needs_tools
from .test_fiopercent import nbd_stream

DISK = 256 << 20

#: The user-tester's forms (1 GiB there), each where fio 3.33's null engine and a disk engine
#: part: holes wrap at the null "file's" end, a sequential stretch inside a random job that
#: reaches the region's end, and rounds (loops) of an rw mix on a synchronous engine.
GAPS: dict[str, dict[str, str]] = {
    "sequential with holes": {"rw": "write:4k", "bs": "4k", "size": "16m"},
    # (whether a stretch meets the region's end is chance: at 16m with randseed 7 none does)
    "sequential runs inside random": {"rw": "randrw:8", "rwmixread": "50", "bs": "4k",
                                      "size": "64m", "iodepth": "4"},
    "percentage_random": {"rw": "randwrite", "percentage_random": "50", "bs": "4k",
                          "offset": "16m", "size": "16m", "iodepth": "4"},
    "rw mix with loops": {"rw": "rw", "rwmixread": "70", "bs": "64k", "size": "32m",
                          "loops": "2"},
    "rw mix with three loops": {"rw": "rw", "rwmixread": "70", "bs": "64k", "size": "32m",
                                "loops": "3"},
    "clones with holes": {"rw": "write:8k", "bs": "4k", "size": "8m", "numjobs": "2",
                          "offset_increment": "64m"},
}
#: Taken from the nbd engine though the null engine gets them right (its random map runs out
#: at ``size`` bytes, ending the round where an asynchronous engine does): the rule is whole.
ROUTED: dict[str, dict[str, str]] = {
    "randrw with loops": {"rw": "randrw", "bs": "4k", "size": "8m", "loops": "2"},
}
#: ... and forms where the null engine is the nbd engine's stream: they stay on it.
SAME: dict[str, dict[str, str]] = {
    "random in a short region": {"rw": "randwrite", "bs": "4k", "size": "16m"},
    "rw without loops": {"rw": "rw", "rwmixread": "70", "bs": "64k", "size": "32m"},
    "holes to the disk's end": {"rw": "write:4k", "bs": "4k"},
}
#: The disk each form runs on, where not :data:`DISK`. Holes to the disk's end reach its end on
#: any size (no ``size``: the region is the disk, written twice over at every other block, the
#: second pass wrapping at its end): 32 MiB, 8,192 writes, do as 256 MiB's 65,536 did, and the
#: real run's stream is compared I/O for I/O all the same (9.1 s of CPU on 256 MiB, most of
#: this module's).
DISKS: dict[str, int] = {"holes to the disk's end": 32 << 20}


def _workload(options: dict[str, str], **own: object) -> Workload:
    wl, handled = workload_of(Section("j", dict(options)), offsets_fio=True)
    assert not [h for h in handled if h.kind == "refused"]
    return Workload.model_validate({**wl, **own})


def test_the_gap_is_named_for_each_form_and_not_elsewhere() -> None:
    for name, options in {**GAPS, **ROUTED}.items():
        assert engine_gap(_workload(options), DISK), name
    for name, options in SAME.items():
        assert engine_gap(_workload(options), DISK) == [], name
        assert engine_gap(_workload(options), DISKS.get(name, DISK)) == [], name
    # a time-based job's rounds do not end on bytes: no sync/async gap
    timed = _workload({"rw": "rw", "bs": "64k", "size": "32m", "loops": "2",
                       "time_based": "1", "runtime": "1"})
    assert engine_gap(timed, DISK) == []


def _same(got: list[Trace], want: list[Trace]) -> bool:
    return len(got) == len(want) and all(
        np.array_equal(a, b) for g, w in zip(got, want, strict=True)
        for a, b in ((g.offsets, w.offsets), (g.lengths, w.lengths), (g.ddir, w.ddir)))


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("name", [*GAPS, *ROUTED, *SAME])
def test_the_models_stream_is_the_real_runs(tmp_path: Path, private_tmp: Path,
                                            name: str) -> None:
    """Each clone's stream the model takes equals, I/O for I/O, what the real run's nbd
    engine issues (before: rw=write:4k size=16m, 4,096 writes where the real run issues
    2,048; randrw:8 size=64m 8,195 reads and 8,189 writes where the real run issues 5,985 and 5,896,
    percentage_random 4,096 writes where it issues 2,903; the rw mixes with loops split reads
    and writes otherwise)."""
    wl = _workload({**GAPS, **ROUTED, **SAME}[name], write_iolog=True, randseed=7)
    disk = DISKS.get(name, DISK)
    real = nbd_stream(tmp_path, private_tmp, wl, disk)
    model = fio_null_traces(wl, "vm", disk, RawLog(tmp_path / "raw"))
    assert len(real) == wl.numjobs and len(real[0]) > 0
    if name == "holes to the disk's end":  # every other 4 KiB block to the end, twice over
        # (the disk's size in bytes, at 4 KiB, wrapping at its end), on any size of disk
        assert np.array_equal(real[0].offsets, np.tile(np.arange(0, disk, 8192), 2))
    assert _same(model, real), [len(t) for t in model] + [len(t) for t in real]
    nbd_used = any(p.name.endswith("qemu-nbd-null-vm") for p in (tmp_path / "raw").iterdir())
    assert nbd_used == (name not in SAME)  # the null engine's speed wherever it is right


@needs_tools
@pytest.mark.real
def test_without_qemu_nbd_the_stream_is_said_to_be_inexact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No qemu-nbd: the null engine's stream, with a warning naming why, and run.json's
    account says it is not exact (it differs here: 4,096 writes, the real run 2,048)."""
    monkeypatch.setattr(fiojob, "qemu_nbd_installed", lambda: False)
    wl = _workload(GAPS["sequential with holes"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traces = fio_null_traces(wl, "vm", DISK, RawLog(tmp_path / "raw"))
    assert len(traces[0]) == 4096
    [w] = [w for w in caught if issubclass(w.category, InexactStream)]
    assert "rw=write:4k" in str(w.message) and "qemu-utils" in str(w.message)
    account = stream_engine(wl, DISK)
    assert account["exact"] is False and account["engine"] == "null"
