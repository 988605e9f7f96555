"""Orchestration instances: every instance of the task hub, the parent -> children index of
sub-orchestrations, and the queue of instances ready for an orchestrator turn."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator

from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.records import Instance

RESUMING = ("executionResumed", "executionTerminated")  # what a suspended instance still runs for


class Instances:
    """The instances (the caller holds the hub's lock)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Instance] = {}
        self._children: dict[str, set[str]] = {}
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.by_id.values())

    def get(self, instance_id: str) -> Instance | None:
        return self.by_id.get(instance_id)

    def add(self, instance: Instance) -> None:
        instance.name = sys.intern(instance.name)  # one string for every instance of an orchestrator
        self.by_id[instance.instance_id] = instance
        if instance.parent is not None:
            self._children.setdefault(instance.parent.instance_id, set()).add(instance.instance_id)

    def remove(self, instance_id: str) -> Instance | None:
        instance = self.by_id.pop(instance_id, None)
        if instance is not None and instance.parent is not None:
            siblings = self._children.get(instance.parent.instance_id)
            if siblings is not None:
                siblings.discard(instance_id)
                if not siblings:
                    del self._children[instance.parent.instance_id]
        return instance

    def children(self, instance_id: str) -> list[Instance]:
        """The sub-orchestrations ``instance_id`` started that the hub still holds."""
        return [
            self.by_id[child] for child in sorted(self._children.get(instance_id, ())) if child in self.by_id
        ]

    @staticmethod
    def runnable(instance: Instance) -> bool:
        """True if an orchestrator turn can run now: events wait, nobody holds it, it has started (a
        scheduled start holds it back), and it is not suspended, unless a resume or terminate waits."""
        if instance.terminal or instance.lease is not None or not instance.inbox or not instance.started:
            return False
        if instance.status != pb.ORCHESTRATION_STATUS_SUSPENDED:
            return True
        return any(event.WhichOneof("eventType") in RESUMING for _, event in instance.inbox)

    def enqueue(self, instance: Instance) -> bool:
        """Queue ``instance`` if it can run and is not queued; True if it was queued now."""
        if instance.instance_id in self._queued or not self.runnable(instance):
            return False
        self._ready.append(instance.instance_id)
        self._queued.add(instance.instance_id)
        return True

    def next_ready(self, accepts: Callable[[Instance], bool]) -> Instance | None:
        """Take the first queued instance that can still run and that ``accepts`` (a stream's filter)
        takes; those it does not take stay queued, in order."""
        skipped: list[str] = []
        found = None
        while self._ready:
            instance_id = self._ready.popleft()
            self._queued.discard(instance_id)
            instance = self.by_id.get(instance_id)
            if instance is None or not self.runnable(instance):
                continue  # queued again when it can run
            if not accepts(instance):
                skipped.append(instance_id)
                continue
            found = instance
            break
        self._ready.extend(skipped)
        self._queued.update(skipped)
        return found
