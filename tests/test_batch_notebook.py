"""What notebook 06 calls: a batch's counts read from its custom status, their plot, the exercise's check,
and the notification receiver under hostile input. Pure or loopback only; the notebook itself runs under
nbval and in JupyterLab."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import httpx
import pytest

from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.batch import BatchRequest, read_counts
from monitoring.core.models import MonitorRequest
from monitoring.core.notify import IDEMPOTENCY_HEADER
from monitoring.core.predict import predicted_counts
from monitoring.notebook.batches import BatchRun
from monitoring.notebook.exercises import check_counts
from monitoring.notebook.plots import batch_progress_figure, png_bytes
from monitoring.notebook.receiver import MAX_BODY_BYTES, NotificationReceiver

NEVER = 10**6


def request(**fields: Any) -> MonitorRequest:
    return MonitorRequest(polling_interval_seconds=1, timeout_seconds=5, **fields)


MIXED = (
    request(job_duration_seconds=2),
    request(job_duration_seconds=2, job_outcome="Failed"),
    request(job_duration_seconds=7),
    request(job_duration_seconds=NEVER, job_outcome="Failed"),
)


def snapshot(status: Any, runtime_status: str = "Running", output: Any = None) -> MonitorSnapshot:
    return MonitorSnapshot(
        "b", runtime_status, None, None, None, custom_status_json=status, output_json=output
    )


def status_with(**counts: int) -> dict[str, Any]:
    return {"batch": True, "counts": counts}


# --- counts, predicted and read ---------------------------------------------------------------------------


def test_the_counts_a_schedule_predicts() -> None:
    assert predicted_counts(MIXED) == {"completed": 1, "failed": 1, "timed_out": 2, "cancelled": 0}


@pytest.mark.parametrize("status", [None, "text", [1], {"counts": None}, {"counts": [1, 2]}])
def test_a_status_without_counts_reads_as_none(status: Any) -> None:
    assert read_counts(status) is None


def test_counts_that_are_not_whole_numbers_read_as_zero() -> None:
    counts = read_counts({"counts": {"running": 2, "pending": -1, "completed": True, "failed": "3"}})
    assert counts == {"pending": 0, "running": 2, "completed": 0, "failed": 0, "timed_out": 0, "cancelled": 0}


def test_a_batch_run_keeps_one_sample_per_change_and_its_results() -> None:
    run = BatchRun("b", BatchRequest(MIXED, max_concurrent=2), time_scale=0.5)
    run.record(snapshot(None))  # no status yet: no sample
    run.record(snapshot(status_with(pending=2, running=2)))
    run.record(snapshot(status_with(pending=2, running=2)))  # the same again
    run.record(snapshot(status_with(pending=1, running=2, completed=1)))
    assert [sample.counts["running"] for sample in run.samples] == [2, 2]
    assert run.ended == 1 and run.most_running() == 2 and not run.done and run.output == {}
    output = {"jobs": [{"final_status": "Completed", "checks_performed": 3}, "junk"], "counts": {}}
    run.record(snapshot(status_with(completed=4), runtime_status="Completed", output=output))
    assert run.done and run.ended == 4 and run.results == [("Completed", 3)]
    later = run.scheduled_at + timedelta(seconds=3)
    assert run.seconds_since_scheduled(later) == 6  # the scenario's seconds: real seconds / time scale


def test_the_stacked_plot_draws_every_state_and_the_marks() -> None:
    run = BatchRun("b", BatchRequest(MIXED, max_concurrent=2))
    run.record(snapshot(status_with(pending=2, running=2)))
    run.mark("worker killed")
    run.record(snapshot(status_with(completed=1, failed=1, timed_out=2), runtime_status="Completed"))
    figure = batch_progress_figure(run)
    (ax,) = figure.axes
    assert [text.get_text() for text in ax.get_legend().get_texts()][:2] == ["pending", "running"]
    assert [text.get_text() for text in ax.texts] == ["worker killed", "batch ended"]
    assert png_bytes(figure).startswith(b"\x89PNG")


# --- the exercise's check ---------------------------------------------------------------------------------


def test_check_counts_is_true_only_for_the_schedules_counts() -> None:
    batch = BatchRequest(MIXED)
    assert check_counts({"completed": 1, "failed": 1, "timed_out": 2}, batch)
    wrong = check_counts({"completed": 1, "failed": 2, "timed_out": 1}, batch)
    assert not wrong and "you have 2 failed, the batch will end with 1" in repr(wrong)
    for unanswered in (..., None, {"completed": 1}, [1, 1, 2]):
        assert not check_counts(unanswered, batch)
        assert "set my_counts" in repr(check_counts(unanswered, batch))


# --- the receiver ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Any:
    with NotificationReceiver() as running:
        yield running


def post(receiver: NotificationReceiver, body: bytes, **headers: str) -> int:
    sent = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: "i:1", **headers}
    return httpx.post(receiver.url, content=body, headers=sent).status_code


def test_the_receiver_keeps_one_notification_per_key(receiver: NotificationReceiver) -> None:
    assert post(receiver, b'{"n": 1}') == 200
    assert post(receiver, b'{"n": 2}') == 200  # a repeat of i:1
    assert post(receiver, b'{"n": 3}', **{IDEMPOTENCY_HEADER: "j:2"}) == 200
    assert receiver.once_each() == {"i:1": {"n": 1}, "j:2": {"n": 3}}
    assert receiver.repeats == 1 and receiver.notified() == {"i", "j"}
    assert receiver.wait_for({"i", "j"}, timeout=0) == receiver.once_each()
    with pytest.raises(TimeoutError, match="no notification from 1 instance"):
        receiver.wait_for({"k"}, timeout=0)


def test_the_receiver_answers_hostile_input_with_a_4xx_and_keeps_running(
    receiver: NotificationReceiver,
) -> None:
    assert post(receiver, b"\xff\xfe not json") == 400
    assert post(receiver, b"[1, 2") == 400
    assert receiver.received[-1].body is None and receiver.once_each() == {}
    assert post(receiver, json.dumps({"deep": [[[[1]]]]}).encode(), Host="evil.example.com") == 400
    with socket.create_connection(("127.0.0.1", receiver.port)) as raw:  # a body too big to take
        raw.sendall(
            f"POST /notify HTTP/1.1\r\nHost: 127.0.0.1:{receiver.port}\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        assert raw.recv(100).startswith(b"HTTP/1.0 413")
    assert len(receiver.received) == 2  # the foreign Host and the big body were not recorded
    assert post(receiver, b'{"ok": true}') == 200


def test_a_receiver_told_to_fail_answers_500_first() -> None:
    with NotificationReceiver(failures=2) as flaky:
        assert [post(flaky, b"{}") for _ in range(3)] == [500, 500, 200]
        assert [notification.code for notification in flaky.received] == [500, 500, 200]
