"""Bad input at every edge, table by table: HTTP (a real server over a real scheduler and worker), the command
line (real processes) and configuration. Each mistake gets a clear answer: 4xx with a JSON error naming the
field, or one line on stderr and exit code 2; never a 5xx, a traceback, or a monitor scheduled anyway."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from test_scheduler import free_port

from conftest import new_job_id
from monitoring import settings
from monitoring.client.monitors import MonitorClient
from monitoring.core import jobs
from monitoring.core.jobs import JobCheckRequest, JobStatusReport, register_job_source
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.hub import HubOptions
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.api import create_app
from monitoring.web.serving import BackgroundServer

START = "/api/start_monitoring_job"
INSTANCES = "/runtime/webhooks/durabletask/instances"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def http(api_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        yield client


def instance_count(monitors: MonitorClient) -> int:
    return len(monitors.client.get_all_orchestration_states())


# --- HTTP: the start body, field by field -------------------------------------------------------------------

BAD_BODIES: list[tuple[bytes, str, str | None]] = [
    # (body, words the error must say, the field it must name)
    (b"not json", "the request body is not valid JSON", "body"),
    (b'{"job_id": "x",', "the request body is not valid JSON", "body"),
    (b"\xff\xfe{}", "the request body is not valid JSON", "body"),
    (b"[" * 5000 + b"]" * 5000, "the request body is not valid JSON", None),
    (b'{"timeout_seconds": ' + b"9" * 5000 + b"}", "the request body is not valid JSON", None),
    (b"[1, 2]", "must be a JSON object, not an array", "body"),
    (b'"job-1"', "must be a JSON object, not a string", "body"),
    (b"42", "must be a JSON object, not a number", "body"),
    (b'{"job_id": 42}', "job_id must be a string, not 42", "job_id"),
    (b'{"job_id": ""}', "job_id must be a non-empty string", "job_id"),
    (b'{"job_id": "' + b"x" * 201 + b'"}', "job_id is longer than 200 characters", "job_id"),
    (b'{"job_id": "bad\\ud800"}', "job_id is not valid Unicode text", "job_id"),
    (b'{"job_id": "two\\nlines"}', "job_id must not contain control characters", "job_id"),
    (b'{"job_id": ["a"]}', "job_id must be a string", "job_id"),
    (
        b'{"polling_interval_seconds": "5"}',
        "polling_interval_seconds must be a number of seconds, not '5'",
        None,
    ),
    (b'{"polling_interval_seconds": true}', "polling_interval_seconds must be a number of seconds", None),
    (b'{"polling_interval_seconds": null}', "polling_interval_seconds must be a number of seconds", None),
    (b'{"polling_interval_seconds": {}}', "polling_interval_seconds must be a number of seconds", None),
    (b'{"polling_interval_seconds": 0}', "polling_interval_seconds must be from 0.001 to 31536000", None),
    (b'{"polling_interval_seconds": 5e-324}', "polling_interval_seconds must be from 0.001", None),
    (b'{"timeout_seconds": -30}', "timeout_seconds must be from 0.001 to 31536000 seconds, not -30", None),
    (b'{"timeout_seconds": NaN}', "timeout_seconds must be a finite number", None),
    (b'{"timeout_seconds": Infinity}', "timeout_seconds must be a finite number", None),
    (b'{"timeout_seconds": 1e400}', "timeout_seconds must be a finite number", None),
    (b'{"timeout_seconds": ' + b"9" * 400 + b"}", "timeout_seconds must be from 0.001 to 31536000", None),
    (b'{"job_duration_seconds": -0.5}', "job_duration_seconds must be from 0 to 31536000", None),
    (b'{"polling_interval_seconds": 10, "timeout_seconds": 5}', "is larger than timeout_seconds", None),
    (b'{"job_outcome": "Maybe"}', "job_outcome must be one of Completed, Failed", None),
    (b'{"jobid": "x"}', "unknown field jobid; allowed: job_id, polling_interval_seconds", "jobid"),
    (b'{"polling_interval_seconds": 0.001, "timeout_seconds": 3600}', "at most 1000000 are allowed", None),
    (b'{"retry_max_attempts": 2.5}', "retry_max_attempts must be a whole number", None),
    (b'{"retry_max_attempts": 1000}', "retry_max_attempts must be from 1 to 100", None),
    (b'{"backoff_factor": 1e9}', "backoff_factor must be from 1 to 10", None),
    (b'{"retry_max_attempts": 99, "retry_backoff_coefficient": 9}', "grows the retry waits from 1 s", None),
    (b'{"job_fail_fraction": 2}', "job_fail_fraction must be from 0 to 1", None),
    (b'{"job_source": "elsewhere"}', "job_source must be one of", None),
]


@pytest.mark.parametrize(("body", "words", "field"), BAD_BODIES, ids=[repr(c[0][:40]) for c in BAD_BODIES])
def test_a_bad_start_body_is_a_400_naming_the_field_and_schedules_nothing(
    http: httpx.Client, monitors: MonitorClient, body: bytes, words: str, field: str | None
) -> None:
    before = instance_count(monitors)
    response = http.post(START, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert words in answer["error"] and "\n" not in answer["error"]
    if field is None:  # a field of the model: the one the message starts with
        field = answer["error"].split()[0]
    assert answer.get("field") == field or answer["error"].startswith("the request body")
    assert instance_count(monitors) == before


def test_null_and_an_omitted_job_id_alike_take_a_new_job_id(
    http: httpx.Client, monitors: MonitorClient
) -> None:
    for body in (b'{"job_id": null, "polling_interval_seconds": 60, "timeout_seconds": 600}', b"null"):
        response = http.post(START, content=body, headers=JSON)
        assert response.status_code == 202, response.text
        instance = monitors.details(response.json()["id"])
        assert instance.input["job_id"].startswith("job-")
        monitors.terminate(instance.instance_id, "test over")


# --- HTTP: what every request passes first ------------------------------------------------------------------

REFUSED: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
    # (method, path, headers, body, status, words)
    ("POST", START, {"Content-Type": "text/plain"}, b"{}", 415, "Content-Type: application/json"),
    ("POST", START, {"Content-Type": "text/plain"}, b"", 415, "not text/plain"),
    ("POST", START, {"Content-Type": "application/x-www-form-urlencoded"}, b"job_id=x", 415, "JSON"),
    ("POST", START, {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415, "JSON"),
    ("POST", f"{INSTANCES}/x/terminate", {"Content-Type": "text/plain"}, b"", 415, "JSON"),
    ("POST", START, {**JSON, "Origin": "http://evil.example"}, b"{}", 403, "another site"),
    ("POST", START, {**JSON, "Origin": "null"}, b"{}", 403, "another site"),
    ("DELETE", f"{INSTANCES}/x", {"Origin": "https://evil.example"}, b"", 403, "another site"),
    ("GET", f"{INSTANCES}/x", {"Host": "evil.example"}, b"", 400, "is not a loopback name"),
    ("GET", f"{INSTANCES}/x", {"Host": "localhost.evil.example:7071"}, b"", 400, "is not a loopback name"),
    ("GET", f"{INSTANCES}/x", {"Host": "127.0.0.1.nip.io"}, b"", 400, "is not a loopback name"),
    ("POST", START, {**JSON, "Host": "192.168.1.5:7071"}, b"{}", 400, "is not a loopback name"),
    ("POST", START, JSON, b" " * 1_000_001, 413, "larger than 1000000 bytes"),
    ("GET", f"{INSTANCES}/{'x' * 257}", {}, b"", 400, "instanceId"),
    ("POST", f"{INSTANCES}/x/raiseEvent/{'e' * 257}", JSON, b"{}", 400, "eventName"),
    ("POST", f"{INSTANCES}/x/terminate?reason={'r' * 4097}", {}, b"", 400, "reason"),
    ("POST", f"{INSTANCES}/x/raiseEvent/go", JSON, b"[" * 101 + b"]" * 101, 400, "deeper than 100 levels"),
    ("POST", f"{INSTANCES}/x/raiseEvent/go", JSON, b"[" * 5000 + b"]" * 5000, 400, "nests too deeply"),
    ("POST", f"{INSTANCES}/x/raiseEvent/go", JSON, b'{"x": NaN}', 400, "NaN is not JSON"),
    ("POST", f"{INSTANCES}/x/raiseEvent/go", JSON, b"{oops", 400, "not valid JSON"),
    ("GET", "/api/job_status/" + "j" * 201, {}, b"", 400, "jobId"),
    ("PUT", START, JSON, b"{}", 405, "Method Not Allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "words"), REFUSED, ids=[f"{c[4]}-{c[5]}" for c in REFUSED]
)
def test_requests_are_refused_with_the_right_status_and_a_json_error(
    http: httpx.Client,
    monitors: MonitorClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    words: str,
) -> None:
    before = instance_count(monitors)
    response = http.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    if status != 405:  # every refusal names what it is about
        named = {400: {"Host", "body", "instanceId", "eventName", "reason", "jobId"}, 403: {"Origin"}}
        assert response.json()["field"] in {**named, 413: {"body"}, 415: {"Content-Type"}}[status]
    assert instance_count(monitors) == before


def test_loopback_hosts_in_every_spelling_are_served(http: httpx.Client) -> None:
    for host in ("localhost", "LOCALHOST:7071", "127.0.0.1", "127.1.2.3:80", "[::1]:7071", "app.localhost"):
        response = http.get(f"{INSTANCES}/no-such-instance", headers={"Host": host})
        assert response.status_code == 404, (host, response.text)


def test_an_origin_on_this_machine_may_post(http: httpx.Client, monitors: MonitorClient) -> None:
    response = http.post(f"{INSTANCES}/nothing/terminate", headers={"Origin": "http://localhost:8888"})
    assert response.status_code == 404  # past the guard, to the route


def test_a_streamed_body_is_refused_once_it_passes_the_cap_without_being_read_whole(
    api_server: BackgroundServer,
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:  # 200 MB, chunked, if the server were to read it all
        nonlocal sent
        for _ in range(3200):
            sent += 65536
            yield b" " * 65536

    with httpx.Client(base_url=api_server.url, timeout=60) as client:
        try:
            response = client.post(START, content=chunks(), headers=JSON)
            assert response.status_code == 413 and "larger than 1000000 bytes" in response.json()["error"]
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered and closed while the client still sent: also a refusal
    assert sent < 20_000_000, f"the server read {sent} bytes of a body capped at 1 MB"


def test_an_oversized_content_length_is_answered_before_the_body_is_sent(
    api_server: BackgroundServer,
) -> None:
    with socket.create_connection(("127.0.0.1", api_server.port), timeout=30) as raw:
        raw.sendall(
            b"POST /api/start_monitoring_job HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n"
        )
        answer = raw.recv(4096)  # no body sent at all: the answer comes anyway
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_remote_server_never_echoes_a_foreign_host_in_its_urls(monitors: MonitorClient) -> None:
    with (
        BackgroundServer(create_app(monitors, allow_remote=True)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        body = {"job_id": new_job_id(), "polling_interval_seconds": 60, "timeout_seconds": 600}
        response = client.post(START, json=body, headers={"Host": "evil.example"})
        assert response.status_code == 202, response.text
        urls = response.json()
        monitors.terminate(urls["id"], "test over")
    assert "evil" not in response.text and "evil" not in response.headers["Location"]
    assert urls["statusQueryGetUri"].startswith(f"http://127.0.0.1:{server.port}{INSTANCES}/")


def test_request_log_lines_escape_control_characters(
    monitors: MonitorClient, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        BackgroundServer(create_app(monitors, log_requests=True)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        caplog.at_level(logging.INFO, logger="monitoring.http"),
    ):
        client.get("/api/job_status/evil%0Aforged%20line%1B%5B31m")
        deadline = time.monotonic() + 30
        while not [r for r in caplog.records if "evil" in r.getMessage()] and time.monotonic() < deadline:
            time.sleep(0.05)
    [line] = [record.getMessage() for record in caplog.records if "evil" in record.getMessage()]
    assert "\n" not in line and "\x1b" not in line
    assert "evil\\nforged line\\x1b[31m" in line and "-> 400" in line  # a job id has no controls


# --- HTTP: the dashboard ------------------------------------------------------------------------------------


@pytest.fixture
def dashboard(dashboard_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard_server.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/instances/a%2Fb", {"Accept": "text/html"}, 404),
        ("/instances/", {"Accept": "text/html"}, 404),
        ("/no/such/page", {"Accept": "text/html,application/xhtml+xml"}, 404),
        ("/", {"Accept": "text/html", "Host": "evil.example"}, 400),
    ],
)
def test_the_dashboard_answers_malformed_urls_with_a_page(
    dashboard: httpx.Client, path: str, headers: dict[str, str], status: int
) -> None:
    response = dashboard.get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text and ("href='/'" in response.text or 'href="/"' in response.text)


def test_the_dashboard_lists_instances_whose_data_is_not_clean_json(
    dashboard: httpx.Client, monitors: MonitorClient
) -> None:
    """Input written by another client may hold lone surrogates, NaN or deep nesting: the list still works."""
    instance_id = f"odd-{new_job_id()}"
    odd = {"job_id": "lone \ud800 surrogate", "ratio": float("nan"), "deep": [[[[[[[[[[]]]]]]]]]]}
    monitors.client.schedule_new_orchestration("some_other_orchestrator", input=odd, instance_id=instance_id)
    try:
        listed = dashboard.get("/api/instances", params={"limit": 200})
        assert listed.status_code == 200
        assert instance_id in [row["instanceId"] for row in listed.json()["instances"]]
        shown = dashboard.get(f"/api/instances/{instance_id}")
        assert shown.status_code == 200
        odd_input = shown.json()["instance"]["input"]
        assert odd_input["job_id"] == "lone \ud800 surrogate" and odd_input["ratio"] is None
    finally:
        monitors.client.terminate_orchestration(instance_id, recursive=False)


# --- the command line ---------------------------------------------------------------------------------------


def run_cli(*args: str | bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, **(env or {})},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for word in words:
        assert word in done.stderr


EVERY_COMMAND = [
    ["start", "job-1", "1", "5"],
    ["demo"],
    ["worker"],
    ["serve", "--port", "1", "--dashboard-port", "2"],
    ["status", "some-id"],
    ["cancel", "some-id"],
    ["terminate", "some-id"],
    ["suspend", "some-id"],
    ["resume", "some-id"],
    ["purge", "some-id"],
]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=[c[0] for c in EVERY_COMMAND])
def test_a_port_out_of_range_in_endpoint_is_one_line_for_every_command(command: list[str]) -> None:
    done = run_cli(*command, env={"ENDPOINT": "http://localhost:99999"})
    assert_one_line_error(done, "ENDPOINT='http://localhost:99999'", "Port out of range")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ENDPOINT": "localhost:8080"}, "is not a URL of a scheduler"),
        ({"ENDPOINT": "http://localhost:0"}, "port 0 is not a port"),
        ({"ENDPOINT": "http://localhost:80a"}, "Port could not be cast to integer"),
        ({"ENDPOINT": "http://localhost:8080/v1/hub"}, "has a path"),
        ({"ENDPOINT": "http://bad host:8080"}, "the host must be a plain name or address"),
        ({"TASKHUB": "my hub"}, "TASKHUB='my hub' is not a task hub name"),
        ({"MONITORING_TIME_SCALE": "fast"}, "MONITORING_TIME_SCALE='fast'"),
        ({"MONITORING_TIME_SCALE": "nan"}, "MONITORING_TIME_SCALE='nan'"),
        (  # azure-identity's sign-in failure, in one line (developer credentials only: nothing leaves here)
            {"ENDPOINT": "https://localhost:1", "AZURE_TOKEN_CREDENTIALS": "dev"},
            "cannot sign in to Azure for https://localhost:1",
        ),
        (
            {"ENDPOINT": "https://localhost:1", "AZURE_TOKEN_CREDENTIALS": "nonsense"},
            "Azure credentials are misconfigured",
        ),
    ],
)
def test_bad_configuration_is_one_line(env: dict[str, str], words: str) -> None:
    for command in (["start", "job-1", "1", "5"], ["status", "some-id"]):
        assert_one_line_error(run_cli(*command, env=env), words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["nonsense"], "(see python -m monitoring --help)"),
        ([], "(see python -m monitoring --help)"),
        (
            ["worker", "--port", "1"],
            "unrecognized arguments: --port 1 (see python -m monitoring worker --help)",
        ),
        (["start", "j", "5", "30", "x"], "(see python -m monitoring start --help)"),
        (["status"], "(see python -m monitoring status --help)"),
        (["serve", "--port", "99999"], "(see python -m monitoring serve --help)"),
        (["worker", "--processes", "0"], "(see python -m monitoring worker --help)"),
        (["worker", "--processes", "100000"], "must be a whole number from 1 to 64, not '100000'"),
        (["scheduler", "--taskhub", "my hub"], "a task hub name is up to 64 letters"),
        (["serve", "--host", "my-laptop"], "--host takes localhost or an IP address of this machine"),
        (["serve", "--host", "::2", "--allow-remote", "--port", "1"], "cannot listen on ::2 port 1"),
        (["start", "j", "nan", "30"], "polling_interval_seconds must be a finite number"),
        (["start", "j", "1e400", "30"], "polling_interval_seconds must be a finite number"),
        (["start", "j", "1e-9", "30"], "polling_interval_seconds must be from 0.001"),
        (["start", "", "1", "30"], "job_id must be a non-empty string"),
        (["start", b"bad\xffid", "1", "30"], "job_id is not valid Unicode text"),
        (["start", "j", "5", "30", "--job-duration", "-1"], "job_duration_seconds must be from 0"),
    ],
)
def test_usage_errors_are_one_line_and_point_to_the_right_help(args: list[str | bytes], words: str) -> None:
    assert_one_line_error(run_cli(*args), words)


@pytest.fixture(scope="module")
def other_scheduler() -> Iterator[LocalScheduler]:
    """A scheduler that serves task hub 'default' only."""
    with LocalScheduler(0) as running:
        yield running


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["serve", "--port", str(free_port()), "--dashboard-port", str(free_port())],
        ["start", "job-1", "1", "5"],
        ["status", "some-id"],
        ["cancel", "some-id"],
    ],
    ids=lambda command: command[0],
)
def test_a_task_hub_the_scheduler_does_not_serve_fails_at_once_naming_it(
    other_scheduler: LocalScheduler, command: list[str]
) -> None:
    done = run_cli(*command, env={"ENDPOINT": other_scheduler.address, "TASKHUB": "elsewhere"})
    # One line, so no "scheduler unavailable ..., retrying" line: it was refused at once, not retried.
    assert_one_line_error(done, "does not serve task hub 'elsewhere'", "set TASKHUB")


def test_control_commands_refuse_ids_no_backend_can_carry(other_scheduler: LocalScheduler) -> None:
    env = {"ENDPOINT": other_scheduler.address}
    assert_one_line_error(run_cli("status", b"\xff", env=env), "instance_id is not valid Unicode text")
    assert_one_line_error(run_cli("status", "i" * 300, env=env), "instance_id is longer than 256 characters")
    assert_one_line_error(run_cli("cancel", "x", "--reason", b"\xfe", env=env), "reason is not valid Unicode")


# --- configuration, read in one place -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"ENDPOINT": "http://localhost:99999"}, "Port out of range"),
        ({"ENDPOINT": "http://localhost:-1"}, "ENDPOINT='http://localhost:-1'"),
        ({"ENDPOINT": "https://"}, "is not a URL of a scheduler"),
        ({"ENDPOINT": "http://u:p@localhost:8080"}, "is not a URL of a scheduler"),
        ({"ENDPOINT": "http://localhost:8080?x=1"}, "has a path"),
        ({"ENDPOINT": "http://\udcff:8080"}, "the host must be a plain name"),
        ({"TASKHUB": "x" * 65}, "is not a task hub name"),
        ({"TASKHUB": "-leading"}, "is not a task hub name"),
        ({"TASKHUB": "caf\u00e9"}, "is not a task hub name"),
        ({"MONITORING_TIME_SCALE": "0"}, "MONITORING_TIME_SCALE='0'"),
        ({"MONITORING_TIME_SCALE": "1e400"}, "MONITORING_TIME_SCALE='1e400'"),
    ],
)
def test_settings_refuse_values_they_cannot_use_in_one_line(environ: dict[str, str], words: str) -> None:
    with pytest.raises(settings.SettingsError) as error:
        settings.load(environ)
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("", "default")),
        ({"ENDPOINT": " http://localhost:8080/ ", "TASKHUB": " hub-1 "}, ("http://localhost:8080", "hub-1")),
        ({"ENDPOINT": "http://[::1]:8080"}, ("http://[::1]:8080", "default")),
        ({"ENDPOINT": "https://my-scheduler.westus2.durabletask.io"}, (None, "default")),
    ],
)
def test_settings_accept_the_values_the_readme_shows(
    environ: dict[str, str], expected: tuple[Any, str]
) -> None:
    loaded = settings.load(environ)
    assert (expected[0] is None or loaded.endpoint == expected[0]) and loaded.taskhub == expected[1]


def test_a_taken_port_for_the_scheduler_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert_one_line_error(
            run_cli("scheduler", "--port", str(port)), f"port {port} on 127.0.0.1 is already"
        )


def test_a_flood_the_scheduler_refuses_is_a_429_not_a_500() -> None:
    """Events beyond what an instance may have waiting are refused by the scheduler (RESOURCE_EXHAUSTED)."""
    options = HubOptions(max_pending_events=3)
    with (
        LocalScheduler(0, options=options) as scheduler,  # no worker: the events stay waiting
        MonitorClient(local_connection(scheduler.address)) as monitors,
        BackgroundServer(create_app(monitors)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        urls = client.post(START, json={"polling_interval_seconds": 60, "timeout_seconds": 600}).json()
        answers = [client.post(f"{INSTANCES}/{urls['id']}/raiseEvent/poke", json=n) for n in range(8)]
        assert {answer.status_code for answer in answers} == {202, 429}
        refused = [answer for answer in answers if answer.status_code == 429]
        assert "events waiting" in refused[0].json()["error"]


class Unreachable:
    """A job source whose job service is down: every check fails."""

    def check(self, request: JobCheckRequest, now: datetime) -> JobStatusReport:
        raise ConnectionRefusedError("[Errno 111] Connection refused")


def test_a_job_source_that_cannot_answer_is_a_502_naming_it(
    http: httpx.Client, monitors: MonitorClient
) -> None:
    register_job_source("unreachable_for_test", Unreachable())
    try:
        job_id = new_job_id()
        body = {"job_id": job_id, "polling_interval_seconds": 60, "timeout_seconds": 600}
        urls = http.post(START, json={**body, "job_source": "unreachable_for_test"}).json()
        answer = http.get(f"/api/job_status/{job_id}")
        assert answer.status_code == 502 and answer.json()["error"] == (
            f"the unreachable_for_test job source of monitor {urls['id']} could not say the status of job "
            f"'{job_id}': ConnectionRefusedError: [Errno 111] Connection refused"
        )
        monitors.terminate(urls["id"], "test over")
    finally:
        jobs._SOURCES.pop("unreachable_for_test", None)  # the registry has no public removal
