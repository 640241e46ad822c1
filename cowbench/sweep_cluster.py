"""The Dask cluster a sweep runs on: started, and stopped without leaving a process behind.

``local`` starts a LocalCluster of worker processes that ignore SIGINT (a Ctrl-C reaches the
whole process group; the sweep answers it and stops them), ``inprocess`` runs threads here, and
any other value is the address of a running scheduler.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from .errors import UsageError


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Worker processes started in the block inherit SIGINT ignored (an ignored signal stays
    ignored across exec): a Ctrl-C reaches the whole process group, and it is the sweep's to
    answer (it stops the workers), not each worker's to die of with a traceback."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def client_for(scheduler: str, workers: int | None) -> Any:
    """``(client, cluster)`` for ``scheduler``; ``cluster`` is None unless started here."""
    import logging

    from dask.distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the CLI's level, not Dask's
    if scheduler == "local":
        with _workers_ignore_sigint():
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers or 2, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None,
                # a point's failure comes back through its future; the workers' own log (a
                # heartbeat that fails while an interrupted sweep stops them prints a
                # traceback) is not the user's to read
                silence_logs=logging.CRITICAL)
        return Client(cluster), cluster  # type: ignore[no-untyped-call]
    if scheduler == "inprocess":
        client = Client(  # type: ignore[no-untyped-call]
            processes=False, n_workers=1, threads_per_worker=workers or 1,
            dashboard_address=None)
        return client, None
    try:
        return Client(scheduler, timeout="5s"), None  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as err:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None


def shut_down(client: Any, cluster: Any, futures: list[Any]) -> None:
    """Cancel what has not run and close what this sweep started (an interrupt waits)."""
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)  # no warnings as workers stop
    with contextlib.suppress(Exception):
        if futures:
            client.cancel(futures, force=True)
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
