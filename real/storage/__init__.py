"""The disks the real backend builds: each strategy's root disk with qemu-img / cp
(``strategies``), and the loop-mounted XFS that reflink copies need (``reflink``)."""
