"""The orchestrator function itself, stepped by hand on a virtual clock (no backend, no waiting).

This shows the exact sequence of actions at the official sample's real timings (5 s / 30 s) in
microseconds; test_integration.py runs the same code for real on the durable backend.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from monitoring.jobs import check_job, predict
from monitoring.models import JobCheckRequest, MonitorRequest, MonitorStatus
from monitoring.orchestration import ACTIVITY_NAME, monitoring_job_orchestrator

START = datetime(2025, 9, 19, 18, 5, 0)  # the SDK's orchestration clock is naive UTC


class SteppedContext:
    """Just enough of ``OrchestrationContext`` to step the generator, recording what it asks for."""

    instance_id = "stepped"
    is_replaying = False

    def __init__(self) -> None:
        self.current_utc_datetime = START
        self.log: list[tuple[str, Any]] = []

    def create_replay_safe_logger(self, logger: logging.Logger) -> logging.Logger:
        return logger

    def set_custom_status(self, status: Any) -> None:
        self.log.append(("status", status))

    def call_activity(self, name: str, *, input: Any = None) -> tuple[str, Any]:
        self.log.append(("activity", name))
        return ("activity", input)

    def create_timer(self, fire_at: datetime) -> tuple[str, Any]:
        self.log.append(("timer", fire_at))
        return ("timer", fire_at)


def step(payload: dict[str, Any], latency: float = 0.0) -> tuple[dict[str, Any], SteppedContext]:
    """Run the orchestrator to completion; each check happens ``latency`` seconds after it is due."""
    ctx = SteppedContext()
    generator = monitoring_job_orchestrator(ctx, payload)  # type: ignore[arg-type]
    sent: Any = None
    while True:
        try:
            kind, value = generator.send(sent)
        except StopIteration as done:
            return done.value, ctx
        if kind == "activity":
            ctx.current_utc_datetime += timedelta(seconds=latency)
            now = ctx.current_utc_datetime.replace(tzinfo=timezone.utc)
            sent = check_job(JobCheckRequest.from_payload(value), now=now).to_payload()
        else:
            ctx.current_utc_datetime = value
            sent = None


def statuses(ctx: SteppedContext) -> list[MonitorStatus]:
    return [MonitorStatus.from_payload(value) for kind, value in ctx.log if kind == "status"]


def test_seed_completed_example() -> None:
    result, _ = step({"job_id": "job-uuid-12345"}, latency=0.6)
    assert result == {
        "job_id": "job-uuid-12345",
        "final_status": "Completed",
        "checks_performed": 4,
        "monitoring_duration_seconds": 15.6,
    }


@pytest.mark.parametrize(
    ("interval", "timeout", "checks"),
    [(5, 30, 7), (6, 30, 6), (7, 30, 6), (10, 10, 2), (4, 30, 9)],
)
def test_timeout_check_counts(interval: float, timeout: float, checks: int) -> None:
    payload = {"job_id": "job-uuid-67890", "polling_interval_seconds": interval, "timeout_seconds": timeout}
    result, _ = step({**payload, "job_duration_seconds": 1000})
    assert result == {
        "job_id": "job-uuid-67890",
        "final_status": "Timeout",
        "checks_performed": checks,
        "monitoring_duration_seconds": float(timeout),
    }


def test_failed_job() -> None:
    result, _ = step({"job_id": "j", "job_duration_seconds": 7, "job_outcome": "Failed"})
    assert result["final_status"] == "Failed" and result["checks_performed"] == 3


def test_status_is_published_before_the_first_check_and_after_every_check() -> None:
    _, ctx = step({"job_id": "j"})
    kinds = [kind for kind, _ in ctx.log]
    assert kinds[:2] == ["status", "activity"]
    assert kinds == ["status"] + ["activity", "status", "timer"] * 3 + ["activity", "status"]
    published = statuses(ctx)
    assert [s.check_count for s in published] == [0, 1, 2, 3, 4]
    assert published[0].status == "Pending" and published[0].last_check_time is None
    assert [s.status for s in published[1:]] == ["Running", "Running", "Running", "Completed"]
    assert [s.elapsed_seconds for s in published] == [0, 0, 5, 10, 15]
    assert published[-1].final_status == "Completed" and published[-1].next_check_time is None
    assert published[1].next_check_time == "2025-09-19T18:05:05.000Z"
    assert published[0].deadline == "2025-09-19T18:05:30.000Z"


def test_timers_are_absolute_so_lateness_does_not_accumulate() -> None:
    _, ctx = step({"job_id": "j", "job_duration_seconds": 1000}, latency=0.9)
    timers = [value for kind, value in ctx.log if kind == "timer"]
    assert timers == [START + timedelta(seconds=s) for s in (5, 10, 15, 20, 25, 30)]


def test_only_the_activity_by_its_registered_name_is_called() -> None:
    _, ctx = step({"job_id": "j"})
    assert {value for kind, value in ctx.log if kind == "activity"} == {ACTIVITY_NAME}


@pytest.mark.parametrize("interval", [1, 2, 2.5, 4, 5, 7, 10])
@pytest.mark.parametrize("job_duration", [0, 3, 12, 17.5, 29, 30, 45])
@pytest.mark.parametrize("outcome", ["Completed", "Failed"])
def test_predict_matches_the_orchestrator_itself(interval: float, job_duration: float, outcome: str) -> None:
    """jobs.predict (which the notebooks assert against) agrees with the real orchestrator code."""
    payload = {"job_id": "j", "polling_interval_seconds": interval, "timeout_seconds": 30}
    payload |= {"job_duration_seconds": job_duration, "job_outcome": outcome}
    result, _ = step(payload)
    expected = predict(MonitorRequest.from_payload(payload, default_job_id="j"))
    assert (result["final_status"], result["checks_performed"]) == (
        expected.final_status,
        expected.checks_performed,
    )
    assert result["monitoring_duration_seconds"] == pytest.approx(expected.ended_at_offset)
