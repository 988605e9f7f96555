"""The local scheduler's task hub: the parts that own its state, one lock over them, and the steps they
share (an event reaches an instance, an instance ends, a lease ends).

The parts: :class:`~monitoring.scheduler.instances.Instances`, :class:`~monitoring.scheduler.activities.
Activities`, :class:`~monitoring.scheduler.leases.Leases` (streams, tokens), the durable
:class:`~monitoring.scheduler.timers.TimerQueue`, and the :class:`~monitoring.scheduler.store.Store`. Every
change is applied to the parts in memory and, in the same step, described to the store as ops, so the file
always holds a consistent state the hub can be rebuilt from (:mod:`~monitoring.scheduler.loading`). The
worker side is :mod:`~monitoring.scheduler.dispatch`, the client side :mod:`~monitoring.scheduler.control`.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb

from monitoring.scheduler.activities import Activities
from monitoring.scheduler.clock import SYSTEM_CLOCK, Clock
from monitoring.scheduler.entities import Entities
from monitoring.scheduler.histories import Histories
from monitoring.scheduler.instances import Instances
from monitoring.scheduler.leases import Leases
from monitoring.scheduler.records import HubOptions, Instance, Lease, ParentLink
from monitoring.scheduler.store import Op, Store, StoreError
from monitoring.scheduler.timers import TimerQueue

logger = logging.getLogger("monitoring.scheduler.hub")


class HubError(Exception):
    """A request the hub refuses; ``code`` is the gRPC status name to answer with."""

    code = "FAILED_PRECONDITION"


class NotFound(HubError):
    code = "NOT_FOUND"


class AlreadyExists(HubError):
    code = "ALREADY_EXISTS"


class Unavailable(HubError):
    """The scheduler cannot keep the change (its state file cannot be written, or it is stopping)."""

    code = "UNAVAILABLE"


class LimitReached(HubError):
    """A cap was reached: the request is refused (RESOURCE_EXHAUSTED; the HTTP API answers 429)."""

    code = "RESOURCE_EXHAUSTED"


RELEASE_CHUNK = 2_000  # instances looked at per hold of the lock when histories are let go


class TaskHub:
    """The parts and the lock; see the module docstring. Build one with :func:`~.loading.open_hub`."""

    def __init__(
        self, store: Store | None = None, options: HubOptions | None = None, clock: Clock = SYSTEM_CLOCK
    ):
        self.store = store or Store()
        self.options = options or HubOptions()
        self.clock = clock
        self.lock = threading.RLock()
        self.work = threading.Condition(self.lock)  # a work item may be ready
        self.changed = threading.Condition(self.lock)  # an instance's status changed
        self.instances = Instances()
        self.activities = Activities()
        self.entities = Entities()
        # Called as an instance ends, in the same step (the entities' hook ends its critical sections).
        self.on_end: list[Callable[[TaskHub, Instance, list[Op]], None]] = []
        self.leases = Leases(clock, self.options.lease_seconds)
        self.leases.on_freed = self.work.notify_all
        self.timers = TimerQueue(clock)
        self.histories = Histories(self.store, self.options)
        self._fire_timer = self._fire  # one bound method for every pending timer, not one each
        self.rows = itertools.count(1)  # ids of event, task, entity-operation and lock rows
        self.stopping = False
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()

    # --- saving -----------------------------------------------------------------------------------------

    def writable(self) -> None:
        """Refuse a change the store could not save now (a full disk): nothing is applied."""
        trouble = self.store.trouble
        if trouble is not None:
            raise Unavailable(f"{trouble}: the scheduler takes no changes until it can save them again")

    def commit(self, ticket: int) -> None:
        """Wait until the step with ``ticket`` is in the store; a store that cannot save it, or stopped,
        raises :class:`Unavailable`."""
        try:
            self.store.wait(ticket)
        except StoreError as error:
            raise Unavailable(str(error)) from None

    # --- instances: events, queue, history ----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.time()

    def enqueue(self, instance: Instance) -> None:
        if self.instances.enqueue(instance):
            self.work.notify_all()

    def deliver(
        self, instance: Instance, event: pb.HistoryEvent, ops: list[Op], due: float | None = None
    ) -> None:
        """Give ``instance`` a new event: at once, or (a timer, a scheduled start) once the clock reaches
        ``due``."""
        row_id = next(self.rows)
        now = self.clock.time()
        ops.append(
            ("event", row_id, instance.instance_id, instance.execution, now if due is None else due, event)
        )
        if due is not None and due > now:
            self.hold(instance, row_id, event, due)
        else:
            instance.inbox.append((row_id, event))
            self.enqueue(instance)

    def room_for_one_more(self) -> None:
        """Refuse a new instance beyond ``max_active_instances`` (:class:`LimitReached`)."""
        limit = self.options.max_active_instances
        # Counted only when it could matter: starts stay O(1) however many instances the hub holds.
        active = 0 if len(self.instances) < limit else sum(not i.terminal for i in self.instances)
        if active >= limit:
            raise LimitReached(
                f"the local scheduler already runs {active} instances (its limit); "
                "wait for some to finish or terminate some"
            )

    def add_instance(
        self,
        instance: Instance,
        start: float,
        ops: list[Op],
        parent: tuple[ParentLink, str] | None = None,
    ) -> None:
        """Hold a new ``instance`` and give it its start events, due at ``start``. ``parent``: the link to
        the orchestration that started it as a sub-orchestration, and that orchestration's name."""
        instance.parent = parent[0] if parent else None
        self.instances.add(instance)
        ops.append(("instance", *instance.row()))
        started = helpers.new_orchestrator_started_event(datetime.fromtimestamp(start, timezone.utc))
        execution = helpers.new_execution_started_event(
            instance.name, instance.instance_id, instance.input, instance.tags, version=instance.version
        )
        if parent is not None:
            link, parent_name = parent
            info = execution.executionStarted.parentInstance
            info.taskScheduledId = link.task_id
            info.name.value = parent_name
            info.orchestrationInstance.instanceId = link.instance_id
        due = start if start > self.clock.time() else None
        self.deliver(instance, started, ops, due)
        self.deliver(instance, execution, ops, due)

    def hold(self, instance: Instance, row_id: int, event: pb.HistoryEvent | bytes, due: float) -> None:
        """Keep ``event`` in the timer queue until ``due`` (serialized: a fraction of the message's memory);
        the instance notes its row id, so that :meth:`forget_work` can void it."""
        blob = event if isinstance(event, bytes) else event.SerializeToString()
        instance.timers.append(row_id)
        instance_id, execution = instance.instance_id, instance.execution
        self.timers.call_at(due, self._fire_timer, instance_id, execution, row_id, blob, order=row_id)

    def _fire(self, instance_id: str, execution: int, row_id: int, blob: bytes) -> None:
        with self.lock:
            instance = self.instances.get(instance_id)
            if instance is None or instance.execution != execution or row_id not in instance.timers:
                return
            instance.timers.remove(row_id)
            if instance.terminal:
                return
            instance.receive(row_id, pb.HistoryEvent.FromString(blob))
            self.enqueue(instance)

    def append_history(self, instance: Instance, events: list[pb.HistoryEvent], ops: list[Op]) -> None:
        history = self.histories.warm(instance)
        for event in events:
            blob = event.SerializeToString()
            ops.append(("history", instance.instance_id, history.count, blob))
            history.append(blob)

    # --- leases -------------------------------------------------------------------------------------------

    def release(self, lease: Lease) -> None:
        """A lease ended without an answer: its work item goes back to its queue, for any worker."""
        if lease.kind == "orchestration":
            instance = self.instances.get(str(lease.key))
            if instance is not None and instance.lease == lease.token:
                instance.lease = None
                instance.dispatched = 0
                instance.started_event = None
                self.enqueue(instance)
        elif lease.kind == "activity":
            task = self.activities.get(int(lease.key))
            if task is not None and task.lease == lease.token:
                task.lease = None
                self.activities.requeue(task)
                self.work.notify_all()
        else:
            entity = self.entities.get(str(lease.key))
            if entity is not None and entity.lease == lease.token:
                entity.lease, entity.dispatched = None, []
                if self.entities.enqueue(entity):
                    self.work.notify_all()

    # --- ending an instance -------------------------------------------------------------------------------

    def forget_work(self, instance: Instance, ops: list[Op]) -> None:
        """Drop what ``instance`` still had queued or out with workers (its end, or a new execution)."""
        if instance.lease is not None:
            self.leases.revoke(instance.lease)
            instance.lease = None
        for task in self.activities.of_instance(instance.instance_id):
            if task.lease is not None:
                self.leases.revoke(task.lease)
            self.activities.remove(task)
        instance.dispatched = 0
        instance.started_event = None
        instance.timers.clear()  # their callbacks find nothing to fire
        ops.append(("tasks_clear", instance.instance_id))
        instance.inbox.clear()
        ops.append(("events_clear", instance.instance_id))

    def finish(
        self,
        instance: Instance,
        status: int,
        output: str | None,
        failure: pb.TaskFailureDetails | None,
        ops: list[Op],
    ) -> None:
        """Record that ``instance`` ended (its history already holds what led there)."""
        instance.status = status
        instance.output = output
        instance.failure = failure
        instance.completed = instance.updated = self.clock.time()
        self.forget_work(instance, ops)
        self.append_history(instance, [helpers.new_execution_completed_event(status, output, failure)], ops)  # type: ignore[arg-type]
        self._report_to_parent(instance, ops)
        for hook in self.on_end:
            hook(self, instance, ops)
        self.changed.notify_all()

    def _report_to_parent(self, child: Instance, ops: list[Op]) -> None:
        """A sub-orchestration ended: its parent's execution that started it gets its result or failure."""
        link = child.parent
        parent = self.instances.get(link.instance_id) if link is not None else None
        if link is None or parent is None or parent.terminal or parent.execution != link.execution:
            return
        if child.status == pb.ORCHESTRATION_STATUS_COMPLETED:
            event = helpers.new_sub_orchestration_completed_event(link.task_id, child.output)
        else:
            failure = child.failure
            if failure is None:  # terminated: no failure of its own to pass on
                failure = pb.TaskFailureDetails(
                    errorType="SubOrchestrationTerminated",
                    errorMessage=f"sub-orchestration {child.instance_id!r} was terminated",
                )
            event = pb.HistoryEvent(
                eventId=-1,
                subOrchestrationInstanceFailed=pb.SubOrchestrationInstanceFailedEvent(
                    taskScheduledId=link.task_id, failureDetails=failure
                ),
            )
            event.timestamp.GetCurrentTime()
        self.deliver(parent, event, ops)

    def terminate(
        self, instance: Instance, output: str | None, ops: list[Op], recursive: bool = False
    ) -> bool:
        """End ``instance`` as Terminated at once, whoever holds it (a late completion is then dropped);
        ``recursive``: its active sub-orchestrations too, and theirs."""
        if instance.terminal:
            return False
        if recursive:
            for child in self.instances.children(instance.instance_id):
                self.terminate(child, output, ops, recursive=True)
        self.forget_work(instance, ops)
        started = helpers.new_orchestrator_started_event(
            datetime.fromtimestamp(self.clock.time(), timezone.utc)
        )
        terminated = helpers.new_terminated_event(encoded_output=output)
        self.append_history(instance, [started, terminated, helpers.new_orchestrator_completed_event()], ops)
        self.finish(instance, pb.ORCHESTRATION_STATUS_TERMINATED, output, None, ops)
        ops.append(("instance", *instance.row()))
        return True

    def remove(self, instance_id: str, ops: list[Op]) -> None:
        """Delete an instance and everything it holds (purge, retention, an id reused)."""
        if self.instances.remove(instance_id) is not None:
            ops.append(("purge", instance_id))

    # --- life cycle -----------------------------------------------------------------------------------------

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
        with self.lock:
            self.stopping = True
            self.work.notify_all()
            self.changed.notify_all()

    def stop(self) -> None:
        """:meth:`begin_stop`, then stop the timers and the sweeper, and commit what is queued."""
        self.begin_stop()
        self._stop_sweeping.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
            self._sweeper = None
        self.timers.stop()
        self.store.close()

    def expire_leases(self) -> int:
        """Put back every item whose lease deadline passed; returns how many."""
        with self.lock:
            expired = self.leases.expired()
            for lease in expired:
                self.release(lease)
        if expired:
            logger.warning("%d work item lease(s) expired: back in the queue", len(expired))
        return len(expired)

    def _sweep(self) -> None:
        rounds = 0
        while not self._stop_sweeping.wait(self.options.sweep_seconds):
            try:
                self.expire_leases()
                rounds += 1
                if rounds % 10 == 0 and self.store.trouble is None:
                    self.purge_expired()
                    self.release_histories()
            except Exception:
                logger.exception("The scheduler's sweeper failed")

    def purge_expired(self, now: float | None = None) -> int:
        """Purge finished instances past the retention, and the oldest beyond the cap; returns how many."""
        now = self.clock.time() if now is None else now
        with self.lock:
            finished = sorted(
                (i for i in self.instances if i.terminal), key=lambda i: i.completed or i.updated
            )
            cutoff = now - self.options.retention_seconds
            count = sum(1 for i in finished if (i.completed or i.updated) <= cutoff)
            count = max(count, len(finished) - self.options.max_finished_instances)
            ops: list[Op] = []
            for instance in finished[:count]:
                self.remove(instance.instance_id, ops)
            if ops:
                self.store.submit(ops)
        if count:
            logger.info("Purged %d finished instance(s) past the retention", count)
        return count

    def release_histories(self, now: float | None = None) -> int:
        """With a state file, let go of the histories of instances that ended or wait (see
        :mod:`~monitoring.scheduler.histories`); returns how many."""
        with self.lock:
            everyone = list(self.instances)
            cutoffs = self.histories.cutoffs(self.clock.time() if now is None else now)
        if cutoffs is None:
            return 0
        released = 0
        for start in range(0, len(everyone), RELEASE_CHUNK):
            with self.lock:  # a chunk at a time: dispatches and timers go on in between
                released += self.histories.release(everyone[start : start + RELEASE_CHUNK], *cutoffs)
        return released
