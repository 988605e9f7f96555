"""The orchestrator kept wrong on purpose for notebook 03's exercise, and the exercises' checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker

from conftest import running_worker
from monitoring.client.monitors import MonitorClient
from monitoring.core import teaching
from monitoring.core.minimal import minimal_check, minimal_monitor
from monitoring.core.models import MonitorRequest
from monitoring.core.teaching import wall_clock_monitor
from monitoring.notebook import exercises
from monitoring.notebook.source import source_of
from monitoring.runtime.connection import local_connection, sdk_logger
from monitoring.scheduler.server import LocalScheduler


@pytest.fixture(scope="module")
def plain_sdk() -> Iterator[MonitorClient]:
    """A scheduler of its own with only the SDK's worker on it (it replays every episode from the start)."""
    with LocalScheduler(0) as scheduler:
        connection = local_connection(scheduler.address)
        worker = DurableTaskSchedulerWorker(
            host_address=connection.endpoint,
            taskhub=connection.taskhub,
            secure_channel=False,
            token_credential=None,
            logger=sdk_logger("worker", connection.endpoint),
        )
        worker.add_orchestrator(wall_clock_monitor)
        worker.add_orchestrator(minimal_monitor)
        worker.add_activity(minimal_check)
        with running_worker(connection, worker) as client:
            yield client


JOB = {
    "job_id": "job-w",
    "polling_interval_seconds": 0.1,
    "timeout_seconds": 0.6,
    "job_duration_seconds": 1.2,
}


def test_the_wall_clock_monitor_never_stops_and_its_history_says_why(plain_sdk: MonitorClient) -> None:
    instance_id = plain_sdk.client.schedule_new_orchestration(wall_clock_monitor, input=JOB)
    # A correct monitor would have timed out after 6 checks, and the job ended after 12: it goes on.
    seen = plain_sdk.wait_for(
        instance_id, lambda s: s.is_terminal or (s.custom_status_json or {}).get("check_count", 0) >= 18
    )
    assert seen.runtime_status == "Running", seen.failure
    history = plain_sdk.history(instance_id)
    inputs = [json.loads(e.input) for e in history if type(e).__name__ == "TaskScheduledEvent"]
    assert len({check["started_at"] for check in inputs}) == len(inputs) >= 18  # a new start every episode
    plain_sdk.terminate(instance_id, reason="wrong on purpose")
    plain_sdk.wait_for(instance_id, lambda s: s.runtime_status == "Terminated")


def test_the_fix_is_the_minimal_monitor_one_line_away(plain_sdk: MonitorClient) -> None:
    right_id = plain_sdk.client.schedule_new_orchestration(minimal_monitor, input=JOB)
    state = plain_sdk.client.wait_for_orchestration_completion(right_id, timeout=60)
    assert state is not None and json.loads(state.serialized_output)["final_status"] == "Timeout"
    wrong, right = (source_of(f).text.splitlines() for f in (wall_clock_monitor, minimal_monitor))
    changed = [(a, b) for a, b in zip(wrong[2:], right[2:], strict=True) if a != b]  # past the docstring
    assert (
        len(changed) == 1 and "datetime.now" in changed[0][0] and "ctx.current_utc_datetime" in changed[0][1]
    )
    assert teaching.__doc__ and "WRONG ON PURPOSE" in teaching.__doc__


def test_the_checks_say_right_or_not_yet_in_plain_words() -> None:
    unanswered, wrong, right = (
        exercises.check_prediction(answer, 5, "List the due times.") for answer in (..., 4, 5)
    )
    assert not unanswered and not wrong and right
    assert repr(unanswered).startswith("Not yet: write your prediction")
    assert repr(wrong) == "Not yet: you predicted 4, the monitor made 5. List the due times."
    assert repr(right) == "Right: the monitor made 5 checks, as you predicted."
    choice = {"a": "no", "b": "yes"}
    assert repr(exercises.check_choice("z", "b", choice)) == "Not yet: set my_answer to one of 'a', 'b'."
    assert repr(exercises.check_choice("b", "b", choice)) == "Right: yes" and not exercises.check_choice(
        "a", "b", choice
    )
    assert not exercises.check_saturation(..., 120) and exercises.check_saturation(120, 120)
    assert not exercises.check_saturation(120, None)


def run_of(interval: float, job: float, checks: int | None) -> SimpleNamespace:
    """What check_interval reads of a finished run (time scale 1): its request and which check saw the end."""
    request = MonitorRequest(
        job_id="job-i",
        polling_interval_seconds=interval,
        timeout_seconds=4 * interval,
        job_duration_seconds=job,
    )
    final = "Timeout" if checks is None else "Completed"
    result = SimpleNamespace(final_status=final, checks_performed=checks or 5)
    return SimpleNamespace(request=request, result=result, scenario_seconds=lambda seconds: seconds)


def test_the_interval_check_wants_the_longest_interval_within_the_budget() -> None:
    # Jobs ending half a second after the 2nd and the 3rd check: the check after it saw the end.
    right = exercises.check_interval(4, 4, [run_of(4, 8.5, 4), run_of(4, 12.5, 5)])
    over = exercises.check_interval(5, 4, [run_of(5, 10.5, 4), run_of(5, 15.5, 5)])
    shorter = exercises.check_interval(3, 4, [run_of(3, 6.5, 4), run_of(3, 9.5, 5)])
    unseen = exercises.check_interval(4, 4, [run_of(4, 30, None)])
    assert right and not over and not shorter and not unseen and not exercises.check_interval(..., 4, [])
    assert repr(right) == "Right: 4 s: every run kept within the budget (worst 3.5 s)."
    assert "noticed the end 4.5 s late: over the budget" in repr(over)
    assert "a longer interval would too" in repr(shorter)
    assert "never saw the job end" in repr(unseen)


def test_the_status_function_check_reads_its_words_as_the_monitor_does() -> None:
    cases = {"a": "Completed", "b": "Failed", "c": "Running"}
    words = {"a": "succeeded", "b": "failed", "c": "running"}
    assert exercises.check_status_function(words.get, cases)
    placeholder = exercises.check_status_function(lambda job_id: None, cases)
    raising = exercises.check_status_function(lambda job_id: {}[job_id], cases)
    assert not placeholder and not raising and not exercises.check_status_function(..., cases)
    assert repr(placeholder) == (
        "Not yet: your_status('a') returned None, which the monitor reads as Running; that job is Completed."
    )
    assert repr(raising) == "Not yet: your_status('a') raised KeyError: 'a'"
