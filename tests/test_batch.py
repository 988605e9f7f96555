"""The batch monitor (``monitoring.core.batch``): its request, its status, and real batches over gRPC.

The in-process tests use the session's local scheduler and worker (``tests/conftest.py``); the fault test
runs the scheduler and the worker as real processes and kills each with ``kill -9`` mid-batch. Every
child's result is checked against the schedule's prediction for its job (``monitoring.core.predict``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_scheduler import free_port

from conftest import new_job_id
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.batch import (
    MAX_BATCH_JOBS,
    STATUS_JOBS_LIMIT,
    BatchRequest,
    batch_status,
    child_instance_id,
)
from monitoring.core.payloads import InvalidRequestError
from monitoring.core.predict import predict
from monitoring.runtime.connection import Connection

WAIT = 240  # a hang guard: every wait returns as soon as the state it waits for is observed
NEVER = 10**6


def job(kind: str, index: int) -> dict[str, Any]:
    """A job of the simulated service: it completes, fails, or runs past its monitor's timeout."""
    body: dict[str, Any] = {
        "job_id": f"{kind}-{index}-{uuid.uuid4().hex[:6]}",
        "polling_interval_seconds": 0.1,
    }
    if kind == "completes":
        body["job_duration_seconds"] = 0.1 * (index % 5)
    elif kind == "fails":
        body.update(job_duration_seconds=0.2, job_outcome="Failed")
    else:
        body.update(job_duration_seconds=NEVER, timeout_seconds=0.35)
    return body


def mixed_jobs(count: int) -> list[dict[str, Any]]:
    kinds = ("completes", "completes", "fails", "times out")
    return [job(kinds[index % len(kinds)], index) for index in range(count)]


def expected_of(batch: BatchRequest) -> list[tuple[str, int]]:
    return [(p.final_status, p.checks_performed) for p in map(predict, batch.jobs)]


def results_of(output: dict[str, Any]) -> list[tuple[str, int]]:
    return [(result["final_status"], result["checks_performed"]) for result in output["jobs"]]


# --- the request and the status, pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "a batch must be a JSON object with a jobs list, not []"),
        ({"jobs": []}, "jobs must be a non-empty list of monitor requests"),
        ({"jobs": [{}, None]}, "jobs[1]: a job is a JSON object (a start body), not None"),
        (
            {"jobs": [{}], "extra": 1},
            "unknown batch field 'extra': a batch has jobs, max_concurrent, notify_url, notify_headers",
        ),
        (
            {"jobs": [{}], "notify_url": "ftp://host/drop?token=secret"},
            "notify_url must be an http:// or https:// URL with a host, not 'ftp://host/drop'",
        ),
        ({"jobs": [{}] * (MAX_BATCH_JOBS + 1)}, "a batch holds at most 10,000 jobs, not 10,001: split it"),
        ({"jobs": [{}], "max_concurrent": 0}, "max_concurrent must be a whole number from 1 to 1000, not 0"),
        (
            {"jobs": [{}], "max_concurrent": True},
            "max_concurrent must be a whole number from 1 to 1000, not True",
        ),
    ],
)
def test_a_batch_that_cannot_run_is_one_line(body: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        BatchRequest.from_body(body)
    assert str(refused.value) == message


def test_one_bad_job_refuses_the_batch_naming_its_index() -> None:
    jobs = [{"polling_interval_seconds": 1}, {}, {}, {"polling_interval_seconds": -1}]
    with pytest.raises(InvalidRequestError) as refused:
        BatchRequest.from_body({"jobs": jobs})
    assert str(refused.value).startswith("jobs[3]: polling_interval_seconds")


def test_the_status_lists_every_job_of_a_small_batch_and_only_those_not_ended_of_a_large_one() -> None:
    small = BatchRequest.from_body({"jobs": [{}] * 3})
    done = {"final_status": "Completed", "checks_performed": 4}
    status = batch_status("b", small.jobs, [done, None, None], {1})
    assert status["counts"] == {
        "pending": 1,
        "running": 1,
        "completed": 1,
        "failed": 0,
        "timed_out": 0,
        "cancelled": 0,
    }
    assert [entry["state"] for entry in status["jobs"]] == ["completed", "running", "pending"]
    assert status["checks_of_ended_jobs"] == 4 and status["jobs"][1]["instance_id"] == child_instance_id(
        "b", 1
    )
    large = BatchRequest.from_body({"jobs": [{}] * 250})
    outcomes = [done if index < 120 else None for index in range(250)]
    status = batch_status("b", large.jobs, outcomes, set(range(120, 140)))
    assert len(status["jobs"]) == STATUS_JOBS_LIMIT and status["jobs"][0]["index"] == 120
    assert status["counts"]["completed"] == 120 and status["counts"]["pending"] == 110


# --- real batches -----------------------------------------------------------------------------------------


def test_a_batch_of_200_jobs_20_at_a_time_ends_with_every_childs_predicted_result(
    monitors: MonitorClient,
) -> None:
    batch = BatchRequest.from_body({"jobs": mixed_jobs(200), "max_concurrent": 20})
    batch_id = monitors.start_batch(batch, f"batch-{uuid.uuid4().hex[:8]}")
    most_running = 0

    def ended(snapshot: MonitorSnapshot) -> bool:
        nonlocal most_running
        if isinstance(snapshot.custom_status_json, dict) and "counts" in snapshot.custom_status_json:
            most_running = max(most_running, snapshot.custom_status_json["counts"]["running"])
        return snapshot.is_terminal

    done = monitors.wait_for(batch_id, ended, timeout=WAIT)
    assert done.runtime_status == "Completed", done.failure
    output = done.output_json
    assert results_of(output) == expected_of(batch)
    assert output["counts"] == {"completed": 100, "failed": 50, "timed_out": 50, "cancelled": 0}
    assert 0 < most_running <= 20
    child = monitors.snapshot(child_instance_id(batch_id, 3))  # each child is a monitor of its own
    assert child.result is not None and child.result.job_id == batch.jobs[3].job_id


def test_cancel_of_a_batch_cancels_every_running_child_and_starts_no_other(monitors: MonitorClient) -> None:
    waiting = {"polling_interval_seconds": 600, "timeout_seconds": 3600, "job_duration_seconds": NEVER}
    jobs = [{**waiting, "job_id": new_job_id()} for _ in range(30)]
    batch = BatchRequest.from_body({"jobs": jobs, "max_concurrent": 10})
    batch_id = monitors.start_batch(batch)

    def ten_children_waiting(snapshot: MonitorSnapshot) -> bool:
        counts = (
            (snapshot.custom_status_json or {}).get("counts")
            if isinstance(snapshot.custom_status_json, dict)
            else None
        )
        if not counts or counts["running"] < 10:
            return False
        return all(
            monitors.snapshot(child_instance_id(batch_id, i)).custom_status is not None for i in range(10)
        )

    monitors.wait_for(batch_id, ten_children_waiting, timeout=WAIT)
    monitors.cancel(batch_id, reason="the release was called off")
    done = monitors.wait_for(batch_id, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
    assert done.runtime_status == "Completed", done.failure
    assert done.output_json["counts"] == {"completed": 0, "failed": 0, "timed_out": 0, "cancelled": 30}
    for index in range(10):
        child = monitors.snapshot(child_instance_id(batch_id, index))
        assert child.runtime_status == "Completed" and child.result is not None
        assert child.result.final_status == "Cancelled"
    assert all(
        result["reason"] == "the batch was cancelled before it started"
        for result in done.output_json["jobs"][10:]
    )
    assert monitors.snapshots(child_instance_id(batch_id, 10)) == []  # never started


# --- faults ---------------------------------------------------------------------------------------------


@pytest.fixture
def scheduler_process(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    port = free_port()
    env = {**os.environ, "ENDPOINT": f"http://127.0.0.1:{port}", "MONITORING_STATE_DIR": str(tmp_path)}
    yield [sys.executable, "-m", "monitoring", "scheduler", "--port", str(port)], env


def started(command: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if ready in line:
            return process
    raise AssertionError(f"{command} ended before saying {ready!r}")


def killed(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_kill_9_of_the_worker_and_of_the_scheduler_mid_batch_changes_no_result(
    scheduler_process: tuple[list[str], dict[str, str]],
) -> None:
    scheduler_command, env = scheduler_process
    worker_command = [sys.executable, "-m", "monitoring", "worker"]
    batch = BatchRequest.from_body({"jobs": mixed_jobs(60), "max_concurrent": 10})
    scheduler = started(scheduler_command, env, "Local scheduler listening")
    worker = started(worker_command, env, "Worker running")
    connection = Connection(env["ENDPOINT"], "default", "emulator")
    try:
        with MonitorClient(connection, patience=60) as monitors:
            batch_id = monitors.start_batch(batch)

            def ended_at_least(count: int) -> Any:
                def check(snapshot: MonitorSnapshot) -> bool:
                    counts = (
                        snapshot.custom_status_json.get("counts")
                        if isinstance(snapshot.custom_status_json, dict)
                        else None
                    )
                    return snapshot.is_terminal or bool(
                        counts and sum(counts[s] for s in ("completed", "failed", "timed_out")) >= count
                    )

                return check

            monitors.wait_for(batch_id, ended_at_least(10), timeout=WAIT)
            killed(worker)
            worker = started(worker_command, env, "Worker running")
            monitors.wait_for(batch_id, ended_at_least(30), timeout=WAIT)
            killed(scheduler)
            scheduler = started(scheduler_command, env, "Local scheduler listening")
            done = monitors.wait_for(batch_id, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
            assert done.runtime_status == "Completed", done.failure
            assert results_of(done.output_json) == expected_of(batch)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=WAIT)
        scheduler.send_signal(signal.SIGINT)
        scheduler.wait(timeout=WAIT)


# --- the command line -----------------------------------------------------------------------------------


def start_batch_command(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENDPOINT": endpoint}
    command = [sys.executable, "-m", "monitoring", "start-batch", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL
    )


def test_start_batch_from_job_ids_follows_the_batch_and_prints_its_result(monitors: MonitorClient) -> None:
    ids = [new_job_id() for _ in range(3)]
    args = [*ids, "--interval", "0.1", "--timeout", "5", "--job-duration", "0.2", "--max-concurrent", "2"]
    done = start_batch_command(*args, endpoint=monitors.connection.endpoint)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert [(job["job_id"], job["final_status"], job["checks_performed"]) for job in output["jobs"]] == [
        (job_id, "Completed", 3) for job_id in ids
    ]
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Scheduled batch ") and "of 3 jobs, at most 2 at once" in lines[0]
    assert (
        lines[-1] == "batch Completed: 0 pending, 0 running, 3 completed, 0 failed, 0 timed out, 0 cancelled"
    )


def test_start_batch_from_a_file_exits_1_when_a_job_did_not_complete(
    monitors: MonitorClient, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([job("completes", 1), job("fails", 2)]))
    done = start_batch_command("--file", str(jobs), endpoint=monitors.connection.endpoint)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["counts"] == {"completed": 1, "failed": 1, "timed_out": 0, "cancelled": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: give the job ids to monitor, or --file with their start bodies"),
        (["a", "--file", "x.json"], "error: give job ids or --file, not both"),
        (
            ["--file", "/no/such/jobs.json"],
            "error: cannot read /no/such/jobs.json: No such file or directory",
        ),
        (["a", "--max-concurrent", "0"], "--max-concurrent"),
    ],
)
def test_start_batch_refuses_what_it_cannot_run_in_one_line(
    monitors: MonitorClient, args: list[str], message: str
) -> None:
    before = len(monitors.list_instances())
    done = start_batch_command(*args, endpoint=monitors.connection.endpoint)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert len(monitors.list_instances()) == before


def test_the_dashboard_shows_a_batch_with_its_children_and_their_states(
    monitors: MonitorClient, dashboard_server: Any
) -> None:
    jobs = [job("completes", 1), job("fails", 2), {**job("times out", 3), "timeout_seconds": 600}]
    batch = BatchRequest.from_body({"jobs": jobs, "max_concurrent": 3})
    batch_id = monitors.start_batch(batch)

    def two_ended_and_the_third_running(snapshot: MonitorSnapshot) -> bool:
        status = snapshot.custom_status_json if isinstance(snapshot.custom_status_json, dict) else {}
        states = [entry["state"] for entry in status.get("jobs", [])]
        return states == ["completed", "failed", "running"]

    monitors.wait_for(batch_id, two_ended_and_the_third_running, timeout=WAIT)
    with httpx.Client(base_url=dashboard_server.url, timeout=30) as http:
        page = http.get(f"/api/instances/{batch_id}").json()
    assert page["childCount"] == 3
    assert [(child["instanceId"], child["runtimeStatus"]) for child in page["children"]] == [
        (child_instance_id(batch_id, 0), "Completed"),
        (child_instance_id(batch_id, 1), "Completed"),  # its monitor ended Failed by its checks: completed
        (child_instance_id(batch_id, 2), "Running"),
    ]
    assert page["card"] is not None
    monitors.cancel(batch_id)
    monitors.wait_for(batch_id, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
