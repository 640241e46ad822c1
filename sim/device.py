"""A first storage device model: one queue per host, shared by every VM on it.

Each host I/O a guest I/O causes (a COW read of the cluster, the cluster write, metadata
writes, or the in-place write) costs a fixed per-operation latency plus its bytes over the
device's bandwidth; ``channels`` requests are in service at once, the rest queue (FIFO). This is
the uncalibrated skeleton of the I/O model: its parameters live in the scenario's ``device``
section; ``cowbench calibrate`` (issue 5) fits them to fio measurements of the target storage.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from cowbench.scenario import Device as DeviceSpec

from .disk import HostIO


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
