"""Real runs: SDK worker and client over gRPC, against the in-memory servicer on a loopback port.

Times are the official sample's scaled down tenfold (0.5 s instead of 5 s) so the suite stays fast. The
check counts are exact on any machine, however loaded: the schedule is fixed offsets from the start, and the
simulated job answers for the time each check was due, so a job that ends exactly when a check is due is seen
by that check. Durations are at least the due time of the last check (a check may run late, never early).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from gates import GatedJob

from conftest import new_job_id
from monitoring.client.errors import UnknownInstanceError
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core import jobs
from monitoring.core.jobs import register_job_source
from monitoring.core.models import MonitorRequest

# (interval, timeout, job duration, outcome) -> (final status, checks, due time of the last check)
SCENARIOS = {
    "seed completed, scaled": ((0.5, 3.0, 1.2, "Completed"), ("Completed", 4, 1.5)),
    "ends exactly at a check": ((0.5, 3.0, 1.5, "Completed"), ("Completed", 4, 1.5)),
    "seed timeout, scaled": ((0.6, 3.0, 100.0, "Completed"), ("Timeout", 6, 3.0)),
    "defaults timeout, scaled": ((0.5, 3.0, 100.0, "Completed"), ("Timeout", 7, 3.0)),
    "last wait clipped": ((0.7, 3.0, 100.0, "Completed"), ("Timeout", 6, 3.0)),
    "interval equals timeout": ((1.0, 1.0, 100.0, "Completed"), ("Timeout", 2, 1.0)),
    "failed job, 3 x 0.3 is not 0.9 in floating point": ((0.3, 3.0, 0.9, "Failed"), ("Failed", 4, 0.9)),
    "already done": ((0.3, 3.0, 0.0, "Completed"), ("Completed", 1, 0.0)),
}


def run(monitors: MonitorClient, interval: float, timeout: float, duration: float, outcome: str):
    request = MonitorRequest(
        job_id=new_job_id(),
        polling_interval_seconds=interval,
        timeout_seconds=timeout,
        job_duration_seconds=duration,
        job_outcome=outcome,  # type: ignore[arg-type]
    )
    seen: list[MonitorSnapshot] = []
    final = monitors.follow(monitors.start(request), on_change=seen.append, poll_seconds=0.02, timeout=30)
    return request, final, seen


def test_scenarios_end_with_exact_check_counts(monitors: MonitorClient) -> None:
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        runs = {name: pool.submit(run, monitors, *settings) for name, (settings, _) in SCENARIOS.items()}
    for name, (_, (final_status, checks, last_check_due)) in SCENARIOS.items():
        request, final, _ = runs[name].result()
        assert final.runtime_status == "Completed", name
        assert final.result is not None, name
        assert (final.result.final_status, final.result.checks_performed) == (final_status, checks), name
        assert final.result.job_id == request.job_id
        assert final.result.monitoring_duration_seconds >= last_check_due, name


def test_output_has_the_official_shape(monitors: MonitorClient) -> None:
    _, final, _ = run(monitors, 0.2, 0.4, 0.0, "Completed")
    state = monitors.client.get_orchestration_state(final.instance_id)
    assert state is not None
    output = state.get_output()
    assert set(output) == {"job_id", "final_status", "checks_performed", "monitoring_duration_seconds"}
    assert isinstance(output["checks_performed"], int)
    assert isinstance(output["monitoring_duration_seconds"], float)


def test_custom_status_is_published_after_every_check_before_the_next(
    monitors: MonitorClient, gate: GatedJob
) -> None:
    """Each check waits in the gate until the test releases it, so the test sees every published state."""
    request = MonitorRequest(new_job_id(), 0.2, 2.0, job_source=gate.name)
    instance_id = monitors.start(request)
    published = []
    for number, answer in enumerate(["Running", "Running", "Running", "Completed"], start=1):
        asked = gate.wait_asked(number)  # check `number` is in flight: the status of the previous is out
        assert asked.check_number == number
        status = monitors.snapshot(instance_id).custom_status
        assert status is not None and status.check_count == number - 1
        assert status.status == ("Pending" if number == 1 else "Running") and status.final_status is None
        published.append(status)
        gate.release(answer)
    final = monitors.follow(instance_id, timeout=30)
    last = final.custom_status
    assert last is not None and (last.check_count, last.status, last.final_status) == (
        4,
        "Completed",
        "Completed",
    )
    assert last.last_check_time is not None and last.last_check_time.endswith("Z")
    for status in [*published, last]:
        assert {"job_id", "status", "check_count", "last_check_time", "elapsed_seconds"} <= set(
            status.to_payload()
        )
    elapsed = [status.elapsed_seconds for status in [*published, last]]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= 0.6, "the 4th check was due at 0.6 s"


def test_official_sample_input_runs_unchanged(monitors: MonitorClient) -> None:
    """The sample's client sends only job_id, polling_interval_seconds and timeout_seconds."""
    instance_id = monitors.client.schedule_new_orchestration(
        "monitoring_job_orchestrator",
        input={"job_id": "job-123", "polling_interval_seconds": 0.2, "timeout_seconds": 0.4},
    )
    final = monitors.follow(instance_id, timeout=10)
    assert final.result is not None
    # The default simulated job runs 12 s: a 0.4 s monitor times out after checks at 0, 0.2 and 0.4 s.
    assert (final.result.final_status, final.result.checks_performed) == ("Timeout", 3)


def test_invalid_input_fails_the_orchestration_with_a_readable_reason(monitors: MonitorClient) -> None:
    instance_id = monitors.client.schedule_new_orchestration(
        "monitoring_job_orchestrator", input={"polling_interval_seconds": -1}
    )
    final = monitors.follow(instance_id, timeout=10)
    assert final.runtime_status == "Failed"
    assert final.failure is not None
    assert "polling_interval_seconds must be from 0.001 to 31536000 seconds" in final.failure


def test_a_check_that_raises_without_a_message_is_a_failed_check(monitors: MonitorClient) -> None:
    """SDK pitfall, through the real worker and scheduler: an activity exception with an empty message comes
    back as a success with no result; the activity re-raises it with its type, so the check fails."""

    class Silent:
        def check(self, request: object, now: object) -> object:
            raise ValueError()

    name = f"silent_{uuid.uuid4().hex[:8]}"
    register_job_source(name, Silent())
    try:
        request = MonitorRequest(new_job_id(), 0.2, 1.0, job_source=name, retry_max_attempts=1)
        final = monitors.follow(monitors.start(request), timeout=30)
    finally:
        jobs._SOURCES.pop(name, None)  # the registry has no public removal: a test's own clean-up
    assert final.runtime_status == "Completed" and final.result is not None
    assert (final.result.final_status, final.result.checks_performed) == ("Failed", 0)
    assert final.result.reason == (
        "check 1 failed 1 time(s); last error: check 1, attempt 1: RuntimeError: "
        "ValueError (raised without a message)"
    )


def test_unknown_instance_is_a_clear_error(monitors: MonitorClient) -> None:
    with pytest.raises(UnknownInstanceError, match="no monitor with instance id 'nope'"):
        monitors.snapshot("nope")
