"""A real job, monitored by URL: the production orchestrator, the ``http`` source and a loopback job service,
started from Python, from the command line and over the HTTP API."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator

import httpx
import pytest
from test_cli import cli

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import shown_input
from monitoring.client.tracking import RunTrace
from monitoring.core import jobs
from monitoring.core.jobs import SimulatedJobSource, register_job_source
from monitoring.core.models import MonitorRequest
from monitoring.notebook.job_service import JobService
from monitoring.web.serving import BackgroundServer

SECRET_VARIABLE = "LEARN_TEST_JOB_TOKEN"
SECRET = "tok-5c1d-never-shown"


@pytest.fixture(scope="module")
def service() -> Iterator[JobService]:
    """The job service, answering only with the token; the worker (this process) has it in its environment."""
    os.environ[SECRET_VARIABLE] = SECRET
    with JobService(token=SECRET) as running:
        yield running
    os.environ.pop(SECRET_VARIABLE, None)


AUTH = {"headers": {"Authorization": f"Bearer ${{{SECRET_VARIABLE}}}"}}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_monitor_follows_a_real_job_until_it_succeeds(
    monitors: MonitorClient, service: JobService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = service.start(work=5000, seconds=600)  # paced to last ten minutes, until it is hurried
    request = MonitorRequest(
        job_id="build-7", polling_interval_seconds=0.2, timeout_seconds=120, status_url=service.url_of(job),
        job_source_options=AUTH,
    )  # fmt: skip
    assert request.job_source == "http" and request.to_payload()["job_source_options"][
        "url"
    ] == service.url_of(job)
    instance_id = monitors.start(request)
    running = monitors.wait_for(
        instance_id, lambda s: s.custom_status is not None and s.custom_status.check_count >= 2
    )
    assert running.custom_status.status == "Running" and running.custom_status.last_error is None
    job.hurry()
    done = monitors.wait_for(instance_id, lambda s: s.is_terminal, timeout=120)
    assert done.result.final_status == "Completed" and done.result.checks_performed >= 3
    assert done.custom_status.status == "Completed"
    # The token reached the service (it answers nothing without it) and nowhere else: not the input, the
    # custom status, the output, nor any log line.
    details = monitors.details(instance_id)
    shown = json.dumps(
        [details.input, done.custom_status.to_payload(), done.result.to_payload()], default=str
    )
    assert SECRET not in shown and f"${{{SECRET_VARIABLE}}}" in json.dumps(details.input)
    assert SECRET not in caplog.text


def test_a_job_that_fails_ends_the_monitor_failed(monitors: MonitorClient, service: JobService) -> None:
    job = service.wait(service.start(work=2000, seconds=0, fail_at=0.3))
    request = MonitorRequest(
        job_id="build-8", polling_interval_seconds=0.2, timeout_seconds=30, status_url=service.url_of(job),
        job_source_options=AUTH,
    )  # fmt: skip
    done = monitors.wait_for(monitors.start(request), lambda s: s.is_terminal, timeout=60)
    assert (done.result.final_status, done.result.checks_performed) == ("Failed", 1)


@pytest.mark.parametrize(
    ("url", "error"),
    [("down", "failed: ConnectError"), ("no-token", "answered 401 Unauthorized")],
)
def test_an_endpoint_that_does_not_answer_is_retried_then_reported(
    monitors: MonitorClient, service: JobService, url: str, error: str
) -> None:
    target = f"http://127.0.0.1:{closed_port()}/jobs/x" if url == "down" else service.url_of("x")
    request = MonitorRequest(
        job_id="build-9", polling_interval_seconds=0.2, timeout_seconds=60, status_url=target,
        retry_max_attempts=2, retry_first_interval_seconds=0.1,
    )  # fmt: skip
    instance_id = monitors.start(request)
    done = monitors.wait_for(instance_id, lambda s: s.is_terminal, timeout=60)
    assert done.result.final_status == "Failed" and done.result.checks_performed == 0
    assert error in done.result.reason and "failed 2 time(s)" in done.result.reason
    assert f"GET {target}" in done.custom_status.last_error and error in done.custom_status.last_error


def test_the_command_line_starts_a_monitor_by_status_url(monitors: MonitorClient) -> None:
    with JobService() as open_service:
        job = open_service.wait(open_service.start(work=1000, seconds=0))
        url = open_service.url_of(job)
        done = cli(
            "start", "job-cli", "0.2", "10", "--status-url", url, "--status-field", "status",
            endpoint=monitors.connection.endpoint,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["final_status"] == "Completed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status-url", "ftp://ci/job/7"], "url must be an http:// or https:// URL"),
        (["--status-field", "state"], "give status_url too"),
        (["--status-url", "http://ci/job/7", "--status-field", "a..b"], "dotted path"),
    ],
)
def test_the_command_line_refuses_a_bad_status_url_in_one_line(
    monitors: MonitorClient, args: list[str], message: str
) -> None:
    done = cli("start", "job-cli", "1", "10", *args, endpoint=monitors.connection.endpoint)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_the_http_api_takes_the_same_fields_and_refuses_callable(api_server: BackgroundServer) -> None:
    with JobService() as open_service, httpx.Client(base_url=api_server.url, timeout=30) as http:
        job = open_service.wait(open_service.start(work=1000, seconds=0))
        body = {"job_id": "job-api", "polling_interval_seconds": 0.2, "timeout_seconds": 10}
        started = http.post(
            "/api/start_monitoring_job", json={**body, "status_url": open_service.url_of(job)}
        )
        assert started.status_code == 202
        status = http.get(started.json()["statusQueryGetUri"].replace(api_server.url, ""))
        stored = status.json()["input"]
        assert stored["job_source"] == "http"
        assert not {"job_duration_seconds", "job_outcome"} & set(stored), stored  # the simulated job's fields
        refused = http.post(
            "/api/start_monitoring_job",
            json={**body, "job_source": "callable", "job_source_options": {"function": "os:getcwd"}},
        )
        assert refused.status_code == 400 and "not over HTTP" in refused.json()["error"]
        bad = http.post("/api/start_monitoring_job", json={**body, "status_url": "file:///etc/passwd"})
        assert bad.status_code == 400 and "http:// or https://" in bad.json()["error"]


def test_a_request_without_the_new_fields_keeps_the_samples_shape() -> None:
    assert list(MonitorRequest(job_id="j").to_payload()) == [
        "job_id", "polling_interval_seconds", "timeout_seconds", "job_duration_seconds", "job_outcome",
    ]  # fmt: skip
    real = MonitorRequest(job_id="j", status_url="http://127.0.0.1:9/jobs/1").to_payload()
    # The source carries the job's description: no simulated job length or outcome beside it.
    assert list(real) == [
        "job_id", "polling_interval_seconds", "timeout_seconds", "job_source", "job_source_options",
    ]  # fmt: skip
    assert MonitorRequest.from_payload(real, default_job_id="x") == MonitorRequest(
        job_id="j", status_url="http://127.0.0.1:9/jobs/1"
    )
    # A run of it is described by its source, not by the simulated job's length it does not have.
    traced = RunTrace("monitor-j", MonitorRequest(job_id="j", status_url="http://127.0.0.1:9/jobs/1"))
    assert traced.describe() == "j: every 5 s, timeout 30 s, job from http -> Scheduled, 0 checks so far"


def test_a_source_that_does_not_say_otherwise_keeps_the_simulated_jobs_fields() -> None:
    """The bench's recording source is the simulated job's kin: its requests must keep how long the job runs
    (in the monitor's input, and in the input each later generation gets)."""
    register_job_source("kin_for_test", SimulatedJobSource())
    try:
        request = MonitorRequest(job_id="j", job_duration_seconds=50, job_source="kin_for_test")
        payload = request.to_payload()
        assert (payload["job_duration_seconds"], payload["job_outcome"]) == (50, "Completed")
        assert MonitorRequest.from_payload(payload, default_job_id="x") == request
    finally:
        jobs._SOURCES.pop("kin_for_test", None)  # the registry has no public removal: a test's own clean-up


def test_a_header_written_into_the_request_is_never_shown_where_the_input_is(
    monitors: MonitorClient, api_server: BackgroundServer, dashboard_server: BackgroundServer
) -> None:
    """A person may put a token in a header literally (the README says to use ``${NAME}``): the status API and
    the dashboard show the input with every header value hidden, naming only the variables it refers to."""
    literal = "Bearer literal-7f3a-never-shown"
    options = {"url": f"http://127.0.0.1:{closed_port()}/job", "headers": {"Authorization": literal}}
    options["headers"]["X-Ref"] = f"id ${{{SECRET_VARIABLE}}}"
    request = MonitorRequest("job-header", 60, 600, job_source="http", job_source_options=options)
    instance_id = monitors.start(request)
    try:
        status = httpx.get(
            f"{api_server.url}/runtime/webhooks/durabletask/instances/{instance_id}", timeout=30
        )
        page = httpx.get(f"{dashboard_server.url}/api/instances/{instance_id}", timeout=30)
        for answer in (status, page):
            assert answer.status_code in (200, 202) and "literal-7f3a" not in answer.text
        shown = status.json()["input"]["job_source_options"]["headers"]
        assert shown == {"Authorization": "(hidden)", "X-Ref": f"(hidden; uses ${{{SECRET_VARIABLE}}})"}
        assert page.json()["instance"]["input"]["job_source_options"]["headers"] == shown
    finally:
        monitors.terminate(instance_id, reason="test over")


def test_shown_input_hides_headers_in_any_shape() -> None:
    hidden = {"job_source_options": {"headers": {"A": "(hidden)"}, "url": "u"}}
    given = {"job_source_options": {"headers": {"A": "x"}, "url": "u"}}
    assert shown_input(given) == hidden and given["job_source_options"]["headers"] == {"A": "x"}
    assert shown_input({"request": given, "progress": {}}) == {"request": hidden, "progress": {}}
    for foreign in (None, "text", [1], {"job_source_options": "x"}, {"job_source_options": {"headers": 1}}):
        assert shown_input(foreign) == foreign
