"""Durable entities as a working set: each entity's queue of operations, which entities are ready for a
worker, and the critical sections (locks) orchestrations hold on them. Pure bookkeeping (the caller holds
the hub's lock); :mod:`~monitoring.scheduler.entity_steps` turns it into events and store ops.

While a critical section holds an entity, only the calls of the orchestration that entered it run; every
other operation waits in order until the section ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.records import Entity, LockRequest


def caller(event: pb.HistoryEvent) -> str | None:
    """The orchestration a queued operation answers to (None for a signal)."""
    if event.HasField("entityOperationCalled"):
        return event.entityOperationCalled.parentInstanceId.value or None
    return None


class Entities:
    def __init__(self) -> None:
        self.by_id: dict[str, Entity] = {}
        self._ready: dict[str, None] = {}  # entity ids with operations a worker may take, oldest first
        self.waiting_locks: list[LockRequest] = []  # oldest first

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Entity]:
        return iter(list(self.by_id.values()))

    def get(self, entity_id: str) -> Entity | None:
        return self.by_id.get(entity_id)

    def get_or_add(self, entity_id: str) -> tuple[Entity, bool]:
        """The entity, and whether it is new."""
        entity = self.by_id.get(entity_id)
        if entity is not None:
            return entity, False
        entity = self.by_id[entity_id] = Entity(entity_id)
        return entity, True

    def remove(self, entity_id: str) -> None:
        self.by_id.pop(entity_id, None)
        self._ready.pop(entity_id, None)

    # --- operations ---------------------------------------------------------------------------------------

    def runnable(self, entity: Entity, limit: int) -> list[tuple[int, pb.HistoryEvent]]:
        """The operations a worker may run next, in order: while locked, only the lock owner's calls."""
        if entity.locked_by is None:
            return entity.queue[:limit]
        return [(row, e) for row, e in entity.queue if caller(e) == entity.lock_owner][:limit]

    def enqueue(self, entity: Entity) -> bool:
        """Mark ``entity`` ready if a worker could take it now; True if it became ready."""
        if entity.lease is None and entity.entity_id not in self._ready and self.runnable(entity, 1):
            self._ready[entity.entity_id] = None
            return True
        return False

    def has_ready(self) -> bool:
        return bool(self._ready)

    def next_ready(self, accept: Callable[[Entity], bool]) -> Entity | None:
        """The oldest ready entity ``accept`` allows (its batch is :meth:`runnable`); leaves the others."""
        for entity_id in list(self._ready):
            entity = self.by_id.get(entity_id)
            if entity is None or entity.lease is not None or not self.runnable(entity, 1):
                del self._ready[entity_id]
                continue
            if accept(entity):
                del self._ready[entity_id]
                return entity
        return None

    # --- critical sections --------------------------------------------------------------------------------

    def free_for(self, request: LockRequest) -> bool:
        return all(
            (e := self.by_id.get(entity_id)) is None or e.locked_by in (None, request.section)
            for entity_id in request.entities
        )

    def grant(self, request: LockRequest) -> list[Entity]:
        """Lock every entity of ``request`` for its section; returns them (created if new)."""
        locked = []
        for entity_id in request.entities:
            entity, _ = self.get_or_add(entity_id)
            entity.locked_by, entity.lock_owner = request.section, request.owner
            locked.append(entity)
        return locked

    def grantable(self) -> list[LockRequest]:
        """The waiting requests that can be granted now, oldest first, taken off the waiting list (a
        request granted here may hold entities a later one wants: that one keeps waiting)."""
        granted: list[LockRequest] = []
        for request in list(self.waiting_locks):
            if self.free_for(request):
                self.waiting_locks.remove(request)
                self.grant(request)
                granted.append(request)
        return granted

    def unlock(self, entity_id: str, section: str) -> Entity | None:
        """End ``section``'s hold on ``entity_id``; returns the entity if it was held by it."""
        entity = self.by_id.get(entity_id)
        if entity is None or entity.locked_by != section:
            return None
        entity.locked_by = entity.lock_owner = None
        return entity

    def held_by(self, owner: str) -> list[Entity]:
        return [e for e in self.by_id.values() if e.lock_owner == owner]
