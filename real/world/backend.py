"""The steps of a real run that the plain VMs (``real.driver``) and the timeline
(``real.world.lifecycle``) share: images written as uploaded to Glance, bases fetched into
``_base`` as Nova does, root disks made by the strategy, workloads run (one qemu-nbd and one fio
per VM, all at once) and fio's figures recorded.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

from cowbench.errors import CowbenchError, ScenarioError, ToolError, UsageError
from cowbench.imagefile import ImagePolicyError, copy_sparse, open_user_image
from cowbench.records import CPU_METRICS, Recorder
from cowbench.resolve import check_image
from cowbench.scenario import VM, Image, Scenario, Workload
from cowbench.signals import shielded
from cowbench.tools import (
    RawLog,
    busy_share,
    convert_limits,
    machine_cpu_ticks,
    run,
    wait_exit,
    which,
)
from cowbench.units import format_duration
from real.measure.digest import pattern_digest, unsettled_pages
from real.measure.integrity import Integrity
from real.storage.strategies import make_root_disk
from real.workload.fio import FioResult, FioRun
from real.workload.nbd import NbdExport, stop_servers_in

from .layout import HostLayout, glance_path

Progress = Callable[[str], None]
WRITE_CHUNK = 64 << 20
DOWNLOAD_CHUNK = 1 << 20  # what each write of a download carries (every byte is written)
_PROC_IO_KEYS = ("read_bytes", "write_bytes")


def _pattern(image: Image, index: int) -> int:
    """A deterministic, non-zero fill byte per image extent (zeros would be skipped as holes)."""
    return 1 + (sum(image.name.encode()) * 31 + index * 17) % 255


def _supports_o_direct(directory: Path) -> bool:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".odirect-")
    os.close(fd)
    try:
        os.close(os.open(name, os.O_RDONLY | getattr(os, "O_DIRECT", 0)))
        return True
    except OSError:
        return False
    finally:
        os.unlink(name)


def write_synthetic(image: Image, path: Path, log: RawLog) -> None:
    """Create ``path`` in the image's format and fill its data extents with qemu-io."""
    assert image.synthetic is not None and image.virtual_size is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["qemu-img", "create", "-q", "-f", image.format, str(path), str(image.virtual_size)],
        log=log, label=f"qemu-img-create-{image.name}")
    cmds: list[str] = []
    for off, length, pat in synthetic_writes(image):
        for start in range(off, off + length, WRITE_CHUNK):
            n = min(WRITE_CHUNK, off + length - start)
            cmds += ["-c", f"write -q -P {pat} {start} {n}"]
    run(["qemu-io", "-f", image.format, *cmds, str(path)], log=log,
        label=f"qemu-io-fill-{image.name}", timeout=3600)


def synthetic_writes(image: Image) -> list[tuple[int, int, int]]:
    """``(offset, length, fill byte)`` of each data extent a synthetic image is written with."""
    return [(off, length, _pattern(image, i))
            for i, (off, length) in enumerate(image.data_extents())]


def synthetic_digest(image: Image) -> str:
    """The digest its raw base must have (``real.measure.digest.pattern_digest``)."""
    assert image.virtual_size is not None
    return pattern_digest(image.virtual_size, synthetic_writes(image))


def fetch_to_cache(src: Path, fmt: str, dest: Path, log: RawLog,
                   untrusted: bool = False) -> None:
    """Nova's fetch_to_raw: a raw image is downloaded as it is (:func:`download`); any other
    format is converted into ``<sha1>.converted`` (``qemu-img convert -O raw``: zero runs
    stay holes), then renamed into place.

    A convert that fails or is interrupted leaves no partial ``.converted`` behind. The base
    is never more readable than the image it came from (``keep_mode``). ``untrusted`` (a
    user's file): the convert runs under Nova's limits, as its inspection did.
    """
    if fmt == "raw":
        download(src, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".converted")
    cache_mode = "none" if _supports_o_direct(dest.parent) else "writeback"
    limits = convert_limits(src.stat().st_size) if untrusted else None
    try:
        run(["qemu-img", "convert", "-t", cache_mode, "-O", "raw", "-f", fmt, str(src),
             str(tmp)], log=log, label="qemu-img-convert-to-base", timeout=3600,
            preexec_fn=limits)
        keep_mode(src, tmp)
        tmp.rename(dest)
    except BaseException:
        with shielded():
            tmp.unlink(missing_ok=True)
        raise


def download(src: Path, dest: Path) -> None:
    """Nova's download from Glance (nova/image/glance.py ``download``/``_verify_and_write``):
    the image's bytes streamed into ``<sha1>.part`` chunk by chunk, every chunk written --
    zeros too, so the file is dense, allocated to its size whatever holes the Glance file
    has -- then renamed into place. Written here with plain reads and writes, never
    ``copy_file_range``/``sendfile`` (which a filesystem may answer by sharing extents or
    keeping holes). A copy that fails or is interrupted leaves no ``.part`` behind; a write
    that fails (ENOSPC) names the ``.part`` it was writing."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            while chunk := fin.read(DOWNLOAD_CHUNK):
                fout.write(chunk)
        keep_mode(src, part)
        part.rename(dest)
    except BaseException as err:
        with shielded():
            part.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(part)  # a write's error says no file of its own
        raise


def keep_mode(src: Path, dest: Path) -> None:
    """``dest`` gets ``src``'s read permissions (0600, 0640 or 0644), never more."""
    os.chmod(dest, 0o600 | (src.stat().st_mode & 0o044))


def create_disk(scenario: Scenario, vm: VM, layout: HostLayout, log: RawLog,
                base_fmt: str = "raw") -> tuple[Path, str]:
    """The VM's root disk over its host's cached base (a ``base_fmt`` file)."""
    image = scenario.image(vm.image)
    base = layout.cache_file(image)
    disk = layout.disk(vm)
    disk.parent.mkdir(parents=True, exist_ok=True)
    fmt = make_root_disk(scenario.strategy_of(vm), base, disk, scenario.root_size(vm), log,
                         vm.name, base_fmt)
    # the disk's name as the kernel knows it (not the run's /proc/<pid>/fd/<fd> view of it)
    (disk.parent / "disk.info").write_text(json.dumps({os.path.realpath(disk): fmt}))
    return disk, fmt


def real_vms(scenario: Scenario) -> list[VM]:
    """The VMs this machine can build (Ceph RBD clones are model only)."""
    return [vm for vm in scenario.vms if not scenario.model_only(vm)]


def sync_files(*roots: Path) -> None:
    """fsync every regular file under ``roots`` that has pages not yet written back: what a
    buffered copy (cp) wrote reaches its filesystem and its delayed allocation settles, so
    ``st_blocks`` counts it. Only the run's own trees: a global ``sync()`` waits for every
    dirty byte on the machine (1.3 s in one quickstart run, on a machine others were writing
    to). A file the kernel says has none (``cachestat(2)``: written direct, as qemu-nbd and
    ``convert -t none`` write, or already written back) has its blocks allocated: its fsync
    would only commit the journal for its times (the quickstart's five files took 0.34 s so,
    at load 6); where the kernel cannot say, every file is synced. The files are synced side
    by side: their fsyncs share a journal commit (the quickstart's four disk.info, written
    seconds before, took 0.06 to 0.12 s each one after the other at load 11)."""
    paths = []
    for root in roots:
        if not root.is_dir():
            paths.append(str(root))
        for dirpath, _, files in os.walk(root):
            paths += [os.path.join(dirpath, name) for name in files]
    with ThreadPoolExecutor(min(8, max(1, len(paths))), thread_name_prefix="fsync") as pool:
        list(pool.map(_fsync_file, paths))


def _fsync_file(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # gone, or not a file we can open: nothing of ours to settle
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and unsettled_pages(fd) != 0:
            os.fsync(fd)
    finally:
        os.close(fd)


#: files unlinked at once at a run's end (:func:`unlinking`)
UNLINKS_AT_ONCE = 8


@contextmanager
def unlinking(files: Sequence[Path | tuple[Path, Callable[[], object]]]) -> Iterator[None]:
    """Unlink ``files`` (of the run's own tree, done with) while the body runs, side by side
    (:data:`UNLINKS_AT_ONCE` threads); a ``(path, wait)`` is unlinked once ``wait()`` returns.
    The body's end waits for them. Freeing a GiB takes ext4 about 0.3 s here, time the final
    digests would otherwise wait for alone; files freed side by side wait for the journal
    together, not one after the other."""
    pool = ThreadPoolExecutor(max(1, min(UNLINKS_AT_ONCE, len(files))),
                              thread_name_prefix="unlink")
    try:
        for item in files:
            pool.submit(_unlink, item)
        yield
    finally:
        pool.shutdown(wait=True)


def _unlink(item: Path | tuple[Path, Callable[[], object]]) -> None:
    path, wait = item if isinstance(item, tuple) else (item, None)
    try:
        if wait is not None:
            wait()
        path.unlink()
    except (OSError, CancelledError):  # gone, busy, abandoned: the tree's removal's
        pass


def allocated(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_blocks * 512, st.st_size


def write_images(scenario: Scenario, work: Path, log: RawLog, rec: Recorder,
                 progress: Progress, check: Integrity) -> None:
    """Write every synthetic image the VMs use, as uploaded to Glance, and copy every ``path``
    image into ``glance/`` (``take_copy``); record its size and checksum it (an image must
    never change)."""
    used = {vm.image for vm in real_vms(scenario)}
    for i, image in enumerate(scenario.images):
        if image.name not in used:
            continue
        path = glance_path(work, image)
        if image.synthetic is not None:
            progress(f"writing image {image.name}")
            write_synthetic(image, path, log)
            alloc, size = allocated(path)
            rec.add(f"image:{image.name}", "allocated_bytes", alloc)
            rec.add(f"image:{image.name}", "file_bytes", size)
        else:
            progress(f"copying image {image.name} into the run's tree")
            take_copy(image, i, path)
        check.hash_before(f"image:{image.name}", path)


def take_copy(image: Image, index: int, dest: Path) -> None:
    """Copy a user's image file into the private tree through one descriptor (opened under
    ``cowbench.imagefile``'s policy), inspect the copy as ``resolve`` inspected the file, and
    refuse it if it is not what the scenario was resolved against. Only the copy is used
    after this: a file swapped later changes nothing."""
    assert image.path is not None
    try:
        with open_user_image(image.path, image.allow_untrusted_path) as f:
            copy_sparse(f.fd, dest, f.copy_mode())
    except ImagePolicyError as err:
        raise UsageError(f"images[{index}].path: {err}") from None
    try:
        vsize, extents = check_image(str(dest), image, f"images[{index}]", "<run>")
    except ScenarioError as err:
        raise UsageError("; ".join(f"{w}: {why}" for w, why in err.problems)) from None
    if vsize != image.virtual_size or extents != image.data_extents():
        raise UsageError(f"images[{index}].path: {image.path} changed since the scenario was "
                         "resolved; refused")


def check_images(scenario: Scenario, work: Path, check: Integrity,
                 done_with: Sequence[Path] | None = None) -> None:
    """``qemu-img check`` every qcow2 image a real VM used (the images only model-only VMs
    use were never uploaded here: :func:`write_images`), compare every checksum, fail if
    damaged.

    ``done_with`` (a run that keeps no images): files measured and checked, unlinked beside
    the final digests, then each checksummed image and base once its last digest is taken."""
    check.hash_after()  # beside the checks
    used = {vm.image for vm in real_vms(scenario)}
    check.check_all([(f"image:{image.name}", glance_path(work, image), "qcow2",
                      image.path is not None)
                     for image in scenario.images
                     if image.name in used and image.format == "qcow2"])
    gone: list[Path | tuple[Path, Callable[[], object]]] = []
    if done_with is not None:
        gone += [*done_with, *check.hashed_files()]
    with unlinking(gone):
        check.compare()
    check.raise_if_bad()


Job = tuple[VM, Workload, Path, str]


def run_workloads(scenario: Scenario, jobs: list[Job], log: RawLog, progress: Progress,
                  sock_dir: Path, fio_done: Callable[[], None] | None = None
                  ) -> tuple[dict[str, FioResult], dict[str, dict[str, float]], float | None]:
    """Export each job's disk, run every fio at once, flush, and read each qemu-nbd's I/O
    and the CPU each VM's processes used (``server_cpu_s``: its qemu-nbd, every thread, from
    just before the fios start to once they have all exited, the flush left out;
    ``issuer_cpu_s``: its fio, every process). ``sock_dir``: the run's private socket
    directory (``real.world.containment``); ``fio_done`` is called once every fio has
    exited, before the exports are flushed. Last, the share of the machine's cores busy over
    the same span (``/proc/stat``: every process and the kernel, cowbench's and others')."""
    results: dict[str, FioResult] = {}
    host_io: dict[str, dict[str, float]] = {}
    if not jobs:
        return results, host_io, None
    with ExitStack() as stack:
        on_exit(stack, lambda: stop_servers_in(sock_dir))
        exports: dict[str, NbdExport] = {}
        for vm, _, path, fmt in jobs:  # every server starts, then each is waited for
            e = exports[vm.name] = NbdExport(
                path, fmt, sock_dir, vm.name, cache=scenario.real.cache, aio=scenario.real.aio,
                log=log, discard=scenario.strategy_of(vm).discard,
                detect_zeroes=scenario.strategy_of(vm).detect_zeroes)
            on_exit(stack, e.stop)
            e.launch()
        for e in exports.values():
            e.wait_ready()
        before = {n: e.io_counters() for n, e in exports.items()}
        cpu_before = {n: e.cpu_s() for n, e in exports.items()}
        machine_before = machine_cpu_ticks()
        runs = {vm.name: FioRun(vm.name, exports[vm.name].uri, wl, sock_dir,
                                runtime_cap=scenario.duration, log=log)
                for vm, wl, _, _ in jobs}
        for r in runs.values():
            on_exit(stack, r.stop)
        for r in runs.values():
            r.start()
        _wait_all(runs, progress, exports)
        for name, r in runs.items():
            results[name] = r.wait()
        busy = busy_share(machine_before, machine_cpu_ticks())
        cpu = {n: {"server_cpu_s": e.cpu_s() - cpu_before[n]} for n, e in exports.items()}
        for name, r in runs.items():
            if r.cpu_s is not None:
                cpu[name]["issuer_cpu_s"] = r.cpu_s
        if fio_done is not None:
            fio_done()
        progress("flushing exports")
        flush_all(list(exports.values()))
        for name, e in exports.items():
            after = e.io_counters()
            host_io[name] = {k: after[k] - before[name][k] for k in _PROC_IO_KEYS} | cpu[name]
    return results, host_io, busy


def on_exit(stack: ExitStack, stop: Callable[[], None]) -> None:
    """Call ``stop`` when ``stack`` closes. If it fails while an error is already ending the
    block, that first error stays the run's reason and the later one becomes a note on it: a
    full disk fails a fio with fio's own message, then the records each stop writes fail
    too, and the last of those ('No space left on device') used to be all the run said."""
    def exit_(et: type[BaseException] | None, ev: BaseException | None,
              tb: TracebackType | None) -> bool:
        try:
            stop()
        except (OSError, CowbenchError) as err:
            if ev is None:
                raise
            ev.add_note(f"then, stopping: {err}")
        return False
    stack.push(exit_)


def flush_all(exports: list[NbdExport]) -> None:
    """Flush every export at once (one ``qemu-io`` each, side by side: each waits for its
    server's writes, not for the others'); the first failure is raised once all are done."""
    with ThreadPoolExecutor(max(1, len(exports)), thread_name_prefix="flush") as pool:
        for fut in [pool.submit(e.flush) for e in exports]:
            fut.result()


def _wait_all(runs: dict[str, FioRun], progress: Progress,
              exports: dict[str, NbdExport] | None = None) -> None:
    """Wait for every fio; if one fails, the others are stopped (by the caller's exit stack).
    A VM's qemu-nbd that exits while its fio runs fails the run at once: fio's nbd engine
    does not give up on a dead server, it spins and writes 'nothing to poll for' without end
    (26 GB of stderr in 10 minutes, measured)."""
    t0 = time.monotonic()
    pending = dict(runs)
    servers = exports or {}
    while pending:
        for name, r in list(pending.items()):
            rc = r.poll()
            if rc is None:
                _server_alive(name, servers.get(name), r)
                continue
            del pending[name]
            if rc != 0:
                r.wait()  # raises ToolError with fio's own message
        progress(f"fio: {len(runs) - len(pending)}/{len(runs)} VMs done, "
                 f"{format_duration(round(time.monotonic() - t0))}")
        if pending:  # woken by the next exit, a fio's or a server's (a second at most)
            wait_exit([r.pid for r in pending.values()]
                      + [e.pid for n, e in servers.items() if n in pending and e.pid], 1.0)


def _server_alive(vm: str, export: NbdExport | None, fio: FioRun) -> None:
    """Raise if ``vm``'s qemu-nbd has exited, its fio killed first: spinning on the dead
    socket, it heeds no SIGTERM (it ran the whole 15 s of a stop, writing 760 MB)."""
    if export is None or export.proc is None:
        return
    rc = export.proc.poll()
    if rc is not None:
        fio.stop(timeout=0)  # SIGKILL to its group at once
        how = f"signal {-rc}" if rc < 0 else f"code {rc}"
        raise ToolError([which("qemu-nbd")], rc, "",
                        f"qemu-nbd serving VM {vm} exited ({how}) while its fio ran; fio stopped")


def record_fio(rec: Recorder, entity: str, wl: Workload, result: FioResult,
               io: Mapping[str, float] | None, t_s: float | None = None) -> None:
    """fio's figures for the directions the workload does, and qemu-nbd's host I/O and the
    CPU of the VM's processes (:func:`run_workloads`)."""
    if io is not None:
        rec.add(entity, "host_read_bytes", io["read_bytes"], t_s)
        rec.add(entity, "host_write_bytes", io["write_bytes"], t_s)
        for metric in CPU_METRICS:
            if metric in io:
                rec.add(entity, metric, io[metric], t_s)
    # fio counts its verify reads as reads; several jobs: what any of them does
    reads = any(p.read_fraction > 0 or p.verifies for p in wl.parts)
    kinds = [k for k, on in (("read", reads),
                             ("write", any(p.read_fraction < 1 for p in wl.parts)),
                             ("trim", any("trim" in p.rw for p in wl.parts))) if on]
    for kind in kinds:
        for metric, value in result.figures(kind).items():
            rec.add(entity, metric, value, t_s)
