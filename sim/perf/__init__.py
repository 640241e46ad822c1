"""How long I/O takes: the shared host device, uncalibrated (``device``) or calibrated from a
probe profile (``perf``, the overview: ``demand`` the demand model, ``host`` the host that
serves it, ``replay`` probe replay, ``fit`` and ``alloc`` the fitting)."""
