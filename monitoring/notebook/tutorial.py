"""What the tutorial notebooks call: connect once, run scenarios, watch them live, then plot them.

Scenarios are written in the tutorial's seconds (a 5 s interval, a 30 s timeout). ``MONITORING_TIME_SCALE``
(default 1) multiplies every duration before a run is scheduled, so CI can run the same notebooks ten times
faster (0.1) while a person sees seconds-scale runs; plots convert back to the tutorial's seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from monitoring import settings
from monitoring.client.monitors import MonitorClient
from monitoring.client.tracking import RunTrace, RunTracker
from monitoring.core.batch import DEFAULT_MAX_CONCURRENT, BatchRequest
from monitoring.core.jobs import JobOutcome
from monitoring.core.models import (
    DEFAULT_JOB_DURATION_SECONDS,
    DEFAULT_POLLING_INTERVAL_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MonitorRequest,
)
from monitoring.notebook.batches import BatchRun
from monitoring.notebook.live import RedrawPace, live_display
from monitoring.notebook.plots import batch_progress_figure, png_bytes, progress_figure
from monitoring.runtime.connection import (
    Connection,
    connection_from_env,
    ensure_backend,
    local_scheduler_running,
)
from monitoring.scheduler import process
from monitoring.worker import start_worker, stop_worker

TUTORIAL_OWNER = "tutorial"  # recorded with a scheduler a notebook starts, so a notebook stops it


class Tutorial:
    """A worker in this process, a client, and a tracker for the runs a notebook starts."""

    def __init__(self, connection: Connection, *, time_scale: float = 1.0) -> None:
        self.connection = connection
        self.time_scale = time_scale
        self.closed = False
        self._started_scheduler = connection.kind == "local" and not local_scheduler_running(connection)
        self.backend = ensure_backend(connection, owner=TUTORIAL_OWNER)
        start_worker(connection)
        self.monitors = MonitorClient(connection, say=print)  # stdout: a notebook shows stderr as an error
        self.tracker = RunTracker(self.monitors, prefix=f"tutorial-{uuid.uuid4().hex[:6]}-")

    def describe(self) -> str:
        scale = "" if self.time_scale == 1 else f"; time scale {self.time_scale:g} (durations shortened)"
        return f"{self.backend}; worker running in this kernel{scale}"

    def request(
        self,
        interval: float = DEFAULT_POLLING_INTERVAL_SECONDS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        job_duration: float = DEFAULT_JOB_DURATION_SECONDS,
        job_outcome: JobOutcome = "Completed",
        job_id: str | None = None,
        **options: Any,
    ) -> MonitorRequest:
        """A validated request in the tutorial's seconds, scaled for scheduling.

        ``options`` are further :class:`MonitorRequest` fields (retries, faults, grace, ...); those in
        seconds (``*_seconds``) are scaled like the others. Raises ``InvalidRequestError`` with the
        person's own numbers in the message.
        """
        as_given = MonitorRequest(
            job_id=job_id or f"job-{uuid.uuid4().hex[:8]}",
            polling_interval_seconds=interval,
            timeout_seconds=timeout,
            job_duration_seconds=job_duration,
            job_outcome=job_outcome,
            **options,
        )
        scale = self.time_scale
        scaled_options = {
            name: value * scale
            for name, value in options.items()
            if name.endswith("_seconds") and isinstance(value, (int, float))
        }
        return replace(
            as_given,
            polling_interval_seconds=interval * scale,
            timeout_seconds=timeout * scale,
            job_duration_seconds=job_duration * scale,
            **scaled_options,
        )

    def run(self, request: MonitorRequest | None = None, **scenario: object) -> RunTrace:
        """Schedule one monitor (from a request, or from scenario keywords as :meth:`request` takes)."""
        if request is None:
            request = self.request(**scenario)  # type: ignore[arg-type]
        return self.tracker.start(request, time_scale=self.time_scale)

    def sweep(self, intervals: Sequence[float], **scenario: object) -> list[RunTrace]:
        """Start one run per polling interval, all at once, with otherwise equal settings."""
        return [self.run(interval=interval, **scenario) for interval in intervals]  # type: ignore[arg-type]

    def watch(self, traces: RunTrace | Sequence[RunTrace], *, refresh_seconds: float = 0.3) -> None:
        """Show a live plot of the runs' checks until they all end (in a notebook; elsewhere, just wait).

        Frames are at least ``refresh_seconds`` apart, further when drawing them is costly
        (see :class:`RedrawPace`); the last frame, drawn once every run has ended, is always shown.
        """
        runs = [traces] if isinstance(traces, RunTrace) else list(traces)
        limit = max(trace.request.timeout_seconds for trace in runs) * 2 + 30
        deadline = time.monotonic() + limit
        pace = RedrawPace(refresh_seconds)
        display_handle = live_display(pace.draw(lambda: _progress_image(runs)))
        while not all(trace.done for trace in runs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs still in flight after {limit:g} s: is the worker running?")
            self.tracker.wait_for_change(max(pace.wait_seconds(), 0.05))
            if display_handle is not None and pace.due():
                display_handle.update(pace.draw(lambda: _progress_image(runs)))
        if display_handle is not None:
            display_handle.update(_progress_image(runs))

    def batch(
        self,
        jobs: Sequence[MonitorRequest],
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        notify_url: str | None = None,
    ) -> BatchRequest:
        """A batch of requests made with :meth:`request`, validated as the HTTP API validates one."""
        body: dict[str, Any] = {"jobs": [job.to_payload() for job in jobs], "max_concurrent": max_concurrent}
        if notify_url is not None:
            body["notify_url"] = notify_url
        return BatchRequest.from_body(body)

    def run_batch(self, batch: BatchRequest) -> BatchRun:
        """Schedule a batch monitor; its children are ``<its id>-job-<index>``."""
        instance_id = f"{self.tracker.prefix}batch-{uuid.uuid4().hex[:6]}"
        run = BatchRun(instance_id, batch, time_scale=self.time_scale)
        self.monitors.start_batch(batch, instance_id=instance_id)
        return run

    def watch_batch(
        self,
        run: BatchRun,
        *,
        until: Callable[[BatchRun], bool] | None = None,
        refresh_seconds: float = 0.3,
    ) -> BatchRun:
        """Poll the batch's custom status, with a live stacked plot of its counts, until it ends (or until
        ``until(run)`` holds)."""
        jobs = run.batch.jobs
        limit = 2 * (sum(job.timeout_seconds for job in jobs) / run.batch.max_concurrent) + 300
        deadline = time.monotonic() + limit
        pace = RedrawPace(refresh_seconds)
        display_handle = live_display(pace.draw(lambda: _batch_image(run)))
        while True:
            run.record(self.monitors.snapshot(run.instance_id))
            if run.done or (until is not None and until(run)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {run.instance_id} still running after {limit:g} s: no worker?")
            if display_handle is not None and pace.due():
                display_handle.update(pace.draw(lambda: _batch_image(run)))
            time.sleep(0.05)
        if display_handle is not None:
            display_handle.update(_batch_image(run))
        return run

    def close(self) -> None:
        """Stop this kernel's worker, and the local scheduler if this tutorial started it."""
        global _current
        self.closed = True
        self.tracker.close()
        self.monitors.close()
        stop_worker()
        port = self.connection.local_port
        # Also one a tutorial started before a kernel restart (or restarted after a crash on purpose).
        if self._started_scheduler or (
            self.connection.kind == "local" and process.scheduler_owner(port) == TUTORIAL_OWNER
        ):
            process.stop_scheduler_process(port)
        if _current is self:
            _current = None


def _progress_image(runs: Sequence[RunTrace]):  # type: ignore[no-untyped-def]
    from IPython.display import Image

    return Image(data=png_bytes(progress_figure(runs)), format="png")


def _batch_image(run: BatchRun):  # type: ignore[no-untyped-def]
    from IPython.display import Image

    return Image(data=png_bytes(batch_progress_figure(run)), format="png")


_current: Tutorial | None = None


def connect() -> Tutorial:
    """The tutorial session for ENDPOINT/TASKHUB, created once per kernel: re-running a cell is harmless."""
    global _current
    connection = connection_from_env()
    if _current is not None and _current.connection == connection:
        return _current
    if _current is not None:
        _current.close()
    _current = Tutorial(connection, time_scale=settings.load().time_scale)
    return _current
