"""Fleets: a population's life as one event loop (``fleet_events``; what it starts from and
decides: ``plan``), its disks in closed form (``fluid``) or write by write (``fleet_exact``), and
the records per host over time (``fleet``)."""
