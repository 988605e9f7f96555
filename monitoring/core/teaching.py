"""WRONG ON PURPOSE: an orchestrator that breaks the replay rule, for notebook 03's exercise. Do not copy it.

``wall_clock_monitor`` is :func:`~monitoring.core.minimal.minimal_monitor` with one line changed: it reads its
start from the wall clock (``datetime.now``, as naive UTC like the context's time) instead of
``ctx.current_utc_datetime``. Every episode runs the function again from its first line, so every episode
has a new start, and with it a new deadline (one timeout after *that* episode) and a new ``started_at`` for
the check, which then sees the job as just begun. The deadline moves forward with every check and the job
never ends: the monitor never stops by itself. Its history shows it: every scheduled check carries a
different ``started_at``.

It runs on a worker that replays every episode from the first event (the SDK's own worker). A worker that
keeps an orchestration in memory between episodes (:mod:`monitoring.runtime.warm_replay`) would hide the
mistake until the orchestration is replayed from scratch, after a restart or on another worker.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask import task

from monitoring.core.minimal import minimal_check


def wall_clock_monitor(ctx: task.OrchestrationContext, job: dict[str, Any]) -> Generator[Any, Any, dict]:
    """The minimal monitor reading its start from the wall clock: non-deterministic, it never stops."""
    started = datetime.now(timezone.utc).replace(tzinfo=None)  # THE MISTAKE: new on every replay
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
