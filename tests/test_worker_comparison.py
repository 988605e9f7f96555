"""The same monitors on the fast path and on the SDK's own worker: identical results, custom status
sequences and history shapes.

One local scheduler per test; each worker records every custom status it sends (an interceptor on its own
gRPC channel, the SDK's extension point). The job ids are the same on both workers, so the simulated job,
whose answers (and failed attempts) depend only on the job id and the check's due time, answers both alike.
Times are left out of the comparison: they are the scheduler's clock, different on every run; so are the
history events whose place depends on timing (:data:`TIMING`). What is compared is what each worker
decided, in order: every check, its answer, every event, every end, every status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest
from monitoring.core.predict import predict
from monitoring.runtime.connection import local_connection
from monitoring.runtime.work_loop import LeanWorker
from monitoring.scheduler.server import LocalScheduler
from monitoring.worker import create_worker

WAIT = 120  # a hang guard: every wait returns as soon as the state it waits for is observed
NEVER = 10**6
TIMES = {"last_check_time", "next_check_time", "started_at", "deadline", "elapsed_seconds"}
# History events whose number and place depend on timing, not on the worker: episode boundaries (events
# that arrive together are one episode), timers firing (a check's deadline timer fires after its check
# answered, somewhere among the later events, or not at all once the orchestration has ended), and timers
# created (none when a late answer comes after the next check was due; one more when a timer's episode
# starts a moment before the time it was meant to wake). Each of these was seen to differ between the
# two workers' runs on a loaded machine, where the orchestrator's clock-driven choices above explain it.
TIMING = {"OrchestratorStartedEvent", "OrchestratorCompletedEvent", "TimerFiredEvent", "TimerCreatedEvent"}
SCENARIOS: dict[str, dict[str, Any]] = {
    "completed": {"polling_interval_seconds": 0.1, "job_duration_seconds": 0.35},
    "job failed": {"polling_interval_seconds": 0.1, "job_duration_seconds": 0.25, "job_outcome": "Failed"},
    "timeout": {"polling_interval_seconds": 0.1, "timeout_seconds": 0.45, "job_duration_seconds": NEVER},
    "retries": {
        "polling_interval_seconds": 0.1,
        "job_duration_seconds": 0.45,
        "job_fail_fraction": 0.4,
        "retry_max_attempts": 6,
        "retry_first_interval_seconds": 0.05,
    },
    "continue-as-new": {
        "polling_interval_seconds": 0.1,
        "job_duration_seconds": 0.75,
        "checks_per_generation": 3,
    },
    "cancel": {"polling_interval_seconds": 3600, "timeout_seconds": 7200, "job_duration_seconds": NEVER},
}


class StatusRecorder(grpc.UnaryUnaryClientInterceptor):
    """Every custom status a worker sends with an orchestrator's result, per instance, in order."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        if details.method.endswith("/CompleteOrchestratorTask"):
            with self.lock:
                self.sent[request.instanceId].append(request.customStatus.value)
        return continuation(details, request)


def without_times(status_json: str) -> dict[str, Any]:
    return {key: value for key, value in json.loads(status_json).items() if key not in TIMES}


def sequence(sent: list[str]) -> list[dict[str, Any]]:
    """The statuses sent, times left out, each change once (a status sent again unchanged is no change)."""
    changes: list[dict[str, Any]] = []
    for status in sent:
        if status and (not changes or without_times(status) != changes[-1]):
            changes.append(without_times(status))
    return changes


def outcome(monitors: MonitorClient, instance: str) -> dict[str, Any]:
    """What a run left: its runtime status, its result (no duration) and its history's shape."""
    done = monitors.snapshot(instance)
    result = {
        key: value for key, value in (done.output_json or {}).items() if key != "monitoring_duration_seconds"
    }
    shape = [kind for event in monitors.history(instance) if (kind := type(event).__name__) not in TIMING]
    return {"runtime_status": done.runtime_status, "result": result, "history": shape}


def waiting_after_first_check(snapshot: MonitorSnapshot) -> bool:
    status = snapshot.custom_status
    return status is not None and status.check_count == 1 and status.next_check_time is not None


def three_checks_done(snapshot: MonitorSnapshot) -> bool:
    return snapshot.custom_status is not None and snapshot.custom_status.check_count >= 3


@pytest.fixture
def scheduler() -> Iterator[LocalScheduler]:
    with LocalScheduler(0) as running:
        yield running


def run_scenarios(scheduler: LocalScheduler, kind: str) -> dict[str, Any]:
    """Every scenario at once on one worker of ``kind``: per scenario its outcome and status sequence."""
    connection = local_connection(scheduler.address)
    recorder = StatusRecorder()
    worker = create_worker(connection, kind=kind, interceptors=[recorder])
    assert isinstance(worker, LeanWorker) == (kind == "fast")
    worker.start()
    try:
        with MonitorClient(connection) as monitors:
            started = {
                name: monitors.start(MonitorRequest(job_id=f"compared-{name}", **fields), f"{kind}-{name}")
                for name, fields in SCENARIOS.items()
            }
            monitors.wait_for(started["cancel"], waiting_after_first_check, timeout=WAIT)
            monitors.cancel(started["cancel"], reason="compared")
            for instance in started.values():
                monitors.wait_for(instance, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
            return {
                name: {**outcome(monitors, instance), "statuses": sequence(recorder.sent[instance])}
                for name, instance in started.items()
            }
    finally:
        worker.stop()


def test_both_workers_run_every_scenario_alike(scheduler: LocalScheduler) -> None:
    fast, sdk = run_scenarios(scheduler, "fast"), run_scenarios(scheduler, "sdk")
    for name, fields in SCENARIOS.items():
        assert fast[name] == sdk[name], name
        assert fast[name]["statuses"] and fast[name]["history"], name  # something was recorded to compare
        if name != "cancel":  # and both are what the schedule predicts
            expected = predict(MonitorRequest(job_id=f"compared-{name}", **fields))
            result = fast[name]["result"]
            assert (result["final_status"], result["checks_performed"]) == (
                expected.final_status,
                expected.checks_performed,
            ), name
    assert fast["cancel"]["result"]["final_status"] == "Cancelled"
    assert [status["generation"] for status in fast["continue-as-new"]["statuses"]][-1] == 3
    assert any(status["failed_attempts"] > 0 for status in fast["retries"]["statuses"])  # retries were seen


def run_through_a_kill(scheduler: LocalScheduler, kind: str) -> dict[str, Any]:
    """A monitor whose worker process is killed (-9) mid-run and replaced: what it ends with."""
    connection = local_connection(scheduler.address)
    env = {**os.environ, "ENDPOINT": scheduler.address, "MONITORING_WORKER": kind}
    command = [sys.executable, "-m", "monitoring", "worker"]
    request = MonitorRequest(job_id="compared-kill", polling_interval_seconds=0.2, job_duration_seconds=2.1)
    with MonitorClient(connection) as monitors:
        first = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            instance = monitors.start(request, f"{kind}-kill")
            monitors.wait_for(instance, three_checks_done, timeout=WAIT)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        second = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            done = monitors.wait_for(instance, lambda snapshot: snapshot.is_terminal, timeout=WAIT)
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=WAIT)
        assert done.result is not None and done.custom_status is not None
        expected = predict(request)
        assert (done.result.final_status, done.result.checks_performed) == (
            expected.final_status,
            expected.checks_performed,
        )
        return {
            **outcome(monitors, instance),
            "last status": without_times(json.dumps(done.custom_status_json)),
        }


def test_both_workers_end_a_monitor_alike_when_their_process_is_killed_mid_run(
    scheduler: LocalScheduler,
) -> None:
    assert run_through_a_kill(scheduler, "fast") == run_through_a_kill(scheduler, "sdk")
