"""The real backend's side of each copy-on-write strategy: the disk a VM gets, built with
qemu-img / cp. The model's counterpart is ``sim/strategies.py``; the two must agree."""

from __future__ import annotations

from pathlib import Path

from cowbench.scenario import Strategy
from cowbench.tools import RawLog, run


def overlay_options(st: Strategy, backing: Path | None, backing_fmt: str = "raw") -> str:
    """The ``-o`` string of ``qemu-img create -f qcow2`` for this strategy (absolute backing
    path, as Nova writes it)."""
    opts = []
    if backing is not None:
        opts += [f"backing_file={backing.resolve()}", f"backing_fmt={backing_fmt}"]
    opts.append(f"cluster_size={st.cluster_size}")
    if st.refcount_bits != 16:
        opts.append(f"refcount_bits={st.refcount_bits}")
    if st.extended_l2:
        opts.append("extended_l2=on")
    if st.preallocation != "off":
        opts.append(f"preallocation={st.preallocation}")
    return ",".join(opts)


def create_overlay(st: Strategy, backing: Path | None, disk: Path, size: int, log: RawLog | None,
                   label: str, backing_fmt: str = "raw") -> None:
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
         overlay_options(st, backing, backing_fmt), str(disk), str(size)],
        log=log, label=label, timeout=3600)
