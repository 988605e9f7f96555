"""The hub's shared state and the small steps both sides of it (clients and workers) are made of.

Everything runs under one lock. Every change is applied to the working set in memory and, in the same
step, described to the store (:mod:`monitoring.backend.store`) as ops, so the file always holds a
consistent state the hub can be rebuilt from.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.backend.state import HubOptions, Instance, Lease, Stream, Task, utc
from monitoring.backend.store import Op, Store
from monitoring.backend.timers import TimerQueue

logger = logging.getLogger("monitoring.backend.hub")

RESUMING = ("executionResumed", "executionTerminated")
REVOKED_KEPT = 10_000


class HubBase:
    """State and helpers; :class:`~monitoring.backend.hub.Hub` is what the servicer uses."""

    def __init__(self, store: Store, options: HubOptions) -> None:
        self.store = store
        self.options = options
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)  # a work item may be ready
        self._changed = threading.Condition(self._lock)  # an instance's status changed
        self.instances: dict[str, Instance] = {}
        self.tasks: dict[int, Task] = {}
        self.leases: dict[str, Lease] = {}
        self.streams: dict[int, Stream] = {}
        self._orchestration_queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._task_queue: deque[int] = deque()
        self._ids = itertools.count(1)  # event and task rows; continued after a load
        self._stream_ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._epoch = uuid.uuid4().hex[:8]  # replaced by the persisted boot number when there is a file
        self.timers = TimerQueue()
        self.stopping = False
        self._revoked: dict[str, None] = {}  # tokens of leases ended because their work ended, oldest first

    # --- ids and tokens ---------------------------------------------------------------------------------

    def _mint(self) -> str:
        """A completion token no other dispatch has had, in this process or any before it on this state."""
        return f"{self._epoch}-{next(self._tokens)}"

    # --- queues -----------------------------------------------------------------------------------------

    def _runnable(self, instance: Instance) -> bool:
        if instance.terminal or instance.lease is not None or not instance.inbox:
            return False
        if instance.status != pb.ORCHESTRATION_STATUS_SUSPENDED:
            return True
        return any(event.WhichOneof("eventType") in RESUMING for _, event in instance.inbox)

    def _enqueue(self, instance: Instance) -> None:
        if instance.instance_id not in self._queued and self._runnable(instance):
            self._orchestration_queue.append(instance.instance_id)
            self._queued.add(instance.instance_id)
            self._work.notify_all()

    def _queue_task(self, task: Task, front: bool = False) -> None:
        if front:
            self._task_queue.appendleft(task.id)
        else:
            self._task_queue.append(task.id)
        self._work.notify_all()

    # --- events and timers ------------------------------------------------------------------------------

    def _add_event(
        self, instance: Instance, event: pb.HistoryEvent, ops: list[Op], due: float | None = None
    ) -> None:
        """Give ``instance`` a new event: at once, or (a timer) when the wall clock reaches ``due``."""
        row_id = next(self._ids)
        now = time.time()
        visible_at = now if due is None else due
        ops.append(("event", row_id, instance.instance_id, instance.execution, visible_at, event))
        if due is not None and due > now:
            self._hold_timer(instance, row_id, event, due)
        else:
            instance.inbox.append((row_id, event))
            self._enqueue(instance)

    def _hold_timer(self, instance: Instance, row_id: int, event: pb.HistoryEvent, due: float) -> None:
        instance.timers[row_id] = event.SerializeToString()  # a fraction of the message's memory
        instance_id, execution = instance.instance_id, instance.execution
        self.timers.call_at(utc(due), lambda: self._fire(instance_id, execution, row_id))

    def _fire(self, instance_id: str, execution: int, row_id: int) -> None:
        with self._lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.execution != execution:
                return
            blob = instance.timers.pop(row_id, None)
            if blob is None or instance.terminal:
                return
            instance.inbox.append((row_id, pb.HistoryEvent.FromString(blob)))
            self._enqueue(instance)

    # --- leases -----------------------------------------------------------------------------------------

    def _drop_lease(self, token: str) -> Lease | None:
        lease = self.leases.pop(token, None)
        if lease is not None:
            stream = self.streams.get(lease.stream)
            if stream is not None:
                stream.tokens.discard(token)
        return lease

    def _release(self, token: str) -> bool:
        """Put a leased work item back in the queue (its lease ended); False if the lease was gone."""
        lease = self._drop_lease(token)
        if lease is None:
            return False
        if lease.kind == "orchestration":
            instance = self.instances.get(str(lease.key))
            if instance is not None and instance.lease == token:
                instance.lease = None
                instance.dispatched = 0
                instance.started_event = None
                self._enqueue(instance)
        else:
            task = self.tasks.get(int(lease.key))
            if task is not None and task.lease == token:
                task.lease = None
                self._queue_task(task, front=True)
        return True

    # --- ending an instance -----------------------------------------------------------------------------

    def _forget_work(self, instance: Instance, ops: list[Op]) -> None:
        """Drop what ``instance`` still had queued or out with workers (its end, or a new execution)."""
        if instance.lease is not None:
            self._revoke(instance.lease)
            instance.lease = None
        for task in [t for t in self.tasks.values() if t.instance_id == instance.instance_id]:
            if task.lease is not None:
                self._revoke(task.lease)
            del self.tasks[task.id]
        instance.dispatched = 0
        instance.started_event = None
        instance.timers.clear()  # their callbacks find nothing to fire
        ops.append(("tasks_clear", instance.instance_id))
        instance.inbox.clear()
        ops.append(("events_clear", instance.instance_id))

    def _revoke(self, token: str) -> None:
        """End a lease whose work is no longer wanted: its late completion is dropped, not refused."""
        self._drop_lease(token)
        self._revoked[token] = None
        while len(self._revoked) > REVOKED_KEPT:
            del self._revoked[next(iter(self._revoked))]

    def _finish(
        self,
        instance: Instance,
        status: int,
        output: str | None,
        failure: pb.TaskFailureDetails | None,
        ops: list[Op],
    ) -> None:
        """Record that ``instance`` ended (its history already holds what led there)."""
        instance.status = status
        instance.output = output
        instance.failure = failure
        instance.completed = instance.updated = time.time()
        self._forget_work(instance, ops)
        self._append_history(instance, [helpers.new_execution_completed_event(status, output, failure)], ops)  # type: ignore[arg-type]
        self._changed.notify_all()

    def _append_history(self, instance: Instance, events: list[pb.HistoryEvent], ops: list[Op]) -> None:
        history = instance.history
        for event in events:
            blob = event.SerializeToString()
            ops.append(("history", instance.instance_id, history.count, blob))
            history.append(blob)

    def _close_stream_locked(self, stream: Stream) -> int:
        stream.open = False
        self.streams.pop(stream.id, None)
        released = sum(self._release(token) for token in list(stream.tokens))
        stream.tokens.clear()
        return released

    def _terminate_locked(self, instance: Instance, output: str | None, ops: list[Op]) -> bool:
        """End ``instance`` as Terminated at once, whoever holds it (a late completion is then dropped)."""
        if instance.terminal:
            return False
        self._forget_work(instance, ops)
        started = helpers.new_orchestrator_started_event(datetime.now(timezone.utc))
        terminated = helpers.new_terminated_event(encoded_output=output)
        self._append_history(instance, [started, terminated, helpers.new_orchestrator_completed_event()], ops)
        self._finish(instance, pb.ORCHESTRATION_STATUS_TERMINATED, output, None, ops)
        ops.append(("instance", *instance.row()))
        return True
