"""The client side of the task hub: start, read, signal, suspend, terminate and purge instances.

Each operation returns a store ticket; the servicer answers once the change is committed
(:meth:`~monitoring.scheduler.hub.TaskHub.commit`), so what a client was told happened survives a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler import rewind
from monitoring.scheduler.hub import AlreadyExists, HubError, LimitReached, NotFound, TaskHub
from monitoring.scheduler.queries import by_creation
from monitoring.scheduler.records import Instance
from monitoring.scheduler.store import Op


class Control:
    """Client operations over a :class:`~monitoring.scheduler.hub.TaskHub`."""

    def __init__(self, hub: TaskHub) -> None:
        self.hub = hub

    def create(self, request: pb.CreateInstanceRequest, instance_id: str) -> int:
        hub = self.hub
        with hub.lock:
            hub.writable()
            now = hub.now()
            existing = hub.instances.get(instance_id)
            ops: list[Op] = []
            if existing is not None:
                replaceable = list(request.orchestrationIdReusePolicy.replaceableStatus)
                if not existing.terminal or existing.status not in replaceable:
                    raise AlreadyExists(f"orchestration instance {instance_id!r} already exists")
                hub.remove(instance_id, ops)
            hub.room_for_one_more()
            version = request.version.value if request.HasField("version") else None
            input_ = request.input.value if request.HasField("input") else None
            start = now
            if request.HasField("scheduledStartTimestamp"):
                start = max(now, request.scheduledStartTimestamp.ToDatetime(tzinfo=timezone.utc).timestamp())
            instance = Instance(
                instance_id, request.name, version, pb.ORCHESTRATION_STATUS_PENDING, input_, now, now
            )
            instance.tags = dict(request.tags) or None
            hub.add_instance(instance, start, ops)
            return hub.store.submit(ops)

    def get(self, instance_id: str, include_payloads: bool = True) -> pb.OrchestrationState | None:
        with self.hub.lock:
            instance = self.hub.instances.get(instance_id)
            return instance.state(include_payloads) if instance is not None else None

    def require(self, instance_id: str) -> Instance:
        instance = self.hub.instances.get(instance_id)
        if instance is None:
            raise NotFound(f"orchestration instance {instance_id!r} not found")
        return instance

    def raise_event(self, instance_id: str, name: str, data: str | None) -> int:
        hub = self.hub
        with hub.lock:
            instance = self.require(instance_id)
            if instance.terminal:
                return 0  # as the SDK and the Durable Task Scheduler do: an ended instance takes no events
            hub.writable()
            self._admit(instance, name)
            ops: list[Op] = []
            hub.deliver(instance, helpers.new_event_raised_event(name, data), ops)
            instance.updated = hub.now()
            return hub.store.submit(ops)

    def _admit(self, instance: Instance, name: str) -> None:
        """Refuse an event beyond the instance's caps (see :class:`HubOptions`)."""
        options = self.hub.options
        waiting = len(instance.inbox)
        if waiting >= options.max_pending_events:
            raise LimitReached(
                f"instance {instance.instance_id!r} already has {waiting} events waiting "
                f"(the limit is {options.max_pending_events}); try again once it has processed them"
            )
        held = len(instance.history) + waiting
        cap = options.max_history_events
        if held < cap - options.history_reserve:
            return
        key = name.casefold()
        holds_name = any(
            event.eventRaised.name.casefold() == key
            for event in [*self.hub.histories.warm(instance).events(), *(e for _, e in instance.inbox)]
            if event.HasField("eventRaised")
        )
        if holds_name or held >= cap - options.history_reserve // 10:
            raise LimitReached(
                f"instance {instance.instance_id!r} holds {held} events (the limit is {cap}, with room kept "
                f"for its own work and for events of a new name); it takes no more {name!r} events"
            )

    def terminate(self, instance_id: str, output: str | None, recursive: bool = False) -> int:
        """End the instance (and with ``recursive`` its active sub-orchestrations) as Terminated."""
        hub = self.hub
        with hub.lock:
            instance = self.require(instance_id)
            if instance.terminal:
                return 0
            hub.writable()
            ops: list[Op] = []
            hub.terminate(instance, output, ops, recursive)
            return hub.store.submit(ops)

    def rewind(self, instance_id: str, reason: str | None) -> int:
        """Run a failed instance again from its last good state (see :mod:`~.rewind`)."""
        hub = self.hub
        with hub.lock:
            instance = self.require(instance_id)
            hub.writable()
            ops: list[Op] = []
            rewind.prepare(hub, instance, reason, ops)
            return hub.store.submit(ops)

    def suspend(self, instance_id: str, reason: str | None, resume: bool = False) -> int:
        hub = self.hub
        with hub.lock:
            instance = self.require(instance_id)
            if instance.terminal:
                raise HubError(f"orchestration instance {instance_id!r} has already ended")
            if not resume and instance.status == pb.ORCHESTRATION_STATUS_SUSPENDED:
                return 0
            hub.writable()
            event = (helpers.new_resume_event if resume else helpers.new_suspend_event)(encoded_input=reason)
            ops: list[Op] = []
            hub.deliver(instance, event, ops)
            return hub.store.submit(ops)

    def purge(self, instance_ids: list[str], recursive: bool = False) -> tuple[int, int]:
        """Delete the ended ones of ``instance_ids`` (active ones stay), with ``recursive`` their ended
        sub-orchestrations too; returns (deleted, ticket)."""
        hub = self.hub
        with hub.lock:
            found = [i for i in dict.fromkeys(instance_ids) if (x := hub.instances.get(i)) and x.terminal]
            doomed: list[str] = []
            while found:
                instance_id = found.pop()
                doomed.append(instance_id)
                if recursive:
                    found += [c.instance_id for c in hub.instances.children(instance_id) if c.terminal]
            doomed = list(dict.fromkeys(doomed))
            if not doomed:
                return 0, 0
            hub.writable()
            ops: list[Op] = []
            for instance_id in doomed:
                hub.remove(instance_id, ops)
            return len(doomed), hub.store.submit(ops)

    def select(
        self, keep: Callable[[Instance], bool], order: Callable[[Instance], tuple[int, str]] = by_creation
    ) -> list[Instance]:
        """Instances for which ``keep`` is true, in ``order`` (oldest first, ties by id), for queries and
        purges."""
        with self.hub.lock:
            found = [i for i in self.hub.instances if keep(i)]
        found.sort(key=order)
        return found

    def history(self, instance_id: str) -> list[pb.HistoryEvent]:
        with self.hub.lock:
            instance = self.require(instance_id)
            if not instance.history_in_store:
                return instance.history.events()
        return self.hub.store.read_history(instance_id)  # not warmed: a query keeps nothing in memory

    def wait_for(
        self, instance_id: str, done: Callable[[Instance], bool], timeout: float | None
    ) -> pb.OrchestrationState | None:
        """The instance's state once ``done`` holds (None if it does not exist, or on timeout/stop)."""
        hub = self.hub
        deadline = None if timeout is None else time.monotonic() + timeout
        with hub.lock:
            while True:
                instance = hub.instances.get(instance_id)
                if instance is None:
                    return None
                if done(instance):
                    return instance.state(True)
                remaining = 30.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0 or hub.stopping:
                    return None
                hub.changed.wait(min(remaining, 30.0))
