"""The one place that builds a worker: the monitor's orchestrator and activity registered on it.

:func:`create_worker` returns a worker to start and stop yourself (``python -m monitoring worker``);
:func:`start_worker` runs one per process in background threads (the notebooks, ``serve``, ``demo``, tests)
and starts it again if its receiving thread dies. Which worker is built, the fast path or the SDK's own
``DurableTaskSchedulerWorker``, is :func:`~monitoring.runtime.worker_choice.choose_worker`'s decision; it
is logged in one line at start.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.worker import ConcurrencyOptions

from monitoring import settings
from monitoring.core.batch import monitoring_batch_orchestrator
from monitoring.core.jobs import register_job_source
from monitoring.core.minimal import minimal_check, minimal_monitor
from monitoring.core.notify import Notifier
from monitoring.core.orchestration import check_job_status, monitoring_job_orchestrator
from monitoring.core.sources import HttpJobSource
from monitoring.runtime.connection import Connection, credential, sdk_logger
from monitoring.runtime.reconnect import WORKER_RECONNECT
from monitoring.runtime.work_loop import LeanWorker
from monitoring.runtime.worker_choice import WorkerChoice, choose_worker

logger = logging.getLogger(__name__)
_choices: weakref.WeakKeyDictionary[DurableTaskSchedulerWorker, WorkerChoice] = weakref.WeakKeyDictionary()
RESTARTS = 3  # how often start_worker starts a worker whose receiving thread died, before it gives up


def create_worker(
    connection: Connection,
    concurrency: ConcurrencyOptions | None = None,
    *,
    kind: str | None = None,
    interceptors: Sequence[Any] | None = None,
) -> DurableTaskSchedulerWorker:
    """A worker with the monitor's orchestrator and activity registered (not started).

    The tutorial's :mod:`~monitoring.core.minimal` monitor is registered beside them, and the ``http`` job
    source is given the worker's environment for the secrets its headers name. ``kind`` (``auto``, ``sdk``,
    ``fast``; default ``MONITORING_WORKER``) chooses between the fast path
    (:class:`~monitoring.runtime.work_loop.LeanWorker`, only against this project's scheduler by default)
    and the SDK's own worker; ``interceptors`` go to the worker's gRPC channel, as the SDK's take them.
    """
    register_job_source("http", HttpJobSource(secrets=settings.secret))
    choice = choose_worker(connection, kind)
    logger.info(choice.describe())
    builder = LeanWorker if choice.fast else DurableTaskSchedulerWorker
    worker = builder(
        host_address=connection.endpoint,
        taskhub=connection.taskhub,
        token_credential=credential(connection),
        secure_channel=connection.secure,
        interceptors=interceptors,
        concurrency_options=concurrency,
        logger=sdk_logger("worker", connection.endpoint),
        resiliency_options=WORKER_RECONNECT,
    )
    worker.add_orchestrator(monitoring_job_orchestrator)
    worker.add_activity(check_job_status)
    worker.add_activity(Notifier(secrets=settings.secret).notify_outcome)
    worker.add_orchestrator(monitoring_batch_orchestrator)
    worker.add_orchestrator(minimal_monitor)
    worker.add_activity(minimal_check)
    _choices[worker] = choice
    return worker


def chosen(worker: DurableTaskSchedulerWorker) -> WorkerChoice:
    """Which worker :func:`create_worker` built, and why."""
    return _choices.get(worker) or WorkerChoice(isinstance(worker, LeanWorker), "built elsewhere")


def receiving(worker: DurableTaskSchedulerWorker) -> bool:
    """True while ``worker``'s receiving thread runs (the SDK's worker thread, started by ``start()``)."""
    thread = getattr(worker, "_runLoop", None)
    return thread is not None and thread.is_alive()


class SupervisedWorker:
    """This process's worker, started again (up to :data:`RESTARTS` times) if its receiving thread dies."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.stopping = threading.Event()
        self.restarts = 0
        self.worker = create_worker(connection)
        self.worker.start()
        self.watch = threading.Thread(target=self._watch, name="monitoring-worker-watch", daemon=True)
        self.watch.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            if receiving(self.worker) or self.stopping.is_set():
                continue
            if self.restarts >= RESTARTS:
                logger.error("The worker's receiving thread died %d times: no worker runs now", RESTARTS + 1)
                return
            self.restarts += 1
            logger.error("The worker's receiving thread died (its error is logged above): starting it again")
            self.worker.stop()
            self.worker = create_worker(self.connection)
            self.worker.start()

    @property
    def alive(self) -> bool:
        return receiving(self.worker)

    def stop(self) -> None:
        self.stopping.set()
        self.watch.join()
        self.worker.stop()


_worker_lock = threading.Lock()
_worker: SupervisedWorker | None = None


def start_worker(connection: Connection) -> bool:
    """Start this process's worker for ``connection`` in background threads; False if it already runs.

    Asking again with the same connection (a re-run notebook cell) changes nothing; asking with another
    connection stops the old worker first.
    """
    global _worker
    with _worker_lock:
        if _worker is not None:
            if _worker.connection == connection and _worker.alive:
                return False
            _worker.stop()
            _worker = None
        _worker = SupervisedWorker(connection)
        return True


def stop_worker() -> bool:
    """Stop this process's worker; False if none was running."""
    global _worker
    with _worker_lock:
        if _worker is None:
            return False
        _worker.stop()
        _worker = None
        return True


def worker_running() -> bool:
    """True while this process's worker takes work (its receiving thread runs)."""
    return _worker is not None and _worker.alive


def running_worker() -> DurableTaskSchedulerWorker | None:
    """The worker :func:`start_worker` runs in this process, if any."""
    return None if _worker is None else _worker.worker


def describe_running_worker() -> str:
    """The start line of the worker :func:`start_worker` runs (``Worker: ...: why``), or that none runs."""
    worker = running_worker()
    return "No worker runs in this process" if worker is None else chosen(worker).describe()


# The SDK's worker thread is not a daemon: without this, an interpreter (or kernel) that forgot to stop it
# would hang at exit. threading's own at-exit hook runs before non-daemon threads are joined.
threading._register_atexit(stop_worker)  # type: ignore[attr-defined]
