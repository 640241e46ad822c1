"""Fleets: a population's life in SimPy (``fleet_lifecycle``), its disks in closed form
(``fluid``) or write by write (``fleet_exact``), and the records per host over time (``fleet``)."""
