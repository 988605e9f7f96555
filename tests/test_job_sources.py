"""Job sources: the registry and its entry points, ``http`` against real loopback servers, ``callable``."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitoring import settings
from monitoring.core.jobs import (
    JobCheckRequest,
    check_job,
    job_source,
    job_source_is_local_only,
    job_source_names,
    validate_job_source,
)
from monitoring.core.sources import HttpJobSource, JobSourceError, map_status, url_for_messages
from monitoring.notebook.job_service import JobService
from monitoring.runtime.connection import Connection
from monitoring.worker import create_worker

TOKEN = "s3cret-token-value"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ask(source: str, options: dict[str, Any]) -> str:
    """One check of job ``job-1`` through the registry, as the activity makes it; the status it reports."""
    validated = validate_job_source(source, options)
    request = JobCheckRequest(
        "job-1", "2026-01-01T00:00:00.000Z", 0, "Completed", source, source_options=validated
    )
    return check_job(request, NOW).status


def test_built_in_sources_register_through_the_public_registry() -> None:
    assert {"simulated", "http", "callable"} <= set(job_source_names())
    assert job_source_is_local_only("callable") and not job_source_is_local_only("http")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("completed", "Completed"), ("Succeeded", "Completed"),
        ("SUCCESS", "Completed"), (" done ", "Completed"),
        ("failed", "Failed"), ("Error", "Failed"), ("cancelled", "Failed"), ("canceled", "Failed"),
        ("running", "Running"), ("queued", "Running"), (42, "Running"), (None, "Running"), (True, "Running"),
    ],
)  # fmt: skip
def test_default_mapping_is_case_insensitive(word: Any, status: str) -> None:
    assert map_status(word) == status


def test_a_custom_mapping_comes_first() -> None:
    mapping = {"green": "Completed", "done": "Running", "true": "Completed"}
    assert [map_status(w, mapping) for w in ("GREEN", "done", "failed", True)] == [
        "Completed", "Running", "Failed", "Completed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("nope", None, "job_source must be one of simulated, http, callable"),
        ("simulated", {"url": "http://x/"}, "takes no options"),
        ("http", None, "needs a url"),
        ("http", {"url": "ftp://host/job"}, "http:// or https://"),
        ("http", {"url": "file:///etc/passwd"}, "http:// or https://"),
        ("http", {"url": "http://host:99999/"}, "not a valid URL"),
        ("http", {"url": "http://h/", "field": "a..b"}, "dotted path"),
        (
            "http",
            {"url": "http://h/", "mapping": {"ok": "Done"}},
            "must be one of Running, Completed, Failed",
        ),
        ("http", {"url": "http://h/", "timeout_seconds": 0}, "timeout_seconds must be above 0"),
        ("http", {"url": "http://h/", "headers": {"X-Key": 5}}, "headers must be a JSON object of strings"),
        ("http", {"url": "http://h/", "headers": {"Bad Name": TOKEN}}, "not a valid HTTP header"),
        ("http", {"url": "http://h/", "verb": "POST"}, "unknown http option(s) verb"),
        ("http", [], "must be a JSON object"),
        ("callable", {"function": "os.system"}, "package.module:function"),
        ("callable", {"function": "m:f", "args": [1]}, "unknown callable option(s) args"),
    ],
)
def test_bad_source_settings_get_one_line(source: str, options: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        validate_job_source(source, options)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_http_options_are_normalised() -> None:
    options = {"url": "https://ci.example/api/run/7", "field": "run.state", "mapping": {"Green": "Completed"}}
    assert validate_job_source("http", options) == {
        "url": "https://ci.example/api/run/7",
        "field": "run.state",
        "mapping": {"green": "Completed"},
        "timeout_seconds": 10.0,
    }
    assert (
        url_for_messages("https://user:pw@ci.example:8443/run/7?token=abc#x")
        == "https://ci.example:8443/run/7"
    )


@pytest.fixture(scope="module")
def service() -> Iterator[JobService]:
    with JobService(token=TOKEN) as running:
        yield running


def test_http_reads_a_real_service_as_it_works(service: JobService) -> None:
    job = service.start(work=2000, seconds=600)  # paced to last ten minutes, until it is hurried
    options = {"url": service.url_of(job), "headers": {"Authorization": f"Bearer {TOKEN}"}}
    assert ask("http", options) == "Running"
    job.hurry()
    service.wait(job)
    assert ask("http", options) == "Completed"  # the service says "succeeded"
    failing = service.wait(service.start(work=2000, seconds=0, fail_at=0.5))
    assert ask("http", {**options, "url": service.url_of(failing)}) == "Failed"
    # A dotted path and a custom mapping: the progress figure, read as a status.
    assert ask("http", {**options, "field": "progress", "mapping": {"1.0": "Completed"}}) == "Completed"


class Answers(BaseHTTPRequestHandler):
    """A loopback server that answers whatever the test asks for, by path."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            threading.Event().wait(1.0)
        body, kind, code = {
            "/nested": (json.dumps({"job": {"state": "SUCCEEDED"}}), "application/json", 200),
            "/html": ("<html>maintenance</html>", "text/html", 200),
            "/down": (json.dumps({"error": "x"}), "application/json", 503),
            "/moved": ("", "text/plain", 302),
            "/nofield": (json.dumps({"state": "done"}), "application/json", 200),
        }.get(self.path.split("?")[0], (json.dumps({"status": "done"}), "application/json", 200))
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if code == 302:
            self.send_header("Location", "/nested")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def answers() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_reads_dotted_fields(answers: str) -> None:
    assert ask("http", {"url": f"{answers}/nested", "field": "job.state"}) == "Completed"


@pytest.mark.parametrize(
    ("path", "options", "error"),
    [
        ("/down?token=abc", {}, "answered 503 Service Unavailable"),
        ("/moved", {}, "answered 302 Found"),
        ("/html", {}, "answered text/html, not JSON"),
        ("/nofield", {}, "answered JSON with no field 'status'"),
        ("/nested", {"field": "job.phase"}, "no field 'job.phase'"),
        ("/slow", {"timeout_seconds": 0.2}, "timed out after 0.2 s"),
    ],
)
def test_http_failures_are_failed_checks_with_a_clear_reason(
    answers: str, path: str, options: dict[str, Any], error: str
) -> None:
    secret = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    with pytest.raises(JobSourceError) as raised:
        ask("http", {"url": f"{answers}{path}", **options, **secret})
    message = str(raised.value)
    assert error in message and f"GET {answers}{path.split('?')[0]}" in message
    assert TOKEN not in message and "token=abc" not in message


def test_http_to_an_endpoint_that_is_down() -> None:
    with pytest.raises(JobSourceError, match=r"GET http://127\.0\.0\.1:\d+/job failed: ConnectError"):
        ask("http", {"url": f"http://127.0.0.1:{closed_port()}/job"})


STATES = {"job-1": "SUCCEEDED"}


def job_state(job_id: str) -> str:
    """A status function for the callable source: what a notebook or a test would write."""
    return STATES.get(job_id, "queued")


def test_callable_calls_the_named_function_with_the_job_id() -> None:
    assert ask("callable", {"function": f"{__name__}:job_state"}) == "Completed"
    assert (
        ask("callable", {"function": f"{__name__}:job_state", "mapping": {"succeeded": "Failed"}}) == "Failed"
    )
    with pytest.raises(JobSourceError, match="cannot load no_such_module:f: ModuleNotFoundError"):
        ask("callable", {"function": "no_such_module:f"})
    with pytest.raises(JobSourceError, match=f"cannot load {__name__}:nothing: AttributeError"):
        ask("callable", {"function": f"{__name__}:nothing"})
    with pytest.raises(JobSourceError, match="STATES is not callable"):
        ask("callable", {"function": f"{__name__}:STATES"})


def test_an_installed_package_adds_a_source_through_the_entry_point_group(tmp_path: Path) -> None:
    """A package on the path declares ``monitoring.job_sources``; a fresh process finds and uses it."""
    (tmp_path / "acme_jobs.py").write_text(
        textwrap.dedent(
            """
            from monitoring.core.jobs import JobStatusReport
            from monitoring.core.payloads import to_iso

            class Acme:
                def validate_options(self, options):
                    if set(options) != {"queue"}:
                        raise ValueError("acme needs a queue")
                    return options

                def check(self, request, now):
                    state = "Completed" if request.source_options["queue"] == "fast" else "Running"
                    return JobStatusReport(request.job_id, state, to_iso(now))
            """
        )
    )
    info = tmp_path / "acme_jobs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-jobs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[monitoring.job_sources]\nacme = acme_jobs:Acme\n")
    script = textwrap.dedent(
        """
        from datetime import datetime, timezone
        from monitoring.core.jobs import JobCheckRequest, check_job, job_source_names, validate_job_source
        options = validate_job_source("acme", {"queue": "fast"})
        request = JobCheckRequest("j", "2026-01-01T00:00:00Z", 0, "Completed", "acme", source_options=options)
        print(",".join(job_source_names()), check_job(request, datetime.now(timezone.utc)).status)
        try:
            validate_job_source("acme", {})
        except ValueError as error:
            print(error)
        """
    )
    path = os.pathsep.join([str(tmp_path), *sys.path])
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["simulated,http,callable,acme Completed", "acme needs a queue"]


def test_a_header_names_the_workers_secret_instead_of_carrying_it(service: JobService) -> None:
    job = service.wait(service.start(work=1000, seconds=0))
    options = {"url": service.url_of(job), "headers": {"Authorization": "Bearer ${JOB_SERVICE_TOKEN}"}}
    validated = validate_job_source("http", options)
    assert validated["headers"] == options["headers"]  # only the name is kept in the monitor's input
    request = JobCheckRequest(
        "job-1", "2026-01-01T00:00:00.000Z", 0, "Completed", "http", source_options=validated
    )
    with pytest.raises(JobSourceError, match="header Authorization: the worker has no environment variable"):
        HttpJobSource().check(request, NOW)
    worker_environment = {"JOB_SERVICE_TOKEN": TOKEN}
    assert HttpJobSource(secrets=worker_environment.get).check(request, NOW).status == "Completed"


def test_the_workers_http_source_reads_secrets_through_settings(connection: Connection) -> None:
    create_worker(connection)  # what every worker does before it starts
    assert job_source("http").secrets is settings.secret


def test_no_log_line_shows_the_url_query_or_a_header(answers: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"url": f"{answers}/nested?token=abc", "field": "job.state", "headers": {"X-Key": TOKEN}}
    assert ask("http", options) == "Completed"
    assert "token=abc" not in caplog.text and TOKEN not in caplog.text
