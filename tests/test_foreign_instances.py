"""Custom status and output written by someone else are read tolerantly, everywhere they are shown.

Another worker serves ``monitoring_job_orchestrator`` on a task hub of its own (a real scheduler, a real
worker, real gRPC): other implementations of the pattern publish other shapes (the official sample's four
fields, extra or mistyped fields, a plain string, a number, nothing). The CLI's ``start`` and ``status``,
client snapshots, the run tracker and its plots, the dashboard and the HTTP API all show what they can.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from durabletask import task
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker

from monitoring.client.monitors import MonitorClient
from monitoring.client.tracking import RunTracker
from monitoring.core.models import MonitorRequest
from monitoring.notebook.plots import comparison_figure, png_bytes, progress_figure
from monitoring.runtime.connection import local_connection
from monitoring.scheduler.server import LocalScheduler
from monitoring.web.api import create_app
from monitoring.web.dashboard import create_dashboard_app
from monitoring.web.serving import BackgroundServer

TASKHUB = "foreign"
FINISH = "finish"
# What the other worker publishes, by job id: (custom status, output).
SHAPES: dict[str, tuple[Any, Any]] = {
    "sample": (  # the official sample's own shapes: four status fields, its output
        {
            "job_id": "sample",
            "status": "Running",
            "check_count": 3,
            "last_check_time": "2025-09-19T18:05:15Z",
        },
        {
            "job_id": "sample",
            "final_status": "Completed",
            "checks_performed": 4,
            "monitoring_duration_seconds": 15,
        },
    ),
    "extra": (  # unknown fields, and known ones of the wrong type
        {"status": "InProgress", "check_count": "three", "elapsed_seconds": True, "progress": [0.5], "x": {}},
        {"final_status": "Timeout", "checks_performed": 2.0, "monitoring_duration_seconds": "long", "y": 1},
    ),
    "text": ("checking the job\nsecond line \x1b[31mred", "all done"),
    "number": (42, 3.5),
    "nothing": (None, None),
    "odd": (
        {"job_id": "odd", "started_at": "yesterday", "check_count": 1, "elapsed_seconds": math.nan},
        ["not", "an", "object"],
    ),
}


# Nested deeper than anything a page or a terminal should walk (MAX_JSON_DEPTH is 100): shown as its text.
DEEP: Any = 0
for _ in range(150):
    DEEP = [DEEP]


def monitoring_job_orchestrator(ctx: task.OrchestrationContext, request: Any) -> Any:
    """Another implementation of the pattern, with the same name: it publishes the shapes above.

    Job ids starting ``wait-`` hold until the ``finish`` event, so tests can look at them running."""
    job_id = str((request or {}).get("job_id", ""))
    status, output = SHAPES.get(job_id.removeprefix("wait-"), (DEEP, DEEP))
    if status is not None:
        ctx.set_custom_status(status)
    if job_id.startswith("wait-"):
        yield ctx.wait_for_external_event(FINISH)
    else:
        yield ctx.create_timer(timedelta(seconds=0.2))
    return output


@pytest.fixture(scope="module")
def foreign() -> Iterator[MonitorClient]:
    """A scheduler for task hub 'foreign' with the other worker on it, and a client of ours."""
    with LocalScheduler(0, taskhub=TASKHUB) as scheduler:
        worker = DurableTaskSchedulerWorker(
            host_address=scheduler.address, taskhub=TASKHUB, token_credential=None, secure_channel=False
        )
        worker.add_orchestrator(monitoring_job_orchestrator)
        worker.start()
        try:
            with MonitorClient(local_connection(scheduler.address, TASKHUB)) as monitors:
                yield monitors
        finally:
            worker.stop()


def wait_until(condition: Any, limit: float = 30) -> Any:
    deadline = time.monotonic() + limit
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)
    return value


def start_waiting(monitors: MonitorClient, shape: str) -> str:
    """A foreign monitor of this shape, running, with its custom status published."""
    instance_id = monitors.start(MonitorRequest(job_id=f"wait-{shape}", polling_interval_seconds=1))
    if SHAPES[shape][0] is not None:
        wait_until(lambda: monitors.snapshot(instance_id).custom_status_json is not None)
    else:
        wait_until(lambda: monitors.snapshot(instance_id).runtime_status == "Running")
    return instance_id


def finish(monitors: MonitorClient, instance_id: str) -> None:
    monitors.raise_event(instance_id, FINISH)
    wait_until(lambda: monitors.snapshot(instance_id).is_terminal)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_snapshots_read_any_shape_and_describe_it_in_one_line(foreign: MonitorClient, shape: str) -> None:
    status, output = SHAPES[shape]
    instance_id = start_waiting(foreign, shape)
    running = foreign.snapshot(instance_id)
    assert running.state == "Running" and "\n" not in running.describe() and "\x1b" not in running.describe()
    assert running.to_payload()["custom_status"] == json.loads(json.dumps(status).replace("NaN", "null"))
    finish(foreign, instance_id)
    done = foreign.snapshot(instance_id)
    assert done.runtime_status == "Completed" and done.output_json == output
    assert done.state == (output["final_status"] if isinstance(output, dict) else "Completed")
    assert "\n" not in done.describe()


def test_the_samples_four_fields_show_as_progress(foreign: MonitorClient) -> None:
    instance_id = start_waiting(foreign, "sample")
    line = foreign.snapshot(instance_id).describe()
    assert line == "[Running] job sample: Running, 3 checks"
    finish(foreign, instance_id)
    assert foreign.snapshot(instance_id).result.checks_performed == 4  # type: ignore[union-attr]


def test_unknown_shapes_are_shown_as_they_are(foreign: MonitorClient) -> None:
    text = start_waiting(foreign, "text")
    assert foreign.snapshot(text).describe() == (
        '[Running] custom status: "checking the job\\nsecond line \\u001b[31mred"'
    )
    finish(foreign, text)
    mistyped = start_waiting(foreign, "extra")
    line = foreign.snapshot(mistyped).describe()
    assert line == "[Running] job ?: InProgress"  # check_count "three" and elapsed true are not numbers
    finish(foreign, mistyped)


def cli(*args: str, foreign: MonitorClient) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENDPOINT": foreign.connection.endpoint, "TASKHUB": TASKHUB}
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("shape", "exit_code"),
    [("sample", 0), ("extra", 1), ("text", 0), ("number", 0), ("nothing", 0), ("odd", 0)],
)
def test_cli_start_follows_a_foreign_monitor_to_its_end(
    foreign: MonitorClient, shape: str, exit_code: int
) -> None:
    done = cli("start", shape, "1", "10", foreign=foreign)
    assert done.returncode == exit_code, done.stderr
    assert "Traceback" not in done.stderr and "Scheduled monitor" in done.stderr
    assert json.loads(done.stdout) == SHAPES[shape][1]  # the output as the other worker wrote it
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert progress and progress[-1].startswith("[Completed]")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cli_status_prints_what_was_published(foreign: MonitorClient, shape: str) -> None:
    instance_id = start_waiting(foreign, shape)
    try:
        done = cli("status", instance_id, foreign=foreign)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["runtime_status"] == "Running" and shown["state"] == "Running"
        published = SHAPES[shape][0]
        if shape != "odd":  # its NaN is printed as null
            assert shown["custom_status"] == published
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        finish(foreign, instance_id)


def test_the_tracker_and_its_plots_take_foreign_runs(foreign: MonitorClient) -> None:
    tracker = RunTracker(foreign, poll_seconds=0.05)
    try:
        traces = [tracker.start(MonitorRequest(job_id=shape, polling_interval_seconds=1)) for shape in SHAPES]
        tracker.wait(timeout=60)
    finally:
        tracker.close()
    by_job = {trace.request.job_id: trace for trace in traces}
    assert by_job["sample"].checks()[0].number == 3 and by_job["sample"].result.checks_performed == 4  # type: ignore[union-attr]
    assert by_job["text"].checks() == [] and by_job["text"].result is None
    assert by_job["extra"].latest.state == "Timeout"  # type: ignore[union-attr]
    for trace in traces:
        assert "\n" not in trace.describe()
    assert png_bytes(progress_figure(traces)).startswith(b"\x89PNG")
    assert png_bytes(comparison_figure(traces)).startswith(b"\x89PNG")


def test_the_dashboard_and_the_http_api_show_foreign_instances(foreign: MonitorClient) -> None:
    running = {shape: start_waiting(foreign, shape) for shape in SHAPES}
    try:
        with (
            BackgroundServer(create_dashboard_app(foreign)) as dashboard,
            BackgroundServer(create_app(foreign)) as api,
            httpx.Client(timeout=30) as http,
        ):
            listed = http.get(f"{dashboard.url}/api/instances")
            assert listed.status_code == 200
            shown = {item["instanceId"]: item for item in listed.json()["instances"]}
            for instance_id in running.values():
                assert shown[instance_id]["runtimeStatus"] == "Running"
                page = http.get(f"{dashboard.url}/api/instances/{instance_id}")
                assert page.status_code == 200 and page.json()["instance"]["instanceId"] == instance_id
                status = http.get(f"{api.url}/runtime/webhooks/durabletask/instances/{instance_id}")
                assert status.status_code == 202 and status.json()["name"] == "monitoring_job_orchestrator"
            # Their inputs are this package's requests, so the job's status can be asked as they would ask
            # it, whatever their custom status says ("yesterday" is no start time: the creation time is).
            job = http.get(f"{api.url}/api/job_status/wait-odd")
            assert job.status_code == 200 and job.json()["instanceId"] == running["odd"]
    finally:
        for instance_id in running.values():
            finish(foreign, instance_id)


def test_a_custom_status_nested_too_deeply_is_shown_as_its_text(foreign: MonitorClient) -> None:
    instance_id = foreign.start(MonitorRequest(job_id="wait-deep", polling_interval_seconds=1))
    wait_until(lambda: foreign.snapshot(instance_id).custom_status_json is not None)
    try:
        snapshot = foreign.snapshot(instance_id)
        assert snapshot.custom_status_json == json.dumps(DEEP) and snapshot.custom_status is None
        assert (
            snapshot.describe().startswith('[Running] custom status: "[[[[')
            and len(snapshot.describe()) < 200
        )
        with (
            BackgroundServer(create_dashboard_app(foreign)) as dashboard,
            BackgroundServer(create_app(foreign)) as api,
            httpx.Client(timeout=30) as http,
        ):
            assert http.get(f"{dashboard.url}/api/instances/{instance_id}").status_code == 200
            status = http.get(f"{api.url}/runtime/webhooks/durabletask/instances/{instance_id}")
            assert status.status_code == 202 and status.json()["customStatus"] == json.dumps(DEEP)
    finally:
        finish(foreign, instance_id)
