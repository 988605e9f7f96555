"""Which orchestration started an instance, and which sub-orchestrations it started: from its history.

The SDK's :class:`~durabletask.client.OrchestrationState` drops the parent, so :func:`read_lineage` reads
both from the history events of ``client.get_orchestration_history(instance_id)``: the parent from the
``ExecutionStarted`` event (``parent_instance.orchestration_instance.instance_id``), the children from the
``SubOrchestrationInstanceCreated`` events (``instance_id``), in the order they were created. It is pure, so
the dashboard, a notebook or a test can give it any history. A child created in an earlier generation
(before a continue-as-new) is no longer in the history, so it is not among the children.

:func:`child_statuses` then asks the scheduler for each child's runtime status: children whose ids begin
with the parent's (the SDK's default ``<parent>:<hex>``, a batch's ``<parent>-job-<n>``) in one query by
prefix, any other child by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from durabletask import history
from durabletask.client import OrchestrationQuery, TaskHubGrpcClient

from monitoring.client.snapshots import runtime_status_name

MAX_CHILDREN_SHOWN = 200  # a fan-out of thousands: the first ones, and the count


@dataclass(frozen=True)
class Lineage:
    """An instance's parent orchestration (None if a client or an entity started it) and its children."""

    parent: str | None
    children: tuple[str, ...]


def read_lineage(events: Sequence[history.HistoryEvent]) -> Lineage:
    """The parent named by the ``ExecutionStarted`` event, and every sub-orchestration created, once each."""
    parent: str | None = None
    children: dict[str, None] = {}  # ordered, without repeats
    for event in events:
        if isinstance(event, history.ExecutionStartedEvent) and parent is None:
            info = event.parent_instance
            started_by = info.orchestration_instance if info is not None else None
            parent = (started_by.instance_id or None) if started_by is not None else None
        elif isinstance(event, history.SubOrchestrationInstanceCreatedEvent) and event.instance_id:
            children.setdefault(event.instance_id, None)
    return Lineage(parent, tuple(children))


def child_statuses(
    client: TaskHubGrpcClient, parent_id: str, children: Sequence[str], limit: int = MAX_CHILDREN_SHOWN
) -> list[dict[str, Any]]:
    """``{"instanceId", "runtimeStatus"}`` for the first ``limit`` children (``runtimeStatus`` None for a
    child that is gone, e.g. purged)."""
    shown = list(children[:limit])
    statuses: dict[str, str] = {}
    if any(child.startswith(parent_id) for child in shown):  # "<parent>:<hex>", "<parent>-job-<n>", ...
        query = OrchestrationQuery(instance_id_prefix=parent_id, fetch_inputs_and_outputs=False)
        for state in client.get_all_orchestration_states(query):
            statuses[state.instance_id] = runtime_status_name(state.runtime_status)
    for child in shown:
        if child not in statuses:
            state = client.get_orchestration_state(child, fetch_payloads=False)
            if state is not None:
                statuses[child] = runtime_status_name(state.runtime_status)
    return [{"instanceId": child, "runtimeStatus": statuses.get(child)} for child in shown]
