"""Input validation and wire shapes."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path

import pytest

from monitoring.core.generations import MonitorProgress, continuation_payload, parse_monitor_input
from monitoring.core.models import (
    MAX_CHECKS_PER_MONITOR,
    REQUEST_FIELDS,
    MonitorRequest,
    MonitorResult,
    MonitorStatus,
)
from monitoring.core.payloads import InvalidRequestError, from_iso, to_iso


def test_official_sample_input_works_as_is() -> None:
    request = MonitorRequest.from_payload(
        {"job_id": "job-123", "polling_interval_seconds": 5, "timeout_seconds": 30}, default_job_id="unused"
    )
    assert request.job_id == "job-123"
    assert request.polling_interval_seconds == 5.0 and request.timeout_seconds == 30.0
    assert request.job_duration_seconds == 12.0 and request.job_outcome == "Completed"


def test_missing_fields_take_defaults() -> None:
    request = MonitorRequest.from_payload({}, default_job_id="job-abc")
    assert request.to_payload() == {
        "job_id": "job-abc",
        "polling_interval_seconds": 5.0,
        "timeout_seconds": 30.0,
        "job_duration_seconds": 12.0,
        "job_outcome": "Completed",
    }
    assert request.retry_policy().max_number_of_attempts == 3
    assert request.deadline_grace_seconds == 10.0 and request.checks_per_generation == 10
    assert MonitorRequest.from_payload(None, default_job_id="job-x").job_id == "job-x"
    assert MonitorRequest.from_payload({"job_id": None}, default_job_id="job-y").job_id == "job-y"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"polling_interval_seconds": 0}, "polling_interval_seconds must be from 0.001 to 31536000 seconds"),
        ({"polling_interval_seconds": -5}, "polling_interval_seconds must be from 0.001 to 31536000 seconds"),
        ({"polling_interval_seconds": 5e-324}, "polling_interval_seconds must be from 0.001"),
        ({"timeout_seconds": -1}, "timeout_seconds must be from 0.001 to 31536000 seconds, not -1"),
        ({"timeout_seconds": 10**400}, "timeout_seconds must be from 0.001 to 31536000 seconds, not 1000"),
        ({"timeout_seconds": "30"}, "timeout_seconds must be a number of seconds, not '30'"),
        ({"timeout_seconds": True}, "timeout_seconds must be a number of seconds"),
        ({"timeout_seconds": math.inf}, "timeout_seconds must be a finite number"),
        ({"timeout_seconds": math.nan}, "timeout_seconds must be a finite number"),
        ({"polling_interval_seconds": 10, "timeout_seconds": 5}, "is larger than timeout_seconds"),
        ({"job_duration_seconds": -1}, "job_duration_seconds must be from 0 to 31536000 seconds"),
        ({"job_outcome": "Exploded"}, "job_outcome must be one of Completed, Failed"),
        ({"job_id": ""}, "job_id must be a non-empty string"),
        ({"job_id": "  "}, "job_id must be a non-empty string"),
        ({"job_id": 42}, "job_id must be a string, not 42"),
        ({"job_id": "x" * 201}, "job_id is longer than 200 characters"),
        ({"job_id": "bad\ud800"}, "job_id is not valid Unicode text"),
        ({"job_id": "two\nlines"}, "job_id must not contain control characters"),
        ({"timeout": 30}, "unknown field timeout; allowed: job_id, polling_interval_seconds"),
        ({"polling_interval_seconds": 0.001, "timeout_seconds": 3600}, f"at most {MAX_CHECKS_PER_MONITOR}"),
        ({"backoff_factor": 0.5}, "backoff_factor must be from 1 to 10"),
        ({"backoff_factor": 11}, "backoff_factor must be from 1 to 10"),
        (
            {"max_interval_seconds": 1},
            "max_interval_seconds (1) is smaller than polling_interval_seconds (5)",
        ),
        ({"retry_max_attempts": 0}, "retry_max_attempts must be from 1 to 100"),
        ({"retry_max_attempts": 2.5}, "retry_max_attempts must be a whole number"),
        ({"retry_max_attempts": "3"}, "retry_max_attempts must be a whole number, not '3'"),
        ({"retry_first_interval_seconds": -1}, "retry_first_interval_seconds must be from 0 to 31536000"),
        ({"retry_backoff_coefficient": 0.9}, "retry_backoff_coefficient must be from 1 to 10"),
        (
            {"retry_max_attempts": 60, "retry_backoff_coefficient": 10},
            "grows the retry waits from 1 s past 31536000 s",
        ),
        ({"deadline_grace_seconds": 0}, "deadline_grace_seconds must be from 0.001"),
        ({"checks_per_generation": 0}, "checks_per_generation must be from 1 to 1000"),
        ({"checks_per_generation": 400, "retry_max_attempts": 3}, "use at most 333"),
        ({"job_fail_first_attempts": -1}, "job_fail_first_attempts must be from 0 to 1000000"),
        ({"job_fail_fraction": 1.5}, "job_fail_fraction must be from 0 to 1, not 1.5"),
        ({"job_hang_seconds": -2}, "job_hang_seconds must be from 0 to 31536000"),
        ({"job_hang_from_check": 0}, "job_hang_from_check must be from 1 to 1000000"),
        ({"job_source": "nope"}, "job_source must be one of simulated"),
        ({"status_url": "http://localhost/" + "x" * 2000}, "status_url is longer than 2000 characters"),
        ({"status_url": "http://localhost/\udc80"}, "status_url is not valid Unicode text"),
        ({"status_field": "a\tb"}, "status_field must not contain control characters"),
    ],
)
def test_bad_input_is_explained(payload: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        MonitorRequest.from_payload(payload, default_job_id="job-1")
    assert message in str(error.value)
    assert "\n" not in str(error.value) and error.value.field in (*REQUEST_FIELDS, *payload)
    with pytest.raises(InvalidRequestError) as built:  # the same words from keywords (CLI, notebooks, API)
        MonitorRequest(**{"job_id": "job-1", **payload})  # type: ignore[arg-type]
    assert str(built.value) == str(error.value)


def test_input_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="must be a JSON object"):
        MonitorRequest.from_payload([1, 2], default_job_id="job-1")


def test_timestamps_round_trip_in_the_samples_format() -> None:
    text = to_iso(from_iso("2025-09-19T18:05:15.123Z"))
    assert text == "2025-09-19T18:05:15.123Z"


def test_ten_thousand_checks_are_allowed_now_that_monitors_continue_as_new() -> None:
    request = MonitorRequest(job_id="long", polling_interval_seconds=0.01, timeout_seconds=99.99)
    assert request.schedule().planned_check_count == 10_000


def test_a_later_generation_carries_its_progress() -> None:
    request = MonitorRequest(job_id="j", polling_interval_seconds=1, timeout_seconds=10)
    progress = MonitorProgress(started_at="2025-09-19T18:05:00.000Z", checks_done=100, generation=2)
    parsed, carried = parse_monitor_input(continuation_payload(request, progress), default_job_id="x")
    assert parsed == request and carried == progress
    assert parse_monitor_input(request.to_payload(), default_job_id="x") == (request, None)


def test_result_payload_keeps_the_official_shape_unless_there_is_a_reason() -> None:
    plain = MonitorResult(
        job_id="j", final_status="Completed", checks_performed=4, monitoring_duration_seconds=15.0
    )
    assert set(plain.to_payload()) == {
        "job_id",
        "final_status",
        "checks_performed",
        "monitoring_duration_seconds",
    }
    cancelled = MonitorResult("j", "Cancelled", 2, 1.0, reason="cancelled on request")
    assert cancelled.to_payload()["reason"] == "cancelled on request"
    assert MonitorResult.from_payload(cancelled.to_payload()) == cancelled


def test_optional_fields_appear_in_the_payload_only_when_set_and_round_trip() -> None:
    request = MonitorRequest(job_id="j", retry_max_attempts=5, job_fail_fraction=0.25, backoff_factor=1.5)
    payload = request.to_payload()
    assert set(payload) - {"job_id", "polling_interval_seconds", "timeout_seconds"} == {
        "job_duration_seconds",
        "job_outcome",
        "retry_max_attempts",
        "job_fail_fraction",
        "backoff_factor",
    }
    assert MonitorRequest.from_payload(payload, default_job_id="x") == request


@pytest.mark.parametrize(("row", "payload"), [("custom status", MonitorStatus), ("output", MonitorResult)])
def test_the_readme_names_every_field_of_the_status_and_the_output(row: str, payload: type) -> None:
    """The README's "what | shape" table names each field the orchestrator publishes (in backticks)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith(f"| {row} | "))
    named = set(re.findall(r"`(\w+)`", line))
    assert [field.name for field in fields(payload) if field.name not in named] == []
