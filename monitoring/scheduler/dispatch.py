"""The worker side of the task hub: streams, leased work items, completions fenced by their tokens, abandon.

A completion is accepted only with the token of the item's current lease (see
:mod:`~monitoring.scheduler.leases`), so of two workers that ran the same item, the one holding the lease
wins and the other's answer is refused (:data:`STALE`); an answer for work that was withdrawn (its instance
ended) is dropped (:data:`DROPPED`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Literal

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from monitoring.scheduler.entity_steps import apply_batch
from monitoring.scheduler.hub import TaskHub
from monitoring.scheduler.records import Filter, Instance, LeaseKind, Stream, Task, matches
from monitoring.scheduler.store import Op
from monitoring.scheduler.turns import apply_actions

logger = logging.getLogger("monitoring.scheduler.hub")

Outcome = Literal["accepted", "stale", "dropped", "unsaved"]
ACCEPTED: Outcome = "accepted"
STALE: Outcome = "stale"  # the lease this completion answers was lost: someone else has the item now
DROPPED: Outcome = "dropped"  # the instance (or its execution) has ended or is gone: nothing to do
UNSAVED: Outcome = "unsaved"  # the store cannot save it now (a full disk): the item runs again later


class Dispatch:
    """Hands work items to worker streams and takes their completions."""

    def __init__(self, hub: TaskHub) -> None:
        self.hub = hub

    # --- streams ----------------------------------------------------------------------------------------

    def open_stream(
        self,
        worker: str,
        orchestrations: Filter | None = None,
        activities: Filter | None = None,
        entities: Filter | None = None,
        limits: dict[LeaseKind, int] | None = None,
    ) -> Stream:
        """A new stream; ``limits`` caps the work items of each kind it holds at once (0 or absent: none)."""
        with self.hub.lock:
            stream = self.hub.leases.open_stream(worker, orchestrations, activities, entities, limits)
        logger.info("Worker %s connected (stream %d)", worker or "(unnamed)", stream.id)
        return stream

    def close_stream(self, stream: Stream) -> None:
        """The stream ended: everything it held goes back to the queue for the next worker."""
        hub = self.hub
        with hub.lock:
            if not stream.open:
                return
            ended = hub.leases.close_stream(stream)
            for lease in ended:
                hub.release(lease)
        if ended:
            logger.warning(
                "Worker stream %d ended with %d work item(s) unfinished: back in the queue",
                stream.id,
                len(ended),
            )

    def take(self, stream: Stream, wait: float) -> pb.WorkItem | None:
        """The next work item for ``stream`` (now leased to it), waiting up to ``wait`` s for one."""
        with self.hub.lock:
            item = self._next_item(stream)
            if item is None and stream.open and not self.hub.stopping:
                self.hub.work.wait(wait)
                item = self._next_item(stream)
            return item

    def _next_item(self, stream: Stream) -> pb.WorkItem | None:
        if not stream.open or self.hub.stopping or self.hub.store.trouble is not None:
            return None
        # Take turns: neither orchestrations nor activities starve the other; entity batches, while any
        # wait, are offered first every other time (without entities the order is what it always was).
        stream.turn = (stream.turn + 1) % 2
        if stream.turn and self.hub.entities.has_ready():
            item = self._next_entity(stream)
            if item is not None:
                return item
        if stream.turn:
            item = self._next_activity(stream) or self._next_orchestration(stream)
        else:
            item = self._next_orchestration(stream) or self._next_activity(stream)
        return item or self._next_entity(stream)

    def _lease(self, stream: Stream, kind: LeaseKind, key: str | int) -> str:
        return self.hub.leases.grant(stream, kind, key)

    def _next_orchestration(self, stream: Stream) -> pb.WorkItem | None:
        accepted = stream.orchestrations
        if stream.full("orchestration"):
            return None
        found = self.hub.instances.next_ready(lambda i: matches(i.name, i.version, accepted))
        if found is None:
            return None
        batch = [event for _, event in found.inbox]
        found.started_event = None
        if not batch[0].HasField("orchestratorStarted"):
            found.started_event = helpers.new_orchestrator_started_event(
                datetime.fromtimestamp(self.hub.now(), timezone.utc)
            )
            batch.insert(0, found.started_event)
        found.dispatched = len(found.inbox)
        found.lease = self._lease(stream, "orchestration", found.instance_id)
        request = pb.OrchestratorRequest(instanceId=found.instance_id, newEvents=batch)
        request.MergeFromString(self.hub.histories.warm(found).wire)  # as kept: no copy of each message
        return pb.WorkItem(completionToken=found.lease, orchestratorRequest=request)

    def _next_activity(self, stream: Stream) -> pb.WorkItem | None:
        accepted = stream.activities
        if stream.full("activity"):
            return None
        task = self.hub.activities.next_ready(lambda t: matches(t.name, t.version, accepted))
        if task is None:
            return None
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

    def _next_entity(self, stream: Stream) -> pb.WorkItem | None:
        accepted, limit = stream.entities, self.hub.options.max_entity_batch
        if stream.full("entity"):
            return None
        entity = self.hub.entities.next_ready(lambda e: matches(e.name, None, accepted))
        if entity is None:
            return None
        batch = self.hub.entities.runnable(entity, limit)
        entity.dispatched = [row for row, _ in batch]
        entity.lease = self._lease(stream, "entity", entity.entity_id)
        request = pb.EntityRequest(instanceId=entity.entity_id, operationRequests=[e for _, e in batch])
        if entity.state is not None:
            request.entityState.value = entity.state
        return pb.WorkItem(completionToken=entity.lease, entityRequestV2=request)

    # --- completions ------------------------------------------------------------------------------------

    def _refusal(self, token: str, instance_id: str) -> Outcome:
        """Why a completion without a current lease is not used: its work was withdrawn, or lost."""
        instance = self.hub.instances.get(instance_id)
        ended = instance is None or instance.terminal or self.hub.leases.revoked(token)
        return DROPPED if ended else STALE

    def _unsaved(self, token: str) -> Outcome:
        """The store cannot save a completion now: the item goes back to its queue, to run once it can."""
        lease = self.hub.leases.drop(token)
        if lease is not None:
            self.hub.release(lease)
        return UNSAVED

    def complete_orchestration(self, response: pb.OrchestratorResponse) -> Outcome:
        hub = self.hub
        with hub.lock:
            lease = hub.leases.get(response.completionToken, "orchestration")
            instance = hub.instances.get(response.instanceId)
            if lease is None:
                return self._refusal(response.completionToken, response.instanceId)
            if instance is None or instance.lease != lease.token:
                return STALE
            if hub.store.trouble is not None:
                return self._unsaved(lease.token)
            hub.leases.drop(lease.token)
            instance.lease = None
            ops: list[Op] = []
            new_events = self._consume(instance, ops)
            hub.append_history(instance, new_events, ops)
            instance.updated = hub.now()
            if response.HasField("customStatus"):
                instance.custom_status = response.customStatus.value
            if instance.status == pb.ORCHESTRATION_STATUS_PENDING:
                instance.status = pb.ORCHESTRATION_STATUS_RUNNING
            for event in new_events:
                kind = event.WhichOneof("eventType")
                if kind == "executionSuspended":
                    instance.status = pb.ORCHESTRATION_STATUS_SUSPENDED
                elif kind == "executionResumed":
                    instance.status = pb.ORCHESTRATION_STATUS_RUNNING
            apply_actions(hub, instance, list(response.actions), ops)
            ops.append(("instance", *instance.row()))
            hub.store.submit(ops)
            hub.changed.notify_all()
            hub.enqueue(instance)
            return ACCEPTED

    @staticmethod
    def _consume(instance: Instance, ops: list[Op]) -> list[pb.HistoryEvent]:
        """The events the completed turn processed, taken out of the inbox (with the turn's start event)."""
        consumed, instance.inbox = (
            instance.inbox[: instance.dispatched],
            instance.inbox[instance.dispatched :],
        )
        new_events = [event for _, event in consumed]
        if instance.started_event is not None:
            new_events.insert(0, instance.started_event)
        instance.dispatched, instance.started_event = 0, None
        ops.extend(("event_del", row_id) for row_id, _ in consumed)
        return new_events

    def complete_activity(self, response: pb.ActivityResponse) -> Outcome:
        hub = self.hub
        with hub.lock:
            lease = hub.leases.get(response.completionToken, "activity")
            if lease is None:
                return self._refusal(response.completionToken, response.instanceId)
            task = hub.activities.get(int(lease.key))
            if task is None or task.lease != lease.token:
                return DROPPED
            if (task.instance_id, task.task_id) != (response.instanceId, response.taskId):
                return STALE
            if hub.store.trouble is not None:
                return self._unsaved(lease.token)
            hub.leases.drop(lease.token)
            hub.activities.remove(task)
            instance = hub.instances.by_id[task.instance_id]
            ops: list[Op] = [("task_del", task.id)]
            hub.deliver(instance, _task_result(task, response), ops)
            hub.store.submit(ops)
            return ACCEPTED

    def complete_entity(self, result: pb.EntityBatchResult) -> Outcome:
        hub = self.hub
        with hub.lock:
            lease = hub.leases.get(result.completionToken, "entity")
            if lease is None:
                return DROPPED if hub.leases.revoked(result.completionToken) else STALE
            entity = hub.entities.get(str(lease.key))
            if entity is None or entity.lease != lease.token:
                return STALE
            if hub.store.trouble is not None:
                return self._unsaved(lease.token)
            hub.leases.drop(lease.token)
            if result.HasField("failureDetails") and not result.results:
                result = _batch_failed(entity.state, len(entity.dispatched), result.failureDetails)
            ops: list[Op] = []
            apply_batch(hub, entity, result, ops)
            hub.store.submit(ops)
            return ACCEPTED

    # --- abandon ------------------------------------------------------------------------------------------

    def abandon(self, token: str, kind: LeaseKind) -> bool:
        """The worker gave the item back: to the queue at once, for any worker (a new token)."""
        with self.hub.lock:
            if self.hub.leases.get(token, kind) is None:
                return False
            lease = self.hub.leases.drop(token)
            assert lease is not None
            self.hub.release(lease)
            return True


def _task_result(task: Task, response: pb.ActivityResponse) -> pb.HistoryEvent:
    """The TaskCompleted or TaskFailed event an activity's answer becomes."""
    if response.HasField("failureDetails"):
        failed = pb.TaskFailedEvent(taskScheduledId=task.task_id, failureDetails=response.failureDetails)
        return pb.HistoryEvent(eventId=-1, timestamp=timestamp_pb2.Timestamp(), taskFailed=failed)
    result = response.result if response.HasField("result") else None
    completed = pb.TaskCompletedEvent(
        taskScheduledId=task.task_id, result=result or wrappers_pb2.StringValue()
    )
    if result is None:
        completed.ClearField("result")
    return pb.HistoryEvent(eventId=-1, timestamp=timestamp_pb2.Timestamp(), taskCompleted=completed)


def _batch_failed(state: str | None, count: int, failure: pb.TaskFailureDetails) -> pb.EntityBatchResult:
    """A batch the worker could not run at all: every operation fails with its reason, the state stays."""
    failed = pb.OperationResult(failure=pb.OperationResultFailure(failureDetails=failure))
    result = pb.EntityBatchResult(results=[failed] * count)
    if state is not None:
        result.entityState.value = state
    return result
