"""The one place that builds a worker: the monitor's orchestrator and activity registered on it.

:func:`create_worker` returns a worker to start and stop yourself (``python -m monitoring worker``);
:func:`start_worker` runs one per process in background threads (the notebooks, ``serve``, ``demo``, tests).
"""

from __future__ import annotations

import threading

from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.worker import ConcurrencyOptions

from monitoring import settings
from monitoring.core.jobs import register_job_source
from monitoring.core.minimal import minimal_check, minimal_monitor
from monitoring.core.orchestration import check_job_status, monitoring_job_orchestrator
from monitoring.core.sources import HttpJobSource
from monitoring.runtime.connection import Connection, credential, sdk_logger
from monitoring.runtime.reconnect import WORKER_RECONNECT
from monitoring.runtime.work_loop import LeanWorker


def create_worker(
    connection: Connection, concurrency: ConcurrencyOptions | None = None, *, sdk_loop: bool = False
) -> DurableTaskSchedulerWorker:
    """A worker with the monitor's orchestrator and activity registered (not started).

    The tutorial's :mod:`~monitoring.core.minimal` monitor is registered beside them, and the ``http`` job
    source is given the worker's environment for the secrets its headers name. The worker receives its
    work items on :class:`~monitoring.runtime.work_loop.LeanWorker`'s plain thread and resumes orchestrator
    episodes without a full replay when it can; ``sdk_loop`` builds the SDK's own worker instead (its asyncio
    loop, full replays: the benchmark's comparison).
    """
    register_job_source("http", HttpJobSource(secrets=settings.secret))
    kind = DurableTaskSchedulerWorker if sdk_loop else LeanWorker
    worker = kind(
        host_address=connection.endpoint,
        taskhub=connection.taskhub,
        token_credential=credential(connection),
        secure_channel=connection.secure,
        concurrency_options=concurrency,
        logger=sdk_logger("worker", connection.endpoint),
        resiliency_options=WORKER_RECONNECT,
    )
    worker.add_orchestrator(monitoring_job_orchestrator)
    worker.add_activity(check_job_status)
    worker.add_orchestrator(minimal_monitor)
    worker.add_activity(minimal_check)
    return worker


_worker_lock = threading.Lock()
_worker: tuple[Connection, DurableTaskSchedulerWorker] | None = None


def start_worker(connection: Connection) -> bool:
    """Start this process's worker for ``connection`` in background threads; False if it already runs.

    Asking again with the same connection (a re-run notebook cell) changes nothing; asking with another
    connection stops the old worker first.
    """
    global _worker
    with _worker_lock:
        if _worker is not None:
            if _worker[0] == connection:
                return False
            _worker[1].stop()
            _worker = None
        worker = create_worker(connection)
        worker.start()
        _worker = (connection, worker)
        return True


def stop_worker() -> bool:
    """Stop this process's worker; False if none was running."""
    global _worker
    with _worker_lock:
        if _worker is None:
            return False
        _worker[1].stop()
        _worker = None
        return True


def worker_running() -> bool:
    return _worker is not None


# The SDK's worker thread is not a daemon: without this, an interpreter (or kernel) that forgot to stop it
# would hang at exit. threading's own at-exit hook runs before non-daemon threads are joined.
threading._register_atexit(stop_worker)  # type: ignore[attr-defined]
