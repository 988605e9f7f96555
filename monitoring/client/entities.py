"""The task hub's durable entities and the SDK's schedules, as the dashboard lists them.

:func:`entity_row` and :func:`schedule_row` are pure (an entity's metadata, a schedule's description in; one
JSON-ready row out); :func:`list_entities` and :func:`list_schedules` ask the scheduler through the SDK's
own client (``get_all_entities`` with an :class:`~durabletask.client.EntityQuery`, and
:meth:`durabletask.scheduled.ScheduledTaskClient.list_schedules`). An entity's state is user data: it is
shown as its JSON text, cut to :data:`STATE_SHOWN` characters, and never parsed into anything.
"""

from __future__ import annotations

from typing import Any

from durabletask.client import EntityQuery, TaskHubGrpcClient
from durabletask.entities import EntityMetadata
from durabletask.scheduled import ScheduleDescription, ScheduledTaskClient, ScheduleQuery
from durabletask.scheduled.models import ScheduleState
from durabletask.scheduled.schedule_entity import ENTITY_NAME as SCHEDULE_ENTITY_NAME

from monitoring.core.payloads import to_iso

STATE_SHOWN = 200
PAGE_SIZE = 500  # entities read per query page (the SDK follows the continuation tokens)

__all__ = [
    "SCHEDULE_ENTITY_NAME",
    "entity_prefix",
    "entity_row",
    "list_entities",
    "list_schedules",
    "schedule_row",
]


def entity_prefix(search: str) -> str:
    """The entity id prefix a search means: ``counter`` -> ``@counter`` (every entity whose name starts
    so), ``counter@ab`` -> ``@counter@ab`` (keys starting ``ab``). Names are lower case, as the SDK keeps
    them; keys keep their case."""
    name, at, key = search.removeprefix("@").partition("@")
    return f"@{name.lower()}{at}{key}"


def shortened(text: str | None, limit: int = STATE_SHOWN) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def entity_row(metadata: EntityMetadata) -> dict[str, Any]:
    """One entity: id, name, key, last modified, backlog, lock holder, and its state as (short) JSON text."""
    raw = metadata.get_state() if metadata.includes_state else None
    state = raw if isinstance(raw, str) or raw is None else str(raw)
    # The SDK's get_locked_by() parses the holder as an entity id, but an orchestration holds the lock.
    locked_by = getattr(metadata, "_locked_by", None) or None
    return {
        "id": str(metadata.id),
        "name": metadata.id.entity,
        "key": metadata.id.key,
        "lastModified": to_iso(metadata.last_modified),
        "backlog": metadata.backlog_queue_size,
        "lockedBy": locked_by,
        "state": shortened(state),
        "stateLength": None if state is None else len(state),
        "isSchedule": metadata.id.entity == SCHEDULE_ENTITY_NAME,
    }


def list_entities(client: TaskHubGrpcClient, search: str = "") -> list[dict[str, Any]]:
    """Every entity with state whose id starts as ``search`` says (:func:`entity_prefix`), sorted by id."""
    query = EntityQuery(
        instance_id_starts_with=entity_prefix(search) if search else None,
        include_state=True,
        page_size=PAGE_SIZE,
    )
    rows = [entity_row(metadata) for metadata in client.get_all_entities(query)]
    return sorted(rows, key=lambda row: row["id"])


def _seconds(description: ScheduleDescription) -> float | None:
    return None if description.interval is None else description.interval.total_seconds()


def schedule_row(description: ScheduleDescription) -> dict[str, Any]:
    """One schedule: its id, the orchestration it starts, how often, its status, last and next run."""
    status = description.status
    return {
        "id": description.schedule_id,
        "orchestrationName": description.orchestration_name,
        "intervalSeconds": _seconds(description),
        "status": getattr(status, "value", None) or str(status),
        "lastRunAt": to_iso(description.last_run_at) if description.last_run_at else None,
        "nextRunAt": to_iso(description.next_run_at) if description.next_run_at else None,
        "startAt": to_iso(description.start_at) if description.start_at else None,
        "endAt": to_iso(description.end_at) if description.end_at else None,
    }


def list_schedules(client: TaskHubGrpcClient, search: str = "") -> list[dict[str, Any]]:
    """Every schedule whose id starts with ``search``, sorted by id, through the SDK's schedule client.

    A schedule entity whose state the SDK cannot read (written by someone else) makes ``list_schedules``
    raise; then each schedule entity is read on its own and an unreadable one listed as ``unreadable``."""
    query = ScheduleQuery(schedule_id_prefix=search or None, page_size=PAGE_SIZE)
    try:
        descriptions = ScheduledTaskClient(client).list_schedules(query)
        rows = [schedule_row(description) for description in descriptions]
    except (ValueError, TypeError, KeyError, AttributeError):
        rows = _schedules_one_by_one(client, search)
    return sorted(rows, key=lambda row: row["id"])


def _schedules_one_by_one(client: TaskHubGrpcClient, search: str) -> list[dict[str, Any]]:
    query = EntityQuery(
        instance_id_starts_with=f"@{SCHEDULE_ENTITY_NAME}@{search}", include_state=True, page_size=PAGE_SIZE
    )
    rows = []
    for metadata in client.get_all_entities(query):
        try:
            state = metadata.get_typed_state(ScheduleState)
            if state is None or state.schedule_configuration is None:
                continue
            rows.append(schedule_row(state.to_description()))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            unreadable = dict.fromkeys(("orchestrationName", "intervalSeconds", "lastRunAt", "nextRunAt"))
            rows.append(
                unreadable
                | {
                    "id": metadata.id.key,
                    "status": "unreadable",
                    "problem": f"{type(error).__name__}: {error}",
                }
            )
    return rows
