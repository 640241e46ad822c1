"""cowbench's real backend: the scenario built on this machine with qemu-img, qemu-nbd and fio.

``execute(scenario, work, log, run_id=...)`` returns the measured records; it imports the core
(``cowbench``), never the model.
"""

from real.measure.integrity import Integrity, IntegrityError
from real.world.backend import execute

__all__ = ["execute", "Integrity", "IntegrityError"]
