"""Durable timers on one thread: a heap ordered by due time, instead of a sleeping thread per timer."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from monitoring.scheduler.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger(__name__)


class TimerQueue:
    """Callbacks due at wall-clock times, fired in order on one thread (or by :meth:`fire_due`).

    The SDK's servicer starts a thread for every timer and cannot cancel one, so a monitor that leaves a
    guard timer pending in every generation would leave a sleeping thread behind each time (thousands, with
    many long monitors). Here a pending timer is one heap entry. What a timer holds (the event it delivers)
    is kept by whoever set it; the queue only knows when to call back.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._heap: list[tuple[Any, ...]] = []  # (due, sequence, callback, *args)
        self._sequence = itertools.count(-(1 << 62))  # below every caller's positive ``order``
        self._changed = threading.Condition()
        self._generation = 0  # a thread runs while this is the generation it was started with
        self._thread: threading.Thread | None = None
        clock.on_advance(self._wake)

    def __len__(self) -> int:
        with self._changed:
            return len(self._heap)

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

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

    def call_at(
        self, due: float, callback: Callable[..., None], *args: object, order: int | None = None
    ) -> None:
        """Run ``callback(*args)`` once the clock reaches ``due`` (wall-clock seconds). Arguments rather than
        a closure: a pending timer is one flat tuple (100,000 waiting monitors hold twice as many).

        Timers due at the same time run in the order they were set, or by ``order``: a positive number no
        other pending timer has (a row id the caller holds anyway, instead of a number of the queue's)."""
        with self._changed:
            tiebreak = next(self._sequence) if order is None else order
            heapq.heappush(self._heap, (due, tiebreak, callback, *args))
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop the thread; timers still pending stay queued for :meth:`start`."""
        with self._changed:
            self._generation += 1
            thread, self._thread = self._thread, None
            self._changed.notify_all()
        if thread is not None:
            thread.join(5)

    def fire_due(self) -> int:
        """Run every callback that is due now, in order; returns how many ran."""
        fired = 0
        while True:
            with self._changed:
                if not self._heap or self._heap[0][0] > self.clock.time():
                    return fired
                entry = heapq.heappop(self._heap)
            self._call(entry[2], entry[3:])
            fired += 1

    @staticmethod
    def _call(callback: Callable[..., None], args: tuple[object, ...]) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("A durable timer failed to fire")

    def _run(self, generation: int) -> None:
        while True:
            with self._changed:
                while self._generation == generation and (
                    not self._heap or self._heap[0][0] > self.clock.time()
                ):
                    self._changed.wait(self._heap[0][0] - self.clock.time() if self._heap else None)
                if self._generation != generation:
                    return
                entry = heapq.heappop(self._heap)
            self._call(entry[2], entry[3:])
