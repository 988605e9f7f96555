"""The dashboard's pure parts: the tolerant status card, the backend's name and checks per minute."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from monitoring.client.card import read_card
from monitoring.client.overview import CheckRate, InstanceRow, new_check_times
from monitoring.core.models import MonitorRequest
from monitoring.core.predict import predict
from monitoring.runtime.connection import Connection
from monitoring.web.dashboard import describe_backend

STATUS = {
    "job_id": "job-1",
    "status": "Running",
    "check_count": 3,
    "last_check_time": "2026-01-01T00:00:10.000Z",
    "elapsed_seconds": 10.0,
    "next_check_time": "2026-01-01T00:00:15.000Z",
    "started_at": "2026-01-01T00:00:00.000Z",
    "deadline": "2026-01-01T00:00:30.000Z",
    "polling_interval_seconds": 5,
    "timeout_seconds": 30,
    "final_status": None,
    "last_error": None,
    "reason": None,
    "generation": 1,
}
REQUEST = MonitorRequest("job-1", 5, 30, job_duration_seconds=12)


def test_card_of_a_running_monitor_says_what_a_person_reads() -> None:
    card = read_card("Running", STATUS, REQUEST.to_payload())
    assert (card.state, card.job_id, card.job_status, card.check_count) == ("Running", "job-1", "Running", 3)
    assert card.planned_checks == 7 and card.predicted_checks == predict(REQUEST).checks_performed == 4
    assert card.next_check_time == STATUS["next_check_time"] and card.deadline == STATUS["deadline"]
    assert card.note is None


def test_card_of_a_continued_monitor_reads_the_request_inside_the_continuation() -> None:
    continued = {
        "request": REQUEST.to_payload(),
        "progress": {"started_at": STATUS["started_at"], "checks_done": 10, "generation": 2},
    }
    card = read_card("Running", {**STATUS, "generation": 2}, continued)
    assert card.planned_checks == 7 and card.generation == 2


@pytest.mark.parametrize(
    ("custom", "note"),
    [
        (None, "no custom status"),
        ("halfway there", "custom status is not a monitor's: halfway there"),
        ([1, 2], "custom status is not a monitor's: list"),
        (42, "custom status is not a monitor's: int"),
        ({}, None),
        ({"status": "Exploded", "check_count": "three"}, "unknown job status 'Exploded'"),
        ({"check_count": -1, "deadline": 5, "next_check_time": "not a time", "generation": True}, None),
    ],
)
def test_card_reads_foreign_shapes_without_failing(custom: Any, note: str | None) -> None:
    card = read_card("Running", custom, "not a monitor input", None)
    assert card.note == note
    assert card.check_count is None and card.deadline is None and card.next_check_time is None
    assert card.planned_checks is None and card.generation is None
    assert card.state == "Running"


def test_card_state_comes_from_output_then_runtime_status() -> None:
    ended = {**STATUS, "final_status": "Timeout", "check_count": 7}
    assert read_card("Completed", ended, None, {"final_status": "Timeout"}).state == "Timeout"
    assert read_card("Terminated", STATUS).state == "Terminated"
    assert read_card("Suspended", STATUS).state == "Suspended"
    failed = read_card("Failed", None, None, "OrchestratorNotRegisteredError: nope")
    assert failed.state == "Failed" and failed.reason == "OrchestratorNotRegisteredError: nope"
    assert read_card("Pending", None).note == "no custom status published yet"
    planned_from_status = read_card("Running", STATUS)  # no input: the schedule from the status's numbers
    assert planned_from_status.planned_checks == 7 and planned_from_status.predicted_checks is None


@pytest.mark.parametrize(
    ("kind", "endpoint", "words"),
    [
        (
            "local",
            "http://localhost:8080",
            ["local scheduler at http://localhost:8080", "state directory /st"],
        ),
        ("embedded", "http://127.0.0.1:5001", ["local scheduler in this process at http://127.0.0.1:5001"]),
        ("emulator", "http://localhost:8080", ["emulator at http://localhost:8080"]),
        ("azure", "https://x.westus.durabletask.io", ["in Azure at https://x.westus.durabletask.io"]),
    ],
)
def test_backend_is_named_truthfully(kind: str, endpoint: str, words: list[str]) -> None:
    state_file = Path("/st/scheduler-8080-hub.sqlite3")
    described = describe_backend(Connection(endpoint, "hub", kind), state_file)  # type: ignore[arg-type]
    assert described["kind"] == kind and described["taskhub"] == "hub"
    for word in words:
        assert word in described["label"]
    assert ("emulator" in described["label"]) == (kind == "emulator")
    assert ("state directory" in described["label"]) == (kind == "local")
    assert ("scheduler-8080-hub.sqlite3" in described["detail"]) == (kind == "local")
    # The dashboard cannot know who started a local scheduler, so it does not claim it was started on demand.
    assert "started on demand" not in described["detail"]


def _row(custom: dict[str, Any], request: MonitorRequest | None = REQUEST) -> InstanceRow:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return InstanceRow(
        "i",
        "monitoring_job_orchestrator",
        "Running",
        moment,
        moment,
        read_card("Running", custom, request.to_payload() if request else None),
        request.to_payload() if request else None,
    )


def test_new_checks_sit_on_their_planned_offsets_and_the_newest_on_its_own_time() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    row = _row({**STATUS, "check_count": 3, "last_check_time": "2026-01-01T00:00:10.400Z"})
    times = new_check_times(row, 0, start - timedelta(minutes=1))
    assert sorted(times) == [start, start + timedelta(seconds=5), start + timedelta(seconds=10.4)]
    assert new_check_times(row, 2, start) == [start + timedelta(seconds=10.4)]
    assert new_check_times(row, 3, start) == []
    assert new_check_times(row, 0, start + timedelta(seconds=6)) == [start + timedelta(seconds=10.4)]


def test_checks_per_minute_counts_by_minute_and_keeps_the_last_ones() -> None:
    rate = CheckRate()
    now = datetime(2026, 1, 1, 0, 9, 30, tzinfo=timezone.utc)
    rate.add([now, now - timedelta(seconds=20), now - timedelta(minutes=3), now - timedelta(hours=3)])
    series = rate.series(now, minutes=5)
    assert [point["checks"] for point in series] == [0, 1, 0, 0, 2]
    assert series[-1]["minute"] == "2026-01-01T00:09:00.000Z"
