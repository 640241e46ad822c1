"""How many files the real backend's processes keep open: counted from the scenario alone.

QEMU opens every file of a qcow2 chain and keeps it open, one descriptor a file: a
``snapshot_chain`` of depth 1000 over its base is 1001 files, and each external snapshot of a
timeline adds one. A process may not hold a descriptor numbered at or past its soft
``RLIMIT_NOFILE`` (``ulimit -n``), which it may raise itself up to the hard one (``ulimit
-Hn``); 1024 soft is the usual default (systemd units, many containers; ``ulimit -n 256`` is
not rare). Past it, qemu-nbd failed in the middle of a run, after the whole chain was built,
with its own message: a ``snapshot_chain`` of depth 300 under ``prlimit --nofile=256:20000
cowbench run ... --backend real`` exited 1 with ``qemu-nbd: Failed to blk_new_open '...disk':
Could not open backing file:`` 248 times over, then ``Could not open '...disk.chain-52': Too
many open files``.

So the largest need of any process is counted from the scenario alone (:func:`largest_need`:
Nova's decisions through :func:`cowbench.walk.walk`, as ``real.world.concurrency`` counts the
VMs run at once, following each disk's files as the instructions change them), a pure count
in the core, so that ``cowbench validate`` says it (:func:`verdict`) as the real backend acts
on it (``real.world.openfiles``): within the soft limit, nothing to do; within the hard limit,
the run raises its soft limit to the hard one while it runs and says so (run.json's
``open_files``); past the hard limit, which only root may raise, the run is refused (exit
code 2) before anything is made.

What each process holds, measured on this project's machine (2026-12-05, qemu 7.2.22; started
as the run starts it, stdin from /dev/null and no other descriptor inherited: ``ls
/proc/PID/fd``, and the largest chain each command opens under ``RLIMIT_NOFILE`` 64):

- qemu-nbd serving a chain of F files: F + 8 descriptors with ``--aio=threads``, F + 9 with
  ``native`` or ``io_uring`` (stdio, its listening socket, a signalfd, eventfds, the ring),
  and one more per client connected (each fio clone keeps its own connection: 4 more with
  ``numjobs=4``). A run under ``prlimit --nofile=256:20000`` completed a ``snapshot_chain``
  of depth 246 (247 files); at 247 qemu-nbd opened the chain but could not take the
  connection that checks it listens ("did not listen within 60 s"); at 248 it failed to open
  the base ("Too many open files"). (qemu-nbd alone, from a shell with one more descriptor,
  serves depth 245 under ``ulimit -n 256`` and fails at 246.)
- ``qemu-img check`` and ``map``: F + 7 (57 files under 64); ``convert`` of a chain into one
  file: F + 8, its target included; ``convert -B`` (a live snapshot's delta: the target opens
  its backing file, the source's chain less its top, too): 2F + 8 (28 files under 64).
- cowbench itself, while the VMs that start together run their workloads: each fio's stdout
  and stderr files, and a pidfd of each fio and qemu-nbd it waits on (``cowbench.tools.
  wait_exit``): 4 a VM, beside its own 17 to 28 (stdio, the run directory and its lease, the
  images it reads, the pipes of up to eight ``qemu-img check`` run side by side). Sampled
  every 10 ms from ``/proc/PID/fd``: 294 descriptors at most with 100 VMs of a rate-limited
  4 KiB writer at once (200 output files, 82 pidfds), 20 with one; 28 over
  scenarios/nova-lifecycle.yaml. Uncounted, a run of 140 VMs at once under ``ulimit -n 256``
  failed once every disk was built (``[Errno 24] Too many open files``). So the count is
  :data:`OWN_PER_VM` a VM run at once and :data:`OWN_FIXED` beside, which bounds the 28.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from .lifecycle import nova_machine
from .nova.instructions import (
    BlockCopy,
    FlattenCopy,
    Instruction,
    MakeDisk,
    SnapshotExternal,
    UploadSnapshot,
)
from .nova.machine import BACKED
from .scenario import Scenario, vm_keys
from .walk import Operations, Runs, walk

#: qemu-nbd's descriptors beside its chain's files and its clients (8 with --aio=threads)
NBD_FIXED = 9
#: qemu-img's beside the files it opens (check, map, convert; 7 measured, and its target)
QEMU_IMG_FIXED = 8
#: connections to an export beside its fio clones': one (cowbench's check that it listens,
#: fio's probe of its size, cowbench's flush: each made while no clone is connected)
SPARE_CONNECTIONS = 1
#: cowbench's own descriptors a VM running its workload: its fio's stdout and stderr, and a
#: pidfd of its fio and of its qemu-nbd while the run waits for an exit
OWN_PER_VM = 4
#: cowbench's own beside those (17 to 28 measured: the module docstring)
OWN_FIXED = 48
#: the process :func:`largest_need` names for cowbench's own descriptors
OWN = "cowbench"


@dataclass(frozen=True)
class Need:
    """The most descriptors one process of the run holds, and whose disk it opens."""

    vm: str
    key: str  # the VM's key path in the scenario file
    files: int  # the disk's files (its layers, their base if any)
    layers: int  # the layers the disk was made with (a snapshot_chain's chain_depth, else 1)
    snapshots: int  # external snapshots on top of them
    based: bool  # the bottom layer is backed by a base
    descriptors: int
    process: str
    #: cowbench's own (``process`` :data:`OWN`): the VMs running their workloads at once
    at_once: int = 0

    def describe(self) -> str:
        """``qemu-nbd of VM 'v' opens its disk's 301 files (...), 313 descriptors in all``,
        or ``cowbench itself holds ... with 300 VMs running their workloads at once``."""
        if self.process == OWN:
            return (f"cowbench itself holds up to {self.descriptors} descriptors with "
                    f"{self.at_once:,} VMs running their workloads at once ({OWN_PER_VM} a VM: "
                    f"its fio's output files and the waits on its fio and qemu-nbd; "
                    f"{OWN_FIXED} beside)")
        what = (f"chain_depth {self.layers}" if self.layers > 1 else "one layer") + \
            f" and {self.snapshots} external snapshot{'' if self.snapshots == 1 else 's'}" + \
            (", over its base" if self.based else "")
        return (f"{self.process} of VM {self.vm!r} opens its disk's {self.files} files "
                f"({what}), {self.descriptors} descriptors in all")


def limits() -> tuple[int, int]:
    """This process's soft and hard ``RLIMIT_NOFILE``: numbers on Linux, which refuses a
    limit of open files past ``fs.nr_open`` (so never "unlimited")."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return int(soft), int(hard)


def verdict(need: Need, soft: int, hard: int) -> str:
    """What a real run does about ``need`` under these limits, in words (``cowbench
    validate``'s line; the real backend acts so, ``real.world.openfiles.plan``)."""
    if need.descriptors <= soft:
        return "within the soft limit"
    if need.descriptors <= hard:
        return "past the soft limit: a real run raises it to the hard one while it runs"
    return ("past the hard limit: a real run is refused before anything is made (raise it "
            f"as root, {remedy(need)}, or --backend sim)")


def remedy(need: Need) -> str:
    """What takes ``need`` itself down: fewer VMs at once, or a shallower chain."""
    return "run fewer VMs at once" if need.process == OWN else "use a shallower chain"


def most_possible(s: Scenario) -> int:
    """An upper bound on :func:`largest_need`'s descriptors without walking Nova's decisions
    (which takes 10 s over 100,000 VMs): the deepest chain a VM is made with over its base,
    every snapshot the timeline makes of one VM taken as an external one on top, and the
    largest of the processes' counts (a live snapshot's ``convert -B`` opening the chain
    twice, qemu-nbd with the most fio clones of any workload, cowbench itself with every
    workload run of one instant at once). ``cowbench validate`` names the walk's exact need
    only where this bound passes the soft limit."""
    from collections import Counter

    from .lifecycle import timeline_plan

    if not s.vms:
        return 0
    layers = max(st.chain_depth if st.kind == "snapshot_chain" else 1
                 for st in {id(st): st for st in map(s.strategy_of, s.vms)}.values())
    ops = timeline_plan(s)[0]
    snaps = Counter(op.vm for op in ops if op.op == "snapshot")
    files = layers + 1 + max(snaps.values(), default=0)
    clients = max((sum(p.numjobs for p in w.parts) for w in s.workloads.values()), default=0)
    vms = {vm.name: vm for vm in s.vms}  # the runs of one instant run together, at the most
    at_once = Counter(op.t for op in ops if op.op == "run" and not s.model_only(vms[op.vm]))
    return max(2 * files + QEMU_IMG_FIXED, files + NBD_FIXED + clients + SPARE_CONNECTIONS,
               OWN_FIXED + OWN_PER_VM * max(at_once.values(), default=0))


def largest_need(s: Scenario) -> Need | None:
    """The process of the real run holding the most descriptors (None: no VM is built):
    one opening a VM's disk, or cowbench itself while the most VMs run at once
    (:func:`needs`)."""
    found = [n for n in needs(s) if n is not None]
    return max(found, key=lambda n: n.descriptors) if found else None


def needs(s: Scenario) -> tuple[Need | None, Need | None]:
    """(the tool holding the most descriptors over a VM's disk, cowbench itself while the
    most VMs run their workloads at once), from one walk of Nova's decisions; None where no
    VM is built."""
    disks = _Disks(s)
    vms = disks.vms
    at_once = 0
    for stage in walk(s, nova_machine(s), lambda op: not s.model_only(vms[op.vm])):
        if isinstance(stage, Runs):
            at_once = max(at_once, len(stage.runs))
            for run in stage.runs:
                clients = sum(p.numjobs for p in s.workloads[run.workload].parts)
                disks.opened(run.vm, disks.files(run.vm) + NBD_FIXED + clients
                             + SPARE_CONNECTIONS, "qemu-nbd")
        elif isinstance(stage, Operations):
            for _, instructions in stage.planned:
                for ins in instructions:
                    disks.apply(ins)
    key = "timeline" if s.timeline is not None else "vms"  # as the memory check says
    own = (Need("", key, 0, 0, 0, False, OWN_FIXED + OWN_PER_VM * at_once, OWN, at_once)
           if at_once else None)
    return disks.best, own


class _Disks:
    """Each VM's disk as the instructions change it: its layers, external snapshots and base,
    and the most descriptors a process opening it holds."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.vms = {vm.name: vm for vm in s.vms}
        self.keys = vm_keys(s)
        self.disk: dict[str, tuple[int, int, bool]] = {}  # layers, snapshots, based
        self.best: Need | None = None

    def files(self, vm: str) -> int:
        """The files of ``vm``'s disk as it stands (one VM's: a count over every VM's, at each
        instruction, made validating 100,000 VMs quadratic)."""
        layers, snaps, based = self.disk[vm]
        return layers + snaps + based

    def apply(self, ins: Instruction) -> None:
        vm = getattr(ins, "vm", None)
        if not isinstance(vm, str):
            return
        if isinstance(ins, MakeDisk):
            st = self.s.strategy_of(self.vms[vm])
            self.disk[vm] = (st.chain_depth if st.kind == "snapshot_chain" else 1, 0,
                             st.kind in BACKED)
        elif vm not in self.disk:
            return
        files = self.files(vm)
        if isinstance(ins, SnapshotExternal):
            layers, snaps, based = self.disk[vm]
            self.disk[vm] = (layers, snaps + 1, based)
        elif isinstance(ins, UploadSnapshot):  # the delta's convert -B, then its flattening
            self.opened(vm, 2 * files + QEMU_IMG_FIXED,
                        "qemu-img convert -B (a live snapshot's delta: the chain twice)")
        elif isinstance(ins, BlockCopy):  # the top's clusters onto the destination's base
            self.opened(vm, files + 2 + QEMU_IMG_FIXED, "qemu-img convert -B (live migration)")
            self.disk[vm] = (1, 0, ins.backing is not None)
        elif isinstance(ins, FlattenCopy):
            self.opened(vm, files + 1 + QEMU_IMG_FIXED, "qemu-img convert (flattening)")
            self.disk[vm] = (1, 0, False)
        self.opened(vm, self.files(vm) + QEMU_IMG_FIXED, "qemu-img check")  # as it stands

    def opened(self, vm: str, descriptors: int, process: str) -> None:
        """A process holding ``descriptors`` over ``vm``'s disk as it stands."""
        if self.best is not None and descriptors <= self.best.descriptors:
            return
        layers, snaps, based = self.disk[vm]
        self.best = Need(vm, self.keys[vm], layers + snaps + based, layers, snaps, based,
                         descriptors, process)
