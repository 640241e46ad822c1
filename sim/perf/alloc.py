"""The host storage's rate of allocating writes, and its fit from the calibration probes.

An allocating write (a first write into a cluster: the copy-on-write read of the rest of the
cluster from the backing file, the cluster write, the file's extension) holds its image's
file lock (:class:`sim.perf.host.FileLock`), so one image allocates one write at a time; but
images are not independent: they share the host's storage. Measured for real
(``benchmarks/io_groups.py``, 8 KiB writes at iodepth 6, each VM into a fresh overlay, on a
quiet machine): 8.1k, 11.0k, 11.3k and 11.7k IOPS in total for 1, 2, 3 and 6 VMs, where a
model with only the per-image lock and the shared path climbed to 20.0k.

What several images allocating at once can do is measured by one probe of the calibration,
``cow-write-4k-qdN-xE`` (E exports, each writing first writes into its own fresh overlay),
and the model is fitted to it with one of two parameters, by which way it missed:

- **the device's own rate for allocating writes** (``alloc_bw``, bytes per second): an
  allocating write's transfer (its copy-on-write read and its cluster write) takes its bytes
  over ``alloc_bw`` on the device (the one resource of the host's storage,
  :class:`sim.perf.host.Host`), instead of over the read and write bandwidths, which the raw
  probes measure through qemu-nbd's random I/O. E images allocating at once saturate at
  ``alloc_bw`` over their bytes per write, and whatever else waits for the device takes its
  turn beside them. The part of the write's lock hold that is not the transfer grows or shrinks
  by what the transfer lost or gained (``cow_read_s``), so one image alone allocates as fast
  as its own probe said. Fitted where the model without it replays the probe more than
  ``SATURATION`` too fast, or too slow while the device is what holds it back;
- **the share of the allocation round that is shared** (``alloc_shared``): the round a write
  does holding its lock (the copy-on-write read, the cluster allocation) is work on the
  path's shared stages in the fit of one export, but several exports allocating at once may
  run faster than that allows (measured at load 12: 2.2k first writes per second on one export
  at iodepth 8, 8.8k on four, where the model with the round all shared gave 5.9k: each
  qemu-nbd waited for a core on its own, beside the machine's other processes). So only
  ``alloc_shared`` of the round is work on the stages, the rest waiting that holds only its
  image's lock. Fitted where the model replays the probe too slow and making the round wait
  is enough; if it is not, the round waits whole and ``alloc_bw`` is fitted too. On a host
  with a scheduler (``sim.perf.eevdf``) the round waits whole from the start: a first write's
  CPU, its processes' and the kernel's, is served on the cores, and what is left of the round
  holds only its image's lock (as shared work, it queued every VM's I/Os behind the
  allocating ones at density: io-density's 4 KiB first writers 66% slow); only ``alloc_bw``
  is fitted then.

Both by bisection on the probe's replay (``ROUNDS`` rounds; the rate in log scale, within
``SPAN`` times the bandwidths' either way). Within ``SATURATION`` both stay absent; without
the probe (profiles made before it) nothing changes. Profiles fitted with the separate host
allocator that came before (``host_alloc_s``) are refused: ``cowbench calibrate`` makes them
again (``cowbench.profile.parse_profile``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cowbench.profile import PerfParams, Probe

from .demand import PerfModel
from .fit import deep_cow_probe
from .replay import replay

#: the replay as fitted must miss the probe by more than this to fit either parameter: a fit
#: replays the probes within a few percent, which is no evidence of anything missing
SATURATION = 0.10
#: bisection rounds (to 1/2^8 of the interval)
ROUNDS = 8
#: simulated I/Os per replay (32 in flight: 0.5-1 s each on this project's loaded machine)
IOS = 2000


def allocating_probe(probes: Sequence[Probe]) -> Probe | None:
    """The probe of the most exports writing first writes at once, if the matrix has one."""
    many = [p for p in probes if p.target == "cow" and p.exports > 1 and p.iops > 0]
    return max(many, key=lambda p: (p.exports, p.iodepth), default=None)


def fit_host_alloc(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """``params`` with ``alloc_bw`` or ``alloc_shared`` fitted (see the module docstring), or
    as they are when the probes hold no evidence of either."""
    # with a host scheduler a first write's CPU is served on the cores (its processes' and
    # the kernel's, sim.perf.schedfit): what is left of its allocation round is waiting that
    # holds its image's lock, not work on the shared stages
    share = 0.0 if params.sched is not None else 1.0
    if params.sched is not None:
        params = params.model_copy(update={"alloc_shared": share})
    if params.device_source == "storage":  # copies at the storage's own bandwidths
        return params
    probe = allocating_probe(probes)
    if probe is None:
        return params
    free = params.model_copy(update={"alloc_shared": share, "alloc_bw": None})
    got = _iops(free, probe)
    table = table_bw(free, probe)
    if got > probe.iops * (1 + SATURATION):  # the device is slower for this than the tables
        return _bisect(lambda x: with_alloc_bw(free, probe, table * SPAN**x), probe, 0.0, -1.0)
    if got >= probe.iops * (1 - SATURATION):
        return free
    apart = free.model_copy(update={"alloc_shared": 0.0})
    if _iops(apart, probe) > probe.iops:
        return _bisect(lambda share: free.model_copy(update={"alloc_shared": share}), probe,
                       0.0, 1.0)
    return _bisect(lambda x: with_alloc_bw(apart, probe, table * SPAN**x), probe, 1.0, 0.0)


#: how far the device's rate for allocating writes may be from the bandwidths' (either way)
SPAN = 16.0


def _iops(params: PerfParams, probe: Probe) -> float:
    return replay(params, probe, ios=IOS)[0]


def table_bw(params: PerfParams, probe: Probe) -> float:
    """The rate the read and write bandwidths give the probe's allocating transfer."""
    d = PerfModel(params.model_copy(update={"alloc_bw": None})).probe_demand(probe)
    return _bytes(probe) / d.device_s


def _bytes(probe: Probe) -> int:
    """An allocating write's transfer in the probe: its copy-on-write read and cluster write."""
    n = -(-probe.bs // probe.cluster_size)
    return 2 * n * probe.cluster_size - probe.bs


def with_alloc_bw(params: PerfParams, probe: Probe, bw: float) -> PerfParams:
    """``params`` with the device's rate for allocating writes at ``bw``, and the allocation
    round longer or shorter by what the probe's transfer under the lock lost or gained (never
    below 0), so its lock hold stays what its own probe measured: the whole transfer, or with
    qemu-nbd's pool modelled the cluster's write alone (its copy-on-write read is done before
    the lock, ``sim.perf.host.Host._in_pool``)."""
    d = PerfModel(params).probe_demand(probe)
    if _pooled(params):
        before = d.device_s - d.cow_device_s
        after = -(-probe.bs // probe.cluster_size) * probe.cluster_size / bw
    else:
        before, after = d.device_s, _bytes(probe) / bw
    cow_read = max(0.0, params.cow_read_s + before - after)
    return params.model_copy(update={"alloc_bw": bw, "cow_read_s": cow_read})


def _bisect(make: Callable[[float], PerfParams], probe: Probe, fast: float,
            slow: float) -> PerfParams:
    """``make(x)`` for the ``x`` between ``fast`` (the replay beats the probe) and ``slow``
    (it does not) where the replay of ``probe`` meets its IOPS."""
    for _ in range(ROUNDS):
        mid = (fast + slow) / 2
        if _iops(make(mid), probe) > probe.iops:
            fast = mid
        else:
            slow = mid
    return make((fast + slow) / 2)


def _pooled(params: PerfParams) -> bool:
    """Whether qemu-nbd's pool is modelled: an allocating write's copy-on-write read is then
    done before it takes its image's lock (``sim.perf.host.Host._in_pool``)."""
    return params.sched is not None and params.sched.pool_share > 0


#: the replay of one image's first writes at depth may beat its probe by this much before an
#: allocating write's hold of the lock is fitted to it (the fit replays probes within a few
#: percent: no evidence of anything missing)
HOLD_TOLERANCE = 0.05


def fit_lock_hold(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """``params`` with an allocating write's hold of its image's lock as long as one image's
    first writes at depth say, when qemu-nbd's pool is modelled.

    Each of them extends the image's file, holding its inode's lock alone for its call, so
    one image allocates at the rate of that lock however many it has in flight: on this
    project's machine, a mixed VM alone at iodepth 16 wrote its overlay's first clusters in
    calls of 1.3 ms at the median, five or six of them queued on the lock, and 4 KiB first
    writes at iodepth 8 ran at 4.8k-6.5k a second in the twelve fresh calibrations of fit
    version 8 (2026-12-07).
    The model's hold is the pieces it has (the cluster's transfer, the allocation round, the
    pool thread's CPU after it); what the hold takes beyond them on the machine (the file's
    extension in the call, the device's latency under load) is fitted here: the part of the
    allocation round done holding the lock (``cow_read_s``, per copy-on-write read) raised, by
    bisection, until the replay of that probe (:func:`deep_cow_probe`) meets its rate, where
    it beat it by more than ``HOLD_TOLERANCE``; never lowered. Without the pool, a pooled
    model without that probe, or a replay already as slow: unchanged. Fitted last, on the
    long waits' answer (they change the probe's replay); its iodepth-1 probe then replays
    slower by what the hold added (6-9% on two of the stored profiles), which a hold that
    depends on the device's load would not cost (docs/io-model.md, "The lock's hold, and a
    first write's CPU")."""
    probe = deep_cow_probe(probes)
    if not _pooled(params) or probe is None or _iops(params, probe) <= probe.iops * (
            1 + HOLD_TOLERANCE):
        return params
    low = params.cow_read_s
    return _bisect(lambda x: params.model_copy(update={"cow_read_s": x}), probe, low,
                   low + 1.0 / probe.iops)
