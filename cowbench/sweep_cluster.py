"""The Dask cluster a sweep runs on: started, given the points, and stopped without leaving a
process behind.

``local`` starts a LocalCluster of worker processes that never take SIGINT (a Ctrl-C reaches the
whole process group; the sweep answers it and stops them), ``inprocess`` runs threads here, and
any other value is the address of a running scheduler. Each finished point's run directory
comes back as the task's result and is written here (``cowbench.sweep_files``). Once the
cluster is stopped, what a point left when its worker died in it is removed here
(:func:`collect_points`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import Interrupted, UsageError
from .fdtree import DIR_FLAGS
from .signals import shielded
from .sweep_files import write_point
from .sweep_points import run_point

#: ``done(point id, status, reason)``, called as each point's directory is written.
DoneFn = Callable[[str, str, str | None], None]


def run_points(tasks: dict[str, tuple[Any, ...]], out: Path, key: str, scheduler: str,
               workers: int | None, done: DoneFn, client: Any = None) -> None:
    """Run ``run_point(*args)`` for each point id's ``args`` on ``scheduler`` (or on
    ``client``, already connected to it; it is closed here); write each finished point as
    ``out/points/<id>/`` and call ``done``. Whatever ends it, the points not finished are
    cancelled and a cluster started here is closed: an interrupt while the cluster starts
    raises once it is held, so it is closed too."""
    cluster = None
    futures: dict[Any, str] = {}
    points_fd = -1
    scratch: Path | None = None
    try:
        with shielded():  # Dask's imports and start-up (their `except Exception` included)
            from dask.distributed import as_completed

            if client is None:
                if scheduler in ("local", "inprocess"):
                    scratch = Path(tempfile.mkdtemp(prefix="cowbench-dask-"))
                client, cluster = client_for(scheduler, workers, scratch)
        points_fd = os.open(out / "points", DIR_FLAGS)
        futures = {client.submit(run_point, *args, key=f"{key}-{pid}-{out.resolve()}",
                                 pure=False): pid for pid, args in tasks.items()}
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            pid = futures.pop(fut)  # the rest are cancelled should the sweep stop
            done(pid, *_receive(fut, points_fd, pid))
    finally:
        with shielded():
            if client is not None:
                shut_down(client, cluster, list(futures))
            if points_fd >= 0:
                os.close(points_fd)
            collect_points()
            if scratch is not None:  # the workers' directories and Dask's lock files
                shutil.rmtree(scratch, ignore_errors=True)


def collect_points() -> None:
    """Remove what the points of this sweep left when their worker died in them (a signal to
    the sweep's process group kills a local cluster's workers at once; a worker the cluster's
    close killed): once the workers are stopped, their leases are dead (``cowbench.lease``),
    and this sweep, their owner, stops their tools, detaches their mounts and removes their
    directories, as ``cowbench gc`` would. A failure leaves the lease to ``cowbench gc``."""
    from .lease import collect_owned, this_process

    with contextlib.suppress(OSError):
        collect_owned(this_process())


def _receive(fut: Any, points_fd: int, pid: str) -> tuple[str, str | None]:
    """A finished point's status and reason, its run directory written as ``points/<pid>/``
    from the files its worker sent back."""
    try:
        status, reason, files = fut.result()
    except (Interrupted, KeyboardInterrupt):
        raise  # the sweep's own signal, not the point's failure
    except Exception as err:  # a bug in one point must not lose the others
        return "failed", f"{type(err).__name__}: {err}"
    finally:
        fut.release()  # the worker lets go of the files
    try:
        write_point(points_fd, pid, files)
    except (UsageError, OSError) as err:
        return "failed", f"its run directory could not be written here: {err}"
    return str(status), reason


@contextlib.contextmanager
def _workers_block_sigint() -> Iterator[None]:
    """Threads started in the block (the cluster's event loop and those that spawn each
    worker) and the worker processes they start have SIGINT blocked (a blocked signal stays
    blocked across fork and exec): a Ctrl-C reaches the whole process group, and it is the
    sweep's to answer (it stops the workers), not each worker's to die of with a traceback.

    Only this thread's mask changes: a SIGINT meanwhile stays this process's, taken by a
    thread that does not block it or, at the latest, by this one when the block ends (setting
    SIGINT to ignored here instead lost a Ctrl-C that came while the cluster started: the
    sweep ran to its end). multiprocessing's resource tracker is started first: starting it
    unblocks SIGINT in the thread that does, which would pass it on to the workers."""
    import threading
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def check_scheduler(scheduler: str) -> None:
    """``local``, ``inprocess`` or a scheduler's address Dask can connect to
    (``tcp://HOST:PORT``, ``tls://...``, ``HOST:PORT``), or a :class:`UsageError` saying why,
    before anything is started or written."""
    if scheduler in ("local", "inprocess"):
        return
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(scheduler)
        if scheme not in registry.backends:
            raise ValueError(f"unknown protocol {scheme!r} (one of "
                             f"{', '.join(sorted(registry.backends))})")
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as err:
        raise UsageError(f"--scheduler {scheduler}: not local, inprocess or a scheduler's "
                         f"address such as tcp://HOST:8786 ({err})") from None


def connect(scheduler: str) -> Any:
    """A client of the running scheduler at ``scheduler`` (an address), or a
    :class:`UsageError` if it cannot be reached in 5 s."""
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout="5s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as err:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None


def client_for(scheduler: str, workers: int | None, scratch: Path | None = None) -> Any:
    """``(client, cluster)`` for ``scheduler``; ``cluster`` is None unless started here.
    ``scratch``: the workers' local directory for a cluster started here (Dask's default, the
    temporary directory's ``dask-scratch-space``, keeps its ``global.lock`` and
    ``purge.lock`` there for ever)."""
    import logging

    import dask

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the CLI's level, not Dask's
    # the scheduler takes its directory from Dask's configuration, not from local_directory
    with (dask.config.set({"temporary-directory": str(scratch)}) if scratch else
          contextlib.nullcontext()):
        return _start(scheduler, workers, scratch)


#: The scheduler's HTTP server (Dask starts one without a dashboard too, for its metrics) on an
#: ephemeral port of the loopback: Dask's default, 8787, is taken whenever another sweep runs
#: on the machine, and Dask then picks another port and says so in a four-line UserWarning on
#: stderr (``distributed.node``). Port 0 is no choice to report; only this host reaches it.
QUIET_HTTP = {"dashboard_address": "127.0.0.1:0"}


def _start(scheduler: str, workers: int | None, scratch: Path | None) -> Any:
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        with _workers_block_sigint(), _reaped_on_failure():
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers or 2, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, local_directory=scratch,
                scheduler_kwargs=QUIET_HTTP,
                # a point's failure comes back through its future; the workers' own log (a
                # heartbeat that fails while an interrupted sweep stops them prints a
                # traceback) is not the user's to read
                silence_logs=logging.CRITICAL)
        try:
            return Client(cluster), cluster  # type: ignore[no-untyped-call]
        except BaseException:
            with shielded():
                shut_down(None, cluster, [])
            raise
    if scheduler == "inprocess":
        client = Client(  # type: ignore[no-untyped-call]
            processes=False, n_workers=1, threads_per_worker=workers or 1,
            dashboard_address=None, local_directory=scratch, scheduler_kwargs=QUIET_HTTP)
        return client, None
    return connect(scheduler), None


@contextlib.contextmanager
def _reaped_on_failure() -> Iterator[None]:
    """A cluster that fails to start leaves none of its worker processes behind."""
    try:
        yield
    except BaseException:
        with shielded():
            reap_workers(grace_s=5.0)
        raise


def shut_down(client: Any, cluster: Any, futures: list[Any]) -> None:
    """Cancel what has not run and close what this sweep started (an interrupt waits)."""
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)  # no warnings as workers stop
    if client is not None:
        with contextlib.suppress(Exception):
            if futures:
                client.cancel(futures, force=True)
        with contextlib.suppress(Exception):
            client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
        reap_workers(grace_s=5.0)


def reap_workers(grace_s: float) -> None:
    """Wait at most ``grace_s`` for the worker processes this process started, then kill the
    ones still running, and stop multiprocessing's resource tracker: nothing the sweep started
    outlives it. ``cluster.close`` asks the workers to stop, but its time-outs are swallowed,
    and a worker busy in a point on a loaded host answered after the sweep had exited (seen in
    CI: one worker left in the sweep's process group). The children are joined through the
    ``Process`` objects held here (unreaped, so their pids cannot be reused)."""
    import multiprocessing
    import time
    from multiprocessing import resource_tracker

    deadline = time.monotonic() + grace_s
    for child in multiprocessing.active_children():
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(10)
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # Python >= 3.8
    if stop is not None:
        with contextlib.suppress(Exception):
            stop()
