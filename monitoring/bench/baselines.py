"""What the project is measured against: the official sample's loop, and the protocol's floor."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durabletask import task

from monitoring.core.jobs import JobCheckRequest, check_job
from monitoring.core.payloads import to_iso

REFERENCE_ORCHESTRATOR = "reference_sample_orchestrator"
REFERENCE_ACTIVITY = "reference_check_job"
PROTOCOL_FLOOR_ORCHESTRATOR = "protocol_floor_orchestrator"


# --- the official sample's loop ----------------------------------------------------------------------


def reference_sample_orchestrator(
    ctx: task.OrchestrationContext, payload: dict[str, Any]
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """The sample's monitor: check, publish, stop if done, else sleep *interval* from now; until timeout."""
    interval = timedelta(seconds=payload["polling_interval_seconds"])
    timeout = payload["timeout_seconds"]
    started = ctx.current_utc_datetime
    due = started
    checks = 0
    limit = payload.get("max_checks")
    while (ctx.current_utc_datetime - started).total_seconds() < timeout and checks != limit:
        # The sample builds its own request (this is its code, not ours), asking the same recording source.
        request = JobCheckRequest(
            job_id=payload["job_id"],
            monitor_started_at=to_iso(started),
            job_duration_seconds=payload["job_duration_seconds"],
            job_outcome=payload["job_outcome"],
            source="bench",
            check_number=checks + 1,
            due_at=to_iso(due),
        )
        report = yield ctx.call_activity(REFERENCE_ACTIVITY, input=request.to_payload())
        checks += 1
        ctx.set_custom_status(
            {"job_id": payload["job_id"], "status": report["status"], "check_count": checks}
        )
        if report["status"] in ("Completed", "Failed"):
            return {"job_id": payload["job_id"], "final_status": report["status"], "checks_performed": checks}
        due = ctx.current_utc_datetime + interval
        yield ctx.create_timer(due)
    return {"job_id": payload["job_id"], "final_status": "Timeout", "checks_performed": checks}


def reference_check_job(ctx: task.ActivityContext, payload: dict[str, Any]) -> dict[str, Any]:
    return check_job(JobCheckRequest.from_payload(payload)).to_payload()


# --- the protocol's floor: the least a durable check can cost on this SDK and scheduler ------------------


def protocol_floor_orchestrator(
    ctx: task.OrchestrationContext, payload: dict[str, Any]
) -> Generator[task.Task[Any], Any, None]:
    """Timer, activity, timer, ...: a check's three work items and nothing else (no status, guard, cancel)."""
    started = ctx.current_utc_datetime
    for number in range(1, payload["checks"] + 1):
        due = started + timedelta(seconds=payload["interval"] * (number - 1))
        if ctx.current_utc_datetime < due:
            yield ctx.create_timer(due)
        request = JobCheckRequest(
            job_id=payload["job_id"],
            monitor_started_at=to_iso(started),
            job_duration_seconds=10**9,
            job_outcome="Completed",
            source="bench",
            check_number=number,
            due_at=to_iso(due),
        )
        yield ctx.call_activity(REFERENCE_ACTIVITY, input=request.to_payload())
