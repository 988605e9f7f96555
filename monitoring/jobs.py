"""The external job being monitored, behind a small interface.

The orchestrator never talks to a job directly: it calls the ``check_job_status`` activity with a
:class:`~monitoring.models.JobCheckRequest`, and the activity asks the :class:`JobStatusSource` named by
``request.source``. The only source today is the simulated job; a real one (an HTTP endpoint, say) is a new
class registered in :data:`STATUS_SOURCES`, with no change to the orchestrator.

The simulated job can misbehave on request, deterministically, so tests and notebooks reproduce faults:

* ``fail_first_attempts = K``: the first ``K`` times it is asked during one monitor run, it raises;
* ``fail_fraction = p``: an attempt fails when a hash of (job id, check number, attempt number) falls
  below ``p``; the same run fails the same attempts every time (no randomness);
* ``hang_seconds = s`` with ``hang_from_check = n``: from check ``n`` on, it takes ``s`` seconds to answer.

Counting attempts needs memory: like a real service, the simulated job remembers (in the worker's
process) how often each run asked it; a restarted worker starts counting afresh.
"""

from __future__ import annotations

import hashlib
import threading
import time
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
from monitoring.schedule import decide_after_check


class SimulatedCheckError(RuntimeError):
    """The simulated job refused to answer (an injected, transient fault)."""


def simulated_job_status(duration_seconds: float, outcome: JobStatus, elapsed_seconds: float) -> JobStatus:
    """The simulated job's status ``elapsed_seconds`` after its monitor started: a pure function."""
    return "Running" if elapsed_seconds < duration_seconds else outcome


def attempt_fails(job_id: str, check_number: int, attempt: int, fraction: float) -> bool:
    """Whether this attempt falls in the failing ``fraction``: a pure function of its arguments."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{job_id}:{check_number}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class JobStatusSource(Protocol):
    """Anything that can say how a job is doing right now."""

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport: ...


class SimulatedJobSource:
    """A job that runs for ``job_duration_seconds`` after the monitor started, then ends ``job_outcome``.

    Its answer depends only on the request and the time, so the same scenario gives the same result on
    every run, on any backend. Injected faults are described in this module's docstring.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: dict[tuple[str, str], int] = {}  # (job, run start) -> times asked, for fail_first
        self._attempts: dict[tuple[str, str, int], int] = {}  # (job, run start, check) -> attempts

    def _count(self, request: JobCheckRequest) -> tuple[int, int]:
        """This call's number within the run, and its attempt number within the check (both 1-based)."""
        run = (request.job_id, request.monitor_started_at)
        with self._lock:
            asked = self._asked[run] = self._asked.get(run, 0) + 1
            key = (*run, request.check_number)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        return asked, attempt

    def _forget(self, request: JobCheckRequest) -> None:
        with self._lock:
            self._attempts.pop((request.job_id, request.monitor_started_at, request.check_number), None)

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        if request.fail_first_attempts or request.fail_fraction:
            asked, attempt = self._count(request)
            if asked <= request.fail_first_attempts:
                raise SimulatedCheckError(
                    f"job service unavailable (simulated failure {asked} of {request.fail_first_attempts})"
                )
            if attempt_fails(request.job_id, request.check_number, attempt, request.fail_fraction):
                raise SimulatedCheckError(
                    f"job service unavailable (check {request.check_number}, attempt {attempt}: "
                    f"simulated {request.fail_fraction:.0%} failure rate)"
                )
            self._forget(request)
        if request.hang_seconds > 0 and request.check_number >= request.hang_from_check:
            time.sleep(request.hang_seconds)
            now = datetime.now(timezone.utc)
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
    schedule = request.schedule()
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
