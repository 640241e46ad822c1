"""cowbench's model: a discrete-event (SimPy) simulation of hosts, image caches and VM disks.

``simulate(scenario, seed)`` returns the model's records; it imports the core (``cowbench``),
never the real backend.
"""

from .driver import predict_space, simulate

__all__ = ["predict_space", "simulate"]
