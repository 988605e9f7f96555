"""The worker side of the hub: streams, leased work items, completions fenced by their tokens, abandon.

Every work item goes out under a lease: a completion token minted for that one dispatch, the stream it
went to, and a deadline. The lease ends when the worker completes or abandons the item, when its stream
ends (the worker died, was stopped, or reconnected), or at its deadline; an item whose lease ended
without a completion goes back to the queue and is dispatched again with a new token. A completion is
accepted only with the token of the item's current lease, so of two workers that ran the same item, the
one holding the lease wins and the other's answer is refused (:data:`STALE`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Literal

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from monitoring.backend.actions import apply_actions
from monitoring.backend.base import HubBase
from monitoring.backend.state import Lease, Stream, matches
from monitoring.backend.store import Op

logger = logging.getLogger("monitoring.backend.hub")

Outcome = Literal["accepted", "stale", "dropped"]
ACCEPTED: Outcome = "accepted"
STALE: Outcome = "stale"  # the lease this completion answers was lost: someone else has the item now
DROPPED: Outcome = "dropped"  # the instance (or its execution) has ended or is gone: nothing to do


class Dispatch(HubBase):
    """Hands work items to worker streams and takes their completions."""

    # --- streams ----------------------------------------------------------------------------------------

    def open_stream(
        self,
        worker: str,
        orchestrations: dict[str, frozenset[str]] | None = None,
        activities: dict[str, frozenset[str]] | None = None,
    ) -> Stream:
        with self._lock:
            stream = Stream(next(self._stream_ids), worker, orchestrations, activities)
            self.streams[stream.id] = stream
            logger.info("Worker %s connected (stream %d)", worker or "(unnamed)", stream.id)
            return stream

    def close_stream(self, stream: Stream) -> None:
        """The stream ended: everything it held goes back to the queue for the next worker."""
        with self._lock:
            if not stream.open:
                return
            released = self._close_stream_locked(stream)
        if released:
            logger.warning(
                "Worker stream %d ended with %d work item(s) unfinished: back in the queue",
                stream.id,
                released,
            )

    def take(self, stream: Stream, wait: float) -> pb.WorkItem | None:
        """The next work item for ``stream`` (now leased to it), waiting up to ``wait`` s for one."""
        with self._lock:
            item = self._next_item(stream)
            if item is None and stream.open and not self.stopping:
                self._work.wait(wait)
                item = self._next_item(stream)
            return item

    def _next_item(self, stream: Stream) -> pb.WorkItem | None:
        if not stream.open or self.stopping:
            return None
        stream.activity_first = not stream.activity_first  # take turns: neither kind starves the other
        if stream.activity_first:
            return self._next_activity(stream) or self._next_orchestration(stream)
        return self._next_orchestration(stream) or self._next_activity(stream)

    def _lease(self, stream: Stream, kind: Literal["orchestration", "activity"], key: str | int) -> str:
        token = self._mint()
        self.leases[token] = Lease(token, kind, key, stream.id, time.monotonic() + self.options.lease_seconds)
        stream.tokens.add(token)
        return token

    def _next_orchestration(self, stream: Stream) -> pb.WorkItem | None:
        skipped: list[str] = []
        found = None
        while self._orchestration_queue:
            instance_id = self._orchestration_queue.popleft()
            self._queued.discard(instance_id)
            instance = self.instances.get(instance_id)
            if instance is None or not self._runnable(instance):
                continue  # enqueued again when it can run
            if not matches(instance.name, instance.version, stream.orchestrations):
                skipped.append(instance_id)
                continue
            found = instance
            break
        for instance_id in skipped:
            self._orchestration_queue.append(instance_id)
            self._queued.add(instance_id)
        if found is None:
            return None
        batch = [event for _, event in found.inbox]
        found.started_event = None
        if not batch[0].HasField("orchestratorStarted"):
            found.started_event = helpers.new_orchestrator_started_event(datetime.now(timezone.utc))
            batch.insert(0, found.started_event)
        found.dispatched = len(found.inbox)
        found.lease = self._lease(stream, "orchestration", found.instance_id)
        request = pb.OrchestratorRequest(instanceId=found.instance_id, newEvents=batch)
        request.MergeFromString(found.history.wire)  # the past events, as kept: no copy of each message
        return pb.WorkItem(completionToken=found.lease, orchestratorRequest=request)

    def _next_activity(self, stream: Stream) -> pb.WorkItem | None:
        for _ in range(len(self._task_queue)):
            task = self.tasks.get(self._task_queue.popleft())
            if task is None or task.lease is not None:
                continue
            if not matches(task.name, task.version, stream.activities):
                self._task_queue.append(task.id)
                continue
            task.lease = self._lease(stream, "activity", task.id)
            request = pb.ActivityRequest(
                name=task.name,
                taskId=task.task_id,
                orchestrationInstance=pb.OrchestrationInstance(instanceId=task.instance_id),
            )
            if task.version:
                request.version.value = task.version
            if task.input is not None:
                request.input.value = task.input
            return pb.WorkItem(completionToken=task.lease, activityRequest=request)
        return None

    # --- completions ------------------------------------------------------------------------------------

    def _check_lease(self, token: str, kind: str, instance_id: str) -> tuple[Outcome, Lease | None]:
        lease = self.leases.get(token)
        if lease is not None and lease.kind == kind:
            return ACCEPTED, lease
        instance = self.instances.get(instance_id)
        ended = instance is None or instance.terminal or token in self._revoked
        return (DROPPED if ended else STALE), None

    def complete_orchestration(self, response: pb.OrchestratorResponse) -> Outcome:
        with self._lock:
            outcome, lease = self._check_lease(response.completionToken, "orchestration", response.instanceId)
            instance = self.instances.get(response.instanceId)
            if lease is None or instance is None or instance.lease != lease.token:
                return outcome if lease is None else STALE
            self._drop_lease(lease.token)
            instance.lease = None
            ops: list[Op] = []
            consumed, instance.inbox = (
                instance.inbox[: instance.dispatched],
                instance.inbox[instance.dispatched :],
            )
            new_events = [event for _, event in consumed]
            if instance.started_event is not None:
                new_events.insert(0, instance.started_event)
            instance.dispatched, instance.started_event = 0, None
            ops.extend(("event_del", row_id) for row_id, _ in consumed)
            self._append_history(instance, new_events, ops)
            instance.updated = time.time()
            if response.HasField("customStatus"):
                instance.custom_status = response.customStatus.value
            if instance.status == pb.ORCHESTRATION_STATUS_PENDING:
                instance.status = pb.ORCHESTRATION_STATUS_RUNNING
                self._changed.notify_all()
            for event in new_events:
                kind = event.WhichOneof("eventType")
                if kind == "executionSuspended":
                    instance.status = pb.ORCHESTRATION_STATUS_SUSPENDED
                elif kind == "executionResumed":
                    instance.status = pb.ORCHESTRATION_STATUS_RUNNING
            apply_actions(self, instance, list(response.actions), ops)
            ops.append(("instance", *instance.row()))
            self.store.submit(ops)
            self._changed.notify_all()
            self._enqueue(instance)
            return ACCEPTED

    def complete_activity(self, response: pb.ActivityResponse) -> Outcome:
        with self._lock:
            outcome, lease = self._check_lease(response.completionToken, "activity", response.instanceId)
            task = self.tasks.get(int(lease.key)) if lease is not None else None
            if lease is None or task is None or task.lease != lease.token:
                return outcome if lease is None else DROPPED
            if (task.instance_id, task.task_id) != (response.instanceId, response.taskId):
                return STALE
            self._drop_lease(lease.token)
            del self.tasks[task.id]
            instance = self.instances[task.instance_id]
            if response.HasField("failureDetails"):
                event = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=timestamp_pb2.Timestamp(),
                    taskFailed=pb.TaskFailedEvent(
                        taskScheduledId=task.task_id, failureDetails=response.failureDetails
                    ),
                )
            else:
                result = response.result if response.HasField("result") else None
                event = pb.HistoryEvent(
                    eventId=-1,
                    timestamp=timestamp_pb2.Timestamp(),
                    taskCompleted=pb.TaskCompletedEvent(
                        taskScheduledId=task.task_id, result=result or wrappers_pb2.StringValue()
                    ),
                )
                if result is None:
                    event.taskCompleted.ClearField("result")
            ops: list[Op] = [("task_del", task.id)]
            self._add_event(instance, event, ops)
            self.store.submit(ops)
            return ACCEPTED

    # --- abandon and expiry -----------------------------------------------------------------------------

    def abandon(self, token: str, kind: Literal["orchestration", "activity"]) -> bool:
        """The worker gave the item back: to the queue at once, for any worker (a new token)."""
        with self._lock:
            lease = self.leases.get(token)
            if lease is None or lease.kind != kind:
                return False
            return self._release(token)

    def expire_leases(self) -> int:
        """Put back every item whose lease deadline passed (a worker that holds its stream but no longer
        answers); returns how many."""
        now = time.monotonic()
        with self._lock:
            expired = [token for token, lease in self.leases.items() if lease.expires <= now]
            for token in expired:
                self._release(token)
        if expired:
            logger.warning("%d work item lease(s) expired: back in the queue", len(expired))
        return len(expired)
