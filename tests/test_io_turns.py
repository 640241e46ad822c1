"""benchmarks/io_turns.py: a mixed job's reads and writes read apart from fio's output, and
(``--syscalls``) qemu-nbd's I/O system calls counted by the file they reach: where a VM's
first writes into a fresh overlay wait (docs/io-model.md, "Where a mixed VM's first writes
wait")."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from .conftest import load_benchmark, needs_tools
from .test_schedtrace import tracefs_usable

io_turns = load_benchmark("io_turns")


def side(iops: float, mean_us: float, p99_us: float) -> dict[str, object]:
    return {"iops": iops, "lat_ns": {"mean": mean_us * 1e3},
            "clat_ns": {"percentile": {"99.000000": p99_us * 1e3}}}


def test_a_mixed_jobs_reads_and_writes_are_kept_apart_and_together() -> None:
    data = {"read": side(7000, 600, 2000), "write": side(3000, 1600, 4000)}
    row = io_turns.job_figures(data, io_turns.MIX)
    assert row["iops"] == 10000 and row["p99_us"] == 4000
    assert row["lat_us"] == pytest.approx(0.7 * 600 + 0.3 * 1600)
    assert (row["read lat_us"], row["write lat_us"]) == (600, 1600)
    # a job of one direction has only its own (fio's other side is all zeroes)
    row = io_turns.job_figures({"read": side(0, 0, 0), "write": side(500, 900, 3000)},
                               io_turns.WRITER)
    assert row["iops"] == 500 and row["lat_us"] == 900 and "read iops" not in row
    # no I/O in a direction: fio leaves its percentiles out
    row = io_turns.job_figures({"read": side(100, 50, 80),
                                "write": {"iops": 0, "lat_ns": {"mean": 0}, "clat_ns": {}}},
                               io_turns.MIX)
    assert row["iops"] == 100 and row["p99_us"] == 80


def test_calls_are_told_apart_by_export_and_file() -> None:
    me = os.getpid()  # this process's main thread stands for an export's pool thread
    text = (f"  qemu-nbd-{me} [000] ..... 1.000000: sys_pread64(fd: 7, buf: 0x1, count: 0x1000,"
            f" pos: 0x0)\n  qemu-nbd-{me} [000] ..... 1.000300: sys_pread64 -> 0x1000\n"
            f"  qemu-nbd-{me} [000] ..... 1.000400: sys_pwritev(fd: 0x00000008, vec: 0x1, "
            f"vlen: 0x1, pos_l: 0x0, pos_h: 0x0)\n"
            f"  qemu-nbd-{me} [000] ..... 1.001400: sys_pwritev -> 0x10000\n"
            f"  qemu-nbd-1 [000] ..... 1.000000: sys_pread64(fd: 7, buf: 0x1, count: 0x1000,"
            f" pos: 0x0)\n  qemu-nbd-1 [000] ..... 1.000300: sys_pread64 -> 0x1000\n")
    nbd = SimpleNamespace(pid=me)
    got = io_turns.by_file(text, [nbd], [{7: "backing", 8: "image"}])
    assert [[(call, f, [round(c.seconds * 1e6) for c in cs]) for call, f, cs in g]
            for g in got] == [[("pread64", "backing", [300]), ("pwritev", "image", [1000])]]


@pytest.mark.real
@pytest.mark.slow
@needs_tools
def test_first_writes_copy_from_the_backing_file_and_a_filled_overlay_allocates_nothing(
        capsys: pytest.CaptureFixture[str], no_leaks: None) -> None:
    why = tracefs_usable()
    if why is not None:
        pytest.skip(f"cannot record the kernel's events here: {why}")
    assert io_turns.main(["--settings", "mix-alone", "mix-filled", "mix-beside", "--syscalls",
                          "--rounds", "1", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    table = out.split("qemu-nbd's I/O system calls")[1]
    rows = {ln[:44].strip() for ln in table.splitlines() if ln.startswith("mix-")}
    # fresh overlay: its first writes copy their clusters (64 KiB reads of the backing file,
    # 64 KiB writes of the overlay, which it extends); its reads of clusters not yet written
    # reach the backing file, of those written the overlay
    for row in ("mix-alone, pwritev, image, 65536", "mix-alone, pread64, backing, 65536",
                "mix-alone, pread64, backing, 4096", "mix-alone, pread64, image, 4096"):
        assert row in rows, out
    # filled: every I/O is the overlay's own, 4 KiB each way, nothing copied
    assert {r for r in rows if r.startswith("mix-filled, ")} == {
        "mix-filled, pread64, image, 4096", "mix-filled, pwrite64, image, 4096"}, out
    assert "  reads" in out and "  writes" in out
    # beside a writer and two readers (one row for the two): the calls counted are the
    # mixed VM's, the first job
    jobs = [ln.split("  ")[0][len("mix-beside, "):] for ln in out.splitlines()
            if ln.startswith("mix-beside, rand")]
    assert jobs == ["randrw 70/30 4k qd16 cow-half", "randwrite 8k qd6 cow",
                    "randread 4k qd6"], out
    assert "mix-beside, pwritev, image, 65536" in rows, out


def test_trace_and_syscalls_are_refused_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        io_turns.main(["--trace", "--syscalls"])
    assert e.value.code == 2
    assert "give one" in capsys.readouterr().err

