"""Fitting the I/O model's parameters to the calibration probes (``sim.perf.perf``'s
docstring says what comes from where)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cowbench.profile import PerfParams, Probe, SchedParams, device_bandwidths

from .demand import MIN_PATH_SHARE, Demand, PerfModel, interp_log
from .schedfit import sched_params


def mva_iops(params: PerfParams, probe: Probe) -> float:
    """Exact mean-value analysis of the probe's closed loop (one class, N in flight): the
    stages and the device as queues, the client as a delay. Used to fit ``stages``."""
    return float(mva_iops_stages(params, probe, [params.stages])[0])


def mva_iops_stages(params: PerfParams, probe: Probe, stages: Sequence[float]) -> np.ndarray:
    """:func:`mva_iops` for each number of stages in ``stages`` (``params`` otherwise), all
    at once: the demand does not depend on the stages, so it is made once, and the analysis
    runs on every row of stations together (a row with fewer stages has stations of no
    demand, which queue nothing)."""
    model = PerfModel(params)
    d = model.probe_demand(probe)
    demand, count = _stations(params, d, probe.exports, np.asarray(stages, dtype=float))
    wakes = d.sched_s - d.issuer_s - d.server_s  # waiting, as the analysis sees it
    delay = model.client_s + d.delay_s + d.wait_s + d.alloc_wait_s + wakes
    q = np.zeros_like(demand)
    x = np.zeros(len(demand))
    for n in range(1, probe.exports * probe.iodepth + 1):
        r = demand * (1 + q)
        x = n / (delay + r @ count)
        q = x[:, None] * r
    return x


def _stations(params: PerfParams, d: Demand, exports: int,
              m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stations' demands, a row for each number of stages in ``m``, and how many alike
    each column's station stands for: the path's stages (``m`` of them, the last partial),
    the device, the allocation round, the host's processes and cores."""
    full = m.astype(int)
    cols = np.arange(int(full.max()) + 1)
    path = np.where(cols < full[:, None], (d.path_s / m)[:, None], 0.0)
    path[np.arange(len(m)), full] = np.where(m - full > 1e-9, d.path_s * (m - full) / m, 0.0)
    extra: list[float] = []
    if d.device_s > 0:
        if params.transfer_on_path and not d.allocates:  # work of the first (whole) stage
            path[:, 0] += d.device_s
        else:
            extra.append(d.device_s)
    if d.alloc_s > 0:
        extra.append(d.alloc_s)
    cpu = _cpu_stations(params, d, exports)
    demand = np.hstack([path, np.tile(extra + [s for s, _ in cpu], (len(m), 1))])
    count = np.array([1.0] * (path.shape[1] + len(extra)) + [float(k) for _, k in cpu])
    return demand, count


def _cpu_stations(params: PerfParams, d: Demand, exports: int) -> list[tuple[float, int]]:
    """The host scheduler as the analysis sees it, as (demand, how many alike): each export's
    issuer and server, one queue each (an I/O visits one export's), the host's kernel, and
    the cores, one queue of the CPU over their number; the wake-ups are a delay. The CPU is
    the demand's own (a read of a hole costs the processes less than a read of data)."""
    s = params.sched
    if s is None:
        return []
    cpu = d.issuer_s + d.server_s + d.kernel_s
    return [(d.issuer_s / exports, exports), (d.server_s / exports, exports), (d.kernel_s, 1),
            (cpu / s.cores, 1)]


def deep_cow_probe(probes: Sequence[Probe]) -> Probe | None:
    """The probe of one export's 4 KiB first writes at the largest iodepth above 1: where one
    image's lock sets the rate (:func:`fit`'s lock hold, ``sim.perf.alloc.fit_lock_hold``)."""
    deep = [p for p in probes if p.target == "cow" and p.bs == 4096 and p.exports == 1
            and p.iodepth > 1 and p.iops > 0 and p.beside is None]
    return max(deep, key=lambda p: p.iodepth, default=None)


def contended(p: Probe) -> bool:
    """Whether ``p`` is a contention probe: a reader through the stack beside readers on
    exports of their own that keep every core busy (``real.measure.calibrate``). It is
    replayed (``sim.perf.replay.fit_rows``: how the host scheduler serves a process that
    sleeps on every I/O beside ones that never do), not fitted: nothing here reads it (those
    of the storage alone, ``device``, order the device: :func:`device_interference`)."""
    return p.beside is not None and p.target != "device"


class FitError(ValueError):
    """The probes do not hold what the fit needs."""


def _one(probes: Sequence[Probe], **want: Any) -> Probe:
    for p in probes:
        if all(getattr(p, k) == v for k, v in want.items()):
            return p
    raise FitError(f"no probe with {want}")


def _time(p: Probe) -> float:
    """Seconds per I/O of one export at the probe's depth: the whole loop at qd1."""
    if p.iops <= 0:
        raise FitError(f"probe {p.name} completed no I/O")
    return p.exports * p.iodepth / p.iops


def fit(probes: Sequence[Probe], cores: int | None = None) -> PerfParams:
    """Parameters from the probe matrix (see the module docstring for what comes from where).

    On a host with a scheduler (the probes' CPU figures) whose matrix measured the storage
    alone both ways (``cowbench.profile.device_bandwidths``), the device is the storage's own:
    its bandwidths those of fio on the raw file, beside the path, and copies-on-write and
    cluster writes moved at them too (``device_source: storage``; ``sim.perf.alloc`` fits no
    rate of its own). The path is fitted to what is left of each probe. Refitted so on six
    stored sessions, it gave io-density's VMs their IOPS and mean latency within 13-19% and
    13-17% (median over VMs) where the fit through qemu-nbd gave 24-31% and 21-39%, and its
    host as much CPU as the real one used (docs/io-model.md, "The storage's own bandwidths as
    the device").

    Otherwise two shapes of host are fitted, and the one whose mean-value analysis is closer to the
    probes with several I/Os in flight (of every block size) is kept: the device beside the
    path (its bandwidth is the large loaded probes' own), or the transfer as work of the
    path's busiest stage (``transfer_on_path``; its bandwidth is what is left of the large
    loaded probes' time per I/O once that stage's share of the path is served).

    With the host scheduler (the probes' CPU figures), the model simulates a path per VM
    (``PerfParams.path: vm``), and the stages and their work share are still the analysis's of
    the host's one shared path. The two differ only in the probes of several exports, and
    those are what pin the work share: the analysis of a path per VM, with the cores as one
    more station, leaves it free, and on probes made by a host with a path per VM and known
    parameters (``tests/test_perf_sched.py``) it ran to its grid's corner (8 stages, 0.2 of
    the path as work, where the truth had 3.5 and 0.8) and replayed the chain of depth 32 at
    iodepth 8 59% fast; the shared path's analysis gave 1 stage and 0.3, and every probe
    replays within 17%."""
    probes = [p for p in probes if not contended(p)]
    sched = sched_params(probes, cores)
    own = device_bandwidths(probes) if sched is not None else None
    if own is not None:
        return _finish(_fit_given(probes, own[0], own[1], on_path=False, sched=sched).model_copy(
            update={"device_source": "storage"}), probes, sched)
    beside = _fit_given(probes, _bw_floor(_bw_table(probes, "randread"), probes, sched,
                                          "randread"),
                        _bw_floor(_bw_table(probes, "randwrite"), probes, sched, "randwrite"),
                        on_path=False, sched=sched)
    on_path = beside
    for _ in range(ON_PATH_ROUNDS):
        on_path = _fit_given(probes, _bw_solved(on_path, probes, "randread"),
                             _bw_solved(on_path, probes, "randwrite"), on_path=True,
                             sched=sched)
    # with each size's CPU measured and served on the cores, the transfer stays on the path:
    # the device beside it, serving in arrival order, put every small transfer of every VM
    # behind the 1 MiB and 2 MiB-cluster copies (docs/io-model.md, the density sessions)
    by_size = sched is not None and bool(sched.read_bytes_cpu or sched.write_bytes_cpu)
    best = on_path if by_size else min((beside, on_path),
                                       key=lambda p: _loaded_error(p, probes))
    return _finish(best, probes, sched)


def _finish(best: PerfParams, probes: Sequence[Probe], sched: SchedParams | None) -> PerfParams:
    """``best`` with the device's queue the storage's probes showed, and a path per VM on a
    host with a scheduler."""
    interference = device_interference(probes)
    if interference is not None:
        best = best.model_copy(update={
            "device_interference": round(interference, 3),
            "device_queue": "fifo" if interference >= 0.5 else "shared"})
    if sched is not None:  # served on the host's cores, each VM's path is its own
        best = best.model_copy(update={"path": "vm"})
    return best  # the host's allocation rate is fitted after: sim.perf.alloc


#: rounds of the fixed point between the bandwidths and the path (the second changed the
#: bandwidth by 4% and the third by nothing on this project's probes)
ON_PATH_ROUNDS = 2


def _loaded(probes: Sequence[Probe]) -> list[Probe]:
    return [p for p in probes if p.target == "raw" and p.exports == 1 and p.iodepth > 1
            and p.iops > 0]


def _loaded_error(params: PerfParams, probes: Sequence[Probe]) -> float:
    """Squared log error of the mean-value analysis over the raw probes with several I/Os
    in flight: what chooses between the two shapes of host."""
    return sum(math.log(mva_iops(params, p) / p.iops) ** 2 for p in _loaded(probes))


def _bw_table(probes: Sequence[Probe], rw: str) -> list[tuple[int, float]]:
    """The device's bandwidth beside the path: the best the raw probes of 64 KiB or more did."""
    best: dict[int, float] = {}
    for p in probes:
        if p.target == "raw" and p.rw == rw and p.bs >= 65536 and p.exports == 1:
            best[p.bs] = max(best.get(p.bs, 0.0), p.bw_bytes_per_s)
    if not best:
        raise FitError(f"no raw {rw} probe of 64 KiB or more")
    return sorted(best.items())


def _bw_floor(table: list[tuple[int, float]], probes: Sequence[Probe],
              sched: SchedParams | None, rw: str) -> list[tuple[int, float]]:
    """The bandwidths of ``table`` no lower than what leaves each size's raw probe at
    iodepth 1 the CPU its processes spent on it: the device's share of that probe's time is
    what the measured CPU does not take (the CPU at most ``1 - MIN_PATH_SHARE`` of it)."""
    if sched is None or not (sched.read_bytes_cpu or sched.write_bytes_cpu):
        return table
    qd1 = {p.bs: p for p in probes if p.target == "raw" and p.rw == rw and p.exports == 1
           and p.iodepth == 1 and p.iops > 0}
    out = []
    for size, bw in table:
        if size in qd1:
            t = _time(qd1[size])
            bw = max(bw, size / max(t - cpu_qd1(sched, rw, size), MIN_PATH_SHARE * t))
        out.append((size, bw))
    return out


def _bw_solved(params: PerfParams, probes: Sequence[Probe],
               rw: str) -> list[tuple[int, float]]:
    """The bandwidth at each large loaded probe's size that makes the mean-value analysis
    of a host with the transfer on the path (``params`` otherwise) give that probe's IOPS;
    the path shrinks by what the transfer takes of the probe's qd1 time (bisection)."""
    qd1 = {p.bs: p for p in probes if p.target == "raw" and p.rw == rw and p.iodepth == 1
           and p.exports == 1}
    bw_key, path_key = (("read_bw", "read_path_s") if rw == "randread" else
                        ("write_bw", "write_path_s"))
    out = []
    for size, bw in _bw_table(probes, rw):
        big = max((p for p in _loaded(probes) if p.rw == rw and p.bs == size),
                  key=lambda p: p.iodepth, default=None)
        if big is None or size not in qd1:
            out.append((size, bw))
            continue
        t1 = _time(qd1[size]) - params.client_s
        lo, hi = size / t1, size / (MIN_PATH_SHARE * t1) * 100  # transfer: all of t1 .. ~none
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            table = [(s, mid if s == size else b) for s, b in getattr(params, bw_key)]
            path = [(s, _path_left(t1, s, mid) if s == size else v)
                    for s, v in getattr(params, path_key)]
            trial = params.model_copy(update={"transfer_on_path": True, bw_key: table,
                                              path_key: path})
            if mva_iops(trial, big) < big.iops:  # too slow: more bandwidth
                lo = mid
            else:
                hi = mid
        out.append((size, math.sqrt(lo * hi)))
    return out


def _path_left(t: float, size: int, bw: float) -> float:
    """A raw probe's path at qd1: its time ``t`` (client excluded) less its transfer, never
    below ``MIN_PATH_SHARE`` of it."""
    return max(t - size / bw, MIN_PATH_SHARE * t)


def cpu_qd1(sched: SchedParams | None, rw: str, size: int) -> float:
    """The CPU a raw ``rw`` of ``size`` bytes costs the host scheduler's processes with one
    I/O in flight (0 without a scheduler)."""
    if sched is None:
        return 0.0
    w = rw != "randread"
    return sched.cost("data").qd1_s + sum(sched.bytes_cpu(w, size)) + sched.kernel_cpu(w, size)


def _fit_given(probes: Sequence[Probe], read_bw: list[tuple[int, float]],
               write_bw: list[tuple[int, float]], *, on_path: bool,
               sched: SchedParams | None = None) -> PerfParams:
    """Every other parameter, given the device's bandwidths and the host's shape."""
    qd1 = [p for p in probes if p.iodepth == 1 and p.exports == 1]
    base_r = _one(qd1, target="raw", rw="randread", bs=4096)
    base_w = _one(qd1, target="raw", rw="randwrite", bs=4096)
    # the client: what fio spends per I/O outside the latency it reports (qd1)
    client = max(0.0, min(_time(base_r) - base_r.lat_mean_s, _time(base_w) - base_w.lat_mean_s))

    def path_table(rw: str, bw: list[tuple[int, float]]) -> list[tuple[int, float]]:
        out = []
        for p in sorted((p for p in qd1 if p.target == "raw" and p.rw == rw),
                        key=lambda p: p.bs):
            out.append((p.bs, _path_left(_time(p) - client, p.bs, interp_log(bw, p.bs))))
        return out

    read_path, write_path = path_table("randread", read_bw), path_table("randwrite", write_bw)
    draft = PerfParams(stages=1.0, client_s=client, read_bw=read_bw, write_bw=write_bw,
                       read_path_s=read_path, write_path_s=write_path, qcow2_read_s=0.0,
                       qcow2_write_s=0.0, alloc_s=0.0, cow_read_s=0.0, subcluster_alloc_s=0.0,
                       chain_base_s=0.0, chain_a_s=0.0, chain_b_s=0.0, l2_miss_s=0.0,
                       transfer_on_path=on_path, sched=sched)
    model = PerfModel(draft)

    def extra(p: Probe) -> float:
        """What ``p`` took per I/O beyond what the draft predicts for it at qd1."""
        d = model.probe_demand(p)
        return (_time(p) - client - d.path_s - d.delay_s - d.device_s - d.alloc_round_s - d.wait_s
                - d.sched_s - d.kernel_s)

    hole = [p for p in qd1 if p.target == "hole"]
    if hole:
        draft = draft.model_copy(update={"hole_read_s": max(0.0, -extra(hole[0]))})
        model = PerfModel(draft)
    q_r = _one(qd1, target="qcow2", rw="randread", bs=4096)
    q_w = _one(qd1, target="qcow2", rw="randwrite", bs=4096)
    qcow2_read, qcow2_write = extra(q_r), extra(q_w)
    draft = draft.model_copy(update={"qcow2_read_s": qcow2_read, "qcow2_write_s": qcow2_write})
    model = PerfModel(draft)
    # a whole-cluster first write allocates without copying; a 4 KiB one also copies the rest
    # of its cluster from the backing file (one synchronous read)
    whole = [p for p in qd1 if p.target == "cow" and p.bs >= p.cluster_size]
    alloc = max(0.0, extra(whole[0])) if whole else 0.0
    draft = draft.model_copy(update={"alloc_s": alloc})
    model = PerfModel(draft)
    cow_probe = _one(qd1, target="cow", bs=4096)
    cow_total = max(0.0, extra(cow_probe))
    # of the copy-on-write read's round, the part done holding the image file's lock:
    # with many first writes in flight on one image the lock is the bottleneck, so a lock
    # hold lasts 1 / IOPS; the rest of the round is waiting (thread hand-offs, the read itself)
    p8 = deep_cow_probe(probes)
    cow_read = cow_total
    if p8 is not None:
        d = model.probe_demand(p8)
        cow_read = min(cow_total, max(0.0, 1.0 / p8.iops - d.device_s - d.alloc_round_s))
    ext = _one(qd1, target="cow_ext", bs=4096)
    l2 = _one(qd1, target="l2miss", bs=4096)
    sub_alloc, l2_miss = max(0.0, extra(ext)), max(0.0, extra(l2))
    # chain_base_s = 0 and chain_a_s = 0 in the draft: extra() is the whole chain cost
    chain_pts = sorted((p.depth, extra(p)) for p in qd1 if p.target == "chain")
    if not chain_pts or chain_pts[0][0] != 1:
        raise FitError("no chain probe of depth 1")
    # a deeper chain never costs less than a shallower one (base + a k + b k^2, a and b >= 0),
    # so no probe's cost is the base's plus less than nothing: the base is the lowest of them.
    # A slow spell of a shared machine during the depth-1 probe (measured here: depth 1 at
    # 370 us, depth 32 at 168 us, in one quick calibration) must not become every read's cost
    chain_base = min(t for _, t in chain_pts)
    chain_a, chain_b = _fit_chain([(d - 1, t - chain_base) for d, t in chain_pts[1:]])
    params = draft.model_copy(update={"cow_read_s": cow_read,
                                      "cow_wait_s": cow_total - cow_read,
                                      "subcluster_alloc_s": sub_alloc,
                                      "l2_miss_s": l2_miss, "chain_base_s": chain_base,
                                      "chain_a_s": chain_a, "chain_b_s": chain_b})
    return _fit_stages(params, probes)


def device_interference(probes: Sequence[Probe]) -> float | None:
    """How much of a large job's queue a small read waited for, from the ``device`` probes
    (the storage alone): ``(beside - alone) / (large - alone)`` of the mean latencies of a
    small read alone, the same read beside the large job, and the large job alone, clipped to
    [0, 1] (the mean over the probes beside a large job); None without those probes.

    In arrival order the small read waits for the whole queue, as long as a large request
    does: 1. Sharing the bandwidth, it waits only for its own share of it: for 4 KiB beside
    eight 64 KiB requests, about (8 + 1) x 4 / (8 x 64) of the large job's time, well under
    one half. So ``fit`` takes arrival order from one half up."""
    dev = [p for p in probes if p.target == "device"]

    def alone(rw: str, bs: int, iodepth: int) -> Probe:
        for p in dev:
            if p.beside is None and (p.rw, p.bs, p.iodepth) == (rw, bs, iodepth):
                return p
        raise FitError(f"no device probe of {rw} {bs} bytes at iodepth {iodepth} alone")

    shares = []
    for m in dev:
        if m.beside is None:
            continue
        small = alone(m.rw, m.bs, m.iodepth)
        large = alone(m.beside.rw, m.beside.bs, m.beside.iodepth)
        span = large.lat_mean_s - small.lat_mean_s
        shares.append(0.0 if span <= 0 else
                      min(1.0, max(0.0, (m.lat_mean_s - small.lat_mean_s) / span)))
    return float(np.mean(shares)) if shares else None


def _fit_chain(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Non-negative least squares of ``a k + b k^2`` through the time ``k`` more layers add
    to a read: the unconstrained fit if both are positive, else the better one-term fit."""
    pts = [(float(k), t) for k, t in points if k > 0]
    if not pts:
        raise FitError("no chain probe deeper than 1")
    k = np.array([x for x, _ in pts])
    t = np.array([y for _, y in pts])
    cands: list[tuple[float, float]] = []
    if len(pts) >= 2:
        sol = np.linalg.lstsq(np.column_stack([k, k * k]), t, rcond=None)[0]
        if sol[0] >= 0 and sol[1] >= 0:
            cands.append((float(sol[0]), float(sol[1])))
    cands.append((max(0.0, float(k @ t / (k @ k))), 0.0))
    q = k * k
    cands.append((0.0, max(0.0, float(q @ t / (q @ q)))))
    return min(cands, key=lambda ab: float(((ab[0] * k + ab[1] * q - t) ** 2).sum()))


def _fit_stages(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """The number of stages and the path's work share that best match the probes with several
    I/Os in flight (squared log error of the mean-value analysis; grids of 0.1 and 0.05), then
    the work share of hole reads from the loaded hole probes."""
    loaded = [p for p in probes if p.exports * p.iodepth > 1 and p.iops > 0
              and p.target in ("raw", "qcow2") and p.bs <= 16384]
    if not loaded:
        raise FitError("no probe with more than one I/O in flight")

    def err(trial: PerfParams, ps: Sequence[Probe]) -> float:
        return sum(math.log(mva_iops(trial, p) / p.iops) ** 2 for p in ps)

    best, best_p = math.inf, params
    stages = [round(float(m), 2) for m in np.arange(1.0, 8.0001, 0.1)]
    for share in np.arange(0.2, 1.0001, 0.05):
        trial = params.model_copy(update={"cpu_share": round(float(share), 2)})
        errs = np.sum([np.log(mva_iops_stages(trial, p, stages) / p.iops) ** 2
                       for p in loaded], axis=0)
        i = int(np.argmin(errs))  # the first of equals, as a scan in order keeps
        if errs[i] < best:
            best, best_p = float(errs[i]), trial.model_copy(update={"stages": stages[i]})
    holes = [p for p in probes if p.exports * p.iodepth > 1 and p.target == "hole"]
    if holes:
        best = math.inf
        for share in np.arange(0.02, 1.0001, 0.02):
            trial = best_p.model_copy(update={"hole_cpu_share": round(float(share), 2)})
            e = err(trial, holes)
            if e < best:
                best, hole_best = e, trial
        best_p = hole_best
    return best_p
