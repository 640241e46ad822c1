"""cowbench's real backend: the scenario built on this machine with qemu-img, qemu-nbd and fio.

``execute(scenario, work, log, run_id=...)`` returns the measured records; it imports the core
(``cowbench``), never the model.
"""

from real.driver import execute
from real.measure.integrity import Integrity, IntegrityError

__all__ = ["execute", "Integrity", "IntegrityError"]
