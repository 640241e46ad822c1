"""The host storage's rate of allocating writes, and its fit from the calibration probes.

An allocating write (a first write into a cluster: the copy-on-write read of the rest of the
cluster from the backing file, the cluster write, the file's extension) holds its image's
file lock (:class:`sim.perf.host.FileLock`), so one image allocates one write at a time; but
images are not independent: the host's storage allocates for all of them (ext4's block
allocation and journal, the device's own writes). Measured for real (``benchmarks/io_groups.py``,
8 KiB writes at iodepth 6, each VM into a fresh overlay): 8.1k, 11.0k, 11.3k and 11.7k IOPS in
total for 1, 2, 3 and 6 VMs, where a model with only the per-image lock and the shared path
climbed to 20.0k.

So the host has one *allocator* (:attr:`sim.perf.host.Host.allocator`, one SimPy resource):
each allocating write takes a turn of ``host_alloc_s`` on it, overlapping its own work (the
path's allocation round and the device transfer), and is done when both are. One image alone
is paced by its own work (its lock), several by the allocator, at most ``1 / host_alloc_s``
allocating writes per second for the whole host. Readers and overwrites never take it.

The fit (the sim backend's, after ``sim.perf.fit.fit``) reads the probe of several exports
each writing first writes at once (``cow-write-4k-qd8-xN``): if the model without the
allocator replays it more than ``SATURATION`` faster than it ran, ``host_alloc_s`` is the turn
that makes the replay meet it (bisection between no turn and ``1 / IOPS``); otherwise the
storage showed no host-wide limit and the parameter stays absent. Without that probe
(profiles made before it) nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from cowbench.profile import PerfParams, Probe

from .replay import replay

#: the replay without the allocator must beat the probe by more than this to fit one: a fit
#: replays the probes within a few percent, which is no evidence of a host-wide limit
SATURATION = 0.10
#: bisection rounds (the turn to 1/2^8 of 1 / IOPS: 0.4%)
ROUNDS = 8
#: simulated I/Os per replay (32 in flight: 0.5-1 s each on this project's loaded machine)
IOS = 2000


def allocating_probe(probes: Sequence[Probe]) -> Probe | None:
    """The probe of the most exports writing first writes at once, if the matrix has one."""
    many = [p for p in probes if p.target == "cow" and p.exports > 1 and p.iops > 0]
    return max(many, key=lambda p: (p.exports, p.iodepth), default=None)


def fit_host_alloc(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """``params`` with ``host_alloc_s`` fitted (see the module docstring), or as they are
    when the probes hold no evidence of a host-wide allocation limit."""
    probe = allocating_probe(probes)
    if probe is None:
        return params
    free = params.model_copy(update={"host_alloc_s": None})
    if replay(free, probe, ios=IOS)[0] <= probe.iops * (1 + SATURATION):
        return free
    lo, hi = 0.0, 1.0 / probe.iops
    for _ in range(ROUNDS):
        mid = (lo + hi) / 2
        trial = params.model_copy(update={"host_alloc_s": mid})
        if replay(trial, probe, ios=IOS)[0] > probe.iops:
            lo = mid
        else:
            hi = mid
    return params.model_copy(update={"host_alloc_s": (lo + hi) / 2})
