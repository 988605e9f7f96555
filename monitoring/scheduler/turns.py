"""What an orchestrator's completed turn asks for: activities, timers, events, its end or a new execution."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler import entity_steps, rewind
from monitoring.scheduler.hub import HubError, LimitReached, TaskHub
from monitoring.scheduler.records import History, Instance, ParentLink, Task
from monitoring.scheduler.store import Op
from monitoring.scheduler.unserved import UNSERVED_ACTIONS, refusal

logger = logging.getLogger("monitoring.scheduler.hub")


def _failure(error_type: str, message: str) -> pb.TaskFailureDetails:
    return pb.TaskFailureDetails(errorType=error_type, errorMessage=message, isNonRetriable=True)


def _fail(
    hub: TaskHub,
    instance: Instance,
    recorded: list[pb.HistoryEvent],
    error_type: str,
    message: str,
    ops: list[Op],
) -> None:
    """End the turn, and the instance, Failed with ``message`` (what the turn recorded so far is kept)."""
    logger.warning("Failed instance %s: %s", instance.instance_id, message)
    hub.append_history(instance, [*recorded, helpers.new_orchestrator_completed_event()], ops)
    hub.finish(instance, pb.ORCHESTRATION_STATUS_FAILED, None, _failure(error_type, message), ops)


def apply_actions(
    hub: TaskHub, instance: Instance, actions: list[pb.OrchestratorAction], ops: list[Op]
) -> None:
    """Apply one turn's actions to ``instance`` (its new events are already in its history)."""
    limit = hub.options.max_history_events
    if len(instance.history) + len(actions) + 2 > limit:
        message = (
            f"the history of instance {instance.instance_id!r} would exceed {limit} events; "
            "long orchestrations must continue as new"
        )
        _fail(hub, instance, [], "HistoryLimitExceeded", message, ops)
        return
    recorded: list[pb.HistoryEvent] = []
    for action in actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            _schedule_task(hub, instance, action, recorded, ops)
        elif kind == "createTimer":
            fire_at = action.createTimer.fireAt.ToDatetime(tzinfo=timezone.utc)
            recorded.append(helpers.new_timer_created_event(action.id, fire_at))
            fired = helpers.new_timer_fired_event(action.id, fire_at)
            hub.deliver(instance, fired, ops, due=fire_at.timestamp())
        elif kind == "sendEvent":
            _send_event(hub, instance, action, recorded, ops)
        elif kind == "createSubOrchestration":
            _create_sub_orchestration(hub, instance, action, recorded, ops)
        elif kind == "terminateOrchestration":
            target = hub.instances.get(action.terminateOrchestration.instanceId)
            if target is not None:
                reason = action.terminateOrchestration.reason
                hub.terminate(target, reason.value if reason.ByteSize() else None, ops)
        elif kind == "sendEntityMessage":
            try:
                recorded.append(entity_steps.from_orchestration(hub, action, ops))
            except LimitReached as refused:  # the entity's backlog is full: the orchestration learns why
                _fail(hub, instance, recorded, "LimitReached", str(refused), ops)
                return
        elif kind == "rewindOrchestration":  # the whole history is replaced: nothing else of this turn stays
            rewind.apply(hub, instance, action.rewindOrchestration, ops)
            return
        elif kind == "completeOrchestration":
            hub.append_history(instance, recorded, ops)
            recorded = []
            _complete(hub, instance, action.completeOrchestration, ops)
            return
        else:
            name = kind or "an empty action"
            message = refusal(name, UNSERVED_ACTIONS.get(name, "an action this scheduler does not know"))
            _fail(hub, instance, recorded, "NotSupported", message, ops)
            return
    recorded.append(helpers.new_orchestrator_completed_event())
    hub.append_history(instance, recorded, ops)


def _schedule_task(
    hub: TaskHub,
    instance: Instance,
    action: pb.OrchestratorAction,
    recorded: list[pb.HistoryEvent],
    ops: list[Op],
) -> None:
    schedule = action.scheduleTask
    input_ = schedule.input.value if schedule.HasField("input") else None
    version = schedule.version.value if schedule.HasField("version") else None
    recorded.append(helpers.new_task_scheduled_event(action.id, schedule.name, input_))
    task = Task(
        next(hub.rows), instance.instance_id, instance.execution, action.id, schedule.name, version, input_
    )
    hub.activities.add(task)
    ops.append(("task", *task.row()))
    hub.work.notify_all()


def _create_sub_orchestration(
    hub: TaskHub,
    instance: Instance,
    action: pb.OrchestratorAction,
    recorded: list[pb.HistoryEvent],
    ops: list[Op],
) -> None:
    """Start a child instance that reports its end to this execution; an id still in use by an active
    instance, or a full hub, fails the task at once (an ended instance of that id is replaced)."""
    sub = action.createSubOrchestration
    child_id = sub.instanceId or f"{instance.instance_id}:{action.id:04x}"
    input_ = sub.input.value if sub.HasField("input") else None
    version = sub.version.value if sub.HasField("version") else None
    created = helpers.new_sub_orchestration_created_event(
        action.id, sub.name, child_id, input_, version=version
    )
    recorded.append(created)
    existing = hub.instances.get(child_id)
    try:
        if existing is not None and not existing.terminal:
            status = (
                pb.OrchestrationStatus.Name(existing.status).removeprefix("ORCHESTRATION_STATUS_").lower()
            )
            raise HubError(f"orchestration instance {child_id!r} already exists and is {status}")
        if existing is not None:
            hub.remove(child_id, ops)
        hub.room_for_one_more()
    except HubError as refused:
        failure = _failure(type(refused).__name__, str(refused))
        failed = pb.SubOrchestrationInstanceFailedEvent(taskScheduledId=action.id, failureDetails=failure)
        hub.deliver(instance, pb.HistoryEvent(eventId=-1, subOrchestrationInstanceFailed=failed), ops)
        return
    now = hub.now()
    child = Instance(child_id, sub.name, version, pb.ORCHESTRATION_STATUS_PENDING, input_, now, now)
    child.tags = dict(sub.tags) or None
    link = ParentLink(instance.instance_id, instance.execution, action.id)
    hub.add_instance(child, now, ops, parent=(link, instance.name))


def _send_event(
    hub: TaskHub,
    instance: Instance,
    action: pb.OrchestratorAction,
    recorded: list[pb.HistoryEvent],
    ops: list[Op],
) -> None:
    send = action.sendEvent
    target_id = send.instance.instanceId
    data = send.data.value if send.HasField("data") else None
    recorded.append(helpers.new_event_sent_event(action.id, target_id, data, name=send.name))
    target = hub.instances.get(target_id)
    if target is not None and not target.terminal:
        hub.deliver(target, helpers.new_event_raised_event(send.name, data), ops)


def _complete(
    hub: TaskHub, instance: Instance, complete: pb.CompleteOrchestrationAction, ops: list[Op]
) -> None:
    status = complete.orchestrationStatus
    result = complete.result.value if complete.HasField("result") else None
    if status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
        _continue_as_new(hub, instance, complete, result, ops)
        return
    failure = complete.failureDetails if complete.HasField("failureDetails") else None
    hub.append_history(instance, [helpers.new_orchestrator_completed_event()], ops)
    hub.finish(instance, status, result, failure, ops)


def _continue_as_new(
    hub: TaskHub,
    instance: Instance,
    complete: pb.CompleteOrchestrationAction,
    result: str | None,
    ops: list[Op],
) -> None:
    """A new execution: empty history, the new input, carried-over events, then events that arrived."""
    arrivals = [event for _, event in instance.inbox]
    hub.forget_work(instance, ops)
    instance.history = History()
    ops.append(("history_clear", instance.instance_id))
    instance.execution += 1
    instance.input = result
    if complete.HasField("newVersion"):
        instance.version = complete.newVersion.value
    started = [
        helpers.new_orchestrator_started_event(datetime.fromtimestamp(hub.now(), timezone.utc)),
        helpers.new_execution_started_event(
            instance.name, instance.instance_id, result, instance.tags, version=instance.version
        ),
    ]
    for event in [*started, *complete.carryoverEvents, *arrivals]:
        hub.deliver(instance, event, ops)
