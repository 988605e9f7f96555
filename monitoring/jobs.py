"""The external job being monitored, behind a small interface.

The orchestrator never talks to a job directly: it calls the ``check_job_status`` activity with a
:class:`~monitoring.models.JobCheckRequest`, and the activity asks the :class:`JobStatusSource` named by
``request.source``. The only source today is the simulated job; a real one (an HTTP endpoint, say) is a new
class registered in :data:`STATUS_SOURCES`, with no change to the orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from monitoring.models import (
    FinalStatus,
    JobCheckRequest,
    JobStatus,
    JobStatusReport,
    MonitorRequest,
    from_iso,
    to_iso,
)
from monitoring.schedule import CheckSchedule, decide_after_check


def simulated_job_status(duration_seconds: float, outcome: JobStatus, elapsed_seconds: float) -> JobStatus:
    """The simulated job's status ``elapsed_seconds`` after its monitor started: a pure function."""
    return "Running" if elapsed_seconds < duration_seconds else outcome


class JobStatusSource(Protocol):
    """Anything that can say how a job is doing right now."""

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport: ...


class SimulatedJobSource:
    """A job that runs for ``job_duration_seconds`` after the monitor started, then ends ``job_outcome``.

    Its answer depends only on the request and the time, so the same scenario gives the same result on
    every run, on any backend.
    """

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        elapsed = (now - from_iso(request.monitor_started_at)).total_seconds()
        status = simulated_job_status(request.job_duration_seconds, request.job_outcome, elapsed)
        return JobStatusReport(job_id=request.job_id, status=status, checked_at=to_iso(now))


STATUS_SOURCES: dict[str, JobStatusSource] = {"simulated": SimulatedJobSource()}


def check_job(request: JobCheckRequest, now: datetime | None = None) -> JobStatusReport:
    """Ask the request's status source about the job (the body of the ``check_job_status`` activity)."""
    try:
        source = STATUS_SOURCES[request.source]
    except KeyError:
        raise ValueError(f"unknown job status source {request.source!r}") from None
    return source.check(request, now or datetime.now(timezone.utc))


@dataclass(frozen=True)
class Prediction:
    """What a monitor of the simulated job will report, worked out from the schedule alone."""

    final_status: FinalStatus
    checks_performed: int
    ended_at_offset: float
    detection_delay: float | None  # seconds from the job finishing to the check that saw it; None on Timeout


def predict(request: MonitorRequest) -> Prediction:
    """Step the schedule against the simulated job with no latency: the ideal outcome of ``request``."""
    schedule = CheckSchedule(request.polling_interval_seconds, request.timeout_seconds)
    for check_number, offset in enumerate(schedule.planned_offsets(), start=1):
        status = simulated_job_status(request.job_duration_seconds, request.job_outcome, offset)
        decision = decide_after_check(schedule, check_number, status)
        if decision.final_status is not None:
            ended = round(offset, 6)  # plain numbers: 0.6, not 0.5999999999999996
            delay = (
                None
                if decision.final_status == "Timeout"
                else round(offset - request.job_duration_seconds, 6)
            )
            return Prediction(decision.final_status, check_number, ended, delay)
    raise AssertionError("the schedule always ends with a decision")
