"""The durable monitor: ``monitoring_job_orchestrator`` and its ``check_job_status`` activity.

The orchestrator is deterministic: its only clock is ``ctx.current_utc_datetime``, it waits only on durable
timers, it logs through a replay-safe logger, and every decision comes from :mod:`monitoring.schedule`.
See that module for the exact check schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from durabletask import task

from monitoring.jobs import check_job
from monitoring.models import (
    JobCheckRequest,
    JobStatus,
    JobStatusReport,
    MonitorRequest,
    MonitorResult,
    MonitorStatus,
    to_iso,
)
from monitoring.schedule import CheckSchedule, Decision, decide_after_check

ORCHESTRATOR_NAME = "monitoring_job_orchestrator"
ACTIVITY_NAME = "check_job_status"

logger = logging.getLogger(__name__)


def _seconds_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


def _status(
    request: MonitorRequest,
    started_at: datetime,
    now: datetime,
    job_status: JobStatus,
    check_count: int,
    last_check_time: str | None,
    decision: Decision | None,
) -> MonitorStatus:
    next_check = None
    if decision is None:
        next_check = to_iso(started_at)
    elif decision.next_check_offset is not None:
        next_check = to_iso(started_at + timedelta(seconds=decision.next_check_offset))
    return MonitorStatus(
        job_id=request.job_id,
        status=job_status,
        check_count=check_count,
        last_check_time=last_check_time,
        elapsed_seconds=_seconds_between(started_at, now),
        next_check_time=next_check,
        started_at=to_iso(started_at),
        deadline=to_iso(started_at + timedelta(seconds=request.timeout_seconds)),
        polling_interval_seconds=request.polling_interval_seconds,
        timeout_seconds=request.timeout_seconds,
        final_status=decision.final_status if decision else None,
    )


def monitoring_job_orchestrator(
    ctx: task.OrchestrationContext, payload: Any
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """Check the job on schedule, publish progress as custom status, stop when it ends or times out."""
    log = ctx.create_replay_safe_logger(logger)
    request = MonitorRequest.from_payload(payload, default_job_id=f"job-{ctx.instance_id}")
    schedule = CheckSchedule(request.polling_interval_seconds, request.timeout_seconds)
    started_at = ctx.current_utc_datetime
    check_request = JobCheckRequest(
        job_id=request.job_id,
        monitor_started_at=to_iso(started_at),
        job_duration_seconds=request.job_duration_seconds,
        job_outcome=request.job_outcome,
    )
    log.info("Monitoring %s: %d checks planned", request.job_id, schedule.planned_check_count)
    ctx.set_custom_status(_status(request, started_at, started_at, "Pending", 0, None, None).to_payload())

    checks_done = 0
    while True:
        report = JobStatusReport.from_payload(
            (yield ctx.call_activity(ACTIVITY_NAME, input=check_request.to_payload()))
        )
        checks_done += 1
        decision = decide_after_check(schedule, checks_done, report.status)
        now = ctx.current_utc_datetime
        status = _status(request, started_at, now, report.status, checks_done, report.checked_at, decision)
        ctx.set_custom_status(status.to_payload())
        log.info("Check %d of %s: %s", checks_done, request.job_id, report.status)
        if decision.final_status is not None:
            log.info("Monitoring %s ended: %s", request.job_id, decision.final_status)
            return MonitorResult(
                job_id=request.job_id,
                final_status=decision.final_status,
                checks_performed=checks_done,
                monitoring_duration_seconds=status.elapsed_seconds,
            ).to_payload()
        assert decision.next_check_offset is not None
        yield ctx.create_timer(started_at + timedelta(seconds=decision.next_check_offset))


def check_job_status(ctx: task.ActivityContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Activity: ask the job's status source how the job is doing now."""
    return check_job(JobCheckRequest.from_payload(payload)).to_payload()
