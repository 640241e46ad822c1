"""The model's storage formats: exact allocation maps of qcow2 (plain, extended L2, internal
snapshots), raw files on ext4, reflink copies and RBD clones, the batch engine that applies
writes at numpy speed, and the disk each copy-on-write strategy gives a VM (``strategies``)."""
