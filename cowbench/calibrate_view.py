"""What ``cowbench calibrate`` prints: a profile's fitted parameters, and the drift table of
``calibrate --check`` (and of a run's ``drift`` block, ``cowbench.drift``)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .drift import STEAL_SHOWN, blocks, describe
from .knobs import size_text
from .profile import PerfParams, Profile, SchedParams, device_bandwidths


def print_profile(prof: Profile, out: Console) -> None:
    """The fitted parameters of a profile and how well they replay its probes."""
    p = prof.params
    t = Table(title="I/O model fitted to the probes", show_lines=False)
    t.add_column("parameter")
    t.add_column("value", justify="right")
    t.add_row("stages (each VM's path)" if p.path == "vm" else "stages (shared path)",
              f"{p.stages:g}")
    t.add_row("read path 4 KiB", f"{p.read_path_s[0][1] * 1e6:.1f} us")
    t.add_row("write path 4 KiB", f"{p.write_path_s[0][1] * 1e6:.1f} us")
    t.add_row("read bandwidth", f"{p.read_bw[0][1] / 2**20:,.0f} MiB/s")
    t.add_row("write bandwidth", f"{p.write_bw[0][1] / 2**20:,.0f} MiB/s")
    t.add_row("qcow2 read / write", f"{p.qcow2_read_s * 1e6:+.1f} / "
                                    f"{p.qcow2_write_s * 1e6:+.1f} us")
    t.add_row("cluster allocation", f"{p.alloc_s * 1e6:.1f} us")
    t.add_row("copy-on-write read", f"{p.cow_read_s * 1e6:.1f} us")
    t.add_row("subcluster allocation", f"{p.subcluster_alloc_s * 1e6:.1f} us")
    t.add_row("allocating writes of several images", _alloc(p))
    t.add_row("host scheduler (CPU per I/O + per wake-up)", _sched(p.sched))
    if p.sched is not None and (p.sched.read_bytes_turns or p.sched.write_bytes_turns):
        read, write = (1 + p.sched.bytes_turns(w, 1 << 20) for w in (False, True))
        t.add_row("a large I/O's data across the socket", f"in {read} pieces a 1 MiB read, "
                  f"{write} a 1 MiB write (fio's switches per I/O beyond a 4 KiB one's)")
    if p.sched is not None and p.sched.pool_share > 0:
        t.add_row("qemu-nbd's pool of threads", f"{p.sched.pool_share:.0%} of its CPU per I/O "
                  "of data, a thread per I/O in flight beside its main thread; a first write "
                  "holds its image's lock through its thread's call")
    if p.sched is not None and p.sched.queues == "per-core":
        machine = prof.host.get("sched_groups")
        seen = "" if machine is None else f"; the machine's: {machine} (autogroup)"
        t.add_row("task groups", ("each qemu-nbd one (its threads one share of a core, as "
                                  "the kernel's autogroup makes a session)"
                                  if p.sched.groups == "session" else
                                  "none in the model (each process its own share)") + seen)
    if p.sched is not None and p.sched.long_wait_p > 0:
        length = (f"{p.sched.long_wait_each_s * 1e3:g} ms for each other session runnable "
                  "there" if p.sched.long_wait_each_s > 0 else
                  f"{p.sched.long_wait_s * 1e3:g} ms")
        t.add_row("long waits for a core", f"{p.sched.long_wait_p:.1%} of the processes "
                  f"runnable on a crowded core set aside at each tick, {length} on average "
                  "(fitted to the p99 of the probes of several exports)")
    t.add_row("chain depth d (k = d - 1)", f"{p.chain_base_s * 1e6:+.1f} + "
              f"{p.chain_a_s * 1e6:.2f} k + {p.chain_b_s * 1e6:.3f} k^2 us")
    t.add_row("L2 cache miss", f"{p.l2_miss_s * 1e6:.1f} us")
    order = {"fifo": "in arrival order", "shared": "shared by transfers in progress"}
    seen = ("" if p.device_interference is None else
            f" (a small read waited {p.device_interference:.0%} of a large job's queue)")
    t.add_row("device queue", order[p.device_queue] + seen)
    own = device_bandwidths(prof.probes)
    if own is not None:  # measured: what the device did with nothing above it
        reads, writes = dict(own[0]), dict(own[1])
        t.add_row("storage alone (reads / writes)", ", ".join(
            f"{size_text(size)} {reads[size] / 2**20:,.0f} / {writes[size] / 2**20:,.0f} MiB/s"
            for size in sorted(reads.keys() & writes.keys())))
    t.add_row("transfers (reads, overwrites)",
              ("the device's, holding the VM's first stage" if p.path == "vm" else
               "work of the path's first stage") if p.transfer_on_path else
              "on the device, beside the path" + (
                  ", at the storage alone's bandwidths (copies too)"
                  if p.device_source == "storage" else ""))
    out.print(t)
    _print_again(prof, out)
    _print_replay(prof, out)
    stolen = sorted(p.steal_share for p in prof.probes if p.steal_share is not None)
    if stolen and stolen[-1] >= STEAL_SHOWN:
        out.print(f"the hypervisor took {stolen[len(stolen) // 2]:.0%} of the cores while the "
                  f"probes ran (median; the most {stolen[-1]:.0%}): a virtual machine's host "
                  "was busy, and the probes' rates rest on what it left")


def _print_again(prof: Profile, out: Console) -> None:
    """The probes measured again because their rounds disagreed (``real.measure.calibrate``,
    ``unsteady``): their rounds and range, so a reader knows which figures were shaky."""
    planned = prof.settings.get("rounds")
    if not isinstance(planned, int):
        return
    again = [p for p in prof.probes if p.rounds > planned]
    for p in again:
        spread = ("" if p.iops_min is None or p.iops_max is None else
                  f", its rounds {p.iops_min:,.0f}-{p.iops_max:,.0f} IOPS")
        out.print(f"measured again, its first {planned} rounds far apart: {escape(p.name)} "
                  f"(the median of {p.rounds} rounds {p.iops:,.0f} IOPS{spread})")


def _print_replay(prof: Profile, out: Console) -> None:
    """How well the model replays the probes: the fitted ones (median and worst |error| of
    IOPS, the worst named), then each contention probe apart: the fit does not read it (a
    reader at iodepth 1 beside readers that keep every core busy, ``sim.perf.fit.contended``),
    and its replay is the model's weakest figure (README, "How accurate the I/O figures are");
    folded into the others it would stand as the worst of every profile, unexplained."""
    beside = {p.name for p in prof.probes if p.beside is not None and p.target != "device"}
    rows = [r for r in prof.fit if r.metric == "iops"]
    fitted = sorted((r for r in rows if r.probe not in beside), key=lambda r: abs(r.rel_error))
    if fitted:
        worst = fitted[-1]
        out.print(f"the model replays the {len(fitted)} fitted probes' IOPS with median "
                  f"|error| {abs(fitted[len(fitted) // 2].rel_error):.1%}, worst "
                  f"{worst.rel_error:+.1%} ({escape(worst.probe)})")
    for r in rows:
        if r.probe in beside:
            out.print(f"the contention probe, which the fit does not read ({escape(r.probe)}): "
                      f"the model {r.model:,.0f} IOPS, measured {r.measured:,.0f} "
                      f"({r.rel_error:+.0%}); where a VM with few I/Os in flight shares a busy "
                      "host, trust its I/O figures less (README: \"How accurate the I/O "
                      "figures are\")")


def _sched(s: SchedParams | None) -> str:
    if s is None:
        return "none (no CPU figures in the probes)"
    kernel = ""
    if s.read_kernel_cpu or s.write_kernel_cpu:
        kernel = (f"; kernel per 1 MiB read / write {s.kernel_cpu(False, 1 << 20) * 1e6:.0f} / "
                  f"{s.kernel_cpu(True, 1 << 20) * 1e6:.0f} us")
    return (f"{s.cores} cores, {s.slice_s * 1e3:g} ms slices; issuer {s.issuer_io_s * 1e6:.1f}"
            f" + {s.issuer_wake_s * 1e6:.1f} us, server {s.server_io_s * 1e6:.1f} + "
            f"{s.server_wake_s * 1e6:.1f} us{kernel}")


def _n(x: Any, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, int | float) and math.isfinite(x) else "-"


def drift_table(block: dict[str, Any]) -> Table:
    """One row per probe measured again: the profile's figures, now, and the change."""
    age = block.get("profile_age_s")
    made = "" if not isinstance(age, int | float) else f", made {age / 3600:.1f} h before"
    t = Table(title=f"drift since the calibration (profile {escape(str(block.get('profile')))}"
              f"{made})", title_justify="left")
    rows = block.get("probes") or []
    vms = any(r.get("stands_for") for r in rows)
    steal = any(isinstance(r.get(k), int | float) and r[k] >= STEAL_SHOWN
                for r in rows for k in ("profile_steal_share", "steal_share"))
    for col in ("probe", "IOPS\nprofile", "IOPS\nnow", "IOPS\nchange", "within\nrounds",
                "lat mean\nprofile", "lat mean\nnow", "lat\nchange",
                *(["hypervisor\nprofile / now"] if steal else []),
                *(["stands for"] if vms else [])):
        t.add_column(col, justify="left" if col in ("probe", "stands for") else "right")
    for r in rows:
        within = r.get("within_profile_rounds")
        t.add_row(escape(str(r.get("probe"))), _n(r.get("profile_iops"), ",.0f"),
                  _n(r.get("iops"), ",.0f"), _n(r.get("iops_change"), "+.1%"),
                  "-" if within is None else ("yes" if within else "no"),
                  _n(_us(r.get("profile_lat_mean_s")), ",.0f") + " us",
                  _n(_us(r.get("lat_mean_s")), ",.0f") + " us",
                  _n(r.get("lat_mean_change"), "+.1%"),
                  *([f"{_n(r.get('profile_steal_share'), '.0%')} / "
                     f"{_n(r.get('steal_share'), '.0%')}"] if steal else []),
                  *([escape(", ".join(r.get("stands_for") or [])) or "-"] if vms else []))
    return t


def _us(x: Any) -> float | None:
    return x * 1e6 if isinstance(x, int | float) else None


def print_drift(drift: dict[str, Any] | None, out: Console) -> None:
    """The drift tables (one per profile measured again), then the one-line summary."""
    for block in blocks(drift):
        if block.get("measured") is True:
            out.print(drift_table(block))
    out.print(escape(describe(drift)), soft_wrap=True, highlight=False)


def _alloc(p: PerfParams) -> str:
    """What several images allocating at once share (sim.perf.alloc)."""
    if p.alloc_bw is not None:
        seen = f"device {p.alloc_bw / 2**20:,.0f} MiB/s for copies-on-write and cluster writes"
    else:
        seen = "no limit seen beyond the bandwidths"
    if p.alloc_shared < 1:
        seen += f"; {p.alloc_shared:.0%} of the allocation round shared, the rest waits apart"
    return seen
