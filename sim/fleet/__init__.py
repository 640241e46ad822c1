"""Fleets: a population's life as one event loop (``fleet_events``; ``fleet_lifecycle`` is the
same in SimPy, the reference), its disks in closed form (``fluid``) or write by write
(``fleet_exact``), and the records per host over time (``fleet``)."""
