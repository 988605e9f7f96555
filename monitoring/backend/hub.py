"""The local scheduler's task hub: instances, their events and work, kept in memory and in a store.

:class:`Hub` is what the gRPC servicer (:mod:`monitoring.backend.servicer`) calls: the client operations
are here, the worker side in :mod:`monitoring.backend.dispatch`. On start it rebuilds itself from the
store (every lease is void after a restart: what was out with a worker is queued again); a sweeper
thread expires leases and purges finished instances past their retention.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.backend.dispatch import Dispatch
from monitoring.backend.state import History, HubOptions, Instance, Task
from monitoring.backend.store import Op, Store, StoreError

logger = logging.getLogger("monitoring.backend.hub")


class HubError(Exception):
    """A request the hub refuses; ``code`` is the gRPC status name to answer with."""

    code = "FAILED_PRECONDITION"


class NotFound(HubError):
    code = "NOT_FOUND"


class AlreadyExists(HubError):
    code = "ALREADY_EXISTS"


class Unavailable(HubError):
    """The scheduler cannot keep the change (its state file failed, or it is stopping)."""

    code = "UNAVAILABLE"


class LimitReached(HubError):
    """A cap was reached: the request is refused (RESOURCE_EXHAUSTED; the HTTP API answers 429)."""

    code = "RESOURCE_EXHAUSTED"


class Hub(Dispatch):
    def __init__(self, store: Store | None = None, options: HubOptions | None = None) -> None:
        super().__init__(store or Store(), options or HubOptions())
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()
        with self._lock:
            self._load()

    # --- life cycle -------------------------------------------------------------------------------------

    def _load(self) -> None:
        loaded = self.store.load()
        boot = int(loaded.meta.get("boot", "0")) + 1
        if self.store.durable:
            self._epoch = f"b{boot}"  # tokens stay unique across restarts on the same state
            self.store.wait(self.store.submit([("meta", "boot", str(boot))]))
        now = time.time()
        top = 0
        for row in loaded.instances:
            instance = Instance.from_row(row)
            for blob in loaded.history.get(instance.instance_id, ()):
                instance.history.append(blob)
            instance.history_in_store = instance.terminal
            self.instances[instance.instance_id] = instance
        for row_id, instance_id, execution, visible_at, event in loaded.events:
            top = max(top, row_id)
            instance = self.instances.get(instance_id)
            if instance is None or instance.terminal or instance.execution != execution:
                continue
            if visible_at > now:
                self._hold_timer(instance, row_id, event, visible_at)
            else:
                instance.inbox.append((row_id, event))
        for row in loaded.tasks:
            task = Task(*row)
            top = max(top, task.id)
            instance = self.instances.get(task.instance_id)
            if instance is not None and not instance.terminal and instance.execution == task.execution:
                self.tasks[task.id] = task
                self._task_queue.append(task.id)
        self._ids = itertools.count(top + 1)
        for instance in self.instances.values():
            self._enqueue(instance)
        if loaded.instances:
            active = sum(not i.terminal for i in self.instances.values())
            logger.info(
                "Loaded %d instance(s) (%d active, %d activity task(s) queued) from %s",
                len(self.instances),
                active,
                len(self.tasks),
                self.store.path,
            )

    def start(self) -> None:
        self.stopping = False
        self.store.start()
        self.timers.start()
        if self._sweeper is None:
            self._stop_sweeping.clear()
            self._sweeper = threading.Thread(target=self._sweep, name="local-scheduler-sweeper", daemon=True)
            self._sweeper.start()

    def begin_stop(self) -> None:
        """End every worker stream and wait; calls still in progress may finish and commit."""
        with self._lock:
            self.stopping = True
            self._work.notify_all()
            self._changed.notify_all()

    def stop(self) -> None:
        """:meth:`begin_stop`, then stop the timers and the sweeper, and commit what is queued."""
        self.begin_stop()
        self._stop_sweeping.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
            self._sweeper = None
        self.timers.stop()
        self.store.close()

    def _sweep(self) -> None:
        rounds = 0
        while not self._stop_sweeping.wait(self.options.sweep_seconds):
            try:
                self.expire_leases()
                rounds += 1
                if rounds % 10 == 0:
                    self.purge_expired()
                    self.release_ended_histories()
            except Exception:
                logger.exception("The scheduler's sweeper failed")

    def purge_expired(self, now: float | None = None) -> int:
        """Purge finished instances past the retention, and the oldest beyond the cap; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted(
                (i for i in self.instances.values() if i.terminal), key=lambda i: i.completed or i.updated
            )
            cutoff = now - self.options.retention_seconds
            count = sum(1 for i in finished if (i.completed or i.updated) <= cutoff)
            count = max(count, len(finished) - self.options.max_finished_instances)
            ops: list[Op] = []
            for instance in finished[:count]:
                del self.instances[instance.instance_id]
                ops.append(("purge", instance.instance_id))
            if ops:
                self.store.submit(ops)
        if count:
            logger.info("Purged %d finished instance(s) past the retention", count)
        return count

    def release_ended_histories(self, now: float | None = None) -> int:
        """With a state file, keep in memory only the histories of active and recently ended instances;
        returns how many were let go (read from the file when asked)."""
        if not self.store.durable:
            return 0
        cutoff = (time.time() if now is None else now) - self.options.keep_ended_history_seconds
        with self._lock:
            ended = [
                i
                for i in self.instances.values()
                if i.terminal and not i.history_in_store and (i.completed or i.updated) <= cutoff
            ]
            for instance in ended:
                instance.history, instance.history_in_store = History(), True
        return len(ended)

    def commit(self, ticket: int) -> None:
        """Wait until the step with ``ticket`` is in the store (see :meth:`Store.wait`); a store that
        failed or stopped raises :class:`Unavailable`."""
        try:
            self.store.wait(ticket)
        except StoreError as error:
            raise Unavailable(str(error)) from None

    # --- client operations ------------------------------------------------------------------------------

    def create(self, request: pb.CreateInstanceRequest, instance_id: str) -> int:
        now = time.time()
        with self._lock:
            existing = self.instances.get(instance_id)
            ops: list[Op] = []
            if existing is not None:
                replaceable = list(request.orchestrationIdReusePolicy.replaceableStatus)
                if not existing.terminal or existing.status not in replaceable:
                    raise AlreadyExists(f"orchestration instance {instance_id!r} already exists")
                del self.instances[instance_id]
                ops.append(("purge", instance_id))
            limit = self.options.max_active_instances
            # Counted only when it could matter: starts stay O(1) however many instances the hub holds.
            held = self.instances.values()
            active = 0 if len(held) < limit else sum(not instance.terminal for instance in held)
            if active >= limit:
                raise LimitReached(
                    f"the local scheduler already runs {active} instances (its limit); "
                    "wait for some to finish or terminate some"
                )
            version = request.version.value if request.HasField("version") else None
            input_ = request.input.value if request.HasField("input") else None
            tags = dict(request.tags) or None
            start = now
            if request.HasField("scheduledStartTimestamp"):
                start = max(now, request.scheduledStartTimestamp.ToDatetime(tzinfo=timezone.utc).timestamp())
            instance = Instance(
                instance_id, request.name, version, pb.ORCHESTRATION_STATUS_PENDING, input_, now, now
            )
            instance.tags = tags
            self.instances[instance_id] = instance
            ops.append(("instance", *instance.row()))
            started = helpers.new_orchestrator_started_event(datetime.fromtimestamp(start, timezone.utc))
            execution = helpers.new_execution_started_event(
                request.name, instance_id, input_, tags, version=version
            )
            due = start if start > now else None
            self._add_event(instance, started, ops, due)
            self._add_event(instance, execution, ops, due)
            return self.store.submit(ops)

    def get(self, instance_id: str, include_payloads: bool = True) -> pb.OrchestrationState | None:
        with self._lock:
            instance = self.instances.get(instance_id)
            return instance.state(include_payloads) if instance is not None else None

    def _require(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise NotFound(f"orchestration instance {instance_id!r} not found")
        return instance

    def raise_event(self, instance_id: str, name: str, data: str | None) -> int:
        with self._lock:
            instance = self._require(instance_id)
            if instance.terminal:
                return 0  # as the SDK and the Durable Task Scheduler do: an ended instance takes no events
            self._admit(instance, name)
            ops: list[Op] = []
            self._add_event(instance, helpers.new_event_raised_event(name, data), ops)
            instance.updated = time.time()
            return self.store.submit(ops)

    def _admit(self, instance: Instance, name: str) -> None:
        """Refuse an event beyond the instance's caps (see :class:`HubOptions`)."""
        waiting = len(instance.inbox)
        limit = self.options.max_pending_events
        if waiting >= limit:
            raise LimitReached(
                f"instance {instance.instance_id!r} already has {waiting} events waiting "
                f"(the limit is {limit}); try again once it has processed them"
            )
        held = len(instance.history) + waiting
        cap = self.options.max_history_events
        soft = cap - self.options.history_reserve
        if held < soft:
            return
        key = name.casefold()
        holds_name = any(
            event.eventRaised.name.casefold() == key
            for event in [*instance.history.events(), *(e for _, e in instance.inbox)]
            if event.HasField("eventRaised")
        )
        if holds_name or held >= cap - self.options.history_reserve // 10:
            raise LimitReached(
                f"instance {instance.instance_id!r} holds {held} events (the limit is {cap}, with room kept "
                f"for its own work and for events of a new name); it takes no more {name!r} events"
            )

    def terminate(self, instance_id: str, output: str | None) -> int:
        with self._lock:
            ops: list[Op] = []
            if not self._terminate_locked(self._require(instance_id), output, ops):
                return 0
            return self.store.submit(ops)

    def suspend(self, instance_id: str, reason: str | None, resume: bool = False) -> int:
        with self._lock:
            instance = self._require(instance_id)
            if instance.terminal:
                raise HubError(f"orchestration instance {instance_id!r} has already ended")
            if not resume and instance.status == pb.ORCHESTRATION_STATUS_SUSPENDED:
                return 0
            event = (helpers.new_resume_event if resume else helpers.new_suspend_event)(encoded_input=reason)
            ops: list[Op] = []
            self._add_event(instance, event, ops)
            return self.store.submit(ops)

    def purge(self, instance_ids: list[str]) -> tuple[int, int]:
        """Delete the ended ones of ``instance_ids`` (active ones stay); returns (deleted, ticket)."""
        with self._lock:
            doomed = [i for i in instance_ids if i in self.instances and self.instances[i].terminal]
            for instance_id in doomed:
                del self.instances[instance_id]
            return len(doomed), (self.store.submit([("purge", i) for i in doomed]) if doomed else 0)

    def select(self, keep: Callable[[Instance], bool]) -> list[Instance]:
        """Instances for which ``keep`` is true, oldest first (ties by id), for queries and purges."""
        with self._lock:
            found = [i for i in self.instances.values() if keep(i)]
        found.sort(key=lambda i: (i.created, i.instance_id))
        return found

    def history(self, instance_id: str) -> list[pb.HistoryEvent]:
        with self._lock:
            instance = self._require(instance_id)
            if not instance.history_in_store:
                return instance.history.events()
        return self.store.read_history(instance_id)

    def wait_for(
        self, instance_id: str, done: Callable[[Instance], bool], timeout: float | None
    ) -> pb.OrchestrationState | None:
        """The instance's state once ``done`` holds (None if it does not exist, or on timeout/stop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                instance = self.instances.get(instance_id)
                if instance is None:
                    return None
                if done(instance):
                    return instance.state(True)
                remaining = 30.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0 or self.stopping:
                    return None
                self._changed.wait(min(remaining, 30.0))
