"""The orchestrator function itself, stepped by hand on a virtual clock (no backend, no waiting).

``tests/stepped.py`` drives the real generator with real SDK tasks (timers, activities, events,
``when_any``, ``continue_as_new``) at the official sample's real timings (5 s / 30 s) in microseconds;
test_integration.py and test_durability.py run the same code for real on the durable backend.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from stepped import START, Script, step

from monitoring.core.models import MonitorRequest, MonitorStatus
from monitoring.core.orchestration import ACTIVITY_NAME, CANCEL_EVENT
from monitoring.core.predict import predict

NEVER = 10**6  # a job duration that outlives every monitor here


def statuses(run) -> list[MonitorStatus]:  # type: ignore[no-untyped-def]
    return [MonitorStatus.from_payload(value) for kind, value in run.ctx.log if kind == "status"]


def offsets(run) -> list[float]:  # type: ignore[no-untyped-def]
    return [(moment - START).total_seconds() for moment in run.checks_at]


def test_seed_completed_example() -> None:
    run = step({"job_id": "job-uuid-12345"}, Script(latency=0.6))
    assert run.result == {
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
    run = step({**payload, "job_duration_seconds": NEVER})
    assert run.result == {
        "job_id": "job-uuid-67890",
        "final_status": "Timeout",
        "checks_performed": checks,
        "monitoring_duration_seconds": float(timeout),
    }


def test_failed_job() -> None:
    run = step({"job_id": "j", "job_duration_seconds": 7, "job_outcome": "Failed"})
    assert run.result["final_status"] == "Failed" and run.result["checks_performed"] == 3
    assert "reason" not in run.result, "a job that failed is not a monitor fault"


def test_status_is_published_before_the_first_check_and_after_every_check() -> None:
    run = step({"job_id": "j"})
    kinds = [kind for kind, _ in run.ctx.log]
    # The guard timer comes first, then the status, then check after check on durable timers.
    assert kinds == ["timer", "status"] + ["activity", "status", "timer"] * 3 + ["activity", "status"]
    published = statuses(run)
    assert [s.check_count for s in published] == [0, 1, 2, 3, 4]
    assert published[0].status == "Pending" and published[0].last_check_time is None
    assert [s.status for s in published[1:]] == ["Running", "Running", "Running", "Completed"]
    assert [s.elapsed_seconds for s in published] == [0, 0, 5, 10, 15]
    assert published[-1].final_status == "Completed" and published[-1].next_check_time is None
    assert published[1].next_check_time == "2025-09-19T18:05:05.000Z"
    assert published[0].deadline == "2025-09-19T18:05:30.000Z"


def test_timers_are_absolute_so_lateness_does_not_accumulate() -> None:
    run = step({"job_id": "j", "job_duration_seconds": NEVER}, Script(latency=0.9))
    timers = [value for kind, value in run.ctx.log if kind == "timer"][1:]  # after the guard
    assert timers == [START + timedelta(seconds=s) for s in (5, 10, 15, 20, 25, 30)]


def test_only_the_activity_by_its_registered_name_is_called() -> None:
    run = step({"job_id": "j"})
    assert {value for kind, value in run.ctx.log if kind == "activity"} == {ACTIVITY_NAME}


# --- control: cancel ------------------------------------------------------------------------------------


def test_cancel_ends_a_waiting_monitor_at_once_not_at_its_next_timer() -> None:
    run = step({"job_id": "j", "job_duration_seconds": NEVER}, Script(events=[(7.0, CANCEL_EVENT, None)]))
    assert run.result == {
        "job_id": "j",
        "final_status": "Cancelled",
        "checks_performed": 2,
        "monitoring_duration_seconds": 7.0,  # at the cancel, not at the 10 s timer
        "reason": "cancelled on request",
    }
    last = statuses(run)[-1]
    assert last.final_status == "Cancelled" and last.next_check_time is None and last.check_count == 2


def test_cancel_during_a_hanging_check_ends_it_and_keeps_the_reason() -> None:
    script = Script(events=[(6.0, CANCEL_EVENT, {"reason": "job deleted"})], hanging_checks={2})
    run = step({"job_id": "j", "job_duration_seconds": NEVER}, script)
    assert run.result["final_status"] == "Cancelled" and run.result["checks_performed"] == 1
    assert run.result["reason"] == "cancelled: job deleted"


# --- SDK pitfall: a stale timer completes a pending timer early -----------------------------------------


def test_a_timer_completed_early_is_waited_again_so_no_check_runs_early() -> None:
    run = step({"job_id": "j", "job_duration_seconds": NEVER}, Script(stale_timer_at=[2.0, 11.5, 29.0]))
    assert offsets(run) == [0, 5, 10, 15, 20, 25, 30], "every check at its due time, none early"
    assert run.result["checks_performed"] == 7 and run.result["final_status"] == "Timeout"


# --- faults in the check itself -------------------------------------------------------------------------


def test_a_transient_failure_is_retried_with_backoff_and_the_last_error_is_published() -> None:
    payload = {"job_id": "j", "job_fail_first_attempts": 2, "retry_first_interval_seconds": 1}
    run = step(payload)
    assert offsets(run)[:4] == [0, 1, 3, 5], "attempts after 1 s, then 2 s (backoff 2), then the schedule"
    assert run.result == {
        "job_id": "j",
        "final_status": "Completed",
        "checks_performed": 4,
        "monitoring_duration_seconds": 15.0,
    }
    errors = [s.last_error for s in statuses(run) if s.last_error]
    assert (
        errors[0]
        == "check 1, attempt 1: SimulatedCheckError: job service unavailable (simulated failure 1 of 2)"
    )
    assert errors[-1].startswith("check 1, attempt 2:")
    assert [s.check_count for s in statuses(run)][:3] == [0, 0, 0], "a failed attempt is not a check"


def test_a_check_that_keeps_failing_ends_the_monitor_failed_with_a_readable_reason() -> None:
    run = step({"job_id": "j", "job_fail_first_attempts": 5, "retry_max_attempts": 3})
    assert run.result["final_status"] == "Failed" and run.result["checks_performed"] == 0
    assert run.result["reason"] == (
        "check 1 failed 3 time(s); last error: check 1, attempt 3: SimulatedCheckError: "
        "job service unavailable (simulated failure 3 of 5)"
    )
    assert "Traceback" not in run.result["reason"]
    assert statuses(run)[-1].reason == run.result["reason"]


def test_a_fraction_of_failing_attempts_is_deterministic_and_retried() -> None:
    payload = {
        "job_id": "flaky",
        "polling_interval_seconds": 1,
        "timeout_seconds": 60,
        "job_duration_seconds": NEVER,
        "job_fail_fraction": 0.3,
        "retry_max_attempts": 5,
        "retry_first_interval_seconds": 0.1,
    }
    first, second = step(payload), step(payload)
    assert first.result == second.result and offsets(first) == offsets(second)
    assert first.result["final_status"] == "Timeout" and first.result["checks_performed"] == 61
    assert len(first.checks_at) > 61, "some attempts failed and were retried"


def test_a_hanging_check_cannot_hold_the_monitor_past_deadline_plus_grace() -> None:
    payload = {"job_id": "j", "job_duration_seconds": NEVER, "deadline_grace_seconds": 2}
    run = step(payload, Script(hanging_checks={2}))
    assert run.result == {
        "job_id": "j",
        "final_status": "Timeout",
        "checks_performed": 1,
        "monitoring_duration_seconds": 32.0,
        "reason": "check 2 had not answered 2 s after the deadline (2025-09-19T18:05:30.000Z)",
    }


def test_an_outage_that_ends_before_deadline_plus_grace_still_gives_every_planned_check() -> None:
    payload = {"job_id": "j", "job_duration_seconds": NEVER, "deadline_grace_seconds": 10}
    run = step(payload, Script(outage=(7, 35)))  # no worker from 7 s to 35 s; the guard is due at 40 s
    assert run.result == {
        "job_id": "j",
        "final_status": "Timeout",
        "checks_performed": 7,
        "monitoring_duration_seconds": 35.0,
    }
    assert offsets(run) == [0, 5, 35, 35, 35, 35, 35], "the overdue checks run at once when a worker is back"


def test_an_outage_past_deadline_plus_grace_counts_only_the_checks_that_ran_and_says_why() -> None:
    payload = {"job_id": "j", "job_duration_seconds": NEVER, "deadline_grace_seconds": 10}
    run = step(payload, Script(outage=(7, 60)))  # check 3 was due at 10 s; a worker is back at 60 s
    assert run.result == {
        "job_id": "j",
        "final_status": "Timeout",
        "checks_performed": 2,
        "monitoring_duration_seconds": 60.0,
        "reason": "no worker for 50 s (none connected, or all busy): checks 3 to 7 could not run before "
        "the deadline (2025-09-19T18:05:30.000Z) plus 10 s",
    }
    assert statuses(run)[-1].check_count == 2 and statuses(run)[-1].reason == run.result["reason"]


def test_a_worker_lost_mid_check_for_longer_than_the_grace_is_named_too() -> None:
    payload = {"job_id": "j", "job_duration_seconds": NEVER, "deadline_grace_seconds": 10}
    run = step(payload, Script(latency=0.5, outage=(10.2, 58)))  # check 3 asked at 10 s, its worker lost
    assert run.result["checks_performed"] == 2
    assert run.result["reason"].startswith("no worker for 48 s (none connected, or all busy): checks 3 to 7")


# --- long monitors: backoff and continue_as_new ----------------------------------------------------------


def test_backoff_grows_the_interval_up_to_its_cap() -> None:
    payload = {"job_id": "j", "polling_interval_seconds": 1, "timeout_seconds": 60, "backoff_factor": 2}
    run = step({**payload, "max_interval_seconds": 10, "job_duration_seconds": NEVER})
    assert offsets(run) == [0, 1, 3, 7, 15, 25, 35, 45, 55, 60]
    assert run.result["checks_performed"] == 10


def test_long_monitor_continues_as_new_and_carries_count_start_and_deadline() -> None:
    payload = {
        "job_id": "long",
        "polling_interval_seconds": 1,
        "timeout_seconds": 1000,
        "job_duration_seconds": NEVER,
        "checks_per_generation": 100,
    }
    run = step(payload)
    assert run.result["checks_performed"] == 1001 and run.result["monitoring_duration_seconds"] == 1000.0
    assert offsets(run) == list(range(1001)), "no check lost or repeated across generations"
    continued = [value for kind, value in run.ctx.log if kind == "continue_as_new"]
    assert len(continued) == 10
    assert [c["progress"]["checks_done"] for c in continued] == list(range(100, 1001, 100))
    published = statuses(run)
    assert {s.started_at for s in published} == {"2025-09-19T18:05:00.000Z"}
    assert {s.deadline for s in published} == {"2025-09-19T18:21:40.000Z"}
    counts = [s.check_count for s in published]
    assert counts == sorted(counts)
    # Each new generation publishes its status at once, before any check, with the carried count.
    kinds = [kind for kind, _ in run.ctx.log]
    for index, kind in enumerate(kinds):
        if kind == "continue_as_new":
            assert kinds[index + 1 : index + 3] == ["timer", "status"]
    assert [s.generation for s in published if s.check_count == 100] == [1, 2]


# --- the simulated job answers for the time its check was due ---------------------------------------------


def test_late_checks_still_see_the_job_as_it_was_when_they_were_due() -> None:
    """Every check runs 4.9 s late: the check due at 10 s answers at 14.9 s, after the 12 s job ended, yet
    it says Running (as it was at 10 s). The count is the schedule's; only the end is later."""
    run = step({"job_id": "j"}, Script(latency=4.9))
    assert offsets(run) == [4.9, 9.9, 14.9, 19.9]
    assert [s.status for s in statuses(run)[1:]] == ["Running", "Running", "Running", "Completed"]
    assert run.result["checks_performed"] == 4 and run.result["monitoring_duration_seconds"] == 19.9


def test_a_retried_check_answers_for_the_time_the_check_was_due() -> None:
    """Check 1 fails at 0 s and 5.5 s and answers at 16.5 s (retry waits of 5.5 s, then 11 s), after the 12 s
    job ended: it is still check 1, due at 0 s, so it says Running. Checks 2 to 4 are overdue by then and run
    at once, each answering for its own due time (5, 10, 15 s): the count is the schedule's."""
    run = step({"job_id": "j", "job_fail_first_attempts": 2, "retry_first_interval_seconds": 5.5})
    assert offsets(run) == [0, 5.5, 16.5, 16.5, 16.5, 16.5]
    assert [s.status for s in statuses(run) if s.check_count] == ["Running"] * 3 + ["Completed"]
    assert run.result["checks_performed"] == 4 and run.result["monitoring_duration_seconds"] == 16.5


@pytest.mark.parametrize(
    ("interval", "timeout", "job_duration", "outcome", "expected"),
    [
        # (final status, checks, ended at, detection delay), worked out by hand from the schedule:
        (5, 30, 12, "Completed", ("Completed", 4, 15, 3)),  # the sample: 0, 5, 10 Running; 15 sees it
        (5, 30, 15, "Completed", ("Completed", 4, 15, 0)),  # a check exactly at the end sees the end
        (5, 30, 15.001, "Completed", ("Completed", 5, 20, 4.999)),
        (5, 30, 0, "Failed", ("Failed", 1, 0, 0)),  # already over at the first check
        (2, 30, 11, "Completed", ("Completed", 7, 12, 1)),  # 0, 2, ..., 10 Running; 12 sees it
        (3, 30, 13, "Failed", ("Failed", 6, 15, 2)),
        (7, 30, 29, "Completed", ("Completed", 6, 30, 1)),  # 0, 7, 14, 21, 28; the clipped one at 30
        (7, 30, 30, "Completed", ("Completed", 6, 30, 0)),  # the job ends exactly at the deadline check
        (5, 30, 30.5, "Completed", ("Timeout", 7, 30, None)),
        (0.7, 3, 2.1, "Completed", ("Completed", 4, 2.1, 0)),  # 3 x 0.7 is 2.0999999999999996: asked as 2.1
        (0.1, 0.3, 0.3, "Failed", ("Failed", 4, 0.3, 0)),  # 3 x 0.1 is 0.30000000000000004
    ],
)
def test_predict_gives_the_hand_worked_outcome_and_the_orchestrator_agrees(
    interval: float, timeout: float, job_duration: float, outcome: str, expected: tuple
) -> None:
    """``predict`` (what learners are shown) against outcomes worked out by hand, then the real orchestrator
    stepped on a virtual clock against the same hand-worked numbers."""
    payload = {"job_id": "j", "polling_interval_seconds": interval, "timeout_seconds": timeout}
    payload |= {"job_duration_seconds": job_duration, "job_outcome": outcome}
    final_status, checks, ended_at, delay = expected
    prediction = predict(MonitorRequest.from_payload(payload, default_job_id="j"))
    assert (prediction.final_status, prediction.checks_performed) == (final_status, checks)
    assert prediction.ended_at_offset == pytest.approx(ended_at)
    assert prediction.detection_delay == (None if delay is None else pytest.approx(delay))
    result = step(payload).result
    assert (result["final_status"], result["checks_performed"]) == (final_status, checks)
    assert result["monitoring_duration_seconds"] == pytest.approx(ended_at)
