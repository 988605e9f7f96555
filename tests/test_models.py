"""Input validation and wire shapes."""

from __future__ import annotations

import math

import pytest

from monitoring.models import (
    MAX_CHECKS_PER_MONITOR,
    InvalidRequestError,
    MonitorRequest,
    from_iso,
    to_iso,
)


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
    assert MonitorRequest.from_payload(None, default_job_id="job-x").job_id == "job-x"
    assert MonitorRequest.from_payload({"job_id": None}, default_job_id="job-y").job_id == "job-y"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"polling_interval_seconds": 0}, "polling_interval_seconds must be greater than zero"),
        ({"polling_interval_seconds": -5}, "polling_interval_seconds must be greater than zero"),
        ({"timeout_seconds": -1}, "timeout_seconds must be greater than zero"),
        ({"timeout_seconds": "30"}, "timeout_seconds must be a number of seconds"),
        ({"timeout_seconds": True}, "timeout_seconds must be a number of seconds"),
        ({"timeout_seconds": math.inf}, "finite"),
        ({"polling_interval_seconds": 10, "timeout_seconds": 5}, "is larger than timeout_seconds"),
        ({"job_duration_seconds": -1}, "job_duration_seconds must be zero or more"),
        ({"job_outcome": "Exploded"}, "job_outcome must be one of Completed, Failed"),
        ({"job_id": ""}, "job_id must be a non-empty string"),
        ({"job_id": 42}, "job_id must be a non-empty string"),
        ({"job_id": "x" * 201}, "longer than 200"),
        ({"timeout": 30}, "unknown field(s) timeout"),
        ({"polling_interval_seconds": 0.01, "timeout_seconds": 3600}, f"at most {MAX_CHECKS_PER_MONITOR}"),
    ],
)
def test_bad_input_is_explained(payload: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        MonitorRequest.from_payload(payload, default_job_id="job-1")
    assert message in str(error.value)


def test_input_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="must be a JSON object"):
        MonitorRequest.from_payload([1, 2], default_job_id="job-1")


def test_timestamps_round_trip_in_the_samples_format() -> None:
    text = to_iso(from_iso("2025-09-19T18:05:15.123Z"))
    assert text == "2025-09-19T18:05:15.123Z"
