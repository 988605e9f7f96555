"""The client side of durable entities: signal one, read one, query them page by page, clean the storage.

Like :mod:`~.control`, a change returns a store ticket the servicer commits before it answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timezone

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler import entity_steps
from monitoring.scheduler.hub import HubError, TaskHub
from monitoring.scheduler.queries import DEFAULT_PAGE
from monitoring.scheduler.records import Entity, micros, timestamp
from monitoring.scheduler.store import Op


class InvalidEntityId(HubError):
    code = "INVALID_ARGUMENT"


def check_entity_id(entity_id: str) -> None:
    """An entity id is ``@name@key`` (what ``str(EntityInstanceId(...))`` gives)."""
    name, separator, _ = entity_id[1:].partition("@")
    if not entity_id.startswith("@") or not name or not separator:
        shown = entity_id if len(entity_id) <= 100 else f"{entity_id[:100]}..."
        raise InvalidEntityId(f"{shown!r} is not an entity id (expected @name@key)")


def metadata(entity: Entity, include_state: bool) -> pb.EntityMetadata:
    found = pb.EntityMetadata(
        instanceId=entity.entity_id,
        lastModifiedTime=timestamp(entity.modified),
        backlogQueueSize=len(entity.queue) + len(entity.timers),
    )
    if entity.locked_by is not None:
        found.lockedBy.value = entity.lock_owner or entity.locked_by
    if include_state and entity.state is not None:
        found.serializedState.value = entity.state
    return found


class EntityControl:
    """Entity operations over a :class:`~monitoring.scheduler.hub.TaskHub`."""

    def __init__(self, hub: TaskHub) -> None:
        self.hub = hub

    def signal(self, request: pb.SignalEntityRequest) -> int:
        check_entity_id(request.instanceId)
        hub = self.hub
        with hub.lock:
            hub.writable()
            data = request.input.value if request.HasField("input") else None
            event = entity_steps.signal_event(request.instanceId, request.name, data, request.requestId)
            ops: list[Op] = []
            entity_steps.send(hub, request.instanceId, event, ops, entity_steps.due_time(request))
            return hub.store.submit(ops)

    def get(self, entity_id: str, include_state: bool) -> pb.EntityMetadata | None:
        """The entity, if it exists (it has a state: one only locked or waiting for operations does not)."""
        with self.hub.lock:
            entity = self.hub.entities.get(entity_id)
            if entity is None or entity.state is None:
                return None
            return metadata(entity, include_state)

    def query(self, query: pb.EntityQuery) -> tuple[list[pb.EntityMetadata], str | None]:
        """One page of the entities ``query`` names, by id, and the next page's token (None at the end)."""
        keep = _entity_filter(query)
        after = query.continuationToken.value if query.HasField("continuationToken") else ""
        size = (
            query.pageSize.value if query.HasField("pageSize") and query.pageSize.value > 0 else DEFAULT_PAGE
        )
        with self.hub.lock:
            found = sorted((e for e in self.hub.entities if e.entity_id > after and keep(e)), key=_key)
            page = [metadata(e, query.includeState) for e in found[:size]]
        return page, (found[size - 1].entity_id if len(found) > size else None)

    def clean(self, remove_empty: bool, release_orphaned_locks: bool) -> tuple[int, int, int]:
        """Remove entities with nothing in them, end critical sections whose orchestration is gone;
        returns (removed, released, ticket)."""
        hub = self.hub
        with hub.lock:
            hub.writable()
            ops: list[Op] = []
            released = 0
            if release_orphaned_locks:
                owners = {e.lock_owner for e in hub.entities if e.lock_owner is not None}
                for owner in owners:
                    instance = hub.instances.get(owner)
                    if instance is None or instance.terminal:
                        released += entity_steps.release_locks(hub, owner, ops)
            removed = 0
            if remove_empty:
                for entity in hub.entities:
                    if entity.empty and entity.lease is None:
                        hub.entities.remove(entity.entity_id)
                        ops.append(("entity_del", entity.entity_id))
                        removed += 1
            return removed, released, hub.store.submit(ops) if ops else 0


def _key(entity: Entity) -> str:
    return entity.entity_id


def _entity_filter(query: pb.EntityQuery) -> Callable[[Entity], bool]:
    prefix = query.instanceIdStartsWith.value if query.HasField("instanceIdStartsWith") else ""
    low = _micros(query, "lastModifiedFrom")
    high = _micros(query, "lastModifiedTo")

    def keep(entity: Entity) -> bool:
        modified = micros(entity.modified)
        return (
            entity.entity_id.startswith(prefix)
            and (query.includeTransient or entity.state is not None)
            and (low is None or modified >= low)
            and (high is None or modified < high)
        )

    return keep


def _micros(query: pb.EntityQuery, name: str) -> int | None:
    if not query.HasField(name):
        return None
    return micros(getattr(query, name).ToDatetime(tzinfo=timezone.utc).timestamp())
