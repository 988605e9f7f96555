"""Notification when a monitor or a batch ends (``monitoring.core.notify``), to a real HTTP receiver.

The receiver is notebook 06's (``monitoring.notebook.receiver``): an HTTP server on a free loopback port in
this process that records every POST (body and headers) and can be told to answer 500 a number of times
first, or always. The worker is the session's
(``tests/conftest.py``), a real one over gRPC; the activity's retries are the SDK's, on durable timers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.core.batch import BatchRequest
from monitoring.core.models import MonitorRequest
from monitoring.core.payloads import InvalidRequestError
from monitoring.notebook.receiver import NotificationReceiver

WAIT = 240  # a hang guard: every wait returns as soon as the state it waits for is observed
QUICK = {"polling_interval_seconds": 0.1, "timeout_seconds": 5, "job_duration_seconds": 0.2}


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as running:
        yield running


def ended(monitors: MonitorClient, instance_id: str) -> Any:
    done = monitors.wait_for(instance_id, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
    assert done.runtime_status == "Completed", done.failure
    return done.output_json


def test_a_monitor_posts_its_result_with_an_idempotency_key(
    monitors: MonitorClient, receiver: NotificationReceiver
) -> None:
    request = MonitorRequest(job_id=new_job_id(), notify_url=receiver.url, **QUICK)
    instance = monitors.start(request)
    output = ended(monitors, instance)
    assert output["notified"] is True and "notify_error" not in output
    kept = receiver.once_each()
    assert list(kept) == [f"{instance}:1"]
    sent = kept[f"{instance}:1"]
    assert sent["job_id"] == request.job_id and sent["final_status"] == "Completed" and "notified" not in sent


def test_a_receiver_that_answers_500_three_times_then_200_is_notified(monitors: MonitorClient) -> None:
    with NotificationReceiver(failures=3) as flaky:
        instance = monitors.start(MonitorRequest(job_id=new_job_id(), notify_url=flaky.url, **QUICK))
        output = ended(monitors, instance)
    assert output["notified"] is True
    assert [notification.code for notification in flaky.received] == [500, 500, 500, 200]
    assert {notification.key for notification in flaky.received} == {
        f"{instance}:1"
    }  # the same key each time


def test_an_endpoint_that_stays_down_leaves_the_result_as_it_was_and_says_so(monitors: MonitorClient) -> None:
    with NotificationReceiver(failures=-1) as down:
        url = down.url_with("?token=do-not-show")
        instance = monitors.start(MonitorRequest(job_id=new_job_id(), notify_url=url, **QUICK))
        output = ended(monitors, instance)
    assert output["final_status"] == "Completed" and output["checks_performed"] == 3
    assert output["notified"] is False
    assert output["notify_error"].endswith(f"{down.url} answered 500")
    assert "do-not-show" not in json.dumps(output)
    assert len(down.received) == 6  # every attempt of the retry policy


def test_headers_name_the_workers_secrets(
    monitors: MonitorClient, receiver: NotificationReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_TOKEN", "s3cret")  # the session's worker runs in this process
    headers = {"Authorization": "Bearer ${NOTIFY_TEST_TOKEN}"}
    request = MonitorRequest(job_id=new_job_id(), notify_url=receiver.url, notify_headers=headers, **QUICK)
    instance = monitors.start(request)
    assert ended(monitors, instance)["notified"] is True
    assert receiver.received[0].headers["Authorization"] == "Bearer s3cret"
    stored = monitors.details(instance).input
    assert "s3cret" not in json.dumps(stored)


def test_a_batch_posts_its_output_once_it_ends(
    monitors: MonitorClient, receiver: NotificationReceiver
) -> None:
    jobs = [{"job_id": new_job_id(), **QUICK, "notify_url": receiver.url_with("?job")} for _ in range(3)]
    batch = BatchRequest.from_body({"jobs": jobs, "max_concurrent": 2, "notify_url": receiver.url})
    batch_id = monitors.start_batch(batch)
    output = ended(monitors, batch_id)
    assert output["notified"] is True
    kept = receiver.once_each()
    assert kept[f"{batch_id}:1"]["counts"]["completed"] == 3
    assert {key for key in kept if key != f"{batch_id}:1"} == {f"{batch_id}-job-{i}:1" for i in range(3)}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"notify_url": "ftp://example.com/x"}, "notify_url must be an http:// or https:// URL with a host"),
        ({"notify_url": "http://"}, "notify_url must be an http:// or https:// URL with a host"),
        ({"notify_headers": {"A": "b"}}, "notify_headers needs a notify_url to send them to"),
        (
            {"notify_url": "https://x", "notify_headers": {"Bad Name": "v"}},
            "notify_headers: header 'Bad Name'",
        ),
    ],
)
def test_a_notification_that_cannot_be_sent_is_refused_at_the_edge(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        MonitorRequest(**fields)
    assert str(refused.value).startswith(message)


def test_the_api_and_the_dashboard_show_no_query_and_no_header_value_of_a_notification() -> None:
    from monitoring.client.snapshots import shown_input

    single = MonitorRequest(
        notify_url="https://hooks.example.com/in?token=t0p", notify_headers={"X-Key": "k3y ${NAME}"}
    ).to_payload()
    batch = {"jobs": [single], "max_concurrent": 1, "notify_url": "https://h.example.com/b?sig=s1g"}
    later = {"batch": batch, "carried": {"outcomes": [None], "next": 1}}
    text = json.dumps([shown_input(single), shown_input(batch), shown_input(later)])
    assert "t0p" not in text and "k3y" not in text and "s1g" not in text
    assert shown_input(single)["notify_url"] == "https://hooks.example.com/in?(hidden)"
    assert shown_input(single)["notify_headers"] == {"X-Key": "(hidden; uses ${NAME})"}
    assert shown_input(later)["batch"]["jobs"][0]["notify_url"] == "https://hooks.example.com/in?(hidden)"


def test_the_command_line_takes_a_notify_url_and_headers(
    monitors: MonitorClient, receiver: NotificationReceiver
) -> None:
    env = {**os.environ, "ENDPOINT": monitors.connection.endpoint}
    args = ["start", new_job_id(), "0.1", "5", "--job-duration", "0.2", "--notify-url", receiver.url]
    args += ["--notify-header", "X-Team: builds"]
    command = [sys.executable, "-m", "monitoring", *args]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["notified"] is True
    (sent, *_) = receiver.received
    assert sent.headers["X-Team"] == "builds" and sent.body["final_status"] == "Completed"
