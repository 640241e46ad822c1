"""Nova's behaviour in one pure place (FACTS.md section 1), for timelines, fleets and backends.

- :mod:`.placement` (and :mod:`.claims`): DISK_GB claims and inventories, the scheduler's
  spread choice; :mod:`.scheduler`: that choice over a timeline's operations;
- :mod:`.draws`: arrivals (a Poisson process) and lifetimes, mixes and policies, from named
  random streams;
- :mod:`.imagecache`: the image cache manager's pass (aging unused bases);
- :mod:`.fetch`: a disk made from bases in ``_base``: the missing fetched, all touched;
- :mod:`.tenancy`: who is where, with its DISK_GB claim and disk size, for the scheduler and
  the machine alike;
- :mod:`.resize`: a cold migration's ``_resize`` copy (its claim and bases kept until
  confirmed) and when Nova confirms by itself;
- :mod:`.machine`: the typed operations and the state machine that applies them, answering
  with :mod:`.instructions` (fetch a base, make a disk, copy files, remove a base) that the
  model, the real backend and the validator carry out;
- :mod:`.clock`: when passes and samples happen;
- :mod:`.schema`: how a scenario spells flavors, lifetimes, the image cache and host disks.

Pure: numpy and pydantic only, no I/O, nothing from ``sim`` or ``real``.
"""
