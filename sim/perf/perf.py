"""The calibrated I/O model: service demands per guest I/O, the host that serves them, the fit.

This module is its overview and public face; the parts live beside it: the demand model
(``demand``), the host that serves it (``host``), probe replay (``replay``), fitting (``fit``)
and the host's allocation rate (``alloc``).

How a guest I/O is served (one host; every VM on it shares everything below):

- a *client* delay: fio's own per-I/O work between a completion and the next submission,
  not part of the latency fio reports;
- a *path* demand: the CPU and wake-ups of the software path (fio's nbd engine, qemu-nbd, the
  qcow2 driver, the thread pool), served by ``stages`` single-server stages in turn, each
  taking its share (exponentially distributed). The stages are shared by all VMs of the host
  (``path: host``), or, where the host's cores are modelled (``sched``), each VM's own
  (``path: vm``: its fio and its qemu-nbd are processes of its own, and the VMs meet on the
  cores and the device): a tandem of stages reproduces what one queue cannot, the slow
  climb of throughput with the I/Os in flight (measured: 4 KiB reads at 1/4/8/16/24 in flight
  ran at 10.4k/20.1k/28.6k/37.5k/38.9k IOPS, from one export or several). Only
  ``cpu_share`` of the path (``hole_cpu_share`` for reads of holes) is work on the stages;
  the rest is waiting (wake-ups, the virtual disk's round trip), a delay that does not hold
  a stage (measured: reads of holes ran at 16k IOPS at iodepth 1 but 218k at 32);
- an allocating write (a first write into a cluster, or into a subcluster with extended_l2)
  then waits ``cow_wait_s`` per copy-on-write read (the read's round trip through the thread
  pool), and takes its image file's lock alone (:class:`FileLock`, ext4's inode lock: a write
  that extends the file goes alone): one at a time per image, it does its allocation work
  through the same stages (``cow_read_s`` per copy-on-write read, ``alloc_s`` per cluster)
  and its transfer. Reads of the image's own data and overwrites share that lock (with
  qemu-nbd's pool modelled, for their pool thread's whole call on the file, the virtual
  disk's round trip in it; without, for their transfer), so they wait for the allocating
  writes queued before them and those for them (reads that fall through to the backing file
  do not). Fitted to several exports allocating at once (``sim.perf.alloc``): the
  device's own rate for allocating writes' transfers (``alloc_bw``), so that N images
  allocating at once saturate the one device where the host did; or, where the allocation
  round's shared work held them back, only ``alloc_shared`` of that round is work on the
  stages and the rest waiting that holds only the image's lock;
- a *device* demand: the host bytes the I/O moves (``HostIO``: COW copies and metadata
  included) over the storage's bandwidth (an allocating write's over ``alloc_bw`` where the
  fit set it), on one device. The device serves what waits for it
  either in arrival order (``device_queue: fifo``: a 4 KiB read waits for the 64 KiB
  copies-on-write queued before it) or by sharing its bandwidth equally among the transfers
  in progress (``shared``, processor sharing: the small read passes the large ones). Which
  one is measured on the storage alone (:func:`device_interference`): on this project's 2-core
  virtual machine, a 4 KiB read at iodepth 1 took 54 us alone and 377 us beside 64 KiB reads
  at iodepth 8, whose own latency was 400 us: arrival order (``fio --ioengine=libaio
  --direct=1`` on a 1 GiB file);
- or, with ``transfer_on_path``, the transfer of an I/O that allocates nothing (a read's data,
  an overwrite) is work of the path's first stage, which every VM's path also goes through
  (with ``path: vm``, it holds the VM's own first stage while the device serves it, in
  arrival order with every other VM's transfers): the busiest stage serves the I/O's path
  share and then its bytes, so the saturated rate falls
  with the size as ``a + b size`` (measured through qemu-nbd here: 4, 16 and 64 KiB reads at
  iodepth 32 ran at 35.4k, 27.7k and 12.9k IOPS; a device beside the path gave 42k for
  16 KiB), and a VM moving many bytes slows every other VM's path. Allocating writes' transfers
  (copies-on-write, cluster writes) stay on the device. :func:`fit` fits both shapes and keeps
  the one closer to the probes with several I/Os in flight (a 16 KiB read at iodepth 8 tells
  them apart); the bandwidth is then what is left of the large loaded probes' time per I/O
  once the stage's share of the path is served (64 KiB reads: 1.23 GB/s here, as the storage
  alone gave, against 0.90 GB/s for the device beside the path).

The path demand is the raw path for the I/O's size (a table over block sizes, interpolated
in log size), less ``hole_read_s`` for the part of a read the device does not serve (a hole of
a sparse base: the filesystem answers with zeros), plus what the format adds: a qcow2 lookup,
a read that falls through ``d`` layers of a chain (``chain_base_s + a k + b k^2`` with
``k = d - 1``: linear per layer, superlinear in deep chains, FACTS.md 2.3 and b.3, where this
form matches qemu-img bench from 16 to 256 layers within 30%), an L2 cache miss when the
image's L2 tables outgrow the cache (FACTS.md 2.3: a 4 KiB metadata read; uniform access
assumed, so a miss has probability 1 - cache/needed).

Every parameter comes from ``cowbench calibrate``'s probes (:func:`fit`): the raw path and the
bandwidths from raw-file probes, each format cost as the difference between a probe and what
the parameters fitted before it predict for it, the number of stages by mean-value analysis of
the closed loops of the probes with several I/Os in flight.
"""

from __future__ import annotations

from collections.abc import Sequence

from cowbench.profile import PerfParams, Probe

from .alloc import fit_host_alloc, fit_lock_hold
from .demand import MIN_PATH_S, MIN_PATH_SHARE, Demand, Fmt, PerfModel, interp_log
from .fit import FitError, contended, device_interference, fit, mva_iops
from .host import FileLock, Host, Process, SharedDevice
from .replay import fit_punch, fit_rows, replay
from .tail import fit_long_wait

__all__ = ["FIT_VERSION", "MIN_PATH_S", "MIN_PATH_SHARE", "Demand", "FileLock", "FitError",
           "Fmt", "Host", "PerfModel", "Process", "SharedDevice", "device_interference", "fit",
           "fit_rows", "fit_punch", "fit_with_alloc", "interp_log", "mva_iops", "replay"]


#: the version of :func:`fit_with_alloc`'s answer: raised whenever the same probes would fit
#: other parameters (a new mechanism fitted, a fit changed). A profile records the version
#: that fitted it (``Profile.fit_version``); a cached profile fitted by an older one is
#: fitted again from its own probes before a run uses it (``cowbench.autoprofile``);
#: tests/test_fit_version.py pins the answer for a real calibration's probes.
#: 0: the profiles made before it was recorded; 1: with the host's long waits
#: (``sim.perf.tail``, 2026-12-06), drawn at wake-ups; 2: the long waits drawn at the ticks,
#: for each process runnable on a crowded core (2026-12-06, evening); 3: a large I/O's data
#: across the socket in pieces (``SchedParams.read_bytes_turns``, 2026-12-06, late evening);
#: 4: qemu-nbd's pool as a process per I/O in flight, an allocating write holding its image's
#: lock through its pool thread's call (``SchedParams.pool_share``, 2026-12-06, night); 5: a
#: read of the image's own data or an overwrite holding the lock, shared, for its whole path,
#: not its transfer alone (``Host._serve``, 2026-12-07); 6: each qemu-nbd's threads one task
#: group on the host's cores, as the kernel's autogroup makes them (``SchedParams.groups``,
#: ``sim.perf.eevdf.Group``, 2026-12-07); 7: version 5's answer again, the groups left to a
#: profile that asks for them (they scored worse at density: docs/io-model.md, "Each qemu-nbd
#: one task group", 2026-12-07); 8: a long wait a slice for each other session runnable on
#: its core, not a tick however crowded (``SchedParams.long_wait_each_s``, 2026-12-07); 9: an
#: allocating write's copy-on-write read done before it takes its image's lock
#: (``Demand.cow_device_s``), the lock's hold fitted to one image's first writes at depth
#: (``sim.perf.alloc.fit_lock_hold``), and a first write's CPU what its processes counted, not
#: the machine's beyond them (``sim.perf.schedfit.sched_params``, 2026-12-07, late night).
FIT_VERSION = 9


def fit_with_alloc(probes: Sequence[Probe], cores: int | None) -> PerfParams:
    """What a profile's parameters are: :func:`fit` on ``probes`` with the host scheduler on
    ``cores`` (the cores of the machine where the probes ran), then the host's allocation
    rate (``sim.perf.alloc``), a trim's hole punch (``fit_punch``), the host's long waits
    (``sim.perf.tail``) and an allocating write's hold of its image's lock
    (``sim.perf.alloc.fit_lock_hold``), all without the contention probe
    (``sim.perf.fit.contended``: it is replayed, not fitted)."""
    alone = [p for p in probes if not contended(p)]
    params = fit_long_wait(fit_punch(fit_host_alloc(fit(alone, cores=cores), alone), alone),
                           alone)
    return fit_lock_hold(params, alone)
