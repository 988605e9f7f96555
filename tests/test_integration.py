"""Real runs: SDK worker and client over gRPC, against the in-memory servicer on a loopback port.

Times are the official sample's scaled down tenfold (0.5 s instead of 5 s) so the suite stays fast; the
check counts are exact because the schedule is fixed offsets from the start.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import new_job_id
from monitoring.client.errors import UnknownInstanceError
from monitoring.client.monitors import MonitorClient
from monitoring.client.snapshots import MonitorSnapshot
from monitoring.core.models import MonitorRequest

# (interval, timeout, job duration, outcome) -> (final status, checks)
SCENARIOS = {
    "seed completed, scaled": ((0.5, 3.0, 1.2, "Completed"), ("Completed", 4)),
    "seed timeout, scaled": ((0.6, 3.0, 100.0, "Completed"), ("Timeout", 6)),
    "defaults timeout, scaled": ((0.5, 3.0, 100.0, "Completed"), ("Timeout", 7)),
    "last wait clipped": ((0.7, 3.0, 100.0, "Completed"), ("Timeout", 6)),
    "interval equals timeout": ((1.0, 1.0, 100.0, "Completed"), ("Timeout", 2)),
    "failed job": ((0.3, 3.0, 0.75, "Failed"), ("Failed", 4)),
    "already done": ((0.3, 3.0, 0.0, "Completed"), ("Completed", 1)),
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
    for name, (settings, (final_status, checks)) in SCENARIOS.items():
        request, final, _ = runs[name].result()
        assert final.runtime_status == "Completed", name
        assert final.result is not None, name
        assert (final.result.final_status, final.result.checks_performed) == (final_status, checks), name
        assert final.result.job_id == request.job_id
        timeout = settings[1]
        if final_status == "Timeout":
            assert timeout <= final.result.monitoring_duration_seconds < timeout + 0.5, name


def test_output_has_the_official_shape(monitors: MonitorClient) -> None:
    _, final, _ = run(monitors, 0.2, 0.4, 0.0, "Completed")
    state = monitors.client.get_orchestration_state(final.instance_id)
    assert state is not None
    output = state.get_output()
    assert set(output) == {"job_id", "final_status", "checks_performed", "monitoring_duration_seconds"}
    assert isinstance(output["checks_performed"], int)
    assert isinstance(output["monitoring_duration_seconds"], float)


def test_custom_status_progresses_check_by_check(monitors: MonitorClient) -> None:
    _, final, seen = run(monitors, 0.4, 2.0, 1.0, "Completed")
    published = [snapshot.custom_status for snapshot in seen if snapshot.custom_status is not None]
    counts = [status.check_count for status in published]
    assert counts == sorted(counts), "check_count never goes back"
    assert counts[-1] == 4 and set(counts) >= {1, 2, 3, 4}, "every check is published (polled every 20 ms)"
    for status in published:
        assert {"job_id", "status", "check_count", "last_check_time", "elapsed_seconds"} <= set(
            status.to_payload()
        )
    last = published[-1]
    assert last.status == "Completed" and last.final_status == "Completed"
    assert last.last_check_time is not None and last.last_check_time.endswith("Z")
    assert final.custom_status == last
    elapsed = [status.elapsed_seconds for status in published if status.check_count > 0]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= 1.2


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
    assert final.failure is not None and "polling_interval_seconds must be greater than zero" in final.failure


def test_unknown_instance_is_a_clear_error(monitors: MonitorClient) -> None:
    with pytest.raises(UnknownInstanceError, match="no monitor with instance id 'nope'"):
        monitors.snapshot("nope")
