"""The monitoring pattern in its smallest honest form: notebook 01 shows this module and runs it once.

``minimal_monitor`` is a real orchestration, registered on every worker beside the production one
(:mod:`monitoring.core.orchestration`). It keeps the rules every orchestrator must keep: time only from
``ctx.current_utc_datetime``, waiting only on ``ctx.create_timer``, I/O only in the activity. What it leaves
out (a schedule anchored at the start, a final check at the deadline, retries, continue-as-new, cancel)
is what the production orchestrator adds.

Input: ``job_id``, ``polling_interval_seconds``, ``timeout_seconds`` (the official sample's fields) and
``job_duration_seconds``, the length of the simulated job it asks about.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask import task

from monitoring.core.jobs import simulated_job_status


def minimal_check(ctx: task.ActivityContext, job: dict[str, Any]) -> str:
    """Activity: ask the job how it is doing. An activity may read the clock and do I/O."""
    started = datetime.fromisoformat(job["started_at"]).replace(tzinfo=timezone.utc)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    return simulated_job_status(job["job_duration_seconds"], "Completed", elapsed)


def minimal_monitor(ctx: task.OrchestrationContext, job: dict[str, Any]) -> Generator[Any, Any, dict]:
    """Check, publish what the check saw, then stop or sleep on a durable timer; give up at the timeout."""
    started = ctx.current_utc_datetime  # on replay: the time recorded in history, not the time now
    deadline = started + timedelta(seconds=job["timeout_seconds"])
    job = {**job, "started_at": started.isoformat()}
    checks = 0
    while True:
        status = yield ctx.call_activity(minimal_check, input=job)
        checks += 1
        ctx.set_custom_status({"job_id": job["job_id"], "status": status, "check_count": checks})
        if status in ("Completed", "Failed"):
            return {"job_id": job["job_id"], "final_status": status, "checks_performed": checks}
        wake_at = ctx.current_utc_datetime + timedelta(seconds=job["polling_interval_seconds"])
        if wake_at > deadline:
            return {"job_id": job["job_id"], "final_status": "Timeout", "checks_performed": checks}
        yield ctx.create_timer(wake_at)  # a record in the task hub: nothing runs until it fires
