"""Start, inspect, follow and control monitors on one task hub: :class:`MonitorClient`.

Used by the CLI, the HTTP API, the notebooks and the tests alike::

    connection = connection_from_env()
    print(ensure_backend(connection))      # starts the local scheduler process if needed
    start_worker(connection)               # monitoring.worker: once per process; a second call is a no-op
    monitors = MonitorClient(connection)
    instance_id = monitors.start(MonitorRequest(job_id="job-1"))
    final = monitors.follow(instance_id, on_change=print)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from durabletask.client import OrchestrationQuery
from durabletask.history import HistoryEvent

from monitoring.client.entities import list_entities, list_schedules
from monitoring.client.errors import (
    InstanceFinishedError,
    InstanceNotFinishedError,
    InstanceStateError,
    JobStatusUnavailableError,
    LimitExceededError,
    UnknownInstanceError,
    UnknownJobError,
)
from monitoring.client.lineage import child_statuses
from monitoring.client.snapshots import InstanceDetails, MonitorSnapshot
from monitoring.core.batch import BATCH_ORCHESTRATOR_NAME, BatchRequest
from monitoring.core.jobs import JobStatusReport, check_job
from monitoring.core.models import MAX_JOB_ID_LENGTH, MonitorRequest
from monitoring.core.orchestration import CANCEL_EVENT, ORCHESTRATOR_NAME
from monitoring.core.payloads import to_iso
from monitoring.core.validation import check_text
from monitoring.runtime.connection import Connection, create_client
from monitoring.runtime.reconnect import retrying

# Durable Functions' own limits: instance ids and event names up to 256 characters; reasons are free text.
MAX_ID_LENGTH = 256
MAX_REASON_LENGTH = 4096


def checked_id(instance_id: str, name: str = "instance_id") -> str:
    """``instance_id`` if a backend can carry it (valid Unicode, up to 256 characters, no control
    characters); else :class:`~monitoring.core.payloads.InvalidRequestError`, one line."""
    return check_text(name, instance_id, MAX_ID_LENGTH)


def checked_reason(reason: str | None) -> str | None:
    return (
        None if reason is None else check_text("reason", reason, MAX_REASON_LENGTH, blank=True, controls=True)
    )


T = TypeVar("T")


@contextmanager
def _limits() -> Iterator[None]:
    """A request the scheduler refused for a limit raises :class:`LimitExceededError` with its message."""
    try:
        yield
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
            raise LimitExceededError(error.details()) from None  # type: ignore[attr-defined]
        raise


class MonitorClient:
    """Start, inspect and follow monitors on one task hub. Ids, event names and reasons are checked first
    (:func:`checked_id`), so a bad one is an ``InvalidRequestError`` rather than an encoding error."""

    def __init__(
        self, connection: Connection, *, patience: float = 120.0, say: Callable[[str], None] | None = None
    ) -> None:
        """``patience``: how long a call keeps retrying while the scheduler is unavailable (restarting);
        ``say``: where the one line about it goes (stderr unless given; notebooks print it)."""
        self.connection = connection
        self.client = create_client(connection)
        self.patience = patience
        self.say = say

    def _call(self, call: Callable[[], T], idempotent: bool = True) -> T:
        """``call()``, retried while the scheduler is unavailable (a write only if it never reached it)."""
        endpoint, patience = self.connection.endpoint, self.patience
        if self.say is None:
            return retrying(call, endpoint=endpoint, idempotent=idempotent, patience=patience)
        return retrying(call, endpoint=endpoint, idempotent=idempotent, patience=patience, say=self.say)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, request: MonitorRequest, instance_id: str | None = None) -> str:
        """Schedule a monitor; returns its instance id."""
        new_id = uuid.uuid4().hex if instance_id is None else checked_id(instance_id)
        with _limits():
            return self._call(
                lambda: self.client.schedule_new_orchestration(
                    ORCHESTRATOR_NAME, input=request.to_payload(), instance_id=new_id
                ),
                idempotent=False,
            )

    def start_batch(self, batch: BatchRequest, instance_id: str | None = None) -> str:
        """Schedule a batch monitor (:mod:`monitoring.core.batch`); returns its instance id. Its jobs'
        monitors run as its sub-orchestrations, ``<id>-job-<index>``; :meth:`cancel` of the batch cancels
        every one still running."""
        new_id = uuid.uuid4().hex if instance_id is None else checked_id(instance_id)
        with _limits():
            return self._call(
                lambda: self.client.schedule_new_orchestration(
                    BATCH_ORCHESTRATOR_NAME, input=batch.to_payload(), instance_id=new_id
                ),
                idempotent=False,
            )

    def snapshot(self, instance_id: str) -> MonitorSnapshot:
        checked_id(instance_id)
        state = self._call(lambda: self.client.get_orchestration_state(instance_id))
        if state is None:
            raise UnknownInstanceError(instance_id)
        return MonitorSnapshot.from_state(state)

    def snapshots(self, prefix: str) -> list[MonitorSnapshot]:
        """Every monitor whose instance id starts with ``prefix``, in one query (oldest first)."""
        query = OrchestrationQuery(instance_id_prefix=prefix, fetch_inputs_and_outputs=True)
        states = self._call(lambda: self.client.get_all_orchestration_states(query))
        return [MonitorSnapshot.from_state(state) for state in states]

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
        last_seen: tuple[str, Any] | None = None
        while True:
            snapshot = self.snapshot(instance_id)
            seen = (snapshot.runtime_status, snapshot.custom_status_json)
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
        checked_id(instance_id)
        state = self._call(lambda: self.client.get_orchestration_state(instance_id, fetch_payloads=True))
        if state is None:
            raise UnknownInstanceError(instance_id)
        return InstanceDetails.from_state(state)

    def list_instances(self) -> list[InstanceDetails]:
        """Every instance of the task hub, newest first, in one query."""
        query = OrchestrationQuery(fetch_inputs_and_outputs=True)
        states = self._call(lambda: self.client.get_all_orchestration_states(query))
        instances = [InstanceDetails.from_state(state) for state in states]
        return sorted(instances, key=lambda instance: instance.created_at, reverse=True)

    def history(self, instance_id: str) -> list[HistoryEvent]:
        """The instance's history events (see :func:`monitoring.client.history.build_timeline`)."""
        self.details(instance_id)  # unknown ids raise instead of giving an empty history
        return self._call(lambda: self.client.get_orchestration_history(instance_id))

    def children(self, instance_id: str, children: Sequence[str]) -> list[dict[str, Any]]:
        """The runtime status of each sub-orchestration named (:mod:`monitoring.client.lineage`)."""
        return self._call(lambda: child_statuses(self.client, instance_id, children))

    def entities(self, search: str = "") -> list[dict[str, Any]]:
        """The durable entities (with state) whose id starts as ``search`` says (:mod:`.entities`)."""
        return self._call(lambda: list_entities(self.client, search))

    def schedules(self, search: str = "") -> list[dict[str, Any]]:
        """The SDK's schedules whose id starts with ``search``."""
        return self._call(lambda: list_schedules(self.client, search))

    def _active(self, instance_id: str, refusal: str) -> InstanceDetails:
        """The instance, if it has not ended; else :class:`InstanceFinishedError` with ``refusal``."""
        instance = self.details(instance_id)
        if instance.is_terminal:
            message = f"instance {instance_id} is " + refusal.format(status=instance.runtime_status)
            raise InstanceFinishedError(instance_id, instance.runtime_status, message)
        return instance

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Send an external event to an active instance."""
        checked_id(event_name, "event_name")
        self._active(instance_id, "{status}: it takes no more events")
        with _limits():
            self._call(
                lambda: self.client.raise_orchestration_event(instance_id, event_name, data=data),
                idempotent=False,
            )

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """End an active instance now; ``reason`` becomes its output."""
        checked_reason(reason)
        self._active(instance_id, "already {status}: nothing to terminate")
        # The local scheduler cannot terminate recursively (and a monitor has no sub-orchestrations).
        self._call(
            lambda: self.client.terminate_orchestration(instance_id, output=reason, recursive=False),
            idempotent=False,
        )

    def cancel(self, instance_id: str, reason: str | None = None) -> None:
        """Ask a monitor to stop: it ends at once, ``final_status`` ``Cancelled``, with its check count."""
        self.raise_event(instance_id, CANCEL_EVENT, {"reason": checked_reason(reason)} if reason else None)

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Pause an active instance: its timers and events wait until :meth:`resume`."""
        checked_reason(reason)
        self._active(instance_id, "already {status}: nothing to suspend")
        self._call(lambda: self.client.suspend_orchestration(instance_id, reason=reason), idempotent=False)

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance; a monitor then catches up the checks that came due meanwhile."""
        checked_reason(reason)
        instance = self.details(instance_id)
        if instance.runtime_status != "Suspended":
            raise InstanceStateError(
                instance_id,
                instance.runtime_status,
                f"instance {instance_id} is {instance.runtime_status}, not Suspended: nothing to resume",
            )
        self._call(lambda: self.client.resume_orchestration(instance_id, reason=reason), idempotent=False)

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
        result = self._call(
            lambda: self.client.purge_orchestration(instance_id, recursive=False), idempotent=False
        )
        return result.deleted_instance_count

    def monitors_of_job(self, job_id: str) -> list[InstanceDetails]:
        """The monitors watching ``job_id``, newest first."""
        return [
            instance
            for instance in self.list_instances()
            if (request := instance.monitor_request()) is not None and request.job_id == job_id
        ]

    def job_status(self, job_id: str) -> tuple[JobStatusReport, InstanceDetails]:
        """Ask the job's status source now, as the newest monitor of that job would; and that monitor."""
        check_text("job_id", job_id, MAX_JOB_ID_LENGTH)
        monitors = self.monitors_of_job(job_id)
        if not monitors:
            raise UnknownJobError(job_id)
        monitor = monitors[0]
        request = monitor.monitor_request()
        assert request is not None
        check = request.check_request(to_iso(monitor.monitor_started_at()), 0, with_faults=False)
        try:
            return check_job(check), monitor
        except Exception as error:  # whatever the source raised: it is the job's answer that failed
            raise JobStatusUnavailableError(
                f"the {request.job_source} job source of monitor {monitor.instance_id} could not say the "
                f"status of job {job_id!r}: {type(error).__name__}: {error}"
            ) from None
