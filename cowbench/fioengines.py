"""fio 3.33's I/O engines, by what they do to the job's file or device (HOWTO "ioengine",
``engines/`` of fio 3.33).

An engine that reads and writes the job's file or block device at the job's offsets issues
the I/O the model applies whatever engine carries it, so the backend's own engine (fio's nbd
engine on the VM's export in the real run) replaces it. Any other engine does something else
(no I/O, network traffic, fallocate or metadata calls, a program) and a job of it is refused:
no disk engine can stand in for it.
"""

from __future__ import annotations

#: Engines that read and write data at the job's offsets of a file or block device.
DISK_ENGINES = frozenset((
    "sync", "psync", "vsync", "pvsync", "pvsync2", "libaio", "io_uring", "io_uring_cmd",
    "posixaio", "solarisaio", "windowsaio", "mmap", "splice", "sg", "nbd", "rbd", "libiscsi",
    "xnvme", "pmemblk", "dev-dax", "libpmem", "libcufile", "gfapi", "gfapi_async", "nfs",
    "dfs", "ime_psync", "ime_psyncv", "ime_aio"))

_NO_IO = "does no I/O on a disk"
_NET = "sends its data over the network, not to a disk"
_FILE_OPS = "works on files (fallocate, truncate, create, stat or unlink), not on their data"
#: Why each of fio 3.33's other engines cannot be replaced by a disk engine.
OTHER_ENGINES: dict[str, str] = {
    "null": _NO_IO, "cpuio": "burns CPU and " + _NO_IO, "exec": "runs a program and " + _NO_IO,
    **dict.fromkeys(("net", "netsplice", "rdma", "librpma_apm_client", "librpma_apm_server",
                     "librpma_gpspm_client", "librpma_gpspm_server"), _NET),
    **dict.fromkeys(("falloc", "ftruncate", "e4defrag", "filecreate", "filestat",
                     "filedelete"), _FILE_OPS),
    **dict.fromkeys(("rados", "http"), "stores objects, not blocks of a disk"),
    "libhdfs": "writes whole HDFS files, which offsets do not address as a disk's",
    "mtd": "erases before it writes (an MTD flash device), unlike a disk",
    "libzbc": "writes a zoned device at its zones' write pointers, unlike this disk",
}


def engine_problem(value: str | None) -> str | None:
    """Why a job's ``ioengine=value`` cannot be replaced by the backend's engine, or None."""
    name = (value or "").strip()
    if name in DISK_ENGINES:
        return None
    if name in OTHER_ENGINES:
        why = OTHER_ENGINES[name]
    elif name.startswith("external:") or "/" in name or name.endswith(".so"):
        why = "is an external engine, which cowbench cannot tell does disk I/O"
    else:
        why = "is not an engine of fio 3.33 that reads and writes a disk"
    return f"ioengine={name} {why}: the backend's engine cannot replace it"
