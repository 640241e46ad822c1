"""cowbench: what many VMs sharing base images cost in disk space and I/O, predicted and measured.

The core package holds what both backends share: the scenario schema and units, the tidy
records, the run directory, the comparison, the external-tool wrappers and the CLI.
"""

__version__ = "0.1.0"
