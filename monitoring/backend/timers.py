"""Durable timers on one thread: a heap ordered by due time, instead of a sleeping thread per timer."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

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
