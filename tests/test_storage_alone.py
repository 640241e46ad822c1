"""The storage alone, both ways (issue 16): every calibration matrix measures the device's own
read and write bandwidths (fio on the raw file, no qemu-nbd) at 64 KiB and 1 MiB, the profile
reads them back (``cowbench.profile.device_bandwidths``) and ``cowbench calibrate`` prints them
beside the fitted ones; where the host's processes are served on its cores, the fit takes them
as the device's (docs/io-model.md, "The storage's own bandwidths as the device")."""

from __future__ import annotations

import pytest
from rich.console import Console

from cowbench.calibrate_view import print_profile
from cowbench.profile import Beside, PerfParams, Probe, Profile, device_bandwidths
from real.measure.calibrate import probe_matrix, settings

from .test_perf import TRUE, probe

MiB = 1 << 20


def _alone(rw: str, bs: int, mb_s: float, iodepth: int = 8) -> Probe:
    return probe(target="device", rw=rw, bs=bs, iodepth=iodepth).model_copy(
        update={"bw_bytes_per_s": mb_s * 2**20, "iops": mb_s * 2**20 / bs})


STORAGE = [_alone("randread", 65536, 1100.0), _alone("randread", MiB, 1250.0, 2),
           _alone("randwrite", 65536, 1900.0), _alone("randwrite", MiB, 2000.0, 2)]


def test_the_storage_alone_is_measured_both_ways_in_every_matrix() -> None:
    for matrix in ("quick", "short", "long"):
        specs = probe_matrix(settings(matrix, 4))  # type: ignore[arg-type]
        alone = sorted((s.rw, s.bs, s.iodepth) for s in specs
                       if s.target == "device" and s.beside is None)
        assert alone == [("randread", 4096, 1), ("randread", 65536, 8), ("randread", MiB, 2),
                         ("randwrite", 65536, 8), ("randwrite", MiB, 2)], matrix
        assert len({s.name for s in specs}) == len(specs), matrix  # no probe twice


def test_the_profile_reads_the_storages_own_bandwidths() -> None:
    got = device_bandwidths(STORAGE + [_alone("randread", 65536, 900.0),
                                       _alone("randread", 4096, 70.0, 1)])
    assert got == ([(65536, 1100.0 * 2**20), (MiB, 1250.0 * 2**20)],
                   [(65536, 1900.0 * 2**20), (MiB, 2000.0 * 2**20)])
    # reads alone (the matrices before 2026-12-06) say nothing of the device's writes
    assert device_bandwidths([p for p in STORAGE if p.rw == "randread"]) is None
    # a job beside another measures their order, not the device's bandwidth; nor does a
    # probe through qemu-nbd
    beside = _alone("randwrite", 65536, 5000.0).model_copy(
        update={"beside": Beside(rw="randread", bs=65536, iodepth=8)})
    through = probe(target="raw", rw="randwrite", bs=65536, iodepth=32).model_copy(
        update={"bw_bytes_per_s": 9e12})
    assert device_bandwidths(STORAGE + [beside, through]) == device_bandwidths(STORAGE)


def test_calibrate_prints_the_storage_alone_beside_the_fitted_bandwidths() -> None:
    def shown(probes: list[Probe], params: PerfParams = TRUE) -> str:
        out = Console(record=True, width=200)
        print_profile(Profile(created="now", duration_s=1.0, matrix="quick", dir="/d", host={},
                              tools={}, settings={}, probes=probes, params=params), out)
        return out.export_text()

    [row] = [line for line in shown(STORAGE).splitlines() if "storage alone" in line]
    assert "(reads / writes)" in row
    assert "64 KiB 1,100 / 1,900 MiB/s, 1 MiB 1,250 / 2,000 MiB/s" in row
    assert "storage alone" not in shown(STORAGE[:2])
    # a profile whose device is the storage's says so where it says where transfers go
    assert "beside the path, at the storage alone's bandwidths (copies too)" not in shown(STORAGE)
    assert "beside the path, at the storage alone's bandwidths (copies too)" in shown(
        STORAGE, TRUE.model_copy(update={"device_source": "storage"}))


@pytest.mark.slow
def test_where_the_storage_alone_was_measured_the_device_is_the_storages_own() -> None:
    """On a host with a scheduler whose matrix measured the storage alone both ways, the
    fit's device is the storage's: its bandwidths the storage-alone probes' (not fitted to the
    probes through qemu-nbd), beside the path, and copies at them too (no rate of their own);
    the rest of the matrix still replays. A matrix without them, or a host without the CPU
    figures, is fitted as before."""
    from sim.perf.perf import fit_with_alloc, replay

    from .test_perf import synthetic_probes
    from .test_perf_sched import SCHED, with_cpu

    # a host with a scheduler, as a calibration with CPU figures fits it (few I/Os a probe)
    true = TRUE.model_copy(update={"sched": SCHED, "path": "vm"})
    probes = [with_cpu(p) for p in synthetic_probes(true, ios=600)]
    own = device_bandwidths(probes)
    assert own is not None  # the matrix measured them
    got = fit_with_alloc(probes, 2)
    assert got.device_source == "storage"
    assert (got.read_bw, got.write_bw) == own
    assert not got.transfer_on_path and got.alloc_bw is None and got.path == "vm"
    loaded = [p for p in probes if p.target == "raw" and p.exports == 1 and p.iodepth > 1]
    errors = sorted(abs(replay(got, p, ios=600)[0] / p.iops - 1) for p in loaded)
    assert errors[len(errors) // 2] < 0.15, errors

    before = [p for p in probes if not (p.target == "device" and p.beside is None
                                        and (p.rw == "randwrite" or p.bs == MiB))]
    assert len(before) == len(probes) - 3 and device_bandwidths(before) is None
    assert fit_with_alloc(before, 2).device_source == "fitted"
    no_cpu = synthetic_probes(TRUE, ios=600)
    assert device_bandwidths(no_cpu) is not None
    assert fit_with_alloc(no_cpu, None).device_source == "fitted"
