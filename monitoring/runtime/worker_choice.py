"""Which worker a process runs: the fast path, or the SDK's own ``DurableTaskSchedulerWorker``.

The fast path (:class:`~monitoring.runtime.work_loop.LeanWorker`: its own receiving loop, and episodes
resumed by :mod:`~monitoring.runtime.warm_replay`) reads about 35 private names of the SDK's worker and
executor. It has been run only against this project's own scheduler, on the SDK releases in
:data:`monitoring.sdk_range.FAST_PATH_VERIFIED`, so that is the only place it runs by default: the scheduler
says it is ours in the trailing metadata of its ``Hello`` answer
(:data:`~monitoring.scheduler.servicer.ANNOUNCEMENT`), and anything that does not say so (the DTS emulator,
Azure, the SDK's in-memory backend) gets the SDK's worker, unchanged. ``MONITORING_WORKER=sdk`` or ``fast``
forces either.

Once the fast path has failed in a process (:func:`fast_path_failed`), that process runs the SDK's own
loop and executor, and every worker it builds later is the SDK's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2

from monitoring import sdk_range, settings
from monitoring.runtime.connection import BackendError, Connection, check_credential, plain_channel
from monitoring.scheduler.servicer import ANNOUNCEMENT

PROBE_SECONDS = 10.0  # how long a worker waits for the scheduler to answer the question at start


@dataclass(frozen=True)
class WorkerChoice:
    """The worker to build, and why (the start line)."""

    fast: bool
    reason: str

    @property
    def name(self) -> str:
        return "the fast path (LeanWorker)" if self.fast else "the SDK's DurableTaskSchedulerWorker"

    def describe(self) -> str:
        return f"Worker: {self.name}: {self.reason}"


def announced(connection: Connection, timeout: float = PROBE_SECONDS) -> bool:
    """True if the scheduler at ``connection`` announces itself as this project's own.

    Raises :class:`grpc.RpcError` (or :class:`BackendError`, for Azure sign-in) if it cannot be asked.
    """
    metadata = [("taskhub", connection.taskhub)]
    token = check_credential(connection)
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    channel = plain_channel(connection)
    try:
        hello = stubs.TaskHubSidecarServiceStub(channel).Hello
        _, call = hello.with_call(empty_pb2.Empty(), metadata=metadata, timeout=timeout, wait_for_ready=True)
        trailing = call.trailing_metadata() or ()
    finally:
        channel.close()
    return any((item.key, item.value) == ANNOUNCEMENT for item in trailing)


_failure_lock = threading.Lock()
_failure: str | None = None


def fast_path_failed(reason: str) -> bool:
    """Record that the fast path failed in this process; True the first time (the caller warns once)."""
    global _failure
    with _failure_lock:
        first = _failure is None
        if first:
            _failure = reason
        return first


def fast_path_failure() -> str | None:
    """Why the fast path was turned off in this process, or None while it is on."""
    return _failure


def choose_worker(connection: Connection, kind: str | None = None) -> WorkerChoice:
    """The worker for ``connection``: ``kind`` (``auto``, ``sdk``, ``fast``) or ``MONITORING_WORKER``'s."""
    kind = settings.load().worker if kind is None else settings.worker_kind(kind)
    if kind == "sdk":
        return WorkerChoice(False, f"{settings.WORKER_ENV}=sdk asks for it")
    if kind == "fast":
        return WorkerChoice(True, f"{settings.WORKER_ENV}=fast asks for it, whatever the scheduler or SDK")
    if _failure is not None:
        return WorkerChoice(False, f"the fast path failed earlier in this process ({_failure})")
    version = sdk_range.installed()
    if not sdk_range.fast_path_verified():
        verified = ", ".join(sorted(sdk_range.FAST_PATH_VERIFIED))
        reason = f"durabletask {version} is supported, but the fast path was verified on {verified} only"
        return WorkerChoice(False, reason)
    where = connection.endpoint
    try:
        ours = announced(connection)
    except grpc.RpcError as error:
        code = error.code().name  # type: ignore[attr-defined]
        reason = f"could not ask {where} what it is ({code}); the SDK's worker reconnects by itself"
        return WorkerChoice(False, reason)
    except BackendError as error:
        return WorkerChoice(False, f"could not ask {where} what it is ({error})")
    if not ours:
        return WorkerChoice(False, f"{where} does not announce itself as this project's scheduler")
    return WorkerChoice(True, f"{where} is this project's scheduler; durabletask {version} is verified")
