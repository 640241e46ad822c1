"""How long I/O takes: the shared host device, uncalibrated (``device``) or calibrated from a
probe profile (``perf``: the demand model, probe replay and fitting)."""
