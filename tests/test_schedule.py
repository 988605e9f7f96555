"""The pure decisions: check schedule, terminal states, the simulated job."""

from __future__ import annotations

from itertools import pairwise

import pytest

from monitoring.core.jobs import attempt_fails, simulated_job_status
from monitoring.core.models import DEFAULT_JOB_DURATION_SECONDS, DEFAULT_POLLING_INTERVAL_SECONDS
from monitoring.core.schedule import (
    CheckSchedule,
    backoff_gap,
    backoff_offset,
    decide_after_check,
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
