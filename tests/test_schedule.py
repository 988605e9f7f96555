"""The pure decisions: check schedule, terminal states, the simulated job."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest

from monitoring.core.jobs import (
    JobCheckRequest,
    SimulatedCheckError,
    SimulatedJobSource,
    attempt_fails,
    due_elapsed_seconds,
    simulated_job_status,
)
from monitoring.core.models import DEFAULT_JOB_DURATION_SECONDS, DEFAULT_POLLING_INTERVAL_SECONDS
from monitoring.core.payloads import from_iso
from monitoring.core.schedule import (
    CheckSchedule,
    backoff_gap,
    backoff_offset,
    decide_after_check,
    guard_reason,
    no_worker_seconds,
    retry_delay_seconds,
)


@pytest.mark.parametrize(
    ("interval", "timeout", "offsets"),
    [
        (5, 30, [0, 5, 10, 15, 20, 25, 30]),  # the official defaults: six intervals, final check at 30
        (6, 30, [0, 6, 12, 18, 24, 30]),  # the seed's timeout example: 6 checks, 30 s
        (7, 30, [0, 7, 14, 21, 28, 30]),  # last wait clipped to the deadline
        (10, 10, [0, 10]),
        (0.1, 0.3, [0, 0.1, 0.2, 0.3]),  # float noise: 0.3 / 0.1 is 2.9999999999999996
        (0.7, 3, [0, 0.7, 1.4, 2.1, 2.8, 3]),
    ],
)
def test_planned_offsets(interval: float, timeout: float, offsets: list[float]) -> None:
    schedule = CheckSchedule(interval, timeout)
    assert schedule.planned_check_count == len(offsets)
    assert schedule.planned_offsets() == pytest.approx(offsets)


def test_offsets_never_pass_the_deadline_and_never_repeat() -> None:
    for interval in (0.3, 1, 2.5, 4, 7, 9.99, 10):
        offsets = CheckSchedule(interval, 10).planned_offsets()
        assert offsets[0] == 0 and offsets[-1] == 10
        assert all(later > earlier for earlier, later in pairwise(offsets))
        assert all(later - earlier <= interval + 1e-9 for earlier, later in pairwise(offsets))


def test_offset_outside_the_plan_is_an_error() -> None:
    with pytest.raises(ValueError):
        CheckSchedule(5, 30).offset_of_check(8)
    with pytest.raises(ValueError):
        CheckSchedule(5, 30).offset_of_check(0)


def test_schedule_rejects_non_positive_values() -> None:
    with pytest.raises(ValueError):
        CheckSchedule(0, 30)
    with pytest.raises(ValueError):
        CheckSchedule(5, -1)


def test_decisions() -> None:
    schedule = CheckSchedule(5, 30)
    keep_going = decide_after_check(schedule, 1, "Running")
    assert not keep_going.is_final and keep_going.next_check_offset == 5
    assert decide_after_check(schedule, 6, "Running").next_check_offset == 30
    assert decide_after_check(schedule, 7, "Running").final_status == "Timeout"
    assert decide_after_check(schedule, 3, "Completed").final_status == "Completed"
    assert decide_after_check(schedule, 2, "Failed").final_status == "Failed"
    # A job that finishes exactly at the final check is reported as finished, not as a timeout.
    assert decide_after_check(schedule, 7, "Completed").final_status == "Completed"


def test_simulated_job_is_a_pure_function_of_elapsed_time() -> None:
    assert simulated_job_status(12, "Completed", 11.999) == "Running"
    assert simulated_job_status(12, "Completed", 12) == "Completed"
    assert simulated_job_status(12, "Failed", 40) == "Failed"
    assert simulated_job_status(0, "Completed", 0) == "Completed"
    # Whole milliseconds, as the due times are sent: float noise in a scaled duration moves nothing.
    assert simulated_job_status(12 * 0.1, "Completed", 1.2) == "Completed"  # 1.2000000000000002
    assert simulated_job_status(1.201, "Completed", 1.2) == "Running"
    assert due_elapsed_seconds(3 * 0.7) == 2.1 and due_elapsed_seconds(0.0017) == 0.001


START = "2026-01-01T00:00:00.000Z"
A_MINUTE_LATER = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc)


def test_the_simulated_job_answers_for_the_time_its_check_was_due() -> None:
    source = SimulatedJobSource()
    due_at_10 = JobCheckRequest(
        "j", START, 12, "Completed", check_number=3, due_at="2026-01-01T00:00:10.000Z"
    )
    late = source.check(due_at_10, A_MINUTE_LATER)  # run a minute late, long after the job ended
    assert (late.status, late.checked_at) == ("Running", "2026-01-01T00:01:00.000Z")  # as of 10 s
    assert source.check(replace(due_at_10, due_at="2026-01-01T00:00:12.000Z"), A_MINUTE_LATER).status == (
        "Completed"
    )
    # With no due time (the HTTP API's job_status asks about now), it answers for the moment it is asked.
    assert source.check(replace(due_at_10, due_at=None), A_MINUTE_LATER).status == "Completed"
    just_before_end = datetime(2026, 1, 1, 0, 0, 11, 999000, tzinfo=timezone.utc)
    assert source.check(replace(due_at_10, due_at=None), just_before_end).status == "Running"


def test_a_retried_simulated_check_answers_for_the_same_due_time() -> None:
    source = SimulatedJobSource()
    flaky = JobCheckRequest(
        "j", START, 12, "Completed", check_number=3, fail_first_attempts=1, due_at="2026-01-01T00:00:10.000Z"
    )
    with pytest.raises(SimulatedCheckError, match="simulated failure 1 of 1"):
        source.check(flaky, datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc))
    retried = source.check(flaky, A_MINUTE_LATER)  # the retry, after the job ended
    assert retried.status == "Running" and retried.checked_at == "2026-01-01T00:01:00.000Z"


def test_a_hanging_simulated_check_takes_real_time_and_answers_for_its_due_time() -> None:
    source = SimulatedJobSource()
    hanging = JobCheckRequest(
        "j", START, 12, "Completed", check_number=2, hang_seconds=0.05, due_at="2026-01-01T00:00:05.000Z"
    )
    before = datetime.now(timezone.utc)
    report = source.check(hanging, A_MINUTE_LATER)
    assert report.status == "Running"
    assert from_iso(report.checked_at) - before >= timedelta(seconds=0.049), "checked_at: after the hang"


def test_defaults_complete_on_the_fourth_check() -> None:
    schedule = CheckSchedule(DEFAULT_POLLING_INTERVAL_SECONDS, 30)
    statuses = [
        simulated_job_status(DEFAULT_JOB_DURATION_SECONDS, "Completed", t) for t in schedule.planned_offsets()
    ]
    assert statuses.index("Completed") + 1 == 4


# --- backoff and retries (pure) --------------------------------------------------------------------------


def test_the_fixed_schedule_is_the_factor_one_case() -> None:
    for interval, timeout in ((5, 30), (6, 30), (7, 30), (0.1, 0.3), (0.7, 3)):
        fixed = CheckSchedule(interval, timeout)
        assert CheckSchedule(interval, timeout, 1.0, None).planned_offsets() == fixed.planned_offsets()
        assert (
            CheckSchedule(interval, timeout, 1.0, interval * 3).planned_offsets() == fixed.planned_offsets()
        )


@pytest.mark.parametrize(
    ("factor", "cap", "offsets"),
    [
        (2, None, [0, 1, 3, 7, 15, 31, 60]),
        (2, 10, [0, 1, 3, 7, 15, 25, 35, 45, 55, 60]),
        (
            1.5,
            2,
            [0, 1, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5, 16.5, 18.5, 20.5, 22.5, 24.5, 26.5, 28.5, 30.5]
            + [32.5 + 2 * k for k in range(14)]
            + [60],
        ),
    ],
)
def test_backoff_offsets(factor: float, cap: float | None, offsets: list[float]) -> None:
    schedule = CheckSchedule(1, 60, factor, cap)
    assert schedule.planned_offsets() == pytest.approx(offsets)
    assert schedule.planned_check_count == len(offsets)


def test_backoff_gaps_grow_then_stay_at_the_cap() -> None:
    assert [backoff_gap(2, 3, 50, n) for n in range(1, 6)] == [2, 6, 18, 50, 50]
    assert backoff_offset(2, 3, 50, 5) == 2 + 6 + 18 + 50 + 50
    assert backoff_offset(1, 1.5, None, 0) == 0


def test_backoff_count_is_computed_without_walking_every_check() -> None:
    schedule = CheckSchedule(0.001, 3600, 1.0001, 60)
    count = schedule.planned_check_count
    assert schedule.offset_of_check(count) == 3600 and schedule.offset_of_check(count - 1) < 3600


def test_retry_delays_follow_the_retry_policy_rule() -> None:
    assert [retry_delay_seconds(1, 2, 4, failed) for failed in (1, 2, 3, 4)] == [1, 2, 4, None]
    assert retry_delay_seconds(0.5, 1, 1, 1) is None, "one attempt means no retry"


def test_simulated_failures_are_deterministic_and_near_the_fraction() -> None:
    draws = [attempt_fails("job-1", check, 1, 0.25) for check in range(1, 2001)]
    assert draws == [attempt_fails("job-1", check, 1, 0.25) for check in range(1, 2001)]
    assert 0.2 < sum(draws) / len(draws) < 0.3
    assert not any(attempt_fails("job-1", check, 1, 0.0) for check in range(100))
    assert all(attempt_fails("job-1", check, 1, 1.0) for check in range(100))


def test_a_guard_handled_on_time_blames_the_check_a_late_one_the_missing_worker() -> None:
    # guard due at 40 s; the check was due at 10 s and asked at 10 s
    assert no_worker_seconds(now=41.0, guard_due=40.0, asked_due=10.0, asked_at=10.0) is None
    assert no_worker_seconds(now=60.0, guard_due=40.0, asked_due=10.0, asked_at=10.0) == 50.0
    # asked in the very turn the guard is handled in: nobody ran the monitor since the check fell due
    assert no_worker_seconds(now=60.0, guard_due=40.0, asked_due=10.0, asked_at=60.0) == 50.0
    # asked late (a worker came back at 30 s and went again): idle since it asked
    assert no_worker_seconds(now=60.0, guard_due=40.0, asked_due=10.0, asked_at=30.0) == 30.0
    assert no_worker_seconds(now=42.0, guard_due=40.0, asked_due=10.0, asked_at=10.0) is None


def test_the_guard_reason_names_the_checks_that_could_not_run() -> None:
    deadline = "2025-09-19T18:05:30.000Z"
    assert (
        guard_reason(3, 7, 10, deadline, None)
        == f"check 3 had not answered 10 s after the deadline ({deadline})"
    )
    assert guard_reason(3, 7, 10, deadline, 41.6) == (
        "no worker for 42 s (none connected, or all busy): checks 3 to 7 could not run before the deadline "
        f"({deadline}) plus 10 s"
    )
    assert guard_reason(7, 7, 2.5, deadline, 5).startswith(
        "no worker for 5 s (none connected, or all busy): check 7 "
    )
