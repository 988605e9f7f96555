"""``python -m monitoring`` end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from processes import child_pids, command_line_once_started, wait_until_gone
from test_scheduler import free_port

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest, MonitorStatus
from monitoring.runtime.connection import Connection
from monitoring.scheduler import process
from monitoring.scheduler import server as sched
from monitoring.scheduler.server import LocalScheduler


def cli(*args: str, endpoint: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if endpoint:
        env["ENDPOINT"] = endpoint
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def spawn(*args: str, endpoint: str | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if endpoint:
        env["ENDPOINT"] = endpoint
    return subprocess.Popen(
        [sys.executable, "-m", "monitoring", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def wait_for_line(process: subprocess.Popen[str], text: str, limit: float = 120) -> str:
    """The first stderr line containing ``text``; ``limit`` only guards against a hang (a process that prints
    nothing more cannot block the test: each line is read on a helper thread)."""
    assert process.stderr is not None
    stderr = process.stderr
    deadline = time.monotonic() + limit
    while True:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda found=lines: found.put(stderr.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"never printed {text!r} (still running after {limit:g} s)") from None
        if text in line:
            return line
        if not line:
            raise AssertionError(f"never printed {text!r} (its stderr ended)")


def instance_count(monitors: MonitorClient) -> int:
    return len(monitors.client.get_all_orchestration_states())


def progress_counts(stderr: str) -> list[tuple[str, int]]:
    """(runtime status, check count) of each progress line the CLI printed, in order."""
    return [
        (match[1], int(match[2]))
        for match in re.finditer(r"^\[(\w+)\] job \w+, (\d+) checks?\b", stderr, re.MULTILINE)
    ]


def test_a_progress_line_counts_in_words_and_says_how_soon_the_next_check_is() -> None:
    status = MonitorStatus(
        job_id="job-1f0c", status="Running", check_count=1, elapsed_seconds=0.25,
        started_at="2026-12-07T01:00:00.000Z", next_check_time="2026-12-07T01:00:05.000Z",
    )  # fmt: skip
    snapshot = MonitorSnapshot("monitor-1", "Running", status, None, None)
    assert (
        snapshot.describe() == "[Running] job job-1f0c: Running, 1 check, elapsed 0.2 s, next check in 4.8 s"
    )
    assert (
        snapshot.describe(job_id=False)
        == "[Running] job Running, 1 check, elapsed 0.2 s, next check in 4.8 s"
    )
    later = replace(snapshot, custom_status=replace(status, check_count=2, elapsed_seconds=5.0))
    assert later.describe(job_id=False) == "[Running] job Running, 2 checks, elapsed 5.0 s, next check now"
    # Another worker's status that does not say when it was published: the time, as it wrote it.
    foreign = replace(snapshot, custom_status=replace(status, started_at=None))
    assert foreign.describe(job_id=False).endswith(", next check at 2026-12-07T01:00:05.000Z")


def test_demo_runs_scheduler_worker_and_one_monitor_in_one_process() -> None:
    # The job ends at 0.6 s, exactly when the 4th check (0, 0.2, 0.4, 0.6) is due: that check sees it.
    done = cli("demo", "--interval", "0.2", "--timeout", "1", "--job-duration", "0.6")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["final_status"] == "Completed" and result["checks_performed"] == 4
    assert result["monitoring_duration_seconds"] >= 0.6
    assert "embedded local scheduler at http://127.0.0.1:" in done.stderr
    assert "Worker: the fast path (LeanWorker): http://127.0.0.1:" in done.stderr  # which worker, and why
    # Progress is polled, so a busy machine may skip lines; what it prints is in order and ends with the end.
    progress = progress_counts(done.stderr)
    assert [count for _, count in progress] == sorted(count for _, count in progress)
    assert progress[-1] == ("Completed", 4) and done.stderr.rstrip().endswith("-> Completed")


def test_demo_exit_code_says_the_job_did_not_complete() -> None:
    done = cli(
        "demo", "--interval", "0.2", "--timeout", "0.4", "--job-duration", "0", "--job-outcome", "Failed"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["final_status"] == "Failed"


def test_start_follows_a_run_and_prints_the_result(monitors: MonitorClient) -> None:
    endpoint = monitors.connection.endpoint
    done = cli("start", "job-123", "0.2", "0.6", "--job-duration", "0.4", endpoint=endpoint)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The 3rd check, due at 0.4 s, sees the job end; the monitor ends once it has answered: 0.4 s or later.
    assert result.pop("monitoring_duration_seconds") >= 0.4
    assert result == {"job_id": "job-123", "final_status": "Completed", "checks_performed": 3}
    assert "Scheduled monitor" in done.stderr and progress_counts(done.stderr)[-1] == ("Completed", 3)
    # The job is named once, above the progress lines; they say how soon the next check is, not its time.
    assert [line for line in done.stderr.splitlines() if "job-123" in line] == [
        next(line for line in done.stderr.splitlines() if line.startswith("Scheduled monitor"))
    ]
    running = [line for line in done.stderr.splitlines() if line.startswith("[Running] job Running")]
    assert all(re.search(r", next check (in [\d.]+ s|now)$", line) for line in running), done.stderr


def test_start_timeout_exits_non_zero(monitors: MonitorClient) -> None:
    done = cli("start", "job-t", "0.2", "0.4", endpoint=monitors.connection.endpoint)
    assert done.returncode == 1
    assert json.loads(done.stdout)["final_status"] == "Timeout"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job-1", "abc"], "polling_interval must be a number of seconds, not 'abc'"),
        (["job-1", "5", "soon"], "timeout must be a number of seconds, not 'soon'"),
        (["job-1", "0"], "polling_interval_seconds must be from 0.001 to 31536000 seconds"),
        (["job-1", "-5", "30"], "polling_interval_seconds must be from 0.001"),
        (["job-1", "5", "-30"], "timeout_seconds must be from 0.001"),
        (["job-1", "10", "5"], "is larger than timeout_seconds"),
        (["job-1", "5", "30", "extra"], "unrecognized arguments: extra"),
        (["job-1", "--job-outcome", "Maybe"], "invalid choice: 'Maybe'"),
    ],
)
def test_bad_arguments_are_one_line_and_schedule_nothing(
    monitors: MonitorClient, args: list[str], message: str
) -> None:
    before = instance_count(monitors)
    done = cli("start", *args, endpoint=monitors.connection.endpoint)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
    assert message in done.stderr
    assert instance_count(monitors) == before


def test_unreachable_endpoint_is_one_line_and_schedules_nothing() -> None:
    done = cli("start", "job-1", "5", "30", endpoint=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach") and len(done.stderr.strip().splitlines()) == 1


def test_malformed_endpoint_is_one_line() -> None:
    done = cli("worker", endpoint="localhost:8080")
    assert done.returncode == 2 and "is not a URL" in done.stderr


def test_worker_serves_monitors_and_stops_cleanly_on_ctrl_c() -> None:
    with LocalScheduler(0) as own:  # a scheduler no in-process worker serves
        worker = spawn("worker", endpoint=own.address)
        try:
            wait_for_line(worker, "Worker running")
            with MonitorClient(Connection(own.address, "default", "emulator")) as monitors:
                request = MonitorRequest("job-w", 0.2, 0.4, job_duration_seconds=0.0)
                final = monitors.follow(monitors.start(request), timeout=20)
                assert final.result is not None and final.result.final_status == "Completed"
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=20) == 0
            assert worker.stderr is not None and "Worker stopped" in worker.stderr.read()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_worker_processes_share_the_task_hub_and_stop_together() -> None:
    with LocalScheduler(0) as own:
        worker = spawn("worker", "--processes", "2", endpoint=own.address)
        try:
            assert "in 2 processes" in wait_for_line(worker, "Worker running")
            (extra,) = child_pids(worker.pid)
            # The worker that test_cli_processes.py shows serving monitors by itself, on the same ENDPOINT.
            started_as = command_line_once_started(extra, "--of-parent")
            assert started_as[1:] == ["-m", "monitoring", "worker", "--of-parent", str(worker.pid)]
            assert f"ENDPOINT={own.address}".encode() in Path(f"/proc/{extra}/environ").read_bytes()
            with MonitorClient(Connection(own.address, "default", "emulator")) as monitors:
                request = MonitorRequest("job-p", 0.1, 0.3, job_duration_seconds=100)
                started = [monitors.start(replace(request, job_id=f"job-p{n}")) for n in range(30)]
                for instance_id in started:
                    final = monitors.follow(instance_id, timeout=30)
                    assert final.result is not None and final.result.checks_performed == 4
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=30) == 0
            assert wait_until_gone(extra)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_an_extra_worker_process_does_not_outlive_a_killed_parent() -> None:
    with LocalScheduler(0) as own:
        worker = spawn("worker", "--processes", "2", endpoint=own.address)
        try:
            wait_for_line(worker, "Worker running")
            (extra,) = child_pids(worker.pid)
        finally:
            worker.kill()
            worker.wait()
        assert wait_until_gone(extra), "the extra worker noticed its parent was gone and stopped"


def test_scheduler_command_serves_until_terminated_and_refuses_a_taken_port() -> None:
    port = free_port()
    server = spawn("scheduler", "--port", str(port))
    try:
        line = wait_for_line(server, "Local scheduler listening")
        assert f"http://127.0.0.1:{port}" in line and "'default'" in line
        assert sched.probe(f"127.0.0.1:{port}")
        second = cli("scheduler", "--port", str(port))
        assert second.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in second.stderr
        stopped = cli("stop-scheduler", "--port", str(port))
        assert stopped.returncode == 0 and "Stopped the local scheduler" in stopped.stderr
        assert server.wait(timeout=15) == 0
        assert process.SchedulerRecord.load(port) is None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_bad_port_is_explained() -> None:
    done = cli("scheduler", "--port", "99999")
    assert done.returncode == 2 and "port must be a number from 1 to 65535" in done.stderr


def test_control_commands_cancel_status_and_purge_a_monitor(monitors: MonitorClient) -> None:
    endpoint = monitors.connection.endpoint
    instance_id = monitors.start(MonitorRequest(job_id="job-cli-control", polling_interval_seconds=20))
    monitors.wait_for(instance_id, lambda s: s.custom_status is not None and s.custom_status.check_count == 1)
    cancelled = cli("cancel", instance_id, "--reason", "from the CLI", endpoint=endpoint)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"Cancel requested for monitor {instance_id}" in cancelled.stderr
    monitors.follow(instance_id, timeout=15)
    status = cli("status", instance_id, endpoint=endpoint)
    assert status.returncode == 0
    shown = json.loads(status.stdout)
    assert shown["state"] == "Cancelled" and shown["result"]["reason"] == "cancelled: from the CLI"
    again = cli("cancel", instance_id, endpoint=endpoint)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: instance {instance_id} is Completed: it takes no more events"
    purged = cli("purge", instance_id, endpoint=endpoint)
    assert purged.returncode == 0 and "Purged monitor" in purged.stderr


@pytest.mark.parametrize("command", ["cancel", "terminate", "suspend", "resume", "purge", "status"])
def test_control_of_an_unknown_instance_is_one_line_and_exit_2(monitors: MonitorClient, command: str) -> None:
    done = cli(command, "no-such-id", endpoint=monitors.connection.endpoint)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: no monitor with instance id 'no-such-id' in this task hub"
    assert done.stdout == ""
