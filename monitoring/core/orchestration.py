"""The durable monitor: ``monitoring_job_orchestrator`` and its ``check_job_status`` activity.

The orchestrator is deterministic: its only clock is ``ctx.current_utc_datetime``, it waits only on durable
timers, it logs through a replay-safe logger, and every decision comes from :mod:`monitoring.core.schedule`.
See that module for the exact check schedule. Beyond the happy path it keeps these promises:

* **Cancel**: every wait races the ``cancel`` external event, so a cancel ends the monitor at once with
  ``final_status`` ``Cancelled`` (the losing timer still fires later; nothing listens to it any more).
* **Retries**: a failing check is retried by the request's ``RetryPolicy`` (attempts, first interval,
  backoff). The orchestrator drives the attempts itself, on durable timers, so the last error is
  published in the custom status while it retries; a check that keeps failing ends the monitor ``Failed``
  with a readable ``reason``.
* **Hanging checks**: every check (and every retry wait) races one guard timer, due at the deadline plus
  ``deadline_grace_seconds``, so a check that never answers cannot hold the monitor past that: it ends
  ``Timeout`` with a reason. If the guard's firing is handled late, no worker ran the monitor meanwhile
  (none connected, or all busy): the checks that could not run are not counted, and the reason says
  ``no worker for N s`` (:func:`~monitoring.core.schedule.no_worker_seconds`).
* **Long monitors**: every ``checks_per_generation`` checks the monitor continues as new, carrying the
  check count, the original start (and so the deadline) and the last answer, and re-publishes its status
  at once. The guard is the first timer of every generation: a guard left pending by the previous
  generation has the same id and the same due time, so when it fires into the new one it is on time.
* **Early timers**: after any timer completes, the orchestrator compares ``ctx.current_utc_datetime`` with
  the time it meant to wake and waits again if it is early (a stale timer can complete a new one early).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from durabletask import task

from monitoring.core.generations import MonitorProgress, continuation_payload, parse_monitor_input
from monitoring.core.jobs import JobCheckRequest, JobStatusReport, check_job
from monitoring.core.models import MonitorRequest, MonitorResult, MonitorStatus
from monitoring.core.notify import notify
from monitoring.core.payloads import from_iso, to_iso
from monitoring.core.schedule import (
    FinalStatus,
    decide_after_check,
    guard_reason,
    no_worker_seconds,
    retry_delay_seconds,
)

ORCHESTRATOR_NAME = "monitoring_job_orchestrator"
ACTIVITY_NAME = "check_job_status"
CANCEL_EVENT = "cancel"

logger = logging.getLogger(__name__)

Steps = Generator[task.Task[Any], Any, Any]


def _seconds_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


def _short_error_type(error_type: str) -> str:
    return error_type.rsplit(".", 1)[-1] or "Error"


class _Guard:
    """A timer that must not fire before ``due``; if a stale timer completed it early, it is renewed."""

    def __init__(self, ctx: task.OrchestrationContext, due: datetime) -> None:
        self.due = due
        self.timer = ctx.create_timer(due)

    def fired_early(self, ctx: task.OrchestrationContext) -> bool:
        if ctx.current_utc_datetime >= self.due:
            return False
        self.timer = ctx.create_timer(self.due)
        return True


class _Ended(Exception):
    """Raised inside the monitor's steps to end the run with a final status and a reason."""

    def __init__(self, final_status: FinalStatus, reason: str) -> None:
        super().__init__(reason)
        self.final_status = final_status
        self.reason = reason


class _Monitor:
    """One generation of one monitor: its settings, the run so far, and the steps it takes."""

    def __init__(self, ctx: task.OrchestrationContext, payload: Any) -> None:
        self.ctx = ctx
        self.log = ctx.create_replay_safe_logger(logger)
        request, carried = parse_monitor_input(payload, default_job_id=f"job-{ctx.instance_id}")
        self.request: MonitorRequest = request
        self.schedule = request.schedule()
        self.progress = carried or MonitorProgress(
            started_at=to_iso(ctx.current_utc_datetime), checks_done=0, generation=1
        )
        self.started_at = from_iso(self.progress.started_at).replace(tzinfo=None)
        self.deadline = self.started_at + timedelta(seconds=request.timeout_seconds)
        # Formatted once: every published status and every check request carries them, on every replay.
        self.started_iso, self.deadline_iso = to_iso(self.started_at), to_iso(self.deadline)
        # First task of every generation (see the module docstring), then the cancel event (no task id).
        self.grace = timedelta(seconds=request.deadline_grace_seconds)
        self.guard = _Guard(ctx, self.deadline + self.grace)
        self.cancel = ctx.wait_for_external_event(CANCEL_EVENT)
        self.retry_policy = request.retry_policy()

    # --- what the monitor publishes -------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        self.progress = MonitorProgress(**{**self.progress.to_payload(), **changes})

    def status(self, final_status: FinalStatus | None = None, reason: str | None = None) -> MonitorStatus:
        progress = self.progress
        next_check = None
        if final_status is None and progress.checks_done < self.schedule.planned_check_count:
            offset = self.schedule.offset_of_check(progress.checks_done + 1)
            next_check = to_iso(self.started_at + timedelta(seconds=offset))
        return MonitorStatus(
            job_id=self.request.job_id,
            status=progress.last_status,
            check_count=progress.checks_done,
            last_check_time=progress.last_check_time,
            elapsed_seconds=_seconds_between(self.started_at, self.ctx.current_utc_datetime),
            next_check_time=next_check,
            started_at=self.started_iso,
            deadline=self.deadline_iso,
            polling_interval_seconds=self.request.polling_interval_seconds,
            timeout_seconds=self.request.timeout_seconds,
            final_status=final_status,
            last_error=progress.last_error,
            reason=reason,
            generation=progress.generation,
            failed_attempts=progress.failed_attempts,
        )

    def publish(self, final_status: FinalStatus | None = None, reason: str | None = None) -> MonitorStatus:
        status = self.status(final_status, reason)
        self.ctx.set_custom_status(status.to_payload())
        return status

    def end(self, final_status: FinalStatus, reason: str | None = None) -> Steps:
        """Publish the final status; the result, once it has been sent to ``notify_url`` (if any)."""
        status = self.publish(final_status, reason)
        self.log.info("Monitoring %s ended: %s", self.request.job_id, final_status)
        result = MonitorResult(
            job_id=self.request.job_id,
            final_status=final_status,
            checks_performed=self.progress.checks_done,
            monitoring_duration_seconds=status.elapsed_seconds,
            reason=reason,
        ).to_payload()
        url = self.request.notify_url
        if url is None:
            return result
        key = f"{self.ctx.instance_id}:{self.progress.generation}"
        sent = yield from notify(self.ctx, url, self.request.notify_headers, key, result)
        return {**result, **sent}

    # --- the steps --------------------------------------------------------------------------------------

    def _cancelled(self) -> _Ended:
        data = self.cancel.get_result()
        detail = data.get("reason") if isinstance(data, dict) else data
        reason = f"cancelled: {detail}" if detail else "cancelled on request"
        return _Ended("Cancelled", reason)

    def sleep_until(self, due: datetime, guard: _Guard | None = None) -> Steps:
        """Wait for ``due`` on a durable timer, never waking early; cancel (or the guard) interrupts."""
        while self.ctx.current_utc_datetime < due:
            timer = self.ctx.create_timer(due)
            racers = [timer, self.cancel] + ([guard.timer] if guard else [])
            winner = yield task.when_any(racers)
            if winner is self.cancel:
                raise self._cancelled()
            if guard is not None and winner is guard.timer and not guard.fired_early(self.ctx):
                return False
            # A timer that fired early (stale, from an earlier generation) leads round the loop again.
        return True

    def due_of_check(self, number: int) -> datetime:
        return self.started_at + timedelta(seconds=self.schedule.offset_of_check(number))

    def _seconds(self, moment: datetime) -> float:
        return (moment - self.started_at).total_seconds()

    def _gave_up(self, number: int, asked_due: datetime, asked_at: datetime) -> str:
        """Why the guard won before check ``number`` answered (see :func:`no_worker_seconds`)."""
        idle = no_worker_seconds(
            self._seconds(self.ctx.current_utc_datetime),
            self._seconds(self.guard.due),
            self._seconds(asked_due),
            self._seconds(asked_at),
        )
        grace = self.request.deadline_grace_seconds
        planned = self.schedule.planned_check_count
        return guard_reason(number, planned, grace, self.deadline_iso, idle)

    def check(self, number: int) -> Steps:
        """Check ``number``, retrying failures; returns the report, or raises :class:`_Ended`."""
        guard = self.guard
        asked_due = self.due_of_check(number)
        request = self.request.check_request(
            self.started_iso, number, due_at=to_iso(self.due_of_check(number))
        )
        attempts = 0
        while True:
            attempts += 1
            asked_at = self.ctx.current_utc_datetime
            activity = self.ctx.call_activity(ACTIVITY_NAME, input=request.to_payload())
            winner = yield task.when_any([activity, guard.timer, self.cancel])
            while winner is guard.timer and guard.fired_early(self.ctx):
                winner = yield task.when_any([activity, guard.timer, self.cancel])
            if winner is self.cancel:
                raise self._cancelled()
            if winner is guard.timer:
                raise _Ended("Timeout", self._gave_up(number, asked_due, asked_at))
            if not activity.is_failed:
                return JobStatusReport.from_payload(activity.get_result())
            details = activity.get_exception().details
            kind = _short_error_type(details.error_type)
            error = f"check {number}, attempt {attempts}: {kind}: {details.message}"
            self._update(last_error=error, failed_attempts=attempts)
            self.log.info("Check %d of %s failed: %s", number, self.request.job_id, error)
            policy = self.retry_policy
            delay = retry_delay_seconds(
                policy.first_retry_interval.total_seconds(),
                policy.backoff_coefficient or 1.0,
                policy.max_number_of_attempts,
                attempts,
            )
            if delay is None:
                raise _Ended("Failed", f"check {number} failed {attempts} time(s); last error: {error}")
            self.publish()
            failed_at = self.ctx.current_utc_datetime
            asked_due = failed_at + timedelta(seconds=delay)
            if not (yield from self.sleep_until(asked_due, guard)):
                reason = self._gave_up(number, asked_due, failed_at)
                raise _Ended("Timeout", f"{reason} (still failing: {error})")

    def run(self) -> Steps:
        request, ctx = self.request, self.ctx
        if self.progress.generation == 1:
            planned = self.schedule.planned_check_count
            self.log.info("Monitoring %s: %d checks planned", request.job_id, planned)
        self.publish()  # at once, in every generation (continue_as_new resets the custom status)
        checks_this_generation = 0
        try:
            while True:
                number = self.progress.checks_done + 1
                yield from self.sleep_until(self.due_of_check(number))
                report = yield from self.check(number)
                self._update(
                    checks_done=number,
                    last_status=report.status,
                    last_check_time=report.checked_at,
                    failed_attempts=0,
                )
                decision = decide_after_check(self.schedule, number, report.status)
                self.log.info("Check %d of %s: %s", number, request.job_id, report.status)
                if decision.final_status is not None:
                    return (yield from self.end(decision.final_status))
                self.publish()
                checks_this_generation += 1
                if checks_this_generation >= request.checks_per_generation:
                    if self.cancel.is_complete:
                        raise self._cancelled()
                    self._update(generation=self.progress.generation + 1)
                    ctx.continue_as_new(continuation_payload(request, self.progress), save_events=True)
                    return None
        except _Ended as ended:
            return (yield from self.end(ended.final_status, ended.reason))


def monitoring_job_orchestrator(ctx: task.OrchestrationContext, payload: Any) -> Steps:
    """Check the job on schedule, publish progress as custom status, stop when it ends or times out."""
    return (yield from _Monitor(ctx, payload).run())


def check_job_status(ctx: task.ActivityContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Activity: ask the job's status source how the job is doing now.

    SDK pitfall: an exception with an empty message is reported as success (with no result), so such an
    error is re-raised with its type as the message.
    """
    try:
        return check_job(JobCheckRequest.from_payload(payload)).to_payload()
    except Exception as error:
        if str(error).strip():
            raise
        raise RuntimeError(f"{type(error).__name__} (raised without a message)") from error
