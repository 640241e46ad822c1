"""The storage a host's VMs share: the uncalibrated first model, or the calibrated one.

``make_device`` picks: with a calibration profile (``device.calibrated``, filled from
``device.profile``), :class:`CalibratedDevice` serves every guest I/O through ``sim.perf``'s
shared stages and device; without one, :class:`Device` below.

The first storage device model: one queue per host, shared by every VM on it.

Each host I/O a guest I/O causes (a COW read of the cluster, the cluster write, metadata
writes, or the in-place write) costs a fixed per-operation latency plus its bytes over the
device's bandwidth; ``channels`` requests are in service at once, the rest queue (FIFO). This is
the uncalibrated skeleton of the I/O model: its parameters live in the scenario's ``device``
section; ``cowbench calibrate`` (issue 5) fits them to fio measurements of the target storage.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

import numpy as np
import simpy

from cowbench.profile import PerfParams
from cowbench.scenario import Device as DeviceSpec
from sim.storage.disk import HostIO, Qcow2Image
from sim.storage.qcow2_ext import Qcow2ExtImage

from .demand import Demand, Fmt, PerfModel
from .host import Host


class Device:
    """A SimPy resource with a service-time function for :class:`HostIO`."""

    def __init__(self, env: simpy.Environment, spec: DeviceSpec) -> None:
        self.env = env
        self.spec = spec
        self.queue = simpy.Resource(env, capacity=spec.channels)

    def service_time(self, io: HostIO) -> float:
        s = self.spec
        t = s.metadata_latency_s
        t += io.read_ops * s.read_latency_s + io.read_bytes / s.read_bandwidth_bytes_per_s
        t += io.write_ops * s.write_latency_s + io.write_bytes / s.write_bandwidth_bytes_per_s
        return t

    def serve(self, io: HostIO) -> Generator[simpy.Event, Any, None]:
        with self.queue.request() as req:
            yield req
            yield self.env.timeout(self.service_time(io))

    client_s = 0.0

    def serve_io(self, disk: object, is_write: bool, length: int,
                 io: HostIO) -> Generator[simpy.Event, Any, None]:
        yield from self.serve(io)

    def serve_trim(self, disk: object, io: HostIO) -> Generator[simpy.Event, Any, None]:
        """A guest trim: the request's own metadata operation, what its discard made the
        image read and write, and a write operation per hole it punched in the file."""
        yield from self.serve(replace(io, write_ops=io.write_ops + io.punches))


def disk_format(disk: object) -> tuple[Fmt, int, Qcow2Image | None]:
    """(format the I/O model charges, backing-chain depth, the qcow2 image the VM writes)."""
    top = getattr(disk, "top", disk)  # a snapshot chain: its top layer
    if isinstance(top, Qcow2ExtImage):
        fmt: Fmt = "qcow2_ext"
    elif isinstance(top, Qcow2Image):
        fmt = "qcow2"
    else:
        return "raw", 0, None
    depth = 1 + len(getattr(disk, "lower", ()))
    return fmt, depth, top


class CalibratedDevice:
    """One host's storage under the calibrated model (``sim.perf``)."""

    def __init__(self, env: simpy.Environment, params: PerfParams,
                 rng: np.random.Generator) -> None:
        self.model = PerfModel(params)
        self.host = Host(env, self.model, rng)
        self.rng = rng
        self.client_s = self.model.client_s
        self._formats: dict[int, tuple[Fmt, int, float]] = {}
        #: the demand of each kind of I/O met so far: ``PerfModel.demand`` is a pure function
        #: of its arguments and of the parameters, and a run meets few kinds (a few sizes,
        #: each with a few host I/O shapes) in its many I/Os: working the same ones out again
        #: took 14% of a calibrated run of scenarios/io-holdout.yaml (874,430 I/Os)
        self._demands: dict[tuple[object, ...], Demand] = {}

    def _format(self, disk: object) -> tuple[Fmt, int, float]:
        key = id(disk)
        if key not in self._formats:
            fmt, depth, img = disk_format(disk)
            miss = 0.0
            if img is not None:
                per_entry = 16 if fmt == "qcow2_ext" else 8
                need = -(-img.virtual_size // img.cluster_size) * per_entry
                cache = self.model.p.l2_cache_bytes
                miss = max(0.0, 1.0 - cache / need) if need > cache else 0.0
            self._formats[key] = (fmt, depth, miss)
        return self._formats[key]

    def label(self, disk: object, name: str) -> None:
        """The VM whose disk is ``disk`` is called ``name`` (``Host.names``)."""
        self.host.label(getattr(disk, "top", disk), name)

    def cpu_of(self, disk: object) -> tuple[float, float] | None:
        """The CPU seconds the issuer and the server of the VM whose disk is ``disk`` have
        used so far (``Host.cpu_of``); None without a host scheduler or before its first
        I/O."""
        return self.host.cpu_of(getattr(disk, "top", disk))

    def serve_io(self, disk: object, is_write: bool, length: int,
                 io: HostIO) -> Generator[simpy.Event, Any, None]:
        fmt, depth, miss = self._format(disk)
        l2_miss = miss > 0 and bool(self.rng.random() < miss)
        key = (is_write, length, fmt, depth, l2_miss, *vars(io).values())  # every HostIO field
        d = self._demands.get(key)
        if d is None:
            d = self._demands[key] = self.model.demand(
                is_write=is_write, length=length, host=io, fmt=fmt, depth=depth, l2_miss=l2_miss)
        yield from self.host.serve(d, getattr(disk, "top", disk))

    def serve_trim(self, disk: object, io: HostIO) -> Generator[simpy.Event, Any, None]:
        """A guest trim whose discard did ``io`` (``PerfModel.trim``)."""
        key = ("trim", *vars(io).values())
        d = self._demands.get(key)
        if d is None:
            d = self._demands[key] = self.model.trim(io)
        yield from self.host.serve(d, getattr(disk, "top", disk))


AnyDevice = Device | CalibratedDevice


def make_device(env: simpy.Environment, spec: DeviceSpec, seed: int, host_index: int,
                own: PerfParams | None = None) -> AnyDevice:
    """The host's device: calibrated with the host's own profile (``own``, from
    ``hosts[].profile``) or else the scenario's (``device.calibrated``), uncalibrated without
    either."""
    params = own if own is not None else spec.calibrated
    if params is None:
        return Device(env, spec)
    rng = np.random.default_rng([seed, host_index, 0x5E5F])
    return CalibratedDevice(env, params, rng)
