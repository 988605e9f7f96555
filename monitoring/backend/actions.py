"""What an orchestrator's completed turn asks for: activities, timers, events, its end or a new execution."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.backend.state import History, Instance, Task
from monitoring.backend.store import Op

if TYPE_CHECKING:
    from monitoring.backend.base import HubBase

logger = logging.getLogger("monitoring.backend.hub")


def _failure(error_type: str, message: str) -> pb.TaskFailureDetails:
    return pb.TaskFailureDetails(errorType=error_type, errorMessage=message, isNonRetriable=True)


def apply_actions(
    hub: HubBase, instance: Instance, actions: list[pb.OrchestratorAction], ops: list[Op]
) -> None:
    """Apply one turn's actions to ``instance`` (its new events are already in its history)."""
    limit = hub.options.max_history_events
    if len(instance.history) + len(actions) + 2 > limit:
        message = (
            f"the history of instance {instance.instance_id!r} would exceed {limit} events; "
            "long orchestrations must continue as new"
        )
        logger.warning("Failed instance %s: %s", instance.instance_id, message)
        hub._append_history(instance, [helpers.new_orchestrator_completed_event()], ops)
        hub._finish(
            instance, pb.ORCHESTRATION_STATUS_FAILED, None, _failure("HistoryLimitExceeded", message), ops
        )
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
            hub._add_event(instance, fired, ops, due=fire_at.timestamp())
        elif kind == "sendEvent":
            _send_event(hub, instance, action, recorded, ops)
        elif kind == "createSubOrchestration":
            sub = action.createSubOrchestration
            recorded.append(
                helpers.new_sub_orchestration_created_event(action.id, sub.name, sub.instanceId, None)
            )
            refusal = RuntimeError("sub-orchestrations are not supported by the local scheduler")
            hub._add_event(instance, helpers.new_sub_orchestration_failed_event(action.id, refusal), ops)
        elif kind == "terminateOrchestration":
            target = hub.instances.get(action.terminateOrchestration.instanceId)
            if target is not None:
                reason = action.terminateOrchestration.reason
                hub._terminate_locked(target, reason.value if reason.ByteSize() else None, ops)
        elif kind == "completeOrchestration":
            hub._append_history(instance, recorded, ops)
            recorded = []
            _complete(hub, instance, action.completeOrchestration, ops)
            return
        else:
            logger.warning(
                "Instance %s asked for %s: not supported here, ignored", instance.instance_id, kind
            )
    recorded.append(helpers.new_orchestrator_completed_event())
    hub._append_history(instance, recorded, ops)


def _schedule_task(
    hub: HubBase,
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
        next(hub._ids), instance.instance_id, instance.execution, action.id, schedule.name, version, input_
    )
    hub.tasks[task.id] = task
    ops.append(("task", *task.row()))
    hub._queue_task(task)


def _send_event(
    hub: HubBase,
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
        hub._add_event(target, helpers.new_event_raised_event(send.name, data), ops)


def _complete(
    hub: HubBase, instance: Instance, complete: pb.CompleteOrchestrationAction, ops: list[Op]
) -> None:
    status = complete.orchestrationStatus
    result = complete.result.value if complete.HasField("result") else None
    if status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
        _continue_as_new(hub, instance, complete, result, ops)
        return
    failure = complete.failureDetails if complete.HasField("failureDetails") else None
    hub._append_history(instance, [helpers.new_orchestrator_completed_event()], ops)
    hub._finish(instance, status, result, failure, ops)


def _continue_as_new(
    hub: HubBase,
    instance: Instance,
    complete: pb.CompleteOrchestrationAction,
    result: str | None,
    ops: list[Op],
) -> None:
    """A new execution: empty history, the new input, carried-over events, then events that arrived."""
    arrivals = [event for _, event in instance.inbox]
    hub._forget_work(instance, ops)
    instance.history = History()
    ops.append(("history_clear", instance.instance_id))
    instance.execution += 1
    instance.input = result
    if complete.HasField("newVersion"):
        instance.version = complete.newVersion.value
    started = [
        helpers.new_orchestrator_started_event(datetime.now(timezone.utc)),
        helpers.new_execution_started_event(
            instance.name, instance.instance_id, result, instance.tags, version=instance.version
        ),
    ]
    for event in [*started, *complete.carryoverEvents, *arrivals]:
        hub._add_event(instance, event, ops)
