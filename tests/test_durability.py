"""Durability, control and faults, for real: SDK worker and client over gRPC on the local scheduler.

Intervals are tenths of a second and every assertion is about counts, states and reasons, never about
how fast something happened. Tests wait on observed state: a check held in flight by a job source the test
controls (``tests/gates.py``), a result the worker has delivered, a timer that has fired. That last one is
seen through a sentinel monitor: the scheduler fires durable timers in due order
(``test_timer_queue_fires_in_due_order``), so once a sentinel's check due after a moment has run, every timer
due before that moment has fired too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from durabletask.worker import TaskHubGrpcWorker
from gates import Deliveries, GatedJob
from test_scheduler import free_port

from conftest import new_job_id
from monitoring.client.errors import InstanceFinishedError, InstanceNotFinishedError, UnknownInstanceError
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest, MonitorResult, MonitorStatus
from monitoring.core.payloads import from_iso
from monitoring.runtime.connection import Connection
from monitoring.scheduler import process
from monitoring.worker import create_worker, start_worker, stop_worker

NEVER = 10**6


def request(**fields: Any) -> MonitorRequest:
    return MonitorRequest(job_id=new_job_id(), **fields)


def checks(snapshot: MonitorSnapshot) -> int:
    return snapshot.custom_status.check_count if snapshot.custom_status else 0


def next_check_due(snapshot: MonitorSnapshot) -> datetime:
    assert snapshot.custom_status is not None and snapshot.custom_status.next_check_time is not None
    return from_iso(snapshot.custom_status.next_check_time)


def wait_until_timers_due_by_have_fired(monitors: MonitorClient, moment: datetime) -> None:
    """Return once every durable timer due by ``moment`` has fired (see the module docstring)."""
    sentinel_request = request(polling_interval_seconds=0.1, timeout_seconds=120, job_duration_seconds=NEVER)
    schedule = sentinel_request.schedule()
    sentinel = monitors.start(sentinel_request)

    def checked_after_moment(snapshot: MonitorSnapshot) -> bool:
        status = snapshot.custom_status
        if status is None or status.check_count < 2:
            return False  # the first check runs at once, with no timer
        due = from_iso(status.started_at) + timedelta(seconds=schedule.offset_of_check(status.check_count))
        return due > moment

    try:
        monitors.wait_for(sentinel, checked_after_moment, timeout=60)
    finally:
        monitors.terminate(sentinel, reason="sentinel no longer needed")


def wait_for_the_clock(moment: datetime) -> None:
    """Poll the wall clock until it has passed ``moment`` (no worker runs, so no sentinel can)."""
    deadline = time.monotonic() + 60
    while datetime.now(timezone.utc) <= moment:
        assert time.monotonic() < deadline, f"the clock never passed {moment}"
        time.sleep(0.02)


@pytest.fixture
def deliveries(monkeypatch: pytest.MonkeyPatch) -> Deliveries:
    """Every activity result a worker of this process delivers to the scheduler, from now on."""
    seen = Deliveries()
    original = TaskHubGrpcWorker._on_activity_execution_completed

    def delivered(self: TaskHubGrpcWorker, req: Any) -> None:
        original(self, req)
        seen.record(req.orchestrationInstance.instanceId)

    monkeypatch.setattr(TaskHubGrpcWorker, "_on_activity_execution_completed", delivered)
    return seen


# --- durability -----------------------------------------------------------------------------------------


def test_worker_restart_mid_run_loses_no_check_and_counts_none_twice(monitors: MonitorClient) -> None:
    """The worker stops after two checks and stays stopped until every job has ended; the overdue checks then
    run at once, each answering for the time it was due, so each run ends exactly as its schedule says."""
    plans = {  # interval, job duration, outcome -> final status, checks
        request(polling_interval_seconds=0.3, timeout_seconds=3.0, job_duration_seconds=1.5): (
            "Completed",
            6,
        ),
        request(polling_interval_seconds=0.4, timeout_seconds=3.0, job_duration_seconds=NEVER): (
            "Timeout",
            9,
        ),
        request(
            polling_interval_seconds=0.5, timeout_seconds=3.0, job_duration_seconds=2.0, job_outcome="Failed"
        ): ("Failed", 5),
    }
    ids = {monitors.start(plan): plan for plan in plans}
    for instance_id in ids:
        monitors.wait_for(instance_id, lambda s: checks(s) >= 2, timeout=20)
    assert stop_worker()
    try:
        before = {instance_id: monitors.snapshot(instance_id) for instance_id in ids}
        started = [from_iso(snapshot.custom_status.started_at) for snapshot in before.values()]  # type: ignore[union-attr]
        # Until every job has ended (2.0 s) and the next checks of all three are long overdue.
        wait_for_the_clock(max(started) + timedelta(seconds=2.1))
        after = {instance_id: checks(monitors.snapshot(instance_id)) for instance_id in ids}
        assert after == {instance_id: checks(snapshot) for instance_id, snapshot in before.items()}, (
            "nothing moves without a worker"
        )
    finally:
        assert start_worker(monitors.connection)
    for instance_id, plan in ids.items():
        seen: list[MonitorSnapshot] = []
        final = monitors.follow(instance_id, on_change=seen.append, timeout=30)
        assert final.result is not None
        assert (final.result.final_status, final.result.checks_performed) == plans[plan]
        counts = [checks(snapshot) for snapshot in seen]
        assert counts == sorted(counts), "the published count never goes back"


PROCESS_START = textwrap.dedent(
    """
    import sys
    from monitoring.runtime.connection import Connection, ensure_backend
    from monitoring.core.models import MonitorRequest, MonitorResult, MonitorStatus
    from monitoring.core.payloads import from_iso
    from monitoring.client.monitors import MonitorClient
    from monitoring.worker import start_worker
    connection = Connection(f"http://localhost:{sys.argv[1]}", "default", "local")
    ensure_backend(connection)
    start_worker(connection)
    with MonitorClient(connection) as monitors:
        request = MonitorRequest(job_id="restart-job", polling_interval_seconds=0.3, timeout_seconds=3.0,
                                 job_duration_seconds=10**6, deadline_grace_seconds=600)
        instance_id = monitors.start(request)
        monitors.wait_for(instance_id, lambda s: s.custom_status is not None
                          and s.custom_status.check_count >= 2, timeout=20)
        print(instance_id)
    """
)
PROCESS_FINISH = textwrap.dedent(
    """
    import json, sys
    from monitoring.runtime.connection import Connection, ensure_backend
    from monitoring.client.monitors import MonitorClient
    from monitoring.worker import start_worker
    connection = Connection(f"http://localhost:{sys.argv[1]}", "default", "local")
    print(ensure_backend(connection), file=sys.stderr)
    start_worker(connection)
    with MonitorClient(connection) as monitors:
        final = monitors.follow(sys.argv[2], timeout=600)
        print(json.dumps(final.to_payload()))
    """
)


def test_process_restart_finds_and_finishes_a_monitor_started_before_it() -> None:
    port = free_port()
    process.spawn_scheduler_process(port)
    try:

        def python(code: str, *args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        instance_id = python(PROCESS_START, str(port))  # starts a run, then the process exits
        final = json.loads(python(PROCESS_FINISH, str(port), instance_id))  # a new process reconnects
        assert final["runtime_status"] == "Completed"
        assert final["result"]["final_status"] == "Timeout" and final["result"]["checks_performed"] == 11
        assert final["custom_status"]["job_id"] == "restart-job"
    finally:
        assert process.stop_scheduler_process(port)


# --- control --------------------------------------------------------------------------------------------


def test_cancel_ends_a_waiting_monitor_promptly_with_cancelled(monitors: MonitorClient) -> None:
    instance_id = monitors.start(request(polling_interval_seconds=3, timeout_seconds=60))
    waiting = monitors.wait_for(instance_id, lambda s: checks(s) == 1)
    monitors.cancel(instance_id, reason="not needed any more")
    final = monitors.follow(instance_id, timeout=30)
    assert final.runtime_status == "Completed" and final.state == "Cancelled"
    assert final.result is not None and final.result.final_status == "Cancelled"
    assert final.result.checks_performed == 1
    assert final.result.monitoring_duration_seconds < 3, "by its own clock, it ended before the 3 s timer"
    assert final.result.reason == "cancelled: not needed any more"
    assert final.custom_status is not None and final.custom_status.final_status == "Cancelled"
    with pytest.raises(InstanceFinishedError, match="it takes no more events"):
        monitors.cancel(instance_id)
    # SDK pitfall: the losing timer is not cancelled and fires later; once it has, nothing has changed.
    wait_until_timers_due_by_have_fired(monitors, next_check_due(waiting))
    later = monitors.snapshot(instance_id)
    assert (later.runtime_status, later.custom_status, later.result) == (
        final.runtime_status,
        final.custom_status,
        final.result,
    )


def test_terminate_is_not_undone_by_a_check_that_answers_late(
    monitors: MonitorClient, gate: GatedJob, deliveries: Deliveries
) -> None:
    """SDK pitfall: terminate does not fence a running activity; its late answer must change nothing."""
    instance_id = monitors.start(
        request(polling_interval_seconds=0.3, timeout_seconds=5, job_source=gate.name)
    )
    gate.wait_asked(1)  # the first check is in flight, held in the gate
    monitors.terminate(instance_id, reason="operator stop")
    terminated = monitors.wait_for(instance_id, lambda s: s.runtime_status == "Terminated")
    gate.release("Completed")  # it answers now, after the end
    gate.wait_answered(1)
    deliveries.wait_for(instance_id)  # and the worker has handed that answer to the scheduler
    # Anything the answer could set off (an episode of the ended instance) is queued before a sentinel's work.
    wait_until_timers_due_by_have_fired(monitors, datetime.now(timezone.utc))
    later = monitors.snapshot(instance_id)
    assert later.runtime_status == "Terminated" and later.state == "Terminated"
    assert later.custom_status == terminated.custom_status, "no check counted after the end"
    assert checks(later) == 0 and later.result is None


def test_suspend_freezes_the_monitor_and_resume_catches_up_every_check(monitors: MonitorClient) -> None:
    instance_id = monitors.start(
        request(polling_interval_seconds=0.2, timeout_seconds=2.0, job_duration_seconds=1.4)
    )
    monitors.wait_for(instance_id, lambda s: checks(s) >= 2)
    monitors.suspend(instance_id, reason="maintenance")
    suspended = monitors.wait_for(instance_id, lambda s: s.runtime_status == "Suspended")
    assert suspended.state == "Suspended" and "suspended" in suspended.describe()
    # Its next check's timer fires while it is suspended, and so do the ones after, up to the job's end.
    started = from_iso(suspended.custom_status.started_at)  # type: ignore[union-attr]
    wait_until_timers_due_by_have_fired(
        monitors, max(next_check_due(suspended), started + timedelta(seconds=1.5))
    )
    still = monitors.snapshot(instance_id)
    assert still.runtime_status == "Suspended" and still.custom_status == suspended.custom_status
    monitors.resume(instance_id)
    final = monitors.follow(instance_id, timeout=30)
    assert final.result is not None  # the overdue checks answer for their due times: 0, 0.2, ..., 1.4
    assert (final.result.final_status, final.result.checks_performed) == ("Completed", 8)


def test_purge_deletes_only_finished_monitors(monitors: MonitorClient) -> None:
    running = monitors.start(request(polling_interval_seconds=5, timeout_seconds=30))
    with pytest.raises(InstanceNotFinishedError, match=r"still (Pending|Running)"):
        monitors.purge(running)
    monitors.cancel(running)
    monitors.follow(running, timeout=15)
    monitors.purge(running)
    with pytest.raises(UnknownInstanceError):
        monitors.snapshot(running)


def test_control_of_an_unknown_instance_is_a_clear_error(monitors: MonitorClient) -> None:
    for action in (monitors.cancel, monitors.terminate, monitors.suspend, monitors.resume, monitors.purge):
        with pytest.raises(UnknownInstanceError, match="no monitor with instance id 'nope'"):
            action("nope")


# --- faults in the check --------------------------------------------------------------------------------


def test_transient_failures_are_retried_and_the_last_error_is_shown(monitors: MonitorClient) -> None:
    flaky = request(
        polling_interval_seconds=0.3,
        timeout_seconds=3,
        job_duration_seconds=0.5,
        job_fail_first_attempts=2,
        retry_first_interval_seconds=0.1,
    )
    seen: list[MonitorSnapshot] = []
    final = monitors.follow(monitors.start(flaky), on_change=seen.append, poll_seconds=0.02, timeout=20)
    assert final.result is not None and final.result.final_status == "Completed"
    assert final.result.checks_performed == 3  # 0 (after two retries), 0.3, 0.6
    errors = {s.custom_status.last_error for s in seen if s.custom_status and s.custom_status.last_error}
    assert any("simulated failure 1 of 2" in error for error in errors)
    assert final.custom_status is not None and "simulated failure 2 of 2" in str(
        final.custom_status.last_error
    )


def test_a_check_that_keeps_failing_ends_failed_with_a_readable_reason(monitors: MonitorClient) -> None:
    broken = request(job_fail_first_attempts=10, retry_max_attempts=3, retry_first_interval_seconds=0.1)
    final = monitors.follow(monitors.start(broken), timeout=20)
    assert final.runtime_status == "Completed", "the monitor ended by itself, not by an exception"
    assert final.result is not None and final.result.final_status == "Failed"
    assert final.result.reason == (
        "check 1 failed 3 time(s); last error: check 1, attempt 3: SimulatedCheckError: "
        "job service unavailable (simulated failure 3 of 10)"
    )
    assert "Traceback" not in final.describe()


def test_a_hanging_check_cannot_hold_the_monitor(monitors: MonitorClient) -> None:
    """Check 2 hangs for 6 s; the guard ends the monitor at the deadline plus its grace (1.3 s) instead.

    Had check 2 answered, there would be checks at 0.4 to 1.0 s and no reason: the count and the reason
    prove the monitor ended while the check was still hanging (its late answer is dropped later)."""
    hanging = request(
        polling_interval_seconds=0.2,
        timeout_seconds=1.0,
        deadline_grace_seconds=0.3,
        job_duration_seconds=NEVER,
        job_hang_seconds=6,
        job_hang_from_check=2,
    )
    final = monitors.follow(monitors.start(hanging), timeout=30)
    assert final.result is not None and final.result.final_status == "Timeout"
    assert final.result.checks_performed == 1
    assert final.result.reason == (
        f"check 2 had not answered 0.3 s after the deadline ({final.custom_status.deadline})"  # type: ignore[union-attr]
    )
    assert final.result.monitoring_duration_seconds >= 1.3, "by its own clock: the deadline plus the grace"


# --- long monitors ----------------------------------------------------------------------------------------


def test_a_ten_thousand_check_monitor_continues_as_new_and_counts_exactly() -> None:
    """Its own scheduler process (history capped at the SDK's 10,000 events) and its own worker.

    A 1 ms interval means the monitor is always overdue, so checks run back to back as fast as the worker
    goes (about a minute here); without continue_as_new the instance would hang at 10,000 events.
    """
    port = free_port()
    process.spawn_scheduler_process(port)
    connection = Connection(f"http://localhost:{port}", "default", "local")
    worker = create_worker(connection)
    worker.start()
    try:
        with MonitorClient(connection) as monitors:
            long = request(
                polling_interval_seconds=0.001,
                timeout_seconds=9.999,
                job_duration_seconds=NEVER,
                deadline_grace_seconds=900,
                checks_per_generation=25,
            )
            assert long.schedule().planned_check_count == 10_000
            instance_id = monitors.start(long)
            final = monitors.follow(instance_id, poll_seconds=0.5, timeout=900)
            assert final.result is not None
            assert (final.result.final_status, final.result.checks_performed) == ("Timeout", 10_000)
            assert final.custom_status is not None and final.custom_status.generation == 400
            state = monitors.client.get_orchestration_state(instance_id)
            assert state is not None
            started = from_iso(final.custom_status.started_at)
            assert abs((started - state.created_at.astimezone(timezone.utc)).total_seconds()) < 60
            assert from_iso(final.custom_status.deadline) - started == timedelta(seconds=9.999)
            history = monitors.client.get_orchestration_history(instance_id)
            assert len(history) < 1000, "the last generation's history is bounded"
    finally:
        worker.stop()
        assert process.stop_scheduler_process(port)


def test_state_combines_runtime_and_custom_status() -> None:
    """Pure: what ``snapshot.state`` says for each situation a person can see."""
    base = MonitorStatus(
        job_id="j",
        status="Running",
        check_count=2,
        last_check_time=None,
        elapsed_seconds=1.0,
        next_check_time=None,
        started_at="2025-09-19T18:05:00.000Z",
        deadline="2025-09-19T18:05:30.000Z",
        polling_interval_seconds=5,
        timeout_seconds=30,
    )
    retrying = replace(base, last_error="check 3, attempt 1: SimulatedCheckError: down", failed_attempts=1)
    # The retried check succeeded: its error stays visible, the attempt count is back to zero.
    recovered = replace(base, last_error="check 2, attempt 1: SimulatedCheckError: down", failed_attempts=0)
    cancelled = MonitorResult("j", "Cancelled", 2, 1.0, reason="cancelled on request")

    def state(runtime: str, custom: MonitorStatus | None, result: MonitorResult | None = None) -> str:
        return MonitorSnapshot("i", runtime, custom, result, None).state

    assert state("Running", base) == "Running"
    assert state("Running", retrying) == "Retrying"
    assert state("Running", recovered) == "Running"
    assert state("Suspended", retrying) == "Suspended", "the frozen custom status does not hide a suspension"
    assert state("Terminated", base) == "Terminated"
    assert state("Completed", base, cancelled) == "Cancelled"
    assert state("Failed", None) == "Failed"
