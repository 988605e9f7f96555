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
from durabletask.client import OrchestrationQuery, OrchestrationState, OrchestrationStatus
from durabletask.history import HistoryEvent

from monitoring.connection import Connection, create_client, create_worker
from monitoring.jobs import check_job
from monitoring.models import (
    InvalidRequestError,
    JobCheckRequest,
    JobStatusReport,
    MonitorRequest,
    MonitorResult,
    MonitorStatus,
    decode_payload,
    from_iso,
    parse_monitor_input,
    to_iso,
)
from monitoring.orchestration import CANCEL_EVENT, ORCHESTRATOR_NAME

TERMINAL_RUNTIME_STATUSES = frozenset({"Completed", "Failed", "Terminated"})


class UnknownInstanceError(LookupError):
    """No orchestration instance has this id in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no monitor with instance id {instance_id!r} in this task hub")
        self.instance_id = instance_id


class UnknownJobError(LookupError):
    """No monitor in the task hub watches this job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no monitor of job {job_id!r} in this task hub")
        self.job_id = job_id


class InstanceStateError(RuntimeError):
    """The instance exists but its runtime status does not allow the operation."""

    def __init__(self, instance_id: str, runtime_status: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.runtime_status = runtime_status


class InstanceFinishedError(InstanceStateError):
    """The instance has ended: it takes no more events and cannot be terminated."""


class InstanceNotFinishedError(InstanceStateError):
    """The instance is still active: it cannot be purged yet."""


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


def failure_text(state: OrchestrationState) -> str | None:
    """An orchestration's failure as ``ErrorType: message``; None if it has not failed."""
    details = state.failure_details
    return None if details is None else f"{details.error_type}: {details.message}"


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

    @property
    def state(self) -> str:
        """One word that is true now, combining the runtime status and the published custom status.

        A suspended orchestration cannot run code, so its custom status stays as last published (its
        ``next_check_time`` may pass): ``Suspended`` comes from the runtime status. A monitor that ended by
        itself says how (``Completed``, ``Failed``, ``Timeout``, ``Cancelled``); a terminated one is
        ``Terminated`` whatever its custom status said last. A running one whose latest attempt failed is
        ``Retrying``.
        """
        if self.runtime_status in ("Suspended", "Terminated", "Pending") or (
            self.runtime_status == "Failed" and self.result is None
        ):
            return self.runtime_status
        if self.result is not None:
            return self.result.final_status
        status = self.custom_status
        if (
            status is not None
            and status.last_error
            and status.last_error.startswith(f"check {status.check_count + 1},")
        ):
            return "Retrying"
        return "Running"

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready: what ``python -m monitoring status`` prints."""
        return {
            "instance_id": self.instance_id,
            "runtime_status": self.runtime_status,
            "state": self.state,
            "custom_status": self.custom_status.to_payload() if self.custom_status else None,
            "result": self.result.to_payload() if self.result else None,
            "failure": self.failure,
        }

    @classmethod
    def from_state(cls, state: OrchestrationState) -> MonitorSnapshot:
        custom: Any = state.get_custom_status() if state.serialized_custom_status else None
        output: Any = state.get_output() if state.serialized_output else None
        return cls(
            instance_id=state.instance_id,
            runtime_status=runtime_status_name(state.runtime_status),
            custom_status=MonitorStatus.from_payload(custom) if isinstance(custom, dict) else None,
            result=MonitorResult.from_payload(output) if isinstance(output, dict) else None,
            failure=failure_text(state),
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
            elif self.runtime_status == "Suspended":
                parts.append("(suspended: no checks until resumed)")
            elif self.runtime_status == "Terminated":
                parts.append("(terminated)")
            elif status.next_check_time:
                parts.append(f"next check {status.next_check_time}")
            if status.reason:
                parts.append(f"({status.reason})")
            elif status.last_error and not self.is_terminal:
                parts.append(f"(last error: {status.last_error})")
        if self.failure:
            parts.append(self.failure)
        return " ".join(parts)


@dataclass(frozen=True)
class InstanceDetails:
    """Any orchestration instance of the task hub, as the Durable Functions status endpoint shows it."""

    name: str
    instance_id: str
    runtime_status: str
    input: Any
    custom_status: Any
    output: Any
    created_at: datetime
    last_updated_at: datetime
    failure: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.runtime_status in TERMINAL_RUNTIME_STATUSES

    @classmethod
    def from_state(cls, state: OrchestrationState) -> InstanceDetails:
        return cls(
            name=state.name,
            instance_id=state.instance_id,
            runtime_status=runtime_status_name(state.runtime_status),
            input=decode_payload(state.serialized_input),
            custom_status=decode_payload(state.serialized_custom_status),
            output=decode_payload(state.serialized_output),
            created_at=state.created_at,
            last_updated_at=state.last_updated_at,
            failure=failure_text(state),
        )

    def to_payload(self) -> dict[str, Any]:
        """The Durable Functions shape: ``name``, ``instanceId``, ``runtimeStatus``, ``input``, ...

        As in Durable Functions, a failed instance's ``output`` is its failure message.
        """
        return {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status,
            "input": self.input,
            "customStatus": self.custom_status,
            "output": self.output if self.output is not None else self.failure,
            "createdTime": to_iso(self.created_at),
            "lastUpdatedTime": to_iso(self.last_updated_at),
        }

    def monitor_request(self) -> MonitorRequest | None:
        """The input as a :class:`MonitorRequest`, if this is a monitor with a valid input.

        A monitor that continued as new has its request inside the continuation input.
        """
        if self.name != ORCHESTRATOR_NAME:
            return None
        try:
            return parse_monitor_input(self.input, default_job_id=f"job-{self.instance_id}")[0]
        except (InvalidRequestError, TypeError, KeyError):
            return None

    def monitor_started_at(self) -> datetime:
        """When the monitor's clock started: its custom status says so once it has run, else its creation."""
        if isinstance(self.custom_status, dict) and isinstance(self.custom_status.get("started_at"), str):
            return from_iso(self.custom_status["started_at"])
        return from_iso(to_iso(self.created_at))


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

    # --- management, as the Durable Functions HTTP API offers it -----------------------------------------

    def details(self, instance_id: str) -> InstanceDetails:
        """Any instance's name, status, input, custom status and output."""
        state = self.client.get_orchestration_state(instance_id, fetch_payloads=True)
        if state is None:
            raise UnknownInstanceError(instance_id)
        return InstanceDetails.from_state(state)

    def list_instances(self) -> list[InstanceDetails]:
        """Every instance of the task hub, newest first, in one query."""
        states = self.client.get_all_orchestration_states(OrchestrationQuery(fetch_inputs_and_outputs=True))
        instances = [InstanceDetails.from_state(state) for state in states]
        return sorted(instances, key=lambda instance: instance.created_at, reverse=True)

    def history(self, instance_id: str) -> list[HistoryEvent]:
        """The instance's history events (see :func:`monitoring.history.build_timeline`)."""
        self.details(instance_id)  # unknown ids raise instead of giving an empty history
        return self.client.get_orchestration_history(instance_id)

    def _active(self, instance_id: str, refusal: str) -> InstanceDetails:
        """The instance, if it has not ended; else :class:`InstanceFinishedError` with ``refusal``."""
        instance = self.details(instance_id)
        if instance.is_terminal:
            message = f"instance {instance_id} is " + refusal.format(status=instance.runtime_status)
            raise InstanceFinishedError(instance_id, instance.runtime_status, message)
        return instance

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Send an external event to an active instance."""
        self._active(instance_id, "{status}: it takes no more events")
        self.client.raise_orchestration_event(instance_id, event_name, data=data)

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """End an active instance now; ``reason`` becomes its output."""
        self._active(instance_id, "already {status}: nothing to terminate")
        # The local scheduler cannot terminate recursively (and a monitor has no sub-orchestrations).
        self.client.terminate_orchestration(instance_id, output=reason, recursive=False)

    def cancel(self, instance_id: str, reason: str | None = None) -> None:
        """Ask a monitor to stop: it ends at once, ``final_status`` ``Cancelled``, with its check count."""
        self.raise_event(instance_id, CANCEL_EVENT, {"reason": reason} if reason else None)

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Pause an active instance: its timers and events wait until :meth:`resume`."""
        self._active(instance_id, "already {status}: nothing to suspend")
        self.client.suspend_orchestration(instance_id, reason=reason)

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance; a monitor then catches up the checks that came due meanwhile."""
        instance = self.details(instance_id)
        if instance.runtime_status != "Suspended":
            raise InstanceStateError(
                instance_id,
                instance.runtime_status,
                f"instance {instance_id} is {instance.runtime_status}, not Suspended: nothing to resume",
            )
        self.client.resume_orchestration(instance_id, reason=reason)

    def wait_for(
        self, instance_id: str, predicate: Callable[[MonitorSnapshot], bool], *, timeout: float = 30.0
    ) -> MonitorSnapshot:
        """Poll until ``predicate(snapshot)`` holds (e.g. the runtime status became Suspended)."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.snapshot(instance_id)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise TimeoutError(f"monitor {instance_id}: condition not met within {timeout:g} s")
            time.sleep(0.05)

    def purge(self, instance_id: str) -> int:
        """Delete a finished instance and its history; returns the number of instances deleted."""
        instance = self.details(instance_id)
        if not instance.is_terminal:
            raise InstanceNotFinishedError(
                instance_id,
                instance.runtime_status,
                f"instance {instance_id} is still {instance.runtime_status}: only finished instances "
                "can be purged (terminate it first)",
            )
        return self.client.purge_orchestration(instance_id, recursive=False).deleted_instance_count

    def monitors_of_job(self, job_id: str) -> list[InstanceDetails]:
        """The monitors watching ``job_id``, newest first."""
        return [
            instance
            for instance in self.list_instances()
            if (request := instance.monitor_request()) is not None and request.job_id == job_id
        ]

    def job_status(self, job_id: str) -> tuple[JobStatusReport, InstanceDetails]:
        """Ask the job's status source now, as the newest monitor of that job would; and that monitor."""
        monitors = self.monitors_of_job(job_id)
        if not monitors:
            raise UnknownJobError(job_id)
        monitor = monitors[0]
        request = monitor.monitor_request()
        assert request is not None
        check = JobCheckRequest(
            job_id=request.job_id,
            monitor_started_at=to_iso(monitor.monitor_started_at()),
            job_duration_seconds=request.job_duration_seconds,
            job_outcome=request.job_outcome,
        )
        return check_job(check), monitor
