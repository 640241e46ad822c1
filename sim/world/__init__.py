"""The hosts, image caches and VMs of a scenario in SimPy: plain VMs (``model``), one VM's fio
job (``vm``), and the expanded Nova timeline (``lifecycle`` for the world's state, ``timeline``
for its events)."""
