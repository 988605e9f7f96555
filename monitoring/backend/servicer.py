"""The local scheduler's gRPC servicer: the SDK's in-memory backend with durable timers on one thread and
fenced late results (an activity answering for an instance that has already ended is dropped)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import grpc
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.testing.in_memory_backend import OrchestrationInstance

DEFAULT_PORT = 8080
logger = logging.getLogger(__name__)


class TimerQueue:
    """Durable timers on one thread: a heap ordered by due time, instead of a sleeping thread per timer.

    The SDK's servicer starts a thread for every timer and cannot cancel one, so a monitor that leaves a
    guard timer pending in every generation would leave a sleeping thread behind each time (thousands, with
    many long monitors). Here a pending timer is one heap entry.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()  # over an RLock: call_at may start the thread while holding it
        self._generation = 0  # a thread runs while this is the generation it was started with
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        with self._changed:
            return len(self._heap)

    def start(self) -> None:
        """Start firing (again, after :meth:`stop`); timers queued meanwhile fire at once if overdue."""
        with self._changed:
            if self._thread is not None:
                return
            self._generation += 1
            self._thread = threading.Thread(
                target=self._run, args=(self._generation,), name="local-scheduler-timers", daemon=True
            )
            self._thread.start()

    def call_at(self, due: datetime, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the timer thread once the wall clock reaches ``due`` (aware, UTC)."""
        delay = (due - datetime.now(timezone.utc)).total_seconds()
        with self._changed:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._sequence), callback))
            self._changed.notify_all()
            self.start()

    def stop(self) -> None:
        """Stop the thread; timers still pending stay queued for :meth:`start`."""
        with self._changed:
            self._generation += 1
            thread, self._thread = self._thread, None
            self._changed.notify_all()
        if thread is not None:
            thread.join(5)

    def _run(self, generation: int) -> None:
        while True:
            with self._changed:
                while self._generation == generation and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._generation != generation:
                    return
                callback = heapq.heappop(self._heap)[2]
            try:
                callback()
            except Exception:
                logger.exception("A durable timer failed to fire")


class FencedBackend(InMemoryOrchestrationBackend):
    """The SDK's in-memory servicer, with a fence it lacks and cheaper timers.

    The fence: results for a finished instance are dropped. Without it, an activity that answers after its
    instance was terminated wakes the orchestrator again: the runtime status stays Terminated, but the custom
    status moves on (a check counted after the end). The Durable Task Scheduler drops such late results too.

    The timers: one :class:`TimerQueue` thread fires every durable timer (same events, same order).
    """

    def __init__(self, max_history_size: int = 10_000, port: int = DEFAULT_PORT) -> None:
        super().__init__(max_history_size=max_history_size, port=port)
        self.timers = TimerQueue()

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        self.timers.stop()

    def _process_create_timer_action(
        self, instance: OrchestrationInstance, action: pb.OrchestratorAction
    ) -> None:
        """As the SDK's: record ``TimerCreated``, then add ``TimerFired`` when due, unless the run ended."""
        timer_id = action.id
        fire_at = action.createTimer.fireAt.ToDatetime(tzinfo=timezone.utc)
        instance.history.append(helpers.new_timer_created_event(timer_id, fire_at))
        if instance.status == pb.ORCHESTRATION_STATUS_PENDING:
            instance.status = pb.ORCHESTRATION_STATUS_RUNNING
        instance_id = instance.instance_id

        def fire() -> None:
            with self._lock:
                current = self._instances.get(instance_id)
                if current is None or self._is_terminal_status(current.status):
                    return
                current.pending_events.append(helpers.new_timer_fired_event(timer_id, fire_at))
                current.last_updated_at = datetime.now(timezone.utc)
                self._enqueue_orchestration(instance_id)

        self.timers.call_at(fire_at, fire)

    def CompleteActivityTask(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            instance = self._instances.get(request.instanceId)
            if instance is not None and self._is_terminal_status(instance.status):
                logger.info("Dropped a late activity result for finished instance %s", request.instanceId)
                return pb.CompleteTaskResponse()
        return super().CompleteActivityTask(request, context)
