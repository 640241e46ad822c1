"""The guests' I/O, for real: each disk exported by qemu-nbd (``nbd``) and driven by fio
(``fio``)."""
