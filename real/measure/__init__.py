"""Measurements that judge or calibrate: ``qemu-img check`` and base checksums after every run
(``integrity``), and the probe matrix of ``cowbench calibrate`` (``calibrate``)."""
