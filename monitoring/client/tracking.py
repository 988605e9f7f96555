"""Follow many monitors at once from their polled custom status, keeping timestamped samples for plots.

One :class:`RunTracker` polls every run it started with a single query per tick
(``get_all_orchestration_states`` filtered by an instance-id prefix), not one call per run, so a notebook
stays responsive with many runs in flight. What it records is only what the orchestrations published.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from durabletask.client import OrchestrationQuery

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest, MonitorResult
from monitoring.core.predict import Prediction, predict


@dataclass(frozen=True)
class StatusSample:
    """One polled observation of a run's custom status."""

    observed_after: float  # seconds since the run was scheduled, by this process's clock
    runtime_status: str
    check_count: int | None  # None: the status did not say (another orchestrator's shape)
    job_status: str | None
    elapsed_seconds: float | None  # the monitor's own elapsed time when it published this status


@dataclass(frozen=True)
class CheckPoint:
    """A check as the monitor published it: its number, when (since start), and what it saw."""

    number: int
    elapsed_seconds: float
    job_status: str | None


@dataclass
class RunTrace:
    """Everything observed about one run."""

    instance_id: str
    request: MonitorRequest
    time_scale: float = 1.0  # the request's seconds are the scenario's seconds times this
    scheduled_at: float = field(default_factory=time.monotonic)
    samples: list[StatusSample] = field(default_factory=list)
    latest: MonitorSnapshot | None = None

    def scenario_seconds(self, seconds: float) -> float:
        """Real seconds of this run expressed in the scenario's seconds."""
        return seconds / self.time_scale

    def settings(self) -> tuple[float, float, float]:
        """Interval, timeout and job length, in real seconds."""
        request = self.request
        return request.polling_interval_seconds, request.timeout_seconds, request.job_duration_seconds

    @property
    def done(self) -> bool:
        return self.latest is not None and self.latest.is_terminal

    @property
    def result(self) -> MonitorResult | None:
        return self.latest.result if self.latest else None

    @property
    def check_count(self) -> int:
        status = self.latest.custom_status if self.latest else None
        return (status.check_count or 0) if status else 0

    @property
    def prediction(self) -> Prediction:
        return predict(self.request)

    def checks(self) -> list[CheckPoint]:
        """The checks seen in the samples, in order (one per published check count). A status that does not
        say its elapsed time is placed when this process saw it."""
        seen: dict[int, CheckPoint] = {}
        for sample in self.samples:
            number = sample.check_count
            if number is not None and number > 0 and number not in seen:
                elapsed = sample.elapsed_seconds
                when = elapsed if elapsed is not None else sample.observed_after
                seen[number] = CheckPoint(number, when, sample.job_status)
        return [seen[number] for number in sorted(seen)]

    @property
    def simulated(self) -> bool:
        """Whether the run watches the simulated job (whose end is known in advance) or a real source."""
        return self.request.job_source == "simulated"

    @property
    def detection_delay(self) -> float | None:
        """Seconds from the simulated job finishing to the check that saw it; None if it never did (or the
        job is a real one, whose end this trace does not know)."""
        result = self.result
        if not self.simulated or result is None or result.final_status not in ("Completed", "Failed"):
            return None
        if result.monitoring_duration_seconds is None:
            return None
        return result.monitoring_duration_seconds - self.request.job_duration_seconds

    def record(self, snapshot: MonitorSnapshot) -> bool:
        """Add ``snapshot`` if it shows something new; True if it did."""
        status = snapshot.custom_status
        if self.latest is not None and (self.latest.runtime_status, self.latest.custom_status_json) == (
            snapshot.runtime_status,
            snapshot.custom_status_json,
        ):
            return False
        self.latest = snapshot
        if status is not None:
            self.samples.append(
                StatusSample(
                    observed_after=time.monotonic() - self.scheduled_at,
                    runtime_status=snapshot.runtime_status,
                    check_count=status.check_count,
                    job_status=status.status,
                    elapsed_seconds=status.elapsed_seconds,
                )
            )
        return True

    def describe(self) -> str:
        request = self.request
        job = (
            f"job {request.job_duration_seconds:g} s" if self.simulated else f"job from {request.job_source}"
        )
        settings = (
            f"{request.job_id}: every {request.polling_interval_seconds:g} s, "
            f"timeout {request.timeout_seconds:g} s, {job}"
        )
        if self.latest is not None and self.latest.is_terminal:
            result, checks = self.result, self.check_count
            if result is not None and result.checks_performed is not None:
                checks = result.checks_performed
            return f"{settings} -> {self.latest.state} after {checks} checks"
        state = self.latest.runtime_status if self.latest else "Scheduled"
        return f"{settings} -> {state}, {self.check_count} checks so far"


class RunTracker:
    """Starts runs and keeps their traces up to date from a background polling thread."""

    def __init__(
        self, monitors: MonitorClient, *, poll_seconds: float = 0.05, prefix: str | None = None
    ) -> None:
        self.monitors = monitors
        self.poll_seconds = poll_seconds
        self.prefix = prefix or f"run-{uuid.uuid4().hex[:8]}-"
        self.traces: dict[str, RunTrace] = {}
        self._numbers = itertools.count(1)
        self._listeners: list[Callable[[RunTrace], None]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_scheduled: datetime | None = None
        self.last_error: str | None = None

    def add_listener(self, listener: Callable[[RunTrace], None]) -> None:
        """Call ``listener(trace)`` (from the polling thread) whenever a run shows something new."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[RunTrace], None]) -> None:
        """Stop calling ``listener``; nothing happens if it was not added."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def start(self, request: MonitorRequest, *, time_scale: float = 1.0) -> RunTrace:
        """Schedule a monitor for ``request`` and track it."""
        with self._lock:
            instance_id = f"{self.prefix}{next(self._numbers):04d}"
            if self._first_scheduled is None:
                self._first_scheduled = datetime.now(timezone.utc) - timedelta(minutes=1)
            trace = RunTrace(instance_id, request, time_scale)
            self.traces[instance_id] = trace
        try:
            self.monitors.start(request, instance_id=instance_id)
        except BaseException:
            with self._lock:
                del self.traces[instance_id]  # never scheduled: do not wait for it
            raise
        self._ensure_polling()
        return trace

    def in_flight(self) -> list[RunTrace]:
        with self._lock:
            return [trace for trace in self.traces.values() if not trace.done]

    def poll_once(self) -> list[RunTrace]:
        """One query for all of this tracker's runs; returns the traces that changed."""
        query = OrchestrationQuery(
            created_time_from=self._first_scheduled,
            fetch_inputs_and_outputs=True,
            instance_id_prefix=self.prefix,
        )
        states = self.monitors.client.get_all_orchestration_states(query)
        changed = []
        with self._lock:
            for state in states:
                trace = self.traces.get(state.instance_id)
                if trace is not None and not trace.done and trace.record(MonitorSnapshot.from_state(state)):
                    changed.append(trace)
            if changed:
                self._changed.notify_all()
        for trace in changed:
            for listener in list(self._listeners):
                listener(trace)
        return changed

    def wait(self, traces: list[RunTrace] | None = None, timeout: float | None = None) -> None:
        """Block until the given runs (default: all) are done; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            targets = list(self.traces.values()) if traces is None else traces
            while not all(trace.done for trace in targets):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{sum(not t.done for t in targets)} run(s) still in flight")
                self._changed.wait(0.5 if remaining is None else min(remaining, 0.5))

    def wait_for_change(self, timeout: float) -> None:
        """Block until any run changes, or ``timeout`` seconds pass."""
        with self._lock:
            self._changed.wait(timeout)

    def _ensure_polling(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="run-tracker", daemon=True)
            self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if self.in_flight():
                try:
                    self.poll_once()
                    self.last_error = None
                except (
                    Exception
                ) as error:  # a transient gRPC error must not kill the tracker: retry next tick
                    self.last_error = f"{type(error).__name__}: {error}"
            self._stop.wait(self.poll_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
