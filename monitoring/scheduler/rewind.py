"""Rewinding a failed orchestration, as the SDK does it: the scheduler marks the instance running again and
gives it an ``executionRewound`` event; the worker answers with the history rewritten (failed tasks and
sub-orchestration failures left out), which replaces the old one; failed sub-orchestrations are rewound
too (a purged one starts again), and the instance replays from there, running only the work that failed."""

from __future__ import annotations

from datetime import datetime, timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.hub import HubError, TaskHub
from monitoring.scheduler.records import History, Instance, ParentLink
from monitoring.scheduler.store import Op


def prepare(hub: TaskHub, instance: Instance, reason: str | None, ops: list[Op]) -> None:
    """Make a failed ``instance`` run again with an ``executionRewound`` event (the caller holds the lock)."""
    if instance.status != pb.ORCHESTRATION_STATUS_FAILED:
        status = pb.OrchestrationStatus.Name(instance.status).removeprefix("ORCHESTRATION_STATUS_").lower()
        raise HubError(
            f"orchestration instance {instance.instance_id!r} is {status}: only a failed one rewinds"
        )
    hub.histories.warm(instance)  # ended a while ago, its history may live in the file only
    instance.status = pb.ORCHESTRATION_STATUS_RUNNING
    instance.output = instance.failure = instance.completed = None
    instance.updated = hub.now()
    rewound = pb.ExecutionRewoundEvent()
    if reason is not None:
        rewound.reason.value = reason
    event = pb.HistoryEvent(eventId=-1, executionRewound=rewound)
    event.timestamp.FromDatetime(datetime.fromtimestamp(hub.now(), timezone.utc))
    hub.deliver(instance, event, ops)
    ops.append(("instance", *instance.row()))
    hub.changed.notify_all()


def apply(hub: TaskHub, instance: Instance, action: pb.RewindOrchestrationAction, ops: list[Op]) -> None:
    """The worker's rewritten history replaces the instance's; its failed children are rewound, and it
    replays."""
    new_history = list(action.newHistory)
    ops.append(("history_clear", instance.instance_id))
    instance.history = History()
    hub.append_history(instance, new_history, ops)
    reason = next(
        (e.executionRewound.reason.value for e in reversed(new_history) if e.HasField("executionRewound")),
        None,
    )
    completed = {
        e.subOrchestrationInstanceCompleted.taskScheduledId
        for e in new_history
        if e.HasField("subOrchestrationInstanceCompleted")
    }
    for event in new_history:
        if not event.HasField("subOrchestrationInstanceCreated") or event.eventId in completed:
            continue
        created = event.subOrchestrationInstanceCreated
        child = hub.instances.get(created.instanceId)
        if child is None:
            _start_again(hub, instance, event.eventId, created, ops)
        elif child.status == pb.ORCHESTRATION_STATUS_FAILED:
            prepare(hub, child, reason or None, ops)
    hub.deliver(instance, helpers.new_orchestrator_started_event(datetime.now(timezone.utc)), ops)


def _start_again(
    hub: TaskHub,
    parent: Instance,
    task_id: int,
    created: pb.SubOrchestrationInstanceCreatedEvent,
    ops: list[Op],
) -> None:
    """A purged child of a rewound parent starts from the beginning, still reporting to its parent."""
    now = hub.now()
    version = created.version.value if created.HasField("version") else None
    data = created.input.value if created.HasField("input") else None
    child = Instance(
        created.instanceId, created.name, version, pb.ORCHESTRATION_STATUS_PENDING, data, now, now
    )
    link = ParentLink(parent.instance_id, parent.execution, task_id)
    hub.add_instance(child, now, ops, parent=(link, parent.name))
