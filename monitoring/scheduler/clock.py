"""The scheduler's clocks, passed in: the wall clock (timestamps, durable timers) and a monotonic one (lease
deadlines). :class:`ManualClock` stands still until told to move, so lease and timer tests need no sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (what timestamps and durable timers use)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward (what lease deadlines use)."""
        ...

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the clock jumps (never, for the system clock)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def on_advance(self, callback: Callable[[], None]) -> None:
        return None


class ManualClock:
    """A clock that moves only by :meth:`advance`; whoever waits on it is woken when it does."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def on_advance(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
        for callback in self._listeners:
            callback()


SYSTEM_CLOCK = SystemClock()
