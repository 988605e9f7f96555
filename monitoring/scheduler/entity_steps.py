"""Durable entities on the task hub: an operation reaches an entity (at once, or a delayed signal once the
clock reaches it), a worker's batch result is applied (new state, answers to calling orchestrations,
signals and new orchestrations it asked for), orchestrations enter and leave critical sections. Every step
is applied in memory and described to the store as ops, in the same lock (see :mod:`~.hub`)."""

from __future__ import annotations

import logging
import uuid
from datetime import timezone
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from monitoring.scheduler.hub import LimitReached, TaskHub
from monitoring.scheduler.records import Entity, Instance, LockRequest
from monitoring.scheduler.store import Op

logger = logging.getLogger("monitoring.scheduler.hub")


def due_time(message: Any) -> float | None:
    """A message's ``scheduledTime`` as wall-clock seconds (None if it has none)."""
    if not message.HasField("scheduledTime"):
        return None
    return message.scheduledTime.ToDatetime(tzinfo=timezone.utc).timestamp()


def save(entity: Entity, ops: list[Op]) -> None:
    ops.append(("entity", *entity.row()))


def send(
    hub: TaskHub, entity_id: str, event: pb.HistoryEvent, ops: list[Op], due: float | None = None
) -> None:
    """Queue an operation (an ``entityOperationSignaled`` or ``entityOperationCalled`` event) for
    ``entity_id``: at once, or once the clock reaches ``due``."""
    entity, new = hub.entities.get_or_add(entity_id)
    if len(entity.queue) + len(entity.timers) >= hub.options.max_entity_backlog:
        if new:
            hub.entities.remove(entity_id)
        limit = hub.options.max_entity_backlog
        raise LimitReached(f"entity {entity_id!r} already has {limit} operations waiting (its limit)")
    if new:
        entity.modified = hub.now()
        save(entity, ops)
    row_id = next(hub.rows)
    now = hub.now()
    ops.append(("entity_op", row_id, entity_id, now if due is None else due, event))
    if due is not None and due > now:
        hold(hub, entity, row_id, event, due)
    else:
        entity.queue.append((row_id, event))
        if hub.entities.enqueue(entity):
            hub.work.notify_all()


def hold(hub: TaskHub, entity: Entity, row_id: int, event: pb.HistoryEvent, due: float) -> None:
    entity.timers[row_id] = event.SerializeToString()
    entity_id = entity.entity_id

    def fire() -> None:
        with hub.lock:
            held = hub.entities.get(entity_id)
            blob = held.timers.pop(row_id, None) if held is not None else None
            if held is None or blob is None:
                return
            held.queue.append((row_id, pb.HistoryEvent.FromString(blob)))
            if hub.entities.enqueue(held):
                hub.work.notify_all()

    hub.timers.call_at(due, fire)


def signal_event(entity_id: str, name: str, data: str | None, request_id: str = "") -> pb.HistoryEvent:
    signaled = pb.EntityOperationSignaledEvent(
        requestId=request_id or uuid.uuid4().hex, operation=name, targetInstanceId=_text(entity_id)
    )
    if data is not None:
        signaled.input.value = data
    return pb.HistoryEvent(eventId=-1, timestamp=_now(), entityOperationSignaled=signaled)


def _text(value: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=value)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


# --- a worker's batch -------------------------------------------------------------------------------------


def apply_batch(hub: TaskHub, entity: Entity, result: pb.EntityBatchResult, ops: list[Op]) -> None:
    """The worker ran the dispatched operations (as many as it has results for): keep the new state,
    answer the callers, carry out what the operations asked for; the rest go back to the queue."""
    ran = entity.dispatched[: len(result.results)]
    queued = dict(entity.queue)
    answered = [queued[row] for row in ran if row in queued]
    done = set(ran)
    entity.queue = [(row, event) for row, event in entity.queue if row not in done]
    ops.extend(("entity_op_del", row) for row in ran)
    entity.dispatched, entity.lease = [], None
    entity.state = result.entityState.value if result.HasField("entityState") else None
    entity.modified = hub.now()
    for event, outcome in zip(answered, result.results, strict=False):
        _answer(hub, event, outcome, ops)
    for action in result.actions:
        if action.HasField("sendSignal"):
            signal = action.sendSignal
            data = signal.input.value if signal.HasField("input") else None
            event = signal_event(signal.instanceId, signal.name, data)
            send(hub, signal.instanceId, event, ops, due_time(signal))
        elif action.HasField("startNewOrchestration"):
            _start_orchestration(hub, action.startNewOrchestration, ops)
    if entity.empty:
        hub.entities.remove(entity.entity_id)
        ops.append(("entity_del", entity.entity_id))
    else:
        save(entity, ops)
        if hub.entities.enqueue(entity):
            hub.work.notify_all()


def _answer(hub: TaskHub, event: pb.HistoryEvent, outcome: pb.OperationResult, ops: list[Op]) -> None:
    if not event.HasField("entityOperationCalled"):
        return
    called = event.entityOperationCalled
    target = hub.instances.get(called.parentInstanceId.value)
    if target is None or target.terminal:
        return
    if outcome.HasField("failure"):
        failed = pb.EntityOperationFailedEvent(
            requestId=called.requestId, failureDetails=outcome.failure.failureDetails
        )
        answer = pb.HistoryEvent(eventId=-1, timestamp=_now(), entityOperationFailed=failed)
    else:
        completed = pb.EntityOperationCompletedEvent(requestId=called.requestId)
        if outcome.success.HasField("result"):
            completed.output.value = outcome.success.result.value
        answer = pb.HistoryEvent(eventId=-1, timestamp=_now(), entityOperationCompleted=completed)
    hub.deliver(target, answer, ops)


def _start_orchestration(hub: TaskHub, start: pb.StartNewOrchestrationAction, ops: list[Op]) -> None:
    instance_id = start.instanceId or uuid.uuid4().hex
    existing = hub.instances.get(instance_id)
    if existing is not None and not existing.terminal:
        logger.warning("An entity asked to start %s, which is already running: not started", instance_id)
        return
    try:
        hub.room_for_one_more()
    except LimitReached as refused:
        logger.warning("An entity asked to start %s: %s", instance_id, refused)
        return
    if existing is not None:
        hub.remove(instance_id, ops)
    now = hub.now()
    version = start.version.value if start.HasField("version") else None
    data = start.input.value if start.HasField("input") else None
    instance = Instance(instance_id, start.name, version, pb.ORCHESTRATION_STATUS_PENDING, data, now, now)
    hub.add_instance(instance, max(now, due_time(start) or now), ops)


# --- an orchestration's messages to entities ----------------------------------------------------------------


def from_orchestration(hub: TaskHub, action: pb.OrchestratorAction, ops: list[Op]) -> pb.HistoryEvent:
    """Carry out an orchestrator's ``sendEntityMessage``; returns the event its history records."""
    message = action.sendEntityMessage
    kind = message.WhichOneof("EntityMessageType")
    recorded = pb.HistoryEvent(eventId=action.id, timestamp=_now())
    if kind == "entityOperationSignaled":
        signaled = message.entityOperationSignaled
        recorded.entityOperationSignaled.CopyFrom(signaled)
        operation = pb.HistoryEvent(eventId=-1, timestamp=_now(), entityOperationSignaled=signaled)
        send(hub, signaled.targetInstanceId.value, operation, ops, due_time(signaled))
    elif kind == "entityOperationCalled":
        called = message.entityOperationCalled
        recorded.entityOperationCalled.CopyFrom(called)
        operation = pb.HistoryEvent(eventId=-1, timestamp=_now(), entityOperationCalled=called)
        send(hub, called.targetInstanceId.value, operation, ops)
    elif kind == "entityLockRequested":
        requested = message.entityLockRequested
        recorded.entityLockRequested.CopyFrom(requested)
        request = LockRequest(
            next(hub.rows), requested.criticalSectionId, requested.parentInstanceId.value,
            tuple(requested.lockSet),
        )  # fmt: skip
        hub.entities.waiting_locks.append(request)
        ops.append(("lock", *request.row()))
        grant_waiting(hub, ops)
    elif kind == "entityUnlockSent":
        unlock = message.entityUnlockSent
        recorded.entityUnlockSent.CopyFrom(unlock)
        entity = hub.entities.unlock(unlock.targetInstanceId.value, unlock.criticalSectionId)
        if entity is not None:
            _after_unlock(hub, entity, ops)
            grant_waiting(hub, ops)
    return recorded


def grant_waiting(hub: TaskHub, ops: list[Op]) -> None:
    """Grant every waiting lock request that can be granted now; each owner gets its ``entityLockGranted``."""
    for request in hub.entities.grantable():
        ops.append(("lock_del", request.id))
        for entity_id in request.entities:
            entity = hub.entities.get(entity_id)
            if entity is not None:
                save(entity, ops)
        owner = hub.instances.get(request.owner)
        if owner is None or owner.terminal:  # it ended while it waited: the section ends at once
            release_locks(hub, request.owner, ops)
            continue
        granted = pb.EntityLockGrantedEvent(criticalSectionId=request.section)
        hub.deliver(owner, pb.HistoryEvent(eventId=-1, timestamp=_now(), entityLockGranted=granted), ops)


def _after_unlock(hub: TaskHub, entity: Entity, ops: list[Op]) -> None:
    if entity.empty:
        hub.entities.remove(entity.entity_id)
        ops.append(("entity_del", entity.entity_id))
        return
    save(entity, ops)
    if hub.entities.enqueue(entity):
        hub.work.notify_all()


def release_locks(hub: TaskHub, owner: str, ops: list[Op]) -> int:
    """An orchestration ended (or is gone): every critical section it held ends, and its waiting requests
    are dropped; returns how many entities were unlocked."""
    for request in [r for r in hub.entities.waiting_locks if r.owner == owner]:
        hub.entities.waiting_locks.remove(request)
        ops.append(("lock_del", request.id))
    held = hub.entities.held_by(owner)
    for entity in held:
        entity.locked_by = entity.lock_owner = None
        _after_unlock(hub, entity, ops)
    if held:
        grant_waiting(hub, ops)
    return len(held)


def on_instance_end(hub: TaskHub, instance: Instance, ops: list[Op]) -> None:
    """The hub's end-of-instance hook: a critical section never outlives its orchestration."""
    if hub.entities.held_by(instance.instance_id) or any(
        r.owner == instance.instance_id for r in hub.entities.waiting_locks
    ):
        release_locks(hub, instance.instance_id, ops)
