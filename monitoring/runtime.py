"""Run monitors from Python: one worker in background threads, and a client that starts and follows runs.

Used by the CLI, the notebooks and the tests alike::

    connection = connection_from_env()
    print(ensure_backend(connection))      # starts the local scheduler process if needed
    start_worker(connection)               # once per process; a second call is a no-op
    monitors = MonitorClient(connection)
    instance_id = monitors.start(MonitorRequest(job_id="job-1"))
    final = monitors.follow(instance_id, on_change=print)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.client import OrchestrationState, OrchestrationStatus

from monitoring.connection import Connection, create_client, create_worker
from monitoring.models import MonitorRequest, MonitorResult, MonitorStatus
from monitoring.orchestration import ORCHESTRATOR_NAME

TERMINAL_RUNTIME_STATUSES = frozenset({"Completed", "Failed", "Terminated"})


class UnknownInstanceError(LookupError):
    """No orchestration instance has this id in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no monitor with instance id {instance_id!r} in this task hub")
        self.instance_id = instance_id


# --- the background worker -------------------------------------------------------------------------------

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


# --- the client side -------------------------------------------------------------------------------------


def runtime_status_name(status: OrchestrationStatus) -> str:
    """``OrchestrationStatus.CONTINUED_AS_NEW`` -> ``"ContinuedAsNew"``, as the HTTP API spells it."""
    return "".join(part.capitalize() for part in status.name.split("_"))


@dataclass(frozen=True)
class MonitorSnapshot:
    """One look at a monitor: its runtime status, its published progress, and its result once done."""

    instance_id: str
    runtime_status: str
    custom_status: MonitorStatus | None
    result: MonitorResult | None
    failure: str | None
    observed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL_RUNTIME_STATUSES

    @classmethod
    def from_state(cls, state: OrchestrationState) -> MonitorSnapshot:
        custom: Any = state.get_custom_status() if state.serialized_custom_status else None
        output: Any = state.get_output() if state.serialized_output else None
        failure = None
        if state.failure_details is not None:
            failure = f"{state.failure_details.error_type}: {state.failure_details.message}"
        return cls(
            instance_id=state.instance_id,
            runtime_status=runtime_status_name(state.runtime_status),
            custom_status=MonitorStatus.from_payload(custom) if isinstance(custom, dict) else None,
            result=MonitorResult.from_payload(output) if isinstance(output, dict) else None,
            failure=failure,
        )

    def describe(self) -> str:
        """One line for a terminal or a log."""
        parts = [f"[{self.runtime_status}]"]
        status = self.custom_status
        if status is not None:
            parts.append(f"job {status.job_id}: {status.status}, checks {status.check_count}")
            parts.append(f"elapsed {status.elapsed_seconds:.1f}s")
            if status.final_status:
                parts.append(f"-> {status.final_status}")
            elif status.next_check_time:
                parts.append(f"next check {status.next_check_time}")
        if self.failure:
            parts.append(self.failure)
        return " ".join(parts)


class MonitorClient:
    """Start, inspect and follow monitors on one task hub."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.client = create_client(connection)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, request: MonitorRequest, instance_id: str | None = None) -> str:
        """Schedule a monitor; returns its instance id."""
        return self.client.schedule_new_orchestration(
            ORCHESTRATOR_NAME, input=request.to_payload(), instance_id=instance_id or uuid.uuid4().hex
        )

    def snapshot(self, instance_id: str) -> MonitorSnapshot:
        state = self.client.get_orchestration_state(instance_id)
        if state is None:
            raise UnknownInstanceError(instance_id)
        return MonitorSnapshot.from_state(state)

    def follow(
        self,
        instance_id: str,
        on_change: Callable[[MonitorSnapshot], None] | None = None,
        *,
        poll_seconds: float = 0.1,
        timeout: float | None = None,
    ) -> MonitorSnapshot:
        """Poll until the monitor ends, calling ``on_change`` with every new runtime or custom status.

        Raises ``TimeoutError`` if it has not ended within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_seen: tuple[str, MonitorStatus | None] | None = None
        while True:
            snapshot = self.snapshot(instance_id)
            seen = (snapshot.runtime_status, snapshot.custom_status)
            if seen != last_seen:
                last_seen = seen
                if on_change is not None:
                    on_change(snapshot)
            if snapshot.is_terminal:
                return snapshot
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"monitor {instance_id} still {snapshot.runtime_status} after {timeout:g} s"
                )
            time.sleep(poll_seconds)
