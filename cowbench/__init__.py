"""cowbench: what many VMs sharing base images cost in disk space and I/O, predicted and measured.

The core package holds what both backends share: the scenario schema and units, the tidy
records, the run directory, the comparison, the external-tool wrappers and the CLI.

From Python (a notebook, a script)::

    from cowbench import load_scenario, simulate, run, load_results, run_sweep, make_report

Importing the package is light: these names are loaded on first use (PEP 562), so
``import cowbench`` pulls in neither pandas nor the model (see :mod:`cowbench.api`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and editors
    from .api import (
        FilesystemWarning,
        SeedWarning,
        load_results,
        load_run,
        load_scenario,
        load_sweep,
        make_report,
        run,
        run_sweep,
        simulate,
    )
    from .errors import CowbenchError, Interrupted, UsageError
    from .report import ReportOutcome
    from .results import RunResults, SweepResults
    from .runner import RunOutcome
    from .scenario import Scenario

#: Public name -> the module that defines it.
_LAZY = {"load_scenario": "api", "simulate": "api", "run": "api", "load_results": "api",
         "run_sweep": "api", "make_report": "api", "load_run": "api", "load_sweep": "api",
         "SeedWarning": "api", "FilesystemWarning": "api", "Interrupted": "errors",
         "Scenario": "scenario",
         "RunOutcome": "runner",
         "ReportOutcome": "report", "RunResults": "results", "SweepResults": "results",
         "CowbenchError": "errors", "UsageError": "errors"}

__all__ = ["load_scenario", "simulate", "run", "load_results", "load_run", "load_sweep",
           "run_sweep", "make_report", "Scenario", "RunOutcome", "ReportOutcome", "RunResults",
           "SweepResults", "CowbenchError", "UsageError", "Interrupted", "SeedWarning",
           "FilesystemWarning", "__version__"]


if not TYPE_CHECKING:  # a type checker sees the imports above, and a misspelled name fails

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'cowbench' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
