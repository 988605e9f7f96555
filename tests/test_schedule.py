"""The pure decisions: check schedule, terminal states, the simulated job."""

from __future__ import annotations

from itertools import pairwise

import pytest

from monitoring.jobs import simulated_job_status
from monitoring.models import DEFAULT_JOB_DURATION_SECONDS, DEFAULT_POLLING_INTERVAL_SECONDS
from monitoring.schedule import CheckSchedule, decide_after_check


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
